import XCTest
@testable import NeuralNet

/// Training behaviour, the encoder builder, model files, optimisers and error reporting.
final class NetworkTests: XCTestCase {
    /// A small encoder with global average pooling and no code batch norm.
    private func smallEncoder(bits: Int = 8, seed: UInt64 = 1) throws -> Sequential {
        try Sequential.dschEncoder(
            EncoderConfiguration(bits: bits, widths: [4, 8, 8], hiddenWidth: 16, inputSize: 8, codeBatchNorm: false, headGrid: 1),
            seed: seed)
    }

    /// Fails whenever a backward pass is wrong: the loss must fall by six orders of magnitude.
    /// The bound depends on the initial weights: from some starts (seed 1 of SplitMix64, for one) a
    /// correct network settles on a plateau near 1e-3 × within 600 steps, so the seed is one that does not.
    func testSmallNetworkOverfitsAFixedBatch() throws {
        let network = try smallEncoder(bits: 6, seed: 3)
        let input = GradientCheck.randomTensor([8, 3, 8, 8], seed: 3)
        var generator = SplitMix64(seed: 4)
        let targets = (0..<48).map { _ in generator.next() % 2 == 0 ? Float(0.8) : -0.8 }
        let optimizer = Adam(parameters: network.parameters, learningRate: 1e-2)
        func step() throws -> Double {
            optimizer.zeroGradients()
            let output = try network.forward(input)
            var loss = 0.0
            var gradient = [Float](repeating: 0, count: output.count)
            for index in 0..<output.count {
                let difference = output.storage[index] - targets[index]
                loss += Double(difference * difference) / Double(output.count)
                gradient[index] = 2 * difference / Float(output.count)
            }
            try network.backward(outputGradient: try Tensor(shape: output.shape, storage: gradient))
            optimizer.step()
            return loss
        }
        let initial = try step()
        var final = initial
        for _ in 0..<300 { final = try step() }
        // A correct network reaches about 1e-12 × the initial loss; a batch norm backward missing one
        // term still learns but stalls near 4e-3 ×, which this bound must reject.
        XCTAssertLessThan(final, initial * 1e-6, "loss went from \(initial) to \(final)")
    }

    func testEncoderShapesAndReproducibleInitialisation() throws {
        let encoder = try Sequential.dschEncoder(EncoderConfiguration(bits: 64), seed: 42)
        XCTAssertEqual(encoder.layers.count, 22)
        encoder.mode = .inference
        let output = try encoder.forward(GradientCheck.randomTensor([2, 3, 32, 32], seed: 5))
        XCTAssertEqual(output.shape, [2, 64])
        XCTAssertTrue(output.storage.allSatisfy { $0 > -1 && $0 < 1 })
        let same = try Sequential.dschEncoder(EncoderConfiguration(bits: 64), seed: 42)
        let other = try Sequential.dschEncoder(EncoderConfiguration(bits: 64), seed: 43)
        XCTAssertEqual(encoder.serialized(), same.serialized())
        XCTAssertNotEqual(encoder.serialized(), other.serialized())
        XCTAssertThrowsError(try Sequential.dschEncoder(EncoderConfiguration(inputSize: 30))) { error in
            guard case NeuralNetError.invalidConfiguration = error else { return XCTFail("unexpected \(error)") }
        }
    }

    /// A head grid above 1 max-pools the last 8×8 map to that grid and feeds every cell to the head, so
    /// the first linear layer sees channels × grid² features; a grid beyond 8 keeps the whole map, and
    /// one that does not divide 8 is refused.
    func testSpatialHeadKeepsTheFeatureGrid() throws {
        for (grid, expectedInputs) in [(1, 16), (2, 64), (4, 256), (8, 1024), (16, 1024)] {
            let configuration = EncoderConfiguration(bits: 12, widths: [4, 8, 16], hiddenWidth: 20, inputSize: 32, headGrid: grid)
            let encoder = try Sequential.dschEncoder(configuration, seed: 3)
            let firstLinear = try XCTUnwrap(encoder.layers.compactMap { $0 as? Linear }.first)
            XCTAssertEqual(firstLinear.inFeatures, expectedInputs, "grid \(grid)")
            encoder.mode = .inference
            XCTAssertEqual(try encoder.forward(GradientCheck.randomTensor([3, 3, 32, 32], seed: 9)).shape, [3, 12])
        }
        XCTAssertThrowsError(try Sequential.dschEncoder(EncoderConfiguration(inputSize: 32, headGrid: 3))) { error in
            guard case NeuralNetError.invalidConfiguration(let message) = error else { return XCTFail("unexpected \(error)") }
            XCTAssertTrue(message.contains("head grid"), message)
        }
    }

