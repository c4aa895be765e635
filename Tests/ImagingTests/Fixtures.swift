import TestSupport
import CJPEG
import CPNG
import Foundation
@testable import Imaging

/// Real files written by libjpeg and libpng with options the public encoders do not expose.
enum Fixture {
    /// Channels per pixel of each PNG colour type.
    static func channels(colorType: Int32) -> Int {
        switch colorType {
        case PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_PALETTE: return 1
        case PNG_COLOR_TYPE_GRAY_ALPHA: return 2
        case PNG_COLOR_TYPE_RGB: return 3
        default: return 4
        }
    }

    /// A PNG from row-major interleaved samples (each below 2^depth), packed as PNG stores them.
    static func png(width: Int, height: Int, depth: Int, colorType: Int32, samples: [Int],
                    interlaced: Bool = false, palette: [UInt8] = [], paletteAlpha: [UInt8] = [],
                    colorKey: (Int, Int, Int)? = nil) -> [UInt8] {
        let perRow = width * channels(colorType: colorType)
        precondition(samples.count == perRow * height)
        let rowBytes = (perRow * depth + 7) / 8
        var rows = [UInt8](repeating: 0, count: rowBytes * height)
        for y in 0..<height {
            for k in 0..<perRow {
                let sample = samples[y * perRow + k]
                precondition(sample >= 0 && sample < 1 << depth)
                let base = y * rowBytes
                switch depth {
                case 16:
                    rows[base + 2 * k] = UInt8(sample >> 8)
                    rows[base + 2 * k + 1] = UInt8(sample & 0xFF)
                case 8:
                    rows[base + k] = UInt8(sample)
                default:
                    let bit = k * depth
                    rows[base + bit / 8] |= UInt8(sample << (8 - depth - bit % 8))
                }
            }
        }
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: Int(DSCH_PNG_MESSAGE_CAPACITY))
        let status = dsch_png_encode(rows, png_uint_32(width), png_uint_32(height), rowBytes,
                                     Int32(depth), colorType, interlaced ? 1 : 0,
                                     palette, Int32(palette.count / 3), paletteAlpha, Int32(paletteAlpha.count),
                                     colorKey == nil ? 0 : 1, UInt32(colorKey?.0 ?? 0),
                                     UInt32(colorKey?.1 ?? 0), UInt32(colorKey?.2 ?? 0),
                                     &output, &size, &message)
        precondition(status == 0, "libpng refused the fixture: \(Decoding.text(message))")
        defer { free(output) }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }

    /// A JPEG of `components` samples per pixel in `input`, stored as `file`.
    /// `adobe`: 1 writes the Adobe marker, 0 omits it, -1 keeps libjpeg's default.
    static func jpeg(_ samples: [UInt8], width: Int, height: Int, components: Int,
                     input: J_COLOR_SPACE, file: J_COLOR_SPACE, quality: Int = 95,
                     progressive: Bool = false, adobe: Int32 = -1) -> [UInt8] {
        precondition(samples.count == width * height * components)
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: Int(DSCH_JPEG_MESSAGE_CAPACITY))
        let status = dsch_jpeg_encode(samples, UInt32(width), UInt32(height), Int32(components),
                                      input, file, Int32(quality), progressive ? 1 : 0, adobe,
                                      &output, &size, &message)
        precondition(status == 0, "libjpeg refused the fixture: \(Decoding.text(message))")
        defer { free(output) }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }

    /// CRC-32 as PNG uses it.
    static func crc32<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 { CRC32.checksum(bytes) }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    /// One PNG chunk: length, type, data, CRC over type and data.
    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typed = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + typed + bigEndian(crc32(typed))
    }

    /// A PNG of only signature, IHDR (8-bit RGB) and IEND: a header claiming any size.
    static func pngHeaderOnly(width: UInt32, height: UInt32) -> [UInt8] {
        PNGHeader.signature
            + chunk("IHDR", bigEndian(width) + bigEndian(height) + [8, 2, 0, 0, 0])
            + chunk("IEND", [])
    }

    /// `jpeg` with an APP1 segment holding `payload` right after SOI.
    static func insertingAPP1(_ jpeg: [UInt8], payload: [UInt8]) -> [UInt8] {
        let length = payload.count + 2
        return Array(jpeg[0..<2]) + [0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)]
            + payload + Array(jpeg[2...])
    }

    /// An EXIF APP1 payload whose IFD0 holds a Make tag, then the orientation tag.
    static func exif(orientation: Int, littleEndian: Bool) -> [UInt8] {
        func u16(_ value: Int) -> [UInt8] {
            littleEndian ? [UInt8(value & 0xFF), UInt8(value >> 8)] : [UInt8(value >> 8), UInt8(value & 0xFF)]
        }
        func u32(_ value: Int) -> [UInt8] {
            littleEndian ? u16(value & 0xFFFF) + u16(value >> 16) : u16(value >> 16) + u16(value & 0xFFFF)
        }
        var tiff: [UInt8] = littleEndian ? [0x49, 0x49] : [0x4D, 0x4D]
        tiff += u16(42) + u32(8)
        tiff += u16(2)
        // Make (ASCII, 4 bytes "dsc\0", stored inline).
        tiff += u16(0x010F) + u16(2) + u32(4) + Array("dsc\0".utf8)
        // Orientation (SHORT, one value, padded to four bytes).
        tiff += u16(0x0112) + u16(3) + u32(1) + u16(orientation) + u16(0)
        tiff += u32(0)
        return Array("Exif\0\0".utf8) + tiff
    }
}

/// SplitMix64: a small seeded generator so that random tests repeat exactly.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension RGBImage {
    /// The (r, g, b) at (x, y).
    func pixel(_ x: Int, _ y: Int) -> [Int] {
        let index = 3 * (y * width + x)
        return [Int(pixels[index]), Int(pixels[index + 1]), Int(pixels[index + 2])]
    }
}

