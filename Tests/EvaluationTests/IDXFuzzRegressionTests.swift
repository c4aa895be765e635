import XCTest
@testable import Evaluation

/// Inputs found by the libFuzzer target `idx` (Fuzz/, scripts/fuzz): each used to trap or to allocate
/// what a damaged header asked for; each must now be a typed error.
final class IDXFuzzRegressionTests: XCTestCase {
    private func writeTemporary(_ bytes: [UInt8], gzip: Bool) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(UUID().uuidString).idx").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return try writeTestFile(bytes, to: path, gzip: gzip)
    }

    /// idx: three dimensions whose product overflows an Int trapped in the size computation.
    func testIDXDimensionsWhoseProductOverflowsAreTooLarge() throws {
        // The fuzzer's input: magic 0x803, dimensions 0x0000466C × 0x6F617400 × 0x19070809, two data bytes.
        let found: [UInt8] = [0x00, 0x00, 0x08, 0x03, 0x00, 0x00, 0x46, 0x6C, 0x6F, 0x61, 0x74, 0x00,
                              0x19, 0x07, 0x08, 0x09, 0x0A, 0x0B]
        for gzip in [false, true] {
            let path = try writeTemporary(found, gzip: gzip)
            XCTAssertThrowsError(try IDXReader.readImages(path: path)) { error in
                XCTAssertEqual(error as? IDXError, .tooLarge(path: path, dimensions: [0x466C, 0x6F61_7400, 0x1907_0809]))
            }
        }
        let maximal = try writeTemporary([0, 0, 8, 3] + [UInt8](repeating: 0xFF, count: 12), gzip: false)
        XCTAssertThrowsError(try IDXReader.readImages(path: maximal)) { error in
            guard case IDXError.tooLarge = error else { return XCTFail("unexpected \(error)") }
        }
    }

    /// idx: a header promising 4 GB over a short file is `.truncated` (read in bounded chunks, not allocated),
    /// and a gzip file holding more than its header declares stops being decompressed one byte past it.
    func testIDXSizesComeFromTheBytesPresent() throws {
        let promising = try writeTemporary([0, 0, 8, 1, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3], gzip: true)
        XCTAssertThrowsError(try IDXReader.readLabels(path: promising)) { error in
            XCTAssertEqual(error as? IDXError, .truncated(path: promising, expectedBytes: 0xFFFF_FFFF, foundBytes: 3))
        }
        let bomb = try writeTemporary([0, 0, 8, 1, 0, 0, 0, 2] + [UInt8](repeating: 0, count: 3 << 20), gzip: true)
        XCTAssertThrowsError(try IDXReader.readLabels(path: bomb)) { error in
            XCTAssertEqual(error as? IDXError, .trailingBytes(path: bomb, expectedBytes: 2))
        }
    }

}
