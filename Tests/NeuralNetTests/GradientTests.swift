import XCTest
@testable import NeuralNet

/// Finite-difference checks of every layer's backward pass, for inputs and parameters.
final class GradientTests: XCTestCase {
    func testConv2dPaddedGradients() throws {
        var generator = SplitMix64(seed: 1)
        let layer = try Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, padding: 1, bias: true, generator: &generator)
        layer.bias!.values = [0.1, -0.2, 0.3, 0.05]
        try GradientCheck.check(layer, input: GradientCheck.randomTensor([2, 3, 5, 5], seed: 2), training: true)
    }

    func testConv2dStridedGradients() throws {
        var generator = SplitMix64(seed: 3)
        let layer = try Conv2d(inChannels: 2, outChannels: 3, kernelSize: 3, stride: 2, padding: 1, bias: false, generator: &generator)
        try GradientCheck.check(layer, input: GradientCheck.randomTensor([2, 2, 7, 6], seed: 4), training: true)
    }

    func testConv2dWideKernelNoPaddingGradients() throws {
        var generator = SplitMix64(seed: 5)
        let layer = try Conv2d(inChannels: 2, outChannels: 2, kernelSize: 4, stride: 1, padding: 0, generator: &generator)
        try GradientCheck.check(layer, input: GradientCheck.randomTensor([3, 2, 6, 5], seed: 6), training: true)
    }

    func testConv2dSingleImageAndGroupedPathsGradients() throws {
        // One image goes straight into the output; several go through the scatter/gather path.
        var generator = SplitMix64(seed: 7)
        let layer = try Conv2d(inChannels: 3, outChannels: 2, kernelSize: 1, generator: &generator)
        try GradientCheck.check(layer, input: GradientCheck.randomTensor([1, 3, 4, 4], seed: 8), training: true)
        try GradientCheck.check(layer, input: GradientCheck.randomTensor([3, 3, 4, 4], seed: 9), training: true)
    }

    func testBatchNorm2dTrainingAndInferenceGradients() throws {
        let layer = try BatchNorm2d(channels: 3)
        layer.scale.values = [1.5, 0.7, -0.4]
        layer.shift.values = [0.2, -0.1, 0.3]
        let input = GradientCheck.randomTensor([4, 3, 3, 3], seed: 10, scale: 2)
        try GradientCheck.check(layer, input: input, training: true, step: 1e-2)
        layer.runningMean.values = [0.3, -0.2, 0.1]
        layer.runningVariance.values = [2, 0.5, 1.3]
        try GradientCheck.check(layer, input: input, training: false)
    }

    func testBatchNorm1dTrainingAndInferenceGradients() throws {
        let layer = try BatchNorm1d(features: 4)
        layer.scale.values = [1.2, 0.5, -0.8, 2]
        let input = GradientCheck.randomTensor([6, 4], seed: 11)
        try GradientCheck.check(layer, input: input, training: true)
        layer.runningVariance.values = [0.8, 1.5, 2, 0.3]
        try GradientCheck.check(layer, input: input, training: false)
    }

    func testReLUGradients() throws {
        try GradientCheck.check(ReLU(), input: GradientCheck.randomTensor([2, 3, 4, 4], seed: 12), training: true, step: 1e-3)
    }

    func testTanhGradients() throws {
        try GradientCheck.check(Tanh(), input: GradientCheck.randomTensor([3, 7], seed: 13), training: true)
    }

    func testMaxPoolGradients() throws {
        try GradientCheck.check(try MaxPool2d(kernelSize: 2), input: GradientCheck.randomTensor([2, 3, 6, 6], seed: 14), training: true, step: 1e-3)
        try GradientCheck.check(try MaxPool2d(kernelSize: 3, stride: 2), input: GradientCheck.randomTensor([2, 2, 7, 7], seed: 15), training: true, step: 1e-3)
    }

    func testGlobalAvgPoolGradients() throws {
        try GradientCheck.check(GlobalAvgPool(), input: GradientCheck.randomTensor([2, 3, 4, 5], seed: 16), training: true)
    }

    func testLinearGradients() throws {
        var generator = SplitMix64(seed: 17)
        let layer = try Linear(inFeatures: 5, outFeatures: 4, generator: &generator)
        layer.bias!.values = [0.1, 0.2, -0.3, 0.4]
        try GradientCheck.check(layer, input: GradientCheck.randomTensor([3, 5], seed: 18), training: true)
    }

    /// A small network using every layer, with BatchNorm+ReLU fusion, in both modes. Layers feeding a
    /// batch norm have no bias: its true gradient is zero there, which a relative error cannot judge.
    func testComposedNetworkGradientsInTrainingAndInference() throws {
        var generator = SplitMix64(seed: 19)
        let network = try Sequential([
            Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, padding: 1, bias: false, generator: &generator),
            BatchNorm2d(channels: 4), ReLU(), MaxPool2d(kernelSize: 2),
            Conv2d(inChannels: 4, outChannels: 5, kernelSize: 3, stride: 2, padding: 1, bias: false, generator: &generator),
            BatchNorm2d(channels: 5), ReLU(), GlobalAvgPool(),
            Linear(inFeatures: 5, outFeatures: 6, bias: false, generator: &generator), BatchNorm1d(features: 6), ReLU(),
            Linear(inFeatures: 6, outFeatures: 3, generator: &generator), Tanh(),
        ])
        let input = GradientCheck.randomTensor([4, 3, 6, 6], seed: 20)
        network.mode = .training
        try GradientCheck.check(network, input: input, step: 1e-3, tolerance: 1e-2)
        network.mode = .inference
        try GradientCheck.check(network, input: input, step: 1e-3, tolerance: 1e-2)
    }
}
