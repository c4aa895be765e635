/// Why a model file could not be read: it ends before what it declares, or holds text that is not UTF-8.
public enum ModelFileError: Error, Equatable, CustomStringConvertible {
    /// `needed` bytes were wanted at `offset`, but only `available` remain.
    case truncated(offset: Int, needed: Int, available: Int)
    /// The string at `offset` is not valid UTF-8.
    case invalidUTF8(offset: Int)

    public var description: String {
        switch self {
        case let .truncated(offset, needed, available):
            return "file is truncated at byte \(offset): \(needed) bytes needed, \(available) left"
        case let .invalidUTF8(offset):
            return "the text at byte \(offset) is not valid UTF-8"
        }
    }
}

/// Builds a little-endian model file: the one writer of the ITQ, DSCH and network formats.
public struct ModelFileWriter {
    /// The file so far.
    public private(set) var bytes: [UInt8]

    /// A file that starts with `bytes` (usually the format's magic).
    public init(_ bytes: [UInt8] = []) { self.bytes = bytes }

    /// Appends 4 bytes, least significant first.
    public mutating func append(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends `value` as a UInt32; it must fit.
    public mutating func append(_ value: Int) {
        append(UInt32(value))
    }

    /// Appends the IEEE 754 bit pattern.
    public mutating func append(_ value: Float) {
        append(value.bitPattern)
    }

    /// Appends each value's bit pattern, in order.
    public mutating func append(_ values: some Collection<Float>) {
        bytes.reserveCapacity(bytes.count + 4 * values.count)
        for value in values { append(value) }
    }

    /// A UInt32 byte count, then the UTF-8 bytes.
    public mutating func append(string text: String) {
        let utf8 = Array(text.utf8)
        append(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// Raw bytes, with no length in front.
    public mutating func append(bytes more: some Sequence<UInt8>) {
        bytes.append(contentsOf: more)
    }
}

/// Reads a little-endian model file with every read bounds-checked: a length or count is compared with
/// the bytes that remain before anything is allocated, so a damaged file (a count of 2^40, say) throws
/// `ModelFileError.truncated` instead of allocating or trapping.
public struct ModelFileReader {
    private let bytes: [UInt8]
    /// Where the next read starts.
    public private(set) var offset = 0
    /// Where reading stops (the file's end unless `limit(to:)` moved it, e.g. before a checksum).
    public private(set) var end: Int

    /// A reader at the start of `bytes`.
    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        end = bytes.count
    }

    /// Bytes left before `end`.
    public var remaining: Int { end - offset }

    /// Stops reading at `newEnd` (between the current offset and the file's end), so that trailing
    /// bytes such as a checksum are not read as content.
    public mutating func limit(to newEnd: Int) throws {
        guard newEnd >= offset, newEnd <= bytes.count else {
            throw ModelFileError.truncated(offset: offset, needed: max(newEnd - offset, 0), available: bytes.count - offset)
        }
        end = newEnd
    }

    /// The next `count` bytes.
    public mutating func bytes(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else {
            throw ModelFileError.truncated(offset: offset, needed: count, available: remaining)
        }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    /// Every byte up to `end`.
    public mutating func rest() -> ArraySlice<UInt8> {
        defer { offset = end }
        return bytes[offset..<end]
    }

    /// The next 4 bytes, least significant first.
    public mutating func uint32() throws -> UInt32 {
        try bytes(4).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    }

    /// A UInt32 as an Int (always representable: Int is 64 bits on every supported platform).
    public mutating func int() throws -> Int {
        Int(try uint32())
    }

    /// The next Float, from its bit pattern.
    public mutating func float() throws -> Float {
        Float(bitPattern: try uint32())
    }

    /// `count` Floats, refused before allocating when fewer than `4 × count` bytes remain.
    public mutating func floats(_ count: Int) throws -> [Float] {
        guard count >= 0, count <= remaining / 4 else {
            let (needed, overflow) = count.multipliedReportingOverflow(by: 4)
            throw ModelFileError.truncated(offset: offset, needed: overflow ? Int.max : needed, available: remaining)
        }
        return try bytes(4 * count).withUnsafeBytes { buffer in
            (0..<count).map { Float(bitPattern: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }

    /// A UInt32 byte count, then that many bytes of UTF-8.
    public mutating func string() throws -> String {
        let start = offset
        let length = try int()
        guard let text = String(validating: try bytes(length), as: UTF8.self) else {
            throw ModelFileError.invalidUTF8(offset: start)
        }
        return text
    }
}
