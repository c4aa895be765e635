import XCTest
@testable import HammingIndex

/// Codes like a trained model's: a few hundred centres, each code a centre with 2...6 bits flipped,
/// so that many codes are close together and distances tie often.
func clusteredCodes(count: Int, bits: Int, centres: Int, using generator: inout SeededGenerator) -> [[UInt64]] {
    let centreCodes = (0..<centres).map { _ in randomCode(bits: bits, using: &generator) }
    return (0..<count).map { _ in
        var code = centreCodes[Int(generator.next() % UInt64(centres))]
        for _ in 0..<(2 + Int(generator.next() % 5)) {
            let bit = Int(generator.next() % UInt64(bits))
            code[bit >> 6] ^= 1 << UInt64(bit & 63)
        }
        return code
    }
}

/// A multi-index index that never falls back to the flat scan, so that its own path is what is tested.
func multiIndex(bits: Int) throws -> HammingIndex {
    let index = try HammingIndex(bits: bits, strategy: .multiIndexHashing)
    index.multiIndexWorkPerCode = .infinity
    return index
}

final class MultiIndexTests: XCTestCase {
    func testSubstringCountFollowsThePaper() {
        XCTAssertEqual(MultiIndexTables.substringCount(bits: 64, count: 1_000_000), 3)
        XCTAssertEqual(MultiIndexTables.substringCount(bits: 64, count: 10_000_000), 3)
        XCTAssertEqual(MultiIndexTables.substringCount(bits: 128, count: 1_000_000), 6)
        XCTAssertEqual(MultiIndexTables.substringCount(bits: 256, count: 1_000_000), 13)
        XCTAssertEqual(MultiIndexTables.substringCount(bits: 8, count: 1_000_000), 1)
        XCTAssertEqual(MultiIndexTables.substringCount(bits: 8, count: 1), 8)
        // 2^30 codes would want 30-bit substrings; they are capped at 24 bits.
        XCTAssertEqual(MultiIndexTables.substringCount(bits: 64, count: 1 << 30), 3)
    }

    func testSubstringExtractionAcrossWordBoundaries() {
        let code: [UInt64] = [0xF000_0000_0000_0001, 0x0000_0000_0000_0005]
        code.withUnsafeBufferPointer { code in
            let pointer = code.baseAddress!
            XCTAssertEqual(MultiIndexTables.substring(pointer, .init(start: 0, length: 4)), 1)
            XCTAssertEqual(MultiIndexTables.substring(pointer, .init(start: 60, length: 8)), 0x5F)
            XCTAssertEqual(MultiIndexTables.substring(pointer, .init(start: 64, length: 3)), 5)
        }
    }

    func testMatchesBruteForceOnRandomAndClusteredCodes() throws {
        var generator = SeededGenerator(state: 31)
        for clustered in [false, true] {
            for bits in [8, 16, 64, 72, 128, 256] {
                for count in [1, 60, 900] {
                    let codes = clustered
                        ? clusteredCodes(count: count, bits: bits, centres: 12, using: &generator)
                        : (0..<count).map { _ in randomCode(bits: bits, using: &generator) }
                    let index = try multiIndex(bits: bits)
                    let flat = try HammingIndex(bits: bits, strategy: .flatScan)
                    var entries: [Int64: [UInt64]] = [:]
                    for (number, code) in codes.enumerated() {
                        // Ids out of insertion order, so ties are not settled by storage order.
                        let id = Int64((number * 7919) % 1_000_003)
                        entries[id] = code
                        try index.add(id: id, code: code)
                        try flat.add(id: id, code: code)
                    }
                    for queryNumber in 0..<6 {
                        let query = queryNumber % 2 == 0 && clustered ? codes[queryNumber % count] : randomCode(bits: bits, using: &generator)
                        let excluding = queryNumber % 3 == 0 ? entries.keys.first : nil
                        for k in [1, 10, 100] {
                            for maxDistance in [nil, bits / 8, bits / 3] {
                                let label = "clustered \(clustered) bits \(bits) count \(count) k \(k) maxDistance \(String(describing: maxDistance))"
                                let expected = bruteForce(entries, query: query, k: k, maxDistance: maxDistance, excluding: excluding)
                                let outcome = try index.searchDetailed(query, k: k, maxDistance: maxDistance, excluding: excluding)
                                XCTAssertEqual(outcome.neighbors, expected, label)
                                XCTAssertEqual(outcome.method, .multiIndexHashing, label)
                                XCTAssertEqual(try flat.search(query, k: k, maxDistance: maxDistance, excluding: excluding), expected, label)
                            }
                        }
                        for radius in [0, bits / 8, bits / 4] {
                            let expected = bruteForce(entries, query: query, k: .max, maxDistance: radius, excluding: nil)
                            let outcome = try index.searchDetailed(query, radius: radius)
                            XCTAssertEqual(outcome.neighbors, expected, "radius \(radius) bits \(bits) count \(count)")
                            XCTAssertEqual(outcome.method, .multiIndexHashing)
                        }
                    }
                }
            }
        }
    }

