import XCTest
@testable import HammingIndex

/// Every kernel this CPU supports must agree with the portable Swift one.
final class KernelTests: XCTestCase {
    func testPortableIsAlwaysSupportedAndFastestIsSupported() {
        XCTAssertTrue(HammingKernel.supported.contains(.portable))
        XCTAssertTrue(HammingKernel.fastest.isSupported)
        print("kernels supported here: \(HammingKernel.supported.map(\.rawValue).joined(separator: ", "))")
    }

    func testEverySupportedKernelMatchesThePortableOneForEveryWidth() {
        var generator = SeededGenerator(state: 21)
        for bits in stride(from: 8, through: 1024, by: 8) {
            let words = BinaryCode.wordCount(bits: bits)
            // Odd counts and counts just off the vector and unroll widths (4, 8, 16 rows).
            for rows in [1, 3, 15, 17, 33, 67] {
                var codes: [UInt64] = []
                for _ in 0..<rows { codes += randomCode(bits: bits, using: &generator) }
                // A few rows equal to the query, so distance 0 and the threshold boundaries occur.
                let query = generator.next() % 3 == 0 ? Array(codes[0..<words]) : randomCode(bits: bits, using: &generator)
                let reference = BlockKernel(.portable, words: words)
                let expected = distances(reference, codes: codes, rows: rows, query: query)
                XCTAssertEqual(expected[0], UInt32(BinaryCode.distance(Array(codes[0..<words]), query)))
                for kernel in HammingKernel.supported where kernel != .portable {
                    let block = BlockKernel(kernel, words: words)
                    XCTAssertEqual(distances(block, codes: codes, rows: rows, query: query), expected, "\(kernel) bits \(bits) rows \(rows)")
                    for threshold in [0, UInt32(bits / 2) - 1, UInt32(bits / 2), UInt32(bits)] {
                        let (foundRows, foundDistances) = filter(block, codes: codes, rows: rows, query: query, threshold: threshold)
                        let expectedRows = (0..<rows).filter { expected[$0] <= threshold }
                        XCTAssertEqual(foundRows, expectedRows.map(UInt32.init), "\(kernel) bits \(bits) rows \(rows) threshold \(threshold)")
                        XCTAssertEqual(foundDistances, expectedRows.map { expected[$0] }, "\(kernel) bits \(bits) rows \(rows)")
                    }
                }
            }
        }
    }

    func testIndexesWithEveryKernelGiveTheSameResults() throws {
        var generator = SeededGenerator(state: 23)
        for bits in [8, 64, 128, 192, 256, 512, 1024] {
            let indexes = try HammingKernel.supported.map { try HammingIndex(bits: bits, strategy: .flatScan, kernel: $0) }
            var entries: [Int64: [UInt64]] = [:]
            for id in 0..<Int64(1500) {
                let code = randomCode(bits: bits, using: &generator)
                entries[id] = code
                for index in indexes { try index.add(id: id, code: code) }
            }
            for _ in 0..<4 {
                let query = randomCode(bits: bits, using: &generator)
                let expected = bruteForce(entries, query: query, k: 10, maxDistance: nil, excluding: nil)
                for index in indexes {
                    XCTAssertEqual(try index.search(query, k: 10), expected, "\(index.kernel) bits \(bits)")
                }
            }
        }
    }

    func testUnsupportedKernelIsRefused() throws {
        for kernel in HammingKernel.allCases where !kernel.isSupported {
            XCTAssertThrowsError(try HammingIndex(bits: 64, kernel: kernel)) { error in
                XCTAssertEqual(error as? HammingIndexError, .unsupportedKernel(kernel))
            }
        }
    }

    private func distances(_ kernel: BlockKernel, codes: [UInt64], rows: Int, query: [UInt64]) -> [UInt32] {
        var result = [UInt32](repeating: .max, count: rows)
        codes.withUnsafeBufferPointer { codes in
            query.withUnsafeBufferPointer { query in
                result.withUnsafeMutableBufferPointer { result in
                    kernel.distances(codes.baseAddress!, rows: rows, query: query.baseAddress!, into: result.baseAddress!)
                }
            }
        }
        return result
    }

    private func filter(_ kernel: BlockKernel, codes: [UInt64], rows: Int, query: [UInt64], threshold: UInt32) -> ([UInt32], [UInt32]) {
        var foundRows = [UInt32](repeating: .max, count: rows)
        var foundDistances = [UInt32](repeating: .max, count: rows)
        let found = codes.withUnsafeBufferPointer { codes in
            query.withUnsafeBufferPointer { query in
                foundRows.withUnsafeMutableBufferPointer { foundRows in
                    foundDistances.withUnsafeMutableBufferPointer { foundDistances in
                        kernel.filter(codes.baseAddress!, rows: rows, query: query.baseAddress!, threshold: threshold,
                                      foundRows: foundRows.baseAddress!, foundDistances: foundDistances.baseAddress!)
                    }
                }
            }
        }
        return (Array(foundRows.prefix(found)), Array(foundDistances.prefix(found)))
    }
}
