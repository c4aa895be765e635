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
        var file = ModelFileWriter(Sequential.modelMagic)
        file.append(Sequential.modelFormatVersion)
        file.append(string: architectureDescription)
        let tensors = namedTensors
        file.append(tensors.count)
        for (name, parameter) in tensors {
            file.append(string: name)
            file.append(parameter.shape.count)
            for dimension in parameter.shape { file.append(dimension) }
            file.append(UnsafeBufferPointer(start: parameter.value.pointer, count: parameter.count))
        }
        file.append(CRC32.checksum(file.bytes[...]))
        return file.bytes
    }

    /// Replaces parameters and running statistics with those in `bytes`, which must come from a
    /// network of the same architecture. Nothing changes when an error is thrown.
    public func load(from bytes: [UInt8]) throws {
        do {
            try load(reading: bytes)
        } catch let error as ModelFileError {
            throw NeuralNetError.malformedModel(error.description)
        }
    }

    private func load(reading bytes: [UInt8]) throws {
        var reader = ModelFileReader(bytes)
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
        try reader.limit(to: bytes.count - 4)

        let architecture = try reader.string()
        guard architecture == architectureDescription else {
            throw NeuralNetError.architectureMismatch(expected: architectureDescription, found: architecture)
        }
        let tensors = namedTensors
        let count = try reader.int()
        guard count == tensors.count else {
            throw NeuralNetError.malformedModel("file holds \(count) tensors, the architecture has \(tensors.count)")
        }
        var decoded: [[Float]] = []
        for (name, parameter) in tensors {
            let storedName = try reader.string()
            let rank = try reader.int()
            // Each dimension takes 4 bytes, so a rank larger than what is left is damage, not a shape.
            guard rank <= reader.remaining / 4 else {
                throw NeuralNetError.malformedModel("tensor \(storedName) claims rank \(rank), more than the file holds")
            }
            var shape: [Int] = []
            for _ in 0..<rank { shape.append(try reader.int()) }
            guard storedName == name, shape == parameter.shape else {
                throw NeuralNetError.malformedModel("expected tensor \(name) of shape \(parameter.shape), found \(storedName) of shape \(shape)")
            }
            decoded.append(try reader.floats(parameter.count))
        }
        guard reader.remaining == 0 else { throw NeuralNetError.malformedModel("unexpected bytes after the last tensor") }
        for ((_, parameter), values) in zip(tensors, decoded) { parameter.values = values }
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
