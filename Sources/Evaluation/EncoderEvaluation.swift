import Foundation
import Hashing

/// Retrieval figures of one encoder at one code length under the evaluation protocol.
public struct BaselineFigures: Sendable {
    public let method: String
    public let bits: Int
    public let meanAveragePrecisionAt1000: Double
    public let precisionAt100: Double
    public let trainingSeconds: Double
    public let encodingSeconds: Double
    /// Precision–recall over Hamming radius.
    public let precisionRecall: [PrecisionRecallPoint]
}

/// Thumbnails encoded per call in `evaluateEncoder`, which bounds the memory of the thumbnails and outputs.
let evaluationEncodingChunk = 4_096

/// Scores an encoder under the protocol: encodes queries and database, ranks by Hamming distance.
public func evaluateEncoder(
    _ encoder: HashEncoder, on split: EvaluationProtocol, method: String, trainingSeconds: Double = 0
) -> BaselineFigures {
    let clock = ContinuousClock()
    let start = clock.now
    func codes(_ indices: [Int]) -> PackedCodes {
        var rows: [[Float]] = []
        rows.reserveCapacity(indices.count)
        var offset = 0
        while offset < indices.count {
            let slice = Array(indices[offset..<min(offset + evaluationEncodingChunk, indices.count)])
            rows += encoder.encode(thumbnails: split.thumbnails(slice, inputSize: encoder.inputSize))
            offset += slice.count
        }
        return PackedCodes(signsOf: rows, bits: encoder.bits)
    }
    let queryCodes = codes(split.queryIndices)
    let databaseCodes = codes(split.databaseIndices)
    let encodingSeconds = (clock.now - start).inSeconds
    let evaluation = RetrievalMetrics.evaluateHamming(
        queries: queryCodes, queryLabels: split.labels(of: split.queryIndices),
        database: databaseCodes, databaseLabels: split.labels(of: split.databaseIndices),
        k: EvaluationProtocol.rankingDepth, precisionDepth: EvaluationProtocol.precisionDepth)
    return BaselineFigures(
        method: method, bits: encoder.bits, meanAveragePrecisionAt1000: evaluation.meanAveragePrecision,
        precisionAt100: evaluation.precisionAtDepth, trainingSeconds: trainingSeconds,
        encodingSeconds: encodingSeconds, precisionRecall: evaluation.precisionRecall)
}
