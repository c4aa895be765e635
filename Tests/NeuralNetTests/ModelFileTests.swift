import XCTest
@testable import NeuralNet

/// The shared little-endian model-file writer and reader, and the one seeded generator.
final class ModelFileTests: XCTestCase {
    func testWriterAndReaderRoundTrip() throws {
        var writer = ModelFileWriter(Array("MAGC".utf8))
        writer.append(UInt32(0xDEAD_BEEF))
        writer.append(7)
        writer.append(Float(-1.5))
        writer.append([Float(0.25), .infinity, -0])
        writer.append(string: "conv·1")
        writer.append(bytes: [9, 8, 7])
        // Little-endian, in the order written.
        XCTAssertEqual(Array(writer.bytes[4..<12]), [0xEF, 0xBE, 0xAD, 0xDE, 7, 0, 0, 0])

        var reader = ModelFileReader(writer.bytes)
        XCTAssertEqual(Array(try reader.bytes(4)), Array("MAGC".utf8))
        XCTAssertEqual(try reader.uint32(), 0xDEAD_BEEF)
        XCTAssertEqual(try reader.int(), 7)
        XCTAssertEqual(try reader.float(), -1.5)
        XCTAssertEqual(try reader.floats(3).map(\.bitPattern), [Float(0.25), .infinity, -0].map(\.bitPattern))
        XCTAssertEqual(try reader.string(), "conv·1")
        XCTAssertEqual(reader.remaining, 3)
        XCTAssertEqual(Array(reader.rest()), [9, 8, 7])
        XCTAssertEqual(reader.remaining, 0)
    }

    /// Every read checks what is left first: short files, huge counts and lengths throw before any
    /// allocation, and a limit hides trailing bytes.
    func testReadsPastTheEndThrowTypedErrors() throws {
        var reader = ModelFileReader([1, 2, 3])
        XCTAssertThrowsError(try reader.uint32()) {
            XCTAssertEqual($0 as? ModelFileError, .truncated(offset: 0, needed: 4, available: 3))
        }
        XCTAssertEqual(reader.offset, 0, "a failed read consumes nothing")

        var huge = ModelFileReader([0, 0, 0, 0, 1, 2, 3, 4])
        XCTAssertThrowsError(try huge.floats(1 << 40)) {
            XCTAssertEqual($0 as? ModelFileError, .truncated(offset: 0, needed: 1 << 42, available: 8))
        }
        XCTAssertThrowsError(try huge.floats(Int.max)) {
            XCTAssertEqual($0 as? ModelFileError, .truncated(offset: 0, needed: Int.max, available: 8))
        }
        XCTAssertThrowsError(try huge.bytes(-1))

        var writer = ModelFileWriter()
        writer.append(UInt32.max)  // a string length of 4 GiB in a 4-byte file
        var longString = ModelFileReader(writer.bytes)
        XCTAssertThrowsError(try longString.string()) {
            XCTAssertEqual($0 as? ModelFileError, .truncated(offset: 4, needed: Int(UInt32.max), available: 0))
        }

        var badText = ModelFileReader([2, 0, 0, 0, 0xC3, 0x28])
        XCTAssertThrowsError(try badText.string()) { XCTAssertEqual($0 as? ModelFileError, .invalidUTF8(offset: 0)) }

        var limited = ModelFileReader([1, 0, 0, 0, 0xAA, 0xBB, 0xCC, 0xDD])
        try limited.limit(to: 4)
        XCTAssertEqual(try limited.uint32(), 1)
        XCTAssertThrowsError(try limited.uint32())
        XCTAssertThrowsError(try limited.limit(to: 9))
    }

    /// A network file whose tensor claims a rank of 2^32 − 1 is refused before any shape is built.
    func testNetworkFileWithAHugeRankIsMalformed() throws {
        let network = try Sequential.dschEncoder(EncoderConfiguration(bits: 4, widths: [2, 2, 2], hiddenWidth: 4, inputSize: 8), seed: 1)
        var writer = ModelFileWriter(Sequential.modelMagic)
        writer.append(Sequential.modelFormatVersion)
        writer.append(string: network.architectureDescription)
        writer.append(network.namedTensors.count)
        writer.append(string: network.namedTensors[0].0)
        writer.append(UInt32.max)
        writer.append(CRC32.checksum(writer.bytes[...]))
        XCTAssertThrowsError(try network.load(from: writer.bytes)) { error in
            guard case NeuralNetError.malformedModel = error else { return XCTFail("unexpected \(error)") }
        }
    }

    /// SplitMix64's published outputs for seed 0, and the uniform and Gaussian draws the stored LSH
    /// projections were made with.
    func testSplitMix64KnownAnswers() {
        var zero = SplitMix64(seed: 0)
        XCTAssertEqual((0..<3).map { _ in zero.next() }, [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var uniform = SplitMix64(seed: 9)
        XCTAssertEqual((0..<3).map { _ in uniform.nextUniform().bitPattern }, [0x3F2E_AF52, 0x3F40_2D8A, 0x3E87_D856])
        var gaussian = SplitMix64(seed: 0x5eed)
        XCTAssertEqual((0..<6).map { _ in gaussian.nextGaussian().bitPattern },
                       [0xBFA2_2CB9, 0xBFA9_56C7, 0xBFD8_EB98, 0x3FDB_7147, 0x3C85_DBD3, 0xBF93_40D0])
    }
}
