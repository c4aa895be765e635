import Foundation
import HammingIndex
import Hashing

/// The binary codes of many images, each packed by `BinaryCode.pack(signs:)` (the service's packing:
/// bit `b` is bit `b % 64` of word `b / 64`, set when the real-valued output is positive, so `sign(0)`
/// counts as −1) and laid one after another, row-major: code `i` occupies words
/// `i*wordsPerCode ..< (i+1)*wordsPerCode`, so that ranking scans one contiguous buffer.
public struct PackedCodes: Sendable {
    public let bits: Int
    public let count: Int
    public let wordsPerCode: Int
    public let words: [UInt64]

    /// Packs rows of real-valued outputs by their signs.
    public init(signsOf rows: [[Float]], bits: Int) {
        self.bits = bits
        count = rows.count
        wordsPerCode = BinaryCode.wordCount(bits: bits)
        var words: [UInt64] = []
        words.reserveCapacity(rows.count * wordsPerCode)
        for (row, values) in rows.enumerated() {
            precondition(values.count == bits, "row \(row) has \(values.count) values, expected \(bits)")
            words += BinaryCode.pack(signs: values)
        }
        self.words = words
    }

    /// Packs a row-major `count×bits` buffer by its signs.
    public init(signsOf buffer: [Float], count: Int, bits: Int) {
        self.init(signsOf: (0..<count).map { Array(buffer[($0 * bits)..<(($0 + 1) * bits)]) }, bits: bits)
    }

    /// Code `index` as `BinaryCode` words.
    public func code(_ index: Int) -> [UInt64] {
        Array(words[(index * wordsPerCode)..<((index + 1) * wordsPerCode)])
    }
}

/// One point of a precision–recall curve, taken at a Hamming radius.
public struct PrecisionRecallPoint: Sendable, Equatable {
    public let radius: Int
    /// Mean over the queries that retrieve at least one item within the radius.
    public let precision: Double
    /// Mean over all queries of (relevant within radius) / (relevant in database).
    public let recall: Double

    /// A point at `radius` with the given mean precision and recall.
    public init(radius: Int, precision: Double, recall: Double) {
        self.radius = radius
        self.precision = precision
        self.recall = recall
    }
}

/// Retrieval quality of Hamming ranking under the evaluation protocol.
public struct HammingEvaluation: Sendable {
    /// mAP@k for the `k` it was computed with.
    public let meanAveragePrecision: Double
    /// Precision of the top `precisionDepth` results, averaged over queries.
    public let precisionAtDepth: Double
    /// Precision–recall over Hamming radius 0…bits.
    public let precisionRecall: [PrecisionRecallPoint]
}

/// Retrieval metrics of the evaluation protocol: rank the database by distance to each query, ties
/// broken by database position ascending; a result is relevant when it has the query's label.
public enum RetrievalMetrics {
    /// AP@k of one ranked list: `(1/R) Σ P(i)·rel(i)` over the top k, `R` the relevant count in the
    /// top k, 0 when `R = 0`. `relevant` holds rel(i) in rank order (only the first k are read).
    public static func averagePrecision(relevant: [Bool], k: Int) -> Double {
        var hits = 0
        var sum = 0.0
        for (rank, isRelevant) in relevant.prefix(k).enumerated() where isRelevant {
            hits += 1
            sum += Double(hits) / Double(rank + 1)
        }
        return hits == 0 ? 0 : sum / Double(hits)
    }

