import Foundation
import NeuralNet
import XCTest
@testable import Evaluation
@testable import Hashing

/// Retrieval quality of the encoders, measured with the evaluation's metrics.
final class EncoderRetrievalTests: XCTestCase {
    /// Eight classes as corners of a 3-cube, embedded in 32 dimensions with a random rotation and small
    /// noise: ITQ with 3 bits should find the corners, random projections (what LSH does) should not.
    func testITQBeatsRandomProjectionsOnSyntheticData() throws {
        var generator = SplitMix64(seed: 21)
        let dimension = 32, count = 800
        var embedding = (0..<(dimension * 3)).map { _ in generator.nextGaussian() }
        orthonormalizeColumns(&embedding, rows: dimension, columns: 3)
        var features: [Float] = [], labels: [UInt8] = []
        for index in 0..<count {
            let label = index % 8
            let corner: [Float] = [(label & 1) == 0 ? -1 : 1, (label & 2) == 0 ? -1 : 1, (label & 4) == 0 ? -1 : 1]
            for row in 0..<dimension {
                var value: Float = 0.15 * generator.nextGaussian()
                for k in 0..<3 { value += 3 * embedding[row * 3 + k] * (corner[k] + 0.25 * generator.nextGaussian()) }
                features.append(value)
            }
            labels.append(UInt8(label))
        }
        let bits = 3
        let model = try ITQProjection.train(features: features, count: count, dimension: dimension, bits: bits, seed: 1)
        let history = model.quantizationLossHistory
        XCTAssertLessThanOrEqual(history.last!, history.first! + 1e-9)
        let itqCodes = PackedCodes(signsOf: model.apply(features: features, count: count), count: count, bits: bits)
        let random = (0..<(dimension * bits)).map { _ in generator.nextGaussian() }
        let lshCodes = PackedCodes(signsOf: matrixProduct(features, random, m: count, n: bits, k: dimension), count: count, bits: bits)
        func score(_ codes: PackedCodes) -> Double {
            RetrievalMetrics.evaluateHamming(queries: codes, queryLabels: labels, database: codes, databaseLabels: labels, k: 100)
                .meanAveragePrecision
        }
        let itq = score(itqCodes), lsh = score(lshCodes)
        XCTAssertGreaterThan(itq, 0.95)
        XCTAssertGreaterThan(itq, lsh + 0.1, "ITQ \(itq) vs random projections \(lsh)")
        // The projection's columns are orthonormal (PCA basis times a rotation).
        for a in 0..<bits {
            for b in 0..<bits {
                let dot = (0..<dimension).reduce(Float(0)) { $0 + model.projection[$1 * bits + a] * model.projection[$1 * bits + b] }
                XCTAssertEqual(dot, a == b ? 1 : 0, accuracy: 1e-4)
            }
        }
        XCTAssertThrowsError(try ITQProjection.train(features: features, count: count, dimension: dimension, bits: 33)) {
            XCTAssertEqual($0 as? ITQError, .tooManyBits(bits: 33, dimension: 32))
        }
    }

    /// The settings of `HashingTests`' small DSCH runs, scaled up a little: 32 bits, six epochs.
    private func fashionSettings() -> DSCHSettings {
        var settings = DSCHSettings()
        settings.bits = 32
        settings.epochs = 6
        settings.warmupEpochs = 1
        settings.batchSize = 32
        settings.widths = [8, 16, 16]
        settings.hiddenWidth = 32
        settings.fineComponents = 20
        settings.coarseComponents = 5
        settings.mixtureIterations = 10
        settings.learningRateWarmupEpochs = 0.5
        settings.learningRate = 0.005
        return settings
    }

    /// A short run on a few hundred Fashion-MNIST images must rank same-class images higher than the
    /// untrained network with the same initial weights does.
    func testTrainingBeatsTheUntrainedNetworkOnFashionMNIST() throws {
        let directory = EvaluationProtocol.fashionMNISTDirectory
        guard FileManager.default.fileExists(atPath: directory + "/train-images-idx3-ubyte.gz")
            || FileManager.default.fileExists(atPath: directory + "/train-images-idx3-ubyte") else {
            throw XCTSkip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
        }
        let split = try EvaluationProtocol.load(directory: directory, trainingCount: 400)
        let indices = split.trainingIndices
        let thumbnails = indices.map { grayThumbnail(Array(split.images.image($0)), width: 28, height: 28, size: 16) }
        let labels = split.labels(of: indices)
        let settings = fashionSettings()

        func meanAveragePrecision(_ encoder: DSCHEncoder) -> Double {
            let codes = PackedCodes(signsOf: encoder.encode(thumbnails: thumbnails), bits: encoder.bits)
            return RetrievalMetrics.evaluateHamming(
                queries: codes, queryLabels: labels, database: codes, databaseLabels: labels, k: 100, precisionDepth: 10
            ).meanAveragePrecision
        }
        let untrainedNetwork = try Sequential.dschEncoder(settings.encoderConfiguration(inputSize: 16), seed: settings.seed)
        untrainedNetwork.mode = .inference
        let untrained = meanAveragePrecision(try DSCHEncoder(network: untrainedNetwork, configuration: settings.encoderConfiguration(inputSize: 16)))
        let trained = meanAveragePrecision(try DSCHTrainer(settings: settings, inputSize: 16).train(thumbnails: thumbnails) { _ in })
        XCTAssertGreaterThan(trained, untrained + 0.1, "trained mAP \(trained), untrained \(untrained)")
    }
}