    func testManyIdenticalCodesTieByID() throws {
        let index = try multiIndex(bits: 64)
        // 3000 copies of one code inserted in descending id order, plus a few near ones.
        for id in stride(from: Int64(3000), through: 1, by: -1) { try index.add(id: id, code: [0xABCD_EF01_2345_6789]) }
        try index.add(id: 5000, code: [0xABCD_EF01_2345_6788])
        let result = try index.searchDetailed([0xABCD_EF01_2345_6789], k: 5)
        XCTAssertEqual(result.neighbors.map(\.id), [1, 2, 3, 4, 5])
        XCTAssertEqual(result.method, .multiIndexHashing)
        XCTAssertEqual(try index.search([0xABCD_EF01_2345_6788], k: 2).map(\.id), [5000, 1])
        XCTAssertEqual(try index.search([0xABCD_EF01_2345_6789], k: 3, excluding: 1).map(\.id), [2, 3, 4])
    }

    func testInterleavedAddsRemovesAndReplacementsStayExact() throws {
        var generator = SeededGenerator(state: 37)
        for bits in [32, 64, 128] {
            let index = try multiIndex(bits: bits)
            let pool = clusteredCodes(count: 400, bits: bits, centres: 20, using: &generator)
            var entries: [Int64: [UInt64]] = [:]
            for step in 0..<12_000 {
                let id = Int64(generator.next() % 5000)
                switch generator.next() % 5 {
                case 0, 1, 2:
                    let code = generator.next() % 2 == 0 ? pool[Int(generator.next() % 400)] : randomCode(bits: bits, using: &generator)
                    entries[id] = code
                    try index.add(id: id, code: code)
                default:
                    XCTAssertEqual(index.remove(id: id), entries.removeValue(forKey: id) != nil, "step \(step)")
                }
                XCTAssertEqual(index.count, entries.count)
                // Searches between mutations build the tables, then see added codes in the unindexed
                // tail, removed ones marked, replaced ones moved, and compactions that drop the tables.
                if step % 97 == 0 {
                    let query = generator.next() % 2 == 0 ? pool[Int(generator.next() % 400)] : randomCode(bits: bits, using: &generator)
                    let k = [1, 10, 100][step % 3]
                    let outcome = try index.searchDetailed(query, k: k)
                    XCTAssertEqual(outcome.neighbors, bruteForce(entries, query: query, k: k, maxDistance: nil, excluding: nil), "bits \(bits) step \(step)")
                    // An empty index answers without either method's machinery.
                    XCTAssertEqual(outcome.method, entries.isEmpty ? .flatScan : .multiIndexHashing)
                    XCTAssertEqual(try index.search(query, radius: bits / 10),
                                   bruteForce(entries, query: query, k: .max, maxDistance: bits / 10, excluding: nil))
                }
            }
            for (id, code) in entries { XCTAssertEqual(index.code(for: id), code) }
            XCTAssertEqual(Set(index.ids), Set(entries.keys))
            XCTAssertEqual(index.ids.count, entries.count)
        }
    }

    func testRemovingEverythingThenAddingAgain() throws {
        var generator = SeededGenerator(state: 41)
        let index = try multiIndex(bits: 64)
        for id in 0..<Int64(5000) { try index.add(id: id, code: randomCode(bits: 64, using: &generator)) }
        XCTAssertEqual(try index.search([0], k: 3).count, 3)
        for id in 0..<Int64(5000) { XCTAssertTrue(index.remove(id: id)) }
        XCTAssertEqual(index.count, 0)
        XCTAssertEqual(try index.search([0], k: 3), [])
        try index.add(id: 9, code: [7])
        XCTAssertEqual(try index.search([0], k: 3), [Neighbor(id: 9, distance: 3)])
        index.removeAll()
        XCTAssertNil(index.multiIndexLayout)
        XCTAssertEqual(try index.search([0], k: 3), [])
    }

    func testBatchSearchWithMultiIndexMatchesOneByOne() throws {
        var generator = SeededGenerator(state: 43)
        let index = try multiIndex(bits: 64)
        let flat = try HammingIndex(bits: 64, strategy: .flatScan)
        for (id, code) in clusteredCodes(count: 3000, bits: 64, centres: 40, using: &generator).enumerated() {
            try index.add(id: Int64(id), code: code)
            try flat.add(id: Int64(id), code: code)
        }
        let queries = clusteredCodes(count: 70, bits: 64, centres: 40, using: &generator)
        for threads in [1, 2, 3] {
            let batch = try index.search(batch: queries, k: 10, threads: threads)
            XCTAssertEqual(batch, try flat.search(batch: queries, k: 10, threads: threads))
            for (query, result) in zip(queries, batch) { XCTAssertEqual(result, try flat.search(query, k: 10)) }
        }
    }