    /// mAP@k, precision@`precisionDepth` and the precision–recall curve over Hamming radius, in one pass.
    /// 1,000 queries against 69,000 codes take well under a second in a release build.
    public static func evaluateHamming(
        queries: PackedCodes, queryLabels: [UInt8], database: PackedCodes, databaseLabels: [UInt8],
        k: Int = EvaluationProtocol.rankingDepth, precisionDepth: Int = EvaluationProtocol.precisionDepth
    ) -> HammingEvaluation {
        precondition(queries.bits == database.bits, "query and database codes differ in length")
        precondition(queries.count == queryLabels.count && database.count == databaseLabels.count, "one label per code")
        let bits = database.bits
        let labelCount = Int(databaseLabels.max() ?? 0) + 1
        var relevantTotal = [Int](repeating: 0, count: max(labelCount, Int(queryLabels.max() ?? 0) + 1))
        for label in databaseLabels { relevantTotal[Int(label)] += 1 }

        struct PerQuery { var ap = 0.0; var precision = 0.0; var retrieved: [Int] = []; var relevantRetrieved: [Int] = [] }
        var results = [PerQuery](repeating: PerQuery(), count: queries.count)
        let chunkCount = min(queries.count, ProcessInfo.processInfo.activeProcessorCount * 4)
        results.withUnsafeMutableBufferPointer { output in
            let output = output
            DispatchQueue.concurrentPerform(iterations: max(chunkCount, 1)) { chunk in
                var distances = [Int](repeating: 0, count: database.count)
                var histogram = [Int](repeating: 0, count: bits + 1)
                var relevantAt = [Int](repeating: 0, count: bits + 1)
                var query = chunk
                while query < queries.count {
                    computeDistances(query: query, queries: queries, database: database, into: &distances, histogram: &histogram)
                    let label = queryLabels[query]
                    for index in 0...bits { relevantAt[index] = 0 }
                    for position in 0..<database.count where databaseLabels[position] == label {
                        relevantAt[distances[position]] += 1
                    }
                    let order = countingOrder(distances: distances, histogram: histogram, limit: max(k, precisionDepth))
                    let relevance = order.map { databaseLabels[$0] == label }
                    var result = PerQuery()
                    result.ap = averagePrecision(relevant: relevance, k: k)
                    let depth = min(precisionDepth, relevance.count)
                    result.precision = depth == 0 ? 0 : Double(relevance.prefix(depth).filter { $0 }.count) / Double(precisionDepth)
                    var retrieved = 0, relevantRetrieved = 0
                    result.retrieved = [Int](repeating: 0, count: bits + 1)
                    result.relevantRetrieved = [Int](repeating: 0, count: bits + 1)
                    for radius in 0...bits {
                        retrieved += histogram[radius]
                        relevantRetrieved += relevantAt[radius]
                        result.retrieved[radius] = retrieved
                        result.relevantRetrieved[radius] = relevantRetrieved
                    }
                    output[query] = result
                    query += chunkCount
                }
            }
        }
        var curve: [PrecisionRecallPoint] = []
        for radius in 0...bits {
            var precisionSum = 0.0, precisionCount = 0, recallSum = 0.0
            for (query, result) in results.enumerated() {
                if result.retrieved[radius] > 0 {
                    precisionSum += Double(result.relevantRetrieved[radius]) / Double(result.retrieved[radius])
                    precisionCount += 1
                }
                let total = relevantTotal[Int(queryLabels[query])]
                if total > 0 { recallSum += Double(result.relevantRetrieved[radius]) / Double(total) }
            }
            curve.append(PrecisionRecallPoint(
                radius: radius,
                precision: precisionCount == 0 ? 0 : precisionSum / Double(precisionCount),
                recall: results.isEmpty ? 0 : recallSum / Double(results.count)))
        }
        let count = Double(max(results.count, 1))
        return HammingEvaluation(
            meanAveragePrecision: results.reduce(0) { $0 + $1.ap } / count,
            precisionAtDepth: results.reduce(0) { $0 + $1.precision } / count,
            precisionRecall: curve)
    }

    /// mAP@k of exact Euclidean kNN on float features (row-major, `dimension` columns): the reference a
    /// good hash should beat. Ties in distance fall back to database position.
    public static func floatKNNMeanAveragePrecision(
        queries: [Float], queryLabels: [UInt8], database: [Float], databaseLabels: [UInt8],
        dimension: Int, k: Int = EvaluationProtocol.rankingDepth
    ) -> Double {
        let queryCount = queryLabels.count, databaseCount = databaseLabels.count
        precondition(queries.count == queryCount * dimension && database.count == databaseCount * dimension, "feature sizes")
        let databaseNorms = (0..<databaseCount).map { row -> Float in
            var sum: Float = 0
            for column in 0..<dimension { let v = database[row * dimension + column]; sum += v * v }
            return sum
        }
        let block = knnQueryBlock
        var apSum = 0.0
        var start = 0
        while start < queryCount {
            let rows = min(block, queryCount - start)
            let blockQueries = Array(queries[(start * dimension)..<((start + rows) * dimension)])
            // ‖q − x‖² = ‖x‖² − 2 q·x (+ ‖q‖², the same for every x of one query, so left out).
            let products = matrixProduct(blockQueries, database, transposeB: true, m: rows, n: databaseCount, k: dimension)
            var partial = [Double](repeating: 0, count: rows)
            partial.withUnsafeMutableBufferPointer { partialOut in
                let partialOut = partialOut
                DispatchQueue.concurrentPerform(iterations: rows) { row in
                    var distances = [Float](repeating: 0, count: databaseCount)
                    for position in 0..<databaseCount {
                        distances[position] = databaseNorms[position] - 2 * products[row * databaseCount + position]
                    }
                    let order = smallestIndices(distances, count: k)
                    let label = queryLabels[start + row]
                    partialOut[row] = averagePrecision(relevant: order.map { databaseLabels[$0] == label }, k: k)
                }
            }
            apSum += partial.reduce(0, +)
            start += rows
        }
        return queryCount == 0 ? 0 : apSum / Double(queryCount)
    }