    func testSerialisationRoundTripGivesBitIdenticalOutputs() throws {
        let trained = try smallEncoder()
        let input = GradientCheck.randomTensor([4, 3, 8, 8], seed: 6)
        let optimizer = Adam(parameters: trained.parameters, learningRate: 1e-2)
        for _ in 0..<3 {
            let output = try trained.forward(input)
            try trained.backward(outputGradient: output)
            optimizer.step()
            optimizer.zeroGradients()
        }
        trained.mode = .inference
        let expected = try trained.forward(input)
        let bytes = trained.serialized()

        let restored = try smallEncoder(seed: 99)
        restored.mode = .inference
        XCTAssertNotEqual(try restored.forward(input).storage, expected.storage)
        try restored.load(from: bytes)
        XCTAssertEqual(try restored.forward(input).storage.map(\.bitPattern), expected.storage.map(\.bitPattern))
        XCTAssertEqual(restored.serialized(), bytes)
    }

    func testReplicasRunConcurrentlyWithIdenticalResults() throws {
        let network = try smallEncoder()
        network.mode = .inference
        let input = GradientCheck.randomTensor([3, 3, 8, 8], seed: 8)
        let expected = try network.forward(input).storage
        let replicas = try (0..<4).map { _ in try network.replica() }
        let results = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: replicas.count)
        DispatchQueue.concurrentPerform(iterations: replicas.count) { index in
            var output: [Float] = []
            for _ in 0..<20 { output = (try? replicas[index].forward(input).storage) ?? [] }
            (results.baseAddress! + index).initialize(to: output)
        }
        for index in 0..<replicas.count { XCTAssertEqual(results[index], expected, "replica \(index)") }
        _ = results.deinitialize()
        results.deallocate()
    }

    func testLoadingRejectsOtherArchitecturesCorruptionAndTruncation() throws {
        let network = try smallEncoder(bits: 8)
        let bytes = network.serialized()
        XCTAssertThrowsError(try smallEncoder(bits: 16).load(from: bytes)) { error in
            guard case NeuralNetError.architectureMismatch = error else { return XCTFail("unexpected \(error)") }
            XCTAssertTrue("\(error)".contains("different architecture"))
        }
        var corrupted = bytes
        corrupted[bytes.count / 2] ^= 0x40
        XCTAssertThrowsError(try network.load(from: corrupted)) { error in
            guard case NeuralNetError.checksumMismatch = error else { return XCTFail("unexpected \(error)") }
        }
        XCTAssertThrowsError(try network.load(from: Array(bytes.prefix(10)))) { error in
            guard case NeuralNetError.malformedModel = error else { return XCTFail("unexpected \(error)") }
        }
        var future = bytes
        future[8] = 9
        XCTAssertThrowsError(try network.load(from: future)) { error in
            XCTAssertEqual(error as? NeuralNetError, .unsupportedModelVersion(found: 9, supported: 1))
        }
        XCTAssertThrowsError(try network.load(from: Array("not a model at all".utf8)))
    }

    func testSteadyTrainingLoopAllocatesNoBuffers() throws {
        let network = try smallEncoder()
        let input = GradientCheck.randomTensor([4, 3, 8, 8], seed: 7)
        let optimizer = SGD(parameters: network.parameters, learningRate: 1e-2)
        func step() throws {
            let output = try network.forward(input)
            try network.backward(outputGradient: output)
            optimizer.step()
            optimizer.zeroGradients()
        }
        try step()
        let allocations = Buffer.allocationCount
        for _ in 0..<3 { try step() }
        XCTAssertEqual(Buffer.allocationCount, allocations)
    }

    func testShapeErrorsNameTheProblem() throws {
        XCTAssertThrowsError(try Tensor(shape: [2, 3], storage: [1, 2, 3])) { error in
            XCTAssertTrue("\(error)".contains("6 elements but 3 values"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor(shape: [2, 0]))
        let network = try smallEncoder()
        XCTAssertThrowsError(try network.forward(try Tensor(shape: [1, 1, 8, 8]))) { error in
            guard case NeuralNetError.shapeMismatch = error else { return XCTFail("unexpected \(error)") }
        }
        XCTAssertThrowsError(try network.backward(outputGradient: try Tensor(shape: [1, 8]))) { error in
            guard case NeuralNetError.backwardWithoutForward = error else { return XCTFail("unexpected \(error)") }
        }
        var generator = SplitMix64(seed: 0)
        let conv = try Conv2d(inChannels: 3, outChannels: 2, kernelSize: 5, generator: &generator)
        XCTAssertThrowsError(try conv.forward(try Tensor(shape: [1, 3, 4, 4]), training: false)) { error in
            XCTAssertTrue("\(error)".contains("Conv2d(in: 3"), "\(error)")
        }
    }

    func testAdamFirstStepAndDecoupledWeightDecay() throws {
        var generator = SplitMix64(seed: 0)
        let layer = try Linear(inFeatures: 2, outFeatures: 1, generator: &generator)
        layer.weight.values = [1, -2]
        layer.bias!.values = [0.5]
        let adam = Adam(parameters: layer.parameters, learningRate: 0.1, weightDecay: 0.5)
        _ = try layer.forward(try Tensor(shape: [1, 2], storage: [3, 0]), training: true)
        _ = try layer.backward(try Tensor(shape: [1, 1], storage: [1]))
        // Gradients: weight (3, 0), bias 1. The first Adam step moves by lr·sign(g); decay scales weights by 1 − 0.05.
        adam.step()
        let weights = layer.weight.values, bias = layer.bias!.values
        XCTAssertEqual(weights[0], 1 * 0.95 - 0.1, accuracy: 1e-5)
        XCTAssertEqual(weights[1], -2 * 0.95, accuracy: 1e-5)
        XCTAssertEqual(bias[0], 0.5 - 0.1, accuracy: 1e-5)
    }

    func testSGDMomentumAccumulatesVelocity() throws {
        let parameter = Parameter(name: "p", shape: [1], appliesWeightDecay: false, initialValue: 1)
        let sgd = SGD(parameters: [parameter], learningRate: 0.1, momentum: 0.9)
        parameter.gradient.pointer[0] = 1
        sgd.step()
        XCTAssertEqual(parameter.values[0], 0.9, accuracy: 1e-6)
        sgd.step()
        XCTAssertEqual(parameter.values[0], 0.9 - 0.1 * 1.9, accuracy: 1e-6)
        sgd.zeroGradients()
        XCTAssertEqual(parameter.gradients, [0])
    }

    func testLearningRateSchedules() {
        let cosine = CosineSchedule(base: 1, totalSteps: 110, warmupSteps: 10, minimum: 0.1)
        XCTAssertEqual(cosine.learningRate(at: 0), 0.1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(at: 10), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(at: 60), 0.55, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(at: 110), 0.1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(at: 500), 0.1, accuracy: 1e-6)
        let staircase = StepSchedule(base: 1, interval: 10, factor: 0.5)
        XCTAssertEqual(staircase.learningRate(at: 9), 1)
        XCTAssertEqual(staircase.learningRate(at: 10), 0.5)
        XCTAssertEqual(staircase.learningRate(at: 25), 0.25)
    }

    /// In inference mode a convolution applies the batch norm after it itself; the result must be the
    /// layer-by-layer one (each layer run on its own, which never folds), with and without a convolution
    /// bias, a ReLU after the norm, and running statistics and γ, β far from their initial values.
    /// (GradientTests checks a backward pass after a folded forward pass against finite differences.)
    func testFoldedConvolutionAndNormMatchTheLayersRunOneByOne() throws {
        var generator = SplitMix64(seed: 31)
        let layers: [Layer] = [
            try Conv2d(inChannels: 3, outChannels: 5, kernelSize: 3, padding: 1, bias: false, generator: &generator),
            try BatchNorm2d(channels: 5), ReLU(),
            try Conv2d(inChannels: 5, outChannels: 4, kernelSize: 3, stride: 2, padding: 1, bias: true, generator: &generator),
            try BatchNorm2d(channels: 4), GlobalAvgPool(),
            try Linear(inFeatures: 4, outFeatures: 3, generator: &generator),
        ]
        let network = try Sequential(layers)
        for (index, norm) in layers.compactMap({ $0 as? BatchNorm2d }).enumerated() {
            let channels = norm.channels
            norm.scale.values = (0..<channels).map { Float($0) * 0.7 - 1.1 }
            norm.shift.values = (0..<channels).map { Float($0) * -0.3 + 0.4 }
            norm.runningMean.values = (0..<channels).map { Float($0 + index) * 0.25 - 0.5 }
            norm.runningVariance.values = (0..<channels).map { Float($0 + 1) * 0.6 }
        }
        for case let convolution as Conv2d in layers { convolution.bias?.values = (0..<convolution.outChannels).map { Float($0) * 0.2 - 0.3 } }
        let input = GradientCheck.randomTensor([3, 3, 7, 7], seed: 32)
        network.mode = .inference
        let folded = try network.forward(input)
        var reference = input
        for layer in layers { reference = try layer.forward(reference, training: false) }
        XCTAssertEqual(folded.shape, reference.shape)
        for (value, expected) in zip(folded.storage, reference.storage) {
            XCTAssertEqual(value, expected, accuracy: 1e-5 * max(1, abs(expected)))
        }
    }

    /// The moving average moves every parameter and running statistic, and only the averaged network.
    func testMoveAverageBlendsParametersAndRunningStatistics() throws {
        func network(_ value: Float) throws -> Sequential {
            var generator = SplitMix64(seed: 1)
            let result = try Sequential([try Linear(inFeatures: 3, outFeatures: 10, generator: &generator), try BatchNorm1d(features: 10)])
            for tensor in result.layers.flatMap({ $0.parameters + $0.state }) {
                tensor.values = (0..<tensor.count).map { value + Float($0) }
            }
            return result
        }
        let averaged = try network(4), trained = try network(8)
        averaged.moveAverage(towards: trained, momentum: 0.75)
        for (mine, theirs) in zip(averaged.layers.flatMap { $0.parameters + $0.state }, trained.layers.flatMap { $0.parameters + $0.state }) {
            XCTAssertEqual(mine.values, (0..<mine.count).map { 5 + Float($0) }, mine.name)
            XCTAssertEqual(theirs.values, (0..<theirs.count).map { 8 + Float($0) }, theirs.name)
        }
    }
}