/// Tiny PNG files that declare huge dimensions, written without libpng: libpng would need a
/// row-pointer array and millions of row calls, while a periodic image compresses to a few
/// literals and a run of back-references to the previous period.
enum PeriodicPNG {
    /// An 8-bit grey PNG whose filtered scanlines (filter byte 0, then `width` samples) repeat
    /// `period` (rows in order) until `height` rows are written.
    static func gray(width: Int, height: Int, rows period: [[UInt8]]) -> [UInt8] {
        precondition(height % period.count == 0 && period.allSatisfy { $0.count == width })
        return gray(width: width, height: height,
                    idat: zlib(prefix: [], repeating: period.flatMap { row -> [UInt8] in [0] + row }, times: height / period.count))
    }

    /// An 8-bit grey PNG of one row, every sample `value`.
    static func gray(width: Int, value: UInt8) -> [UInt8] {
        gray(width: width, height: 1, idat: zlib(prefix: [0], repeating: [value], times: width))
    }

    static func gray(width: Int, height: Int, idat: [UInt8]) -> [UInt8] {
        PNGHeader.signature
            + Fixture.chunk("IHDR", Fixture.bigEndian(UInt32(width)) + Fixture.bigEndian(UInt32(height)) + [8, 0, 0, 0, 0])
            + Fixture.chunk("IDAT", idat)
            + Fixture.chunk("IEND", [])
    }

    /// Appends bits least significant first, as DEFLATE packs them.
    struct BitWriter {
        private(set) var bytes: [UInt8] = []
        private var pending: UInt64 = 0
        private var pendingBits = 0
        mutating func write(_ value: Int, bits: Int) {
            pending |= UInt64(value & ((1 << bits) - 1)) << UInt64(pendingBits)
            pendingBits += bits
            while pendingBits >= 8 {
                bytes.append(UInt8(pending & 0xFF))
                pending >>= 8
                pendingBits -= 8
            }
        }
        /// The written bytes, the last one padded with zero bits.
        mutating func finished() -> [UInt8] {
            if pendingBits > 0 { write(0, bits: 8 - pendingBits) }
            return bytes
        }
        /// Huffman codes go most significant bit first.
        mutating func writeCode(_ code: Int, bits: Int) {
            for bit in stride(from: bits - 1, through: 0, by: -1) { write((code >> bit) & 1, bits: 1) }
        }
    }

    /// The fixed-Huffman code of a literal/length symbol (RFC 1951, 3.2.6).
    static func writeSymbol(_ symbol: Int, into writer: inout BitWriter) {
        switch symbol {
        case 0...143: writer.writeCode(0x30 + symbol, bits: 8)
        case 144...255: writer.writeCode(0x190 + symbol - 144, bits: 9)
        case 256...279: writer.writeCode(symbol - 256, bits: 7)
        default: writer.writeCode(0xC0 + symbol - 280, bits: 8)
        }
    }

    static let lengthBases = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                              67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtraBits = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                  4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBases = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
                                1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]

    /// A zlib stream of `prefix` then `unit` repeated `times` times: one fixed-Huffman block
    /// holding `prefix` and `unit` as literals, then back-references of distance `unit.count`.
    static func zlib(prefix: [UInt8], repeating unit: [UInt8], times: Int) -> [UInt8] {
        precondition(!unit.isEmpty && unit.count <= 32_768 && times >= 1)
        var writer = BitWriter()
        writer.write(1, bits: 1)  // final block
        writer.write(1, bits: 2)  // fixed Huffman codes
        for byte in prefix + unit { writeSymbol(Int(byte), into: &writer) }
        let distanceCode = distanceBases.lastIndex { $0 <= unit.count }!
        let distanceExtra = distanceCode < 4 ? 0 : distanceCode / 2 - 1
        var remaining = unit.count * (times - 1)
        while remaining > 0 {
            var length = min(258, remaining)
            if (1...2).contains(remaining - length) { length = remaining - 3 }
            let lengthCode = length == 258 ? 28 : lengthBases.lastIndex { $0 <= length && $0 != 258 }!
            writeSymbol(257 + lengthCode, into: &writer)
            writer.write(length - lengthBases[lengthCode], bits: lengthExtraBits[lengthCode])
            writer.writeCode(distanceCode, bits: 5)
            writer.write(unit.count - distanceBases[distanceCode], bits: distanceExtra)
            remaining -= length
        }
        writeSymbol(256, into: &writer)
        return [0x78, 0x01] + writer.finished() + Fixture.bigEndian(adler32(prefix: prefix, repeating: unit, times: times))
    }

    /// Adler-32 of `prefix` then `unit` repeated `times` times, the repetitions in closed form:
    /// one maps (a, b) to (a + S, b + n·a + T) with S the byte sum and T = Σ (n − k)·unit[k].
    static func adler32(prefix: [UInt8], repeating unit: [UInt8], times: Int) -> UInt32 {
        let modulus = 65_521
        var a = 1, b = 0
        for byte in prefix {
            a = (a + Int(byte)) % modulus
            b = (b + a) % modulus
        }
        let n = unit.count % modulus
        let sum = unit.reduce(0) { $0 + Int($1) } % modulus
        let weighted = unit.enumerated().reduce(0) { ($0 + (unit.count - $1.offset) * Int($1.element)) % modulus }
        let repeats = times % modulus
        let pairs = (times * (times - 1) / 2) % modulus
        let newB = (b + repeats * n % modulus * a + n * sum % modulus * pairs + repeats * weighted) % modulus
        a = (a + repeats * sum) % modulus
        return UInt32(newB << 16 | a)
    }
}
