import XCTest
@testable import HammingIndex

/// A small deterministic generator (SplitMix64), so failures reproduce.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A random code of `bits` bits with the unused high bits clear.
func randomCode(bits: Int, using generator: inout SeededGenerator) -> [UInt64] {
    var words = (0..<BinaryCode.wordCount(bits: bits)).map { _ in generator.next() }
    if bits % 64 != 0 { words[words.count - 1] &= (1 << UInt64(bits % 64)) - 1 }
    return words
}

/// The answer every search must match: all distances, sorted by (distance, id), filtered and cut.
func bruteForce(_ entries: [Int64: [UInt64]], query: [UInt64], k: Int, maxDistance: Int?, excluding: Int64?) -> [Neighbor] {
    let all = entries.compactMap { id, code -> Neighbor? in
        if id == excluding { return nil }
        let distance = BinaryCode.distance(code, query)
        if let maxDistance, distance > maxDistance { return nil }
        return Neighbor(id: id, distance: distance)
    }
    return Array(all.sorted { ($0.distance, $0.id) < ($1.distance, $1.id) }.prefix(k))
}

final class HammingIndexTests: XCTestCase {
    func testSearchMatchesBruteForceForManyWidths() throws {
        var generator = SeededGenerator(state: 1)
        for bits in [8, 16, 24, 64, 72, 128, 192, 256, 1024] {
            let index = try HammingIndex(bits: bits)
            var entries: [Int64: [UInt64]] = [:]
            // More rows than one scan block, so block boundaries are crossed.
            for id in 0..<Int64(700) {
                let code = randomCode(bits: bits, using: &generator)
                entries[id * 3 + 1] = code
                try index.add(id: id * 3 + 1, code: code)
            }
            for queryNumber in 0..<8 {
                let query = randomCode(bits: bits, using: &generator)
                for k in [1, 5, 37] {
                    let expected = bruteForce(entries, query: query, k: k, maxDistance: nil, excluding: nil)
                    XCTAssertEqual(try index.search(query, k: k), expected, "bits \(bits) query \(queryNumber) k \(k)")
                }
                let limit = bits / 2 - 2
                XCTAssertEqual(try index.search(query, k: 20, maxDistance: limit),
                               bruteForce(entries, query: query, k: 20, maxDistance: limit, excluding: nil), "bits \(bits) maxDistance")
                let radius = bits / 2 - 3
                XCTAssertEqual(try index.search(query, radius: radius),
                               bruteForce(entries, query: query, k: .max, maxDistance: radius, excluding: nil), "bits \(bits) radius")
            }
        }
    }

    func testBatchSearchMatchesOneByOne() throws {
        var generator = SeededGenerator(state: 5)
        for bits in [8, 64, 128, 200, 256] {
            let index = try HammingIndex(bits: bits)
            for id in 0..<Int64(600) { try index.add(id: 600 - id, code: randomCode(bits: bits, using: &generator)) }
            let queries = (0..<9).map { _ in randomCode(bits: bits, using: &generator) }
            let batch = try index.search(batch: queries, k: 7, maxDistance: bits / 2)
            XCTAssertEqual(batch.count, queries.count)
            for (query, result) in zip(queries, batch) {
                XCTAssertEqual(result, try index.search(query, k: 7, maxDistance: bits / 2), "bits \(bits)")
            }
            XCTAssertEqual(try index.search(batch: queries, k: 0), Array(repeating: [], count: queries.count))
            XCTAssertEqual(try index.search(batch: [], k: 3), [])
            XCTAssertThrowsError(try index.search(batch: [queries[0], [1, 2, 3, 4, 5]], k: 3))
        }
    }

    func testTiesAreBrokenByIDAscending() throws {
        let index = try HammingIndex(bits: 8)
        // Inserted in descending id order, so storage order differs from id order.
        for id in stride(from: Int64(50), through: 1, by: -1) { try index.add(id: id, code: [0b1]) }
        try index.add(id: 100, code: [0b0])
        let result = try index.search([0], k: 4)
        XCTAssertEqual(result, [Neighbor(id: 100, distance: 0), Neighbor(id: 1, distance: 1),
                                Neighbor(id: 2, distance: 1), Neighbor(id: 3, distance: 1)])
        XCTAssertEqual(try index.search([0], radius: 1).map(\.id), [100] + Array(1...50))
    }

    func testTiesInLaterBlocksStillWinBySmallerID() throws {
        let index = try HammingIndex(bits: 64)
        // The smallest ids sit in the last scan block, at exactly the distance of the current worst result.
        for id in stride(from: Int64(1000), through: 1, by: -1) { try index.add(id: id, code: [0b11]) }
        XCTAssertEqual(try index.search([0], k: 3).map(\.id), [1, 2, 3])
        XCTAssertEqual(try index.search(batch: [[0]], k: 3).first?.map(\.id), [1, 2, 3])
    }

    func testExcludingLeavesOneIDOut() throws {
        var generator = SeededGenerator(state: 7)
        let index = try HammingIndex(bits: 64)
        var entries: [Int64: [UInt64]] = [:]
        for id in 1...300 as ClosedRange<Int64> {
            let code = randomCode(bits: 64, using: &generator)
            entries[id] = code
            try index.add(id: id, code: code)
        }
        let query = entries[42]!
        let result = try index.search(query, k: 10, excluding: 42)
        XCTAssertFalse(result.contains { $0.id == 42 })
        XCTAssertEqual(result, bruteForce(entries, query: query, k: 10, maxDistance: nil, excluding: 42))
        XCTAssertEqual(try index.search(query, k: 1).first, Neighbor(id: 42, distance: 0))
    }

