import XCTest
@testable import Hashing
import NeuralNet

/// Inputs found by the libFuzzer target `model` (Fuzz/, scripts/fuzz): each used to trap or
/// to allocate what a damaged header asked for; each must now be a typed error.
final class FuzzRegressionTests: XCTestCase {
    private func little(_ words: [UInt32]) -> [UInt8] {
        words.flatMap { word in withUnsafeBytes(of: word.littleEndian, Array.init) }
    }

    /// model: an ITQ header with inputSize 0xE3B8E44F trapped squaring it (the fuzzer's input, whose header
    /// is all that matters: the trap came before the length check).
    func testITQHeaderWithHugeInputSizeIsBadModelData() {
        let found: [UInt8] = Array("ITQ1".utf8) + [0x02, 0x00, 0x00, 0x00, 0x4F, 0xE4, 0xB8, 0xE3, 0xD2, 0x33, 0x3C, 0x08]
        XCTAssertThrowsError(try ITQEncoder.load(found)) { XCTAssertTrue($0 is HashEncoderError, "\($0)") }
        // inputSize 1 (dimension 3) with 2^32 − 1 bits: the float count fits an Int but is not in the file.
        let manyBits = Array("ITQ1".utf8) + little([0xFFFF_FFFF, 1, 3]) + [UInt8](repeating: 0, count: 64)
        XCTAssertThrowsError(try ITQEncoder.load(manyBits)) { XCTAssertTrue($0 is HashEncoderError, "\($0)") }
    }

    /// model: LSH parameters are three numbers, and the projection they generate was sized by them alone
    /// (negative bits trapped; 2^40 weights were allocated).
    func testLSHParametersThatWouldGenerateAHugeProjectionAreRefused() throws {
        for text in [#"{"bits":-1,"inputSize":4,"seed":1}"#, #"{"bits":8,"inputSize":0,"seed":1}"#,
                     #"{"bits":1099511627776,"inputSize":1,"seed":1}"#, #"{"bits":4,"inputSize":9223372036854775807,"seed":1}"#,
                     #"{"bits":2048,"inputSize":256,"seed":1}"#] {
            XCTAssertThrowsError(try LSHEncoder.load(Array(text.utf8)), text) { XCTAssertTrue($0 is HashEncoderError, "\($0)") }
        }
        // The largest size the service's configuration allows still loads (without building it here: its
        // parameters are checked against the same bound).
        XCTAssertLessThanOrEqual(1024 * 256 * 256 * 3, LSHEncoder.maxProjectionWeights)
        XCTAssertEqual(try LSHEncoder.load(Array(#"{"bits":16,"inputSize":8,"seed":3}"#.utf8)).bits, 16)
    }

    /// model: a DSCH header's widths and sizes built the network before the file's length was looked at,
    /// so widths of 2^32 − 1 trapped and widths of 30,000 allocated gigabytes.
    func testDSCHHeaderDescribingAHugeNetworkIsRefusedBeforeBuildingIt() {
        let network = Array("DSCHNNET".utf8) + [UInt8](repeating: 0, count: 64)
        for header: [UInt32] in [
            [2, 64, 32, 0xFFFF_FFFF, 64, 128, 256, 0],
            [2, 64, 32, 30_000, 30_000, 30_000, 256, 0],
            [2, 0xFFFF_FFFF, 32, 32, 64, 128, 0xFFFF_FFFF, 0],
            [2, 64, 0xFFFF_FFFC, 32, 64, 128, 256, 0],
            [1, 64, 32, 32, 64, 0x8000_0000, 256],
        ] {
            XCTAssertThrowsError(try DSCHEncoder.load(Array("DSCH".utf8) + little(header) + network), "\(header)") { error in
                XCTAssertTrue(error is HashEncoderError, "\(error)")
            }
        }
    }
}