    /// Queries per matrix product of the float kNN: their distance rows to 69,000 codes take about 18 MB.
    static let knnQueryBlock = 64

    /// The positions of the `count` smallest values in ascending (value, position) order, by a bounded
    /// max-heap.
    static func smallestIndices(_ values: [Float], count: Int) -> [Int] {
        let limit = min(count, values.count)
        guard limit > 0 else { return [] }
        // Heap ordered so that the root is the worst kept element: largest value, then largest position.
        var heap: [Int] = []
        heap.reserveCapacity(limit)
        func worse(_ a: Int, _ b: Int) -> Bool { values[a] > values[b] || (values[a] == values[b] && a > b) }
        for position in values.indices {
            if heap.count < limit {
                heap.append(position)
                var child = heap.count - 1
                while child > 0 {
                    let parent = (child - 1) / 2
                    if worse(heap[child], heap[parent]) { heap.swapAt(child, parent); child = parent } else { break }
                }
            } else if worse(heap[0], position) {
                heap[0] = position
                var parent = 0
                while true {
                    let left = 2 * parent + 1, right = left + 1
                    var largest = parent
                    if left < limit && worse(heap[left], heap[largest]) { largest = left }
                    if right < limit && worse(heap[right], heap[largest]) { largest = right }
                    if largest == parent { break }
                    heap.swapAt(parent, largest)
                    parent = largest
                }
            }
        }
        return heap.sorted { worse($1, $0) }
    }

    /// The Hamming distance of query `query` to every database code, and how many codes lie at each
    /// distance. The inner loop is `BinaryCode.distance` on words (popcount of XOR) over the packed
    /// buffers, without copying a code out per comparison.
    @inline(__always)
    static func computeDistances(
        query: Int, queries: PackedCodes, database: PackedCodes, into distances: inout [Int], histogram: inout [Int]
    ) {
        let words = database.wordsPerCode
        for index in histogram.indices { histogram[index] = 0 }
        queries.words.withUnsafeBufferPointer { queryWords in
            database.words.withUnsafeBufferPointer { databaseWords in
                distances.withUnsafeMutableBufferPointer { out in
                    let queryBase = query * words
                    if words == 1 {
                        let code = queryWords[queryBase]
                        for position in 0..<database.count {
                            let distance = (code ^ databaseWords[position]).nonzeroBitCount
                            out[position] = distance
                            histogram[distance] += 1
                        }
                    } else {
                        for position in 0..<database.count {
                            var distance = 0
                            for word in 0..<words {
                                distance += (queryWords[queryBase + word] ^ databaseWords[position * words + word]).nonzeroBitCount
                            }
                            out[position] = distance
                            histogram[distance] += 1
                        }
                    }
                }
            }
        }
    }

    /// The first `limit` positions by (distance, position): a stable counting sort.
    static func countingOrder(distances: [Int], histogram: [Int], limit: Int) -> [Int] {
        let limit = min(limit, distances.count)
        var start = [Int](repeating: 0, count: histogram.count)
        var running = 0
        for distance in histogram.indices { start[distance] = running; running += histogram[distance] }
        var order = [Int](repeating: 0, count: limit)
        for position in distances.indices {
            let slot = start[distances[position]]
            if slot < limit { order[slot] = position }
            start[distances[position]] = slot + 1
        }
        return order
    }
}