    func testMaxDistanceZeroAndEdgeArguments() throws {
        let index = try HammingIndex(bits: 16)
        try index.add(id: 1, code: [0x00FF])
        try index.add(id: 2, code: [0x00FE])
        XCTAssertEqual(try index.search([0x00FF], k: 5, maxDistance: 0), [Neighbor(id: 1, distance: 0)])
        XCTAssertEqual(try index.search([0x00FF], k: 0), [])
        XCTAssertEqual(try index.search([0x00FF], k: 5, maxDistance: -1), [])
        XCTAssertEqual(try index.search([0x00FF], radius: -1), [])
        XCTAssertEqual(try index.search([0x00FF], k: 100).count, 2)
        XCTAssertEqual(try HammingIndex(bits: 64).search([0], k: 3), [])
    }

    func testBitsBeyondTheCodeLengthAreIgnored() throws {
        let index = try HammingIndex(bits: 8)
        try index.add(id: 1, code: [0xFFFF_FF00])
        XCTAssertEqual(index.code(for: 1), [0])
        XCTAssertEqual(try index.search([0xAB00], k: 1), [Neighbor(id: 1, distance: 0)])
    }

    func testAddReplaceRemoveStayConsistent() throws {
        var generator = SeededGenerator(state: 3)
        let bits = 72
        let index = try HammingIndex(bits: bits)
        var entries: [Int64: [UInt64]] = [:]
        for step in 0..<3000 {
            let id = Int64(generator.next() % 400)
            switch generator.next() % 3 {
            case 0, 1:
                let code = randomCode(bits: bits, using: &generator)
                entries[id] = code
                try index.add(id: id, code: code)
            default:
                XCTAssertEqual(index.remove(id: id), entries.removeValue(forKey: id) != nil, "step \(step)")
            }
            XCTAssertEqual(index.count, entries.count)
        }
        for (id, code) in entries { XCTAssertEqual(index.code(for: id), code) }
        XCTAssertEqual(Set(index.ids), Set(entries.keys))
        for _ in 0..<10 {
            let query = randomCode(bits: bits, using: &generator)
            XCTAssertEqual(try index.search(query, k: 25), bruteForce(entries, query: query, k: 25, maxDistance: nil, excluding: nil))
        }
        XCTAssertNil(index.code(for: 10_000))
        XCTAssertFalse(index.remove(id: 10_000))
        index.removeAll()
        XCTAssertEqual(index.count, 0)
        XCTAssertEqual(try index.search(randomCode(bits: bits, using: &generator), k: 3), [])
    }

    func testUnsupportedBitCountsAndMismatchedCodesThrow() throws {
        for bits in [0, 4, 12, 1032, -8] {
            XCTAssertThrowsError(try HammingIndex(bits: bits)) { error in
                XCTAssertEqual(error as? HammingIndexError, .unsupportedBitCount(bits))
            }
        }
        let index = try HammingIndex(bits: 128)
        XCTAssertThrowsError(try index.add(id: 1, code: [1])) { error in
            XCTAssertEqual(error as? HammingIndexError, .codeLengthMismatch(expectedWords: 2, got: 1))
        }
        XCTAssertThrowsError(try index.search([1, 2, 3], k: 1)) { error in
            XCTAssertEqual(error as? HammingIndexError, .codeLengthMismatch(expectedWords: 2, got: 3))
        }
        XCTAssertThrowsError(try index.search([1], radius: 3))
        XCTAssertTrue(String(describing: HammingIndexError.unsupportedBitCount(12)).contains("12"))
    }

    func testPackBytesHexAndDistance() {
        let signs: [Float] = [1, -1, 0.5, 0, -0.1, 2, 0, 0, /* byte 2 */ 3, 0, 0, 0, 0, 0, 0, 0]
        let code = BinaryCode.pack(signs: signs)
        XCTAssertEqual(code, [0b1_0010_0101])
        XCTAssertEqual(BinaryCode.bytes(code, bits: 16), [0x25, 0x01])
        XCTAssertEqual(BinaryCode.hex(code, bits: 16), "2501")
        XCTAssertEqual(BinaryCode.wordCount(bits: 64), 1)
        XCTAssertEqual(BinaryCode.wordCount(bits: 72), 2)
        XCTAssertEqual(BinaryCode.distance([0b1011, ~0], [0b0001, 0]), 2 + 64)
        let wide = BinaryCode.pack(signs: (0..<130).map { $0 % 3 == 0 ? 1 : -1 })
        XCTAssertEqual(wide.count, 3)
        // Value 128 is negative (128 % 3 == 2) and value 129 positive, so only bit 1 of word 2 is set.
        XCTAssertEqual(wide[2], 0b10)
        XCTAssertEqual(wide[0] & 0b1111, 0b1001)
    }

    func testBytesRoundTripForManyWidths() {
        var generator = SeededGenerator(state: 11)
        for bits in stride(from: 8, through: 1024, by: 8) {
            let code = randomCode(bits: bits, using: &generator)
            let bytes = BinaryCode.bytes(code, bits: bits)
            XCTAssertEqual(bytes.count, bits / 8)
            XCTAssertEqual(BinaryCode.words(bytes, bits: bits), code, "bits \(bits)")
            let hex = BinaryCode.hex(code, bits: bits)
            XCTAssertEqual(hex.count, bits / 4)
            XCTAssertEqual(hex, bytes.map { String(format: "%02x", $0) }.joined())
        }
        XCTAssertNil(BinaryCode.words([1, 2, 3], bits: 16))
        XCTAssertNil(BinaryCode.words([], bits: 0))
        XCTAssertEqual(BinaryCode.words([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09], bits: 72),
                       [0x0807_0605_0403_0201, 0x09])
    }
}
