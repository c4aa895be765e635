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

    /// CRC-32 as PNG uses it (reflected polynomial 0xEDB88320), computed bit by bit.
    static func crc32<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

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
