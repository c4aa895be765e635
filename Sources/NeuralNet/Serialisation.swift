/// Versioned binary model format.
///
/// Layout (little-endian): magic `DSCHNNET`, format version (UInt32), architecture text (UInt32 length
/// + UTF-8), tensor count (UInt32), then per tensor its name (UInt32 length + UTF-8), rank (UInt32),
/// dimensions (UInt32 each) and Float32 values, and finally a CRC-32 of every preceding byte.
extension Sequential {
    /// Format version written by this build.
    public static let modelFormatVersion: UInt32 = 1
    static let modelMagic = Array("DSCHNNET".utf8)

    /// Parameters and running statistics, with the architecture, as bytes (see the format above).
    public func serialized() -> [UInt8] {
        var bytes = Sequential.modelMagic
        append(Sequential.modelFormatVersion, to: &bytes)
        appendString(architectureDescription, to: &bytes)
        let tensors = namedTensors
        append(UInt32(tensors.count), to: &bytes)
        for (name, parameter) in tensors {
            appendString(name, to: &bytes)
            append(UInt32(parameter.shape.count), to: &bytes)
            for dimension in parameter.shape { append(UInt32(dimension), to: &bytes) }
            let values = UnsafeBufferPointer(start: parameter.value.pointer, count: parameter.count)
            bytes.reserveCapacity(bytes.count + 4 * values.count + 4)
            for value in values { append(value.bitPattern, to: &bytes) }
        }
        append(CRC32.checksum(bytes[...]), to: &bytes)
        return bytes
    }

    /// Replaces parameters and running statistics with those in `bytes`, which must come from a
    /// network of the same architecture. Nothing changes when an error is thrown.
    public func load(from bytes: [UInt8]) throws {
        var reader = ModelReader(bytes: bytes)
        let magic = try reader.bytes(Sequential.modelMagic.count)
        guard Array(magic) == Sequential.modelMagic else {
            throw NeuralNetError.malformedModel("not a dsch model file (wrong magic bytes)")
        }
        let version = try reader.uint32()
        guard version == Sequential.modelFormatVersion else {
            throw NeuralNetError.unsupportedModelVersion(found: version, supported: Sequential.modelFormatVersion)
        }
        guard bytes.count >= 16 else { throw NeuralNetError.malformedModel("file ends before its checksum") }
        let body = bytes[..<(bytes.count - 4)]
        let stored = bytes[(bytes.count - 4)...].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }.littleEndian
        let computed = CRC32.checksum(body)
        guard stored == computed else { throw NeuralNetError.checksumMismatch(stored: stored, computed: computed) }
        reader.end = bytes.count - 4

        let architecture = try reader.string()
        guard architecture == architectureDescription else {
            throw NeuralNetError.architectureMismatch(expected: architectureDescription, found: architecture)
        }
        let tensors = namedTensors
        let count = try reader.uint32()
        guard count == tensors.count else {
            throw NeuralNetError.malformedModel("file holds \(count) tensors, the architecture has \(tensors.count)")
        }
        var decoded: [[Float]] = []
        for (name, parameter) in tensors {
            let storedName = try reader.string()
            let rank = Int(try reader.uint32())
            var shape: [Int] = []
            for _ in 0..<rank { shape.append(Int(try reader.uint32())) }
            guard storedName == name, shape == parameter.shape else {
                throw NeuralNetError.malformedModel("expected tensor \(name) of shape \(parameter.shape), found \(storedName) of shape \(shape)")
            }
            let raw = try reader.bytes(4 * parameter.count)
            decoded.append(raw.withUnsafeBytes { buffer in
                (0..<parameter.count).map { Float(bitPattern: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            })
        }
        guard reader.offset == reader.end else { throw NeuralNetError.malformedModel("unexpected bytes after the last tensor") }
        for ((_, parameter), values) in zip(tensors, decoded) { parameter.values = values }
    }

    private func append(_ value: UInt32, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private func appendString(_ text: String, to bytes: inout [UInt8]) {
        let utf8 = Array(text.utf8)
        append(UInt32(utf8.count), to: &bytes)
        bytes.append(contentsOf: utf8)
    }
}

/// Bounds-checked little-endian reading of a model file.
private struct ModelReader {
    let bytes: [UInt8]
    var offset = 0
    var end: Int

    init(bytes: [UInt8]) {
        self.bytes = bytes
        end = bytes.count
    }

    mutating func bytes(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, end - offset >= count else {
            throw NeuralNetError.malformedModel("file is truncated at byte \(offset)")
        }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    mutating func uint32() throws -> UInt32 {
        try bytes(4).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    }

    mutating func string() throws -> String {
        let length = Int(try uint32())
        guard let text = String(validating: try bytes(length), as: UTF8.self) else {
            throw NeuralNetError.malformedModel("a name is not valid UTF-8")
        }
        return text
    }
}

/// CRC-32 (IEEE 802.3, as in zlib and PNG).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
