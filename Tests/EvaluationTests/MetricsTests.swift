import HammingIndex
import NeuralNet
import XCTest
@testable import Evaluation

final class MetricsTests: XCTestCase {
    /// The database positions in protocol order for one query: by Hamming distance, ties by position.
    private func ranking(query: Int, queries: PackedCodes, database: PackedCodes) -> [Int] {
        var distances = [Int](repeating: 0, count: database.count)
        var histogram = [Int](repeating: 0, count: database.bits + 1)
        RetrievalMetrics.computeDistances(query: query, queries: queries, database: database, into: &distances, histogram: &histogram)
        return RetrievalMetrics.countingOrder(distances: distances, histogram: histogram, limit: database.count)
    }

    /// Ranked relevance T F T F: AP@4 = (1/1 + 2/3) / 2.
    func testAveragePrecisionHandComputed() {
        XCTAssertEqual(RetrievalMetrics.averagePrecision(relevant: [true, false, true, false], k: 4), (1 + 2.0 / 3) / 2, accuracy: 1e-12)
        XCTAssertEqual(RetrievalMetrics.averagePrecision(relevant: [false, false, true], k: 2), 0)
        XCTAssertEqual(RetrievalMetrics.averagePrecision(relevant: [], k: 10), 0)
    }

    /// Query 00 against 11 (d2, relevant), 01 (d1), 10 (d1, relevant), 00 (d0): the tie at distance 1
    /// goes to the lower database position, so the order is 3, 1, 2, 0 with relevance F F T T.
    func testHammingRankingBreaksTiesByPosition() {
        let queries = PackedCodes(signsOf: [[-1, -1]], bits: 2)
        let database = PackedCodes(signsOf: [[1, 1], [1, -1], [-1, 1], [-1, -1]], bits: 2)
        XCTAssertEqual(ranking(query: 0, queries: queries, database: database), [3, 1, 2, 0])
        let labels: [UInt8] = [7, 0, 7, 0]
        func map(_ k: Int) -> Double {
            RetrievalMetrics.evaluateHamming(queries: queries, queryLabels: [7], database: database, databaseLabels: labels, k: k)
                .meanAveragePrecision
        }
        XCTAssertEqual(map(4), (1.0 / 3 + 2.0 / 4) / 2, accuracy: 1e-12)
        XCTAssertEqual(map(3), 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(map(2), 0)

        let evaluation = RetrievalMetrics.evaluateHamming(
            queries: queries, queryLabels: [7], database: database, databaseLabels: labels, k: 4, precisionDepth: 2)
        XCTAssertEqual(evaluation.precisionAtDepth, 0)
        XCTAssertEqual(evaluation.precisionRecall.map(\.radius), [0, 1, 2])
        XCTAssertEqual(evaluation.precisionRecall.map(\.precision), [0, 1.0 / 3, 0.5])
        XCTAssertEqual(evaluation.precisionRecall.map(\.recall), [0, 0.5, 1])
    }

    /// Multi-word codes must rank exactly as a brute-force sort by (distance, position).
    func testMultiWordCodesMatchBruteForce() {
        var generator = SplitMix64(seed: 3)
        let bits = 100
        let rows = (0..<200).map { _ in (0..<bits).map { _ in generator.nextGaussian() } }
        let queryRows = (0..<5).map { _ in (0..<bits).map { _ in generator.nextGaussian() } }
        let database = PackedCodes(signsOf: rows, bits: bits)
        let queries = PackedCodes(signsOf: queryRows, bits: bits)
        XCTAssertEqual(database.wordsPerCode, 2)
        for query in 0..<5 {
            let distances = rows.map { row in zip(row, queryRows[query]).filter { ($0 > 0) != ($1 > 0) }.count }
            let expected = distances.indices.sorted { (distances[$0], $0) < (distances[$1], $1) }
            XCTAssertEqual(ranking(query: query, queries: queries, database: database), expected)
        }
    }

    func testSmallestIndicesOrdersByValueThenPosition() {
        let values: [Float] = [3, 1, 2, 1, 0, 2]
        XCTAssertEqual(RetrievalMetrics.smallestIndices(values, count: 4), [4, 1, 3, 2])
        XCTAssertEqual(RetrievalMetrics.smallestIndices(values, count: 10), [4, 1, 3, 2, 5, 0])
    }

    /// One-dimensional points: query 0 sees 0.1 (relevant), 0.5, 1 (relevant), 3 → AP@4 = (1 + 2/3)/2.
    func testFloatKNNHandComputed() {
        let value = RetrievalMetrics.floatKNNMeanAveragePrecision(
            queries: [0], queryLabels: [1], database: [3, 1, 0.5, 0.1], databaseLabels: [1, 1, 0, 1], dimension: 1, k: 3)
        XCTAssertEqual(value, (1 + 2.0 / 3) / 2, accuracy: 1e-12)
    }

    /// Packing is `BinaryCode.pack(signs:)`, code by code, and every distance the ranking uses is
    /// `BinaryCode.distance`.
    func testCodesAndDistancesAreThoseOfBinaryCode() {
        var generator = SplitMix64(seed: 17)
        for bits in [8, 64, 100, 256] {
            let rows = (0..<40).map { _ in (0..<bits).map { _ in generator.nextGaussian() } }
            let codes = PackedCodes(signsOf: rows, bits: bits)
            XCTAssertEqual(codes.wordsPerCode, BinaryCode.wordCount(bits: bits))
            for (index, row) in rows.enumerated() { XCTAssertEqual(codes.code(index), BinaryCode.pack(signs: row)) }
            var distances = [Int](repeating: 0, count: codes.count)
            var histogram = [Int](repeating: 0, count: bits + 1)
            for query in 0..<codes.count {
                RetrievalMetrics.computeDistances(query: query, queries: codes, database: codes, into: &distances, histogram: &histogram)
                XCTAssertEqual(distances, (0..<codes.count).map { BinaryCode.distance(codes.code(query), codes.code($0)) })
            }
        }
    }

    /// mAP@k of fixed random codes, against a known answer computed here by brute force: rank every
    /// database code by (BinaryCode.distance, position), AP over the first k (the hand-checked
    /// `averagePrecision`), mean over queries in query order. The top k of `HammingIndex.search` (ordered by distance, then id = position)
    /// gives the same lists. Equality is exact: the evaluation's figures must not move.
    func testMeanAveragePrecisionOfRandomCodesMatchesBruteForceExactly() throws {
        var generator = SplitMix64(seed: 2024)
        let bits = 48, k = 50, labelCount: UInt64 = 4
        // Few bits and many codes, so that many distances tie and the tie order matters.
        let databaseRows = (0..<600).map { _ in (0..<bits).map { _ in generator.nextGaussian() } }
        let queryRows = (0..<30).map { _ in (0..<bits).map { _ in generator.nextGaussian() } }
        let databaseLabels = databaseRows.map { _ in UInt8(generator.next() % labelCount) }
        let queryLabels = queryRows.map { _ in UInt8(generator.next() % labelCount) }
        let database = PackedCodes(signsOf: databaseRows, bits: bits)
        let queries = PackedCodes(signsOf: queryRows, bits: bits)

        let index = try HammingIndex(bits: bits)
        for position in 0..<database.count { try index.add(id: Int64(position), code: database.code(position)) }
        var bruteForceSum = 0.0, indexSum = 0.0
        for query in 0..<queries.count {
            let code = queries.code(query)
            let distances = (0..<database.count).map { BinaryCode.distance(code, database.code($0)) }
            let order = distances.indices.sorted { (distances[$0], $0) < (distances[$1], $1) }
            let relevant = order.prefix(k).map { databaseLabels[$0] == queryLabels[query] }
            bruteForceSum += RetrievalMetrics.averagePrecision(relevant: relevant, k: k)
            let neighbours = try index.search(code, k: k)
            XCTAssertEqual(neighbours.map { Int($0.id) }, Array(order.prefix(k)))
            indexSum += RetrievalMetrics.averagePrecision(relevant: neighbours.map { databaseLabels[Int($0.id)] == queryLabels[query] }, k: k)
        }
        let expected = bruteForceSum / Double(queries.count)
        let evaluation = RetrievalMetrics.evaluateHamming(
            queries: queries, queryLabels: queryLabels, database: database, databaseLabels: databaseLabels, k: k, precisionDepth: 10)
        XCTAssertEqual(evaluation.meanAveragePrecision, expected)
        XCTAssertEqual(indexSum / Double(queries.count), expected)
        XCTAssertGreaterThan(expected, 0)
    }
}
