import Foundation

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

/// The baseline figures of the evaluation protocol: LSH and ITQ at each code length, and the float kNN
/// reference (Euclidean on the raw 28×28 pixels scaled to [0, 1]).
public struct BaselineReport: Sendable {
    public let figures: [BaselineFigures]
    public let floatKNNMeanAveragePrecisionAt1000: Double
    public let cores: Int

    /// A plain-text table, one line per encoder and code length.
    public var table: String {
        var lines = ["method  bits  mAP@1000  P@100   train s  encode s"]
        for figure in figures {
            lines.append(String(format: "%-6@ %5d  %8.4f  %6.4f  %7.2f  %8.2f", figure.method as NSString, figure.bits,
                                figure.meanAveragePrecisionAt1000, figure.precisionAt100,
                                figure.trainingSeconds, figure.encodingSeconds))
        }
        lines.append(String(format: "float kNN (raw pixels, Euclidean) mAP@1000 %.4f; %d cores",
                            floatKNNMeanAveragePrecisionAt1000, cores))
        return lines.joined(separator: "\n")
    }
}

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
            let slice = Array(indices[offset..<min(offset + 4_096, indices.count)])
            rows += encoder.encode(thumbnails: split.thumbnails(slice, inputSize: encoder.inputSize))
            offset += slice.count
        }
        return PackedCodes(signsOf: rows, bits: encoder.bits)
    }
    let queryCodes = codes(split.queryIndices)
    let databaseCodes = codes(split.databaseIndices)
    let encodingSeconds = seconds(clock.now - start)
    let evaluation = RetrievalMetrics.evaluateHamming(
        queries: queryCodes, queryLabels: split.labels(of: split.queryIndices),
        database: databaseCodes, databaseLabels: split.labels(of: split.databaseIndices), k: 1_000, precisionDepth: 100)
    return BaselineFigures(
        method: method, bits: encoder.bits, meanAveragePrecisionAt1000: evaluation.meanAveragePrecision,
        precisionAt100: evaluation.precisionAtDepth, trainingSeconds: trainingSeconds,
        encodingSeconds: encodingSeconds, precisionRecall: evaluation.precisionRecall)
}

/// LSH and ITQ at each code length plus the float kNN reference, all under the evaluation protocol.
public func evaluateBaselines(
    split: EvaluationProtocol, bitCounts: [Int] = [16, 32, 64], inputSize: Int = 32, seed: UInt64 = 0x5eed
) throws -> BaselineReport {
    let clock = ContinuousClock()
    var figures: [BaselineFigures] = []
    let trainingThumbnails = split.thumbnails(split.trainingIndices, inputSize: inputSize)
    for bits in bitCounts {
        figures.append(evaluateEncoder(LSHEncoder(bits: bits, inputSize: inputSize, seed: seed), on: split, method: "lsh"))
        let start = clock.now
        let itq = try ITQEncoder.train(thumbnails: trainingThumbnails, bits: bits, inputSize: inputSize, seed: seed)
        figures.append(evaluateEncoder(itq, on: split, method: "itq", trainingSeconds: seconds(clock.now - start)))
    }
    func pixels(_ indices: [Int]) -> [Float] { indices.flatMap { split.images.image($0).map { Float($0) / 255 } } }
    let knn = RetrievalMetrics.floatKNNMeanAveragePrecision(
        queries: pixels(split.queryIndices), queryLabels: split.labels(of: split.queryIndices),
        database: pixels(split.databaseIndices), databaseLabels: split.labels(of: split.databaseIndices),
        dimension: split.images.rows * split.images.columns, k: 1_000)
    return BaselineReport(
        figures: figures, floatKNNMeanAveragePrecisionAt1000: knn, cores: ProcessInfo.processInfo.activeProcessorCount)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}