    func testTooMuchWorkFallsBackToTheFlatScanWithTheSameResult() throws {
        var generator = SeededGenerator(state: 47)
        let index = try HammingIndex(bits: 256, strategy: .multiIndexHashing)
        index.multiIndexWorkPerCode = 0.01
        var entries: [Int64: [UInt64]] = [:]
        for id in 0..<Int64(2000) {
            let code = randomCode(bits: 256, using: &generator)
            entries[id] = code
            try index.add(id: id, code: code)
        }
        let query = randomCode(bits: 256, using: &generator)
        let outcome = try index.searchDetailed(query, k: 10)
        XCTAssertEqual(outcome.method, .flatScan)
        XCTAssertEqual(outcome.codesCompared, 2000)
        XCTAssertEqual(outcome.neighbors, bruteForce(entries, query: query, k: 10, maxDistance: nil, excluding: nil))
    }

    func testAutomaticStrategyUsesTheFlatScanForSmallCollectionsAndLargeK() throws {
        var generator = SeededGenerator(state: 53)
        let index = try HammingIndex(bits: 64)
        XCTAssertEqual(index.strategy, .automatic)
        for id in 0..<Int64(1000) { try index.add(id: id, code: randomCode(bits: 64, using: &generator)) }
        XCTAssertEqual(try index.searchDetailed([0], k: 10).method, .flatScan)
        index.prepareForSearch()
        XCTAssertNil(index.multiIndexLayout, "no tables for a collection the flat scan serves")

        let codes = clusteredCodes(count: HammingIndex.multiIndexMinimumCount, bits: 64, centres: 500, using: &generator)
        for (id, code) in codes.enumerated() { try index.add(id: Int64(id + 1000), code: code) }
        index.prepareForSearch()
        let layout = try XCTUnwrap(index.multiIndexLayout)
        XCTAssertEqual(layout.substringLengths.reduce(0, +), 64)
        XCTAssertEqual(layout.indexedCodes, index.count)
        XCTAssertGreaterThan(layout.bytes, 4 * layout.substringLengths.count * index.count)
        XCTAssertEqual(try index.searchDetailed(codes[5], k: 10).method, .multiIndexHashing)
        XCTAssertEqual(try index.searchDetailed(codes[5], k: HammingIndex.multiIndexMaximumK + 1).method, .flatScan)
        index.strategy = .flatScan
        XCTAssertEqual(try index.searchDetailed(codes[5], k: 10).method, .flatScan)
    }

    /// On random codes every multi-index attempt falls back; `.automatic` stops attempting (scanning flat,
    /// with identical results) and tries again now and then, resuming once attempts succeed.
    func testAutomaticStrategyStopsAttemptsThatKeepFallingBack() throws {
        var generator = SeededGenerator(state: 59)
        let index = try HammingIndex(bits: 64)
        var entries: [Int64: [UInt64]] = [:]
        for id in 0..<Int64(HammingIndex.multiIndexMinimumCount) {
            let code = randomCode(bits: 64, using: &generator)
            entries[id] = code
            try index.add(id: id, code: code)
        }
        XCTAssertFalse(index.multiIndexTrials.isScanningFlat)
        for _ in 0..<MultiIndexTrials.giveUpScore {
            let query = randomCode(bits: 64, using: &generator)
            let outcome = try index.searchDetailed(query, k: 10)
            XCTAssertEqual(outcome.method, .flatScan, "random codes exceed the work limit")
            XCTAssertEqual(outcome.neighbors, bruteForce(entries, query: query, k: 10, maxDistance: nil, excluding: nil))
        }
        XCTAssertTrue(index.multiIndexTrials.isScanningFlat, "attempts stop after repeated fallbacks")
        let query = randomCode(bits: 64, using: &generator)
        XCTAssertEqual(try index.searchDetailed(query, k: 10).neighbors, bruteForce(entries, query: query, k: 10, maxDistance: nil, excluding: nil))

        // Successes bring the attempts back.
        let trials = MultiIndexTrials()
        for _ in 0..<MultiIndexTrials.giveUpScore { trials.record(fellBack: true) }
        XCTAssertTrue(trials.isScanningFlat)
        XCTAssertEqual((0..<MultiIndexTrials.retryEvery).filter { _ in trials.shouldTry() }.count, 1, "one retry per interval")
        trials.record(fellBack: false)
        XCTAssertFalse(trials.isScanningFlat)
        XCTAssertTrue(trials.shouldTry())
    }
}
