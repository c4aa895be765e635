import CZlib
import Foundation

/// Why an IDX file could not be read.
public enum IDXError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String)
    case readFailed(path: String, reason: String)
    case badMagic(path: String, found: UInt32)
    case unexpectedDimensions(path: String, expected: Int, found: Int)
    case truncated(path: String, expectedBytes: Int, foundBytes: Int)
    case trailingBytes(path: String, expectedBytes: Int)
    case countMismatch(images: Int, labels: Int)
    /// The header's dimensions multiply to more bytes than an `Int` can count.
    case tooLarge(path: String, dimensions: [Int])

    public var description: String {
        switch self {
        case .cannotOpen(let path):
            return "cannot open IDX file '\(path)': check that it exists and is readable"
        case .readFailed(let path, let reason):
            return "reading IDX file '\(path)' failed: \(reason)"
        case .badMagic(let path, let found):
            return "'\(path)' is not an unsigned-byte IDX file (magic 0x\(String(found, radix: 16)), expected 0x00000801 or 0x00000803)"
        case .unexpectedDimensions(let path, let expected, let found):
            return "'\(path)' has \(found) dimensions, expected \(expected) (images are idx3, labels idx1)"
        case .truncated(let path, let expected, let found):
            return "'\(path)' is truncated: header promises \(expected) data bytes, file holds \(found)"
        case .trailingBytes(let path, let expected):
            return "'\(path)' holds more than the \(expected) data bytes its header declares"
        case .countMismatch(let images, let labels):
            return "image file holds \(images) images but label file holds \(labels) labels"
        case .tooLarge(let path, let dimensions):
            return "'\(path)' declares \(dimensions.map(String.init).joined(separator: "×")) bytes of data, too many to read: the header is damaged"
        }
    }
}

/// Grayscale images from an idx3-ubyte file: `count` images of `rows×columns` bytes, row-major,
/// one after the other in `pixels`.
public struct IDXImages: Sendable {
    public let count: Int
    public let rows: Int
    public let columns: Int
    public let pixels: [UInt8]
    /// The bytes of image `index`.
    public func image(_ index: Int) -> ArraySlice<UInt8> {
        pixels[(index * rows * columns)..<((index + 1) * rows * columns)]
    }
}

/// Reads the IDX format of MNIST-style datasets (big-endian header, unsigned bytes), gzip-compressed or
/// plain: zlib's `gzread` passes uncompressed files through unchanged, so both go through one path.
public enum IDXReader {
    private static let imageMagic: UInt32 = 0x0000_0803
    private static let labelMagic: UInt32 = 0x0000_0801
    /// Decompressed bytes per `gzread` call.
    private static let readChunkBytes = 1 << 20

    /// Reads an idx3-ubyte image file.
    public static func readImages(path: String) throws -> IDXImages {
        let (dimensions, data) = try read(path: path, magic: imageMagic, dimensionCount: 3)
        return IDXImages(count: dimensions[0], rows: dimensions[1], columns: dimensions[2], pixels: data)
    }

    /// Reads an idx1-ubyte label file.
    public static func readLabels(path: String) throws -> [UInt8] {
        try read(path: path, magic: labelMagic, dimensionCount: 1).data
    }

    /// Up to `limit` more bytes of an open file (fewer at its end), read in chunks of at most 1 MiB so that
    /// memory follows the bytes actually present, not a count from a header.
    private static func read(_ file: gzFile, path: String, limit: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(limit, readChunkBytes))
        while result.count < limit {
            let wanted = min(chunk.count, limit - result.count)
            let got = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32(wanted)) }
            if got < 0 {
                var code: Int32 = 0
                let message = gzerror(file, &code).map { String(cString: $0) } ?? "unknown zlib error"
                throw IDXError.readFailed(path: path, reason: message)
            }
            if got == 0 { break }
            result.append(contentsOf: chunk[0..<Int(got)])
        }
        return result
    }

    /// Reads the header, then only as many data bytes as it declares (and one more, to notice trailing
    /// bytes): a damaged header or a decompression bomb cannot make the reader allocate more than that.
    private static func read(path: String, magic: UInt32, dimensionCount: Int) throws -> (dimensions: [Int], data: [UInt8]) {
        guard let file = gzopen(path, "rb") else { throw IDXError.cannotOpen(path: path) }
        defer { gzclose(file) }
        let headerSize = 4 + 4 * dimensionCount
        let header = try read(file, path: path, limit: headerSize)
        func word(_ offset: Int) -> UInt32 {
            header[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
        }
        guard header.count >= 4 else { throw IDXError.truncated(path: path, expectedBytes: 4, foundBytes: header.count) }
        let found = word(0)
        guard found == imageMagic || found == labelMagic else { throw IDXError.badMagic(path: path, found: found) }
        guard found == magic else {
            throw IDXError.unexpectedDimensions(path: path, expected: dimensionCount, found: Int(found & 0xff))
        }
        guard header.count == headerSize else {
            throw IDXError.truncated(path: path, expectedBytes: headerSize, foundBytes: header.count)
        }
        let dimensions = (0..<dimensionCount).map { Int(word(4 + 4 * $0)) }
        var dataSize = 1
        for dimension in dimensions {
            let (product, overflow) = dataSize.multipliedReportingOverflow(by: dimension)
            // One more byte is read than declared, so the size must leave room for that.
            guard !overflow, product < Int.max else { throw IDXError.tooLarge(path: path, dimensions: dimensions) }
            dataSize = product
        }
        let data = try read(file, path: path, limit: dataSize + 1)
        if data.count < dataSize { throw IDXError.truncated(path: path, expectedBytes: dataSize, foundBytes: data.count) }
        if data.count > dataSize { throw IDXError.trailingBytes(path: path, expectedBytes: dataSize) }
        return (dimensions, data)
    }
}
