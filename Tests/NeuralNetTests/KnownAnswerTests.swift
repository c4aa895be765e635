import XCTest
@testable import NeuralNet

/// Layer outputs checked against values computed by hand.
final class KnownAnswerTests: XCTestCase {
    private func assertEqual(_ actual: [Float], _ expected: [Float], accuracy: Float = 1e-5, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "element count", file: file, line: line)
        for (index, (a, e)) in zip(actual, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: accuracy, "element \(index)", file: file, line: line)
        }
    }

    func testConvolutionWithHandComputedKernel() throws {
        var generator = SplitMix64(seed: 0)
        let layer = try Conv2d(inChannels: 1, outChannels: 1, kernelSize: 2, generator: &generator)
        layer.weight.values = [1, 2, 3, 4]
        layer.bias!.values = [0.5]
        let input = try Tensor(shape: [1, 1, 3, 3], storage: (1...9).map(Float.init))
        let output = try layer.forward(input, training: false)
        XCTAssertEqual(output.shape, [1, 1, 2, 2])
        // 1·1 + 2·2 + 3·4 + 4·5 = 37, and so on, plus the bias.
        assertEqual(output.storage, [37.5, 47.5, 67.5, 77.5])
    }

    func testSamePaddedConvolutionBoxSumAndShiftedTap() throws {
        var generator = SplitMix64(seed: 0)
        let layer = try Conv2d(inChannels: 1, outChannels: 3, kernelSize: 3, padding: 1, bias: false, generator: &generator)
        // Filters: all ones (box sums), the top-left tap only (shift down-right), the bottom-right tap only.
        layer.weight.values = [Float](repeating: 1, count: 9) + [1, 0, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 0, 0, 0, 1]
        let input = try Tensor(shape: [1, 1, 3, 3], storage: (1...9).map(Float.init))
        let output = try layer.forward(input, training: false)
        assertEqual(output.storage, [12, 21, 16, 27, 45, 33, 24, 39, 28] + [0, 0, 0, 0, 1, 2, 0, 4, 5] + [5, 6, 0, 8, 9, 0, 0, 0, 0])
    }

    func testPaddedStridedConvolutionOverABatchAndTwoFilters() throws {
        var generator = SplitMix64(seed: 0)
        let layer = try Conv2d(inChannels: 1, outChannels: 2, kernelSize: 3, stride: 2, padding: 1, bias: false, generator: &generator)
        layer.weight.values = [Float](repeating: 1, count: 9) + [Float](repeating: -1, count: 9)
        let image = (1...9).map(Float.init)
        let input = try Tensor(shape: [2, 1, 3, 3], storage: image + image.map { $0 * 2 })
        let output = try layer.forward(input, training: false)
        XCTAssertEqual(output.shape, [2, 2, 2, 2])
        // Each output sums the in-bounds part of a 3×3 window centred on the corners (0,0), (0,2), (2,0), (2,2).
        let corners: [Float] = [12, 16, 24, 28]
        assertEqual(output.storage, corners + corners.map { -$0 } + corners.map { 2 * $0 } + corners.map { -2 * $0 })
    }

    func testMaxPoolPicksWindowMaximaAndRoutesGradientsToThem() throws {
        let layer = try MaxPool2d(kernelSize: 2)
        let input = try Tensor(shape: [1, 1, 4, 4], storage: [1, 9, 2, 0, 3, 4, 8, 5, 0, 0, 1, 1, 7, 0, 1, 6])
        let output = try layer.forward(input, training: true)
        assertEqual(output.storage, [9, 8, 7, 6])
        let gradient = try layer.backward(try Tensor(shape: [1, 1, 2, 2], storage: [1, 2, 3, 4]))
        assertEqual(gradient.storage, [0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0, 4])
    }

    func testVectorisedMaxPoolMatchesBruteForceOnWideRows() throws {
        // Rows of 36 pixels take the eight-wide path for 16 outputs and the scalar path for the last 2.
        let input = GradientCheck.randomTensor([2, 3, 6, 36], seed: 21)
        let layer = try MaxPool2d(kernelSize: 2)
        let output = try layer.forward(input, training: true)
        XCTAssertEqual(output.shape, [2, 3, 3, 18])
        var expected: [Float] = []
        var expectedGradient = [Float](repeating: 0, count: input.count)
        for plane in 0..<6 {
            for oy in 0..<3 {
                for ox in 0..<18 {
                    let candidates = [(0, 0), (0, 1), (1, 0), (1, 1)].map { plane * 216 + (2 * oy + $0.0) * 36 + 2 * ox + $0.1 }
                    let best = candidates.max { input.storage[$0] < input.storage[$1] }!
                    expected.append(input.storage[best])
                    expectedGradient[best] += Float(expected.count)
                }
            }
        }
        assertEqual(output.storage, expected, accuracy: 0)
        let gradient = try layer.backward(try Tensor(shape: output.shape, storage: (1...output.count).map(Float.init)))
        assertEqual(gradient.storage, expectedGradient, accuracy: 0)
    }

    func testBatchNormStatisticsAndRunningAverages() throws {
        let layer = try BatchNorm2d(channels: 2)
        // Channel 0 holds 1, 3, 5, 7 (mean 4, biased variance 5); channel 1 holds 2, 2, 2, 2.
        let input = try Tensor(shape: [2, 2, 1, 2], storage: [1, 3, 2, 2, 5, 7, 2, 2])
        let output = try layer.forward(input, training: true)
        let deviation = (5 + layer.epsilon).squareRoot()
        assertEqual(output.storage, [-3 / deviation, -1 / deviation, 0, 0, 1 / deviation, 3 / deviation, 0, 0])
        // Running averages move 10% toward the batch mean and the unbiased variance (5·4/3).
        assertEqual(layer.runningMean.values, [0.4, 0.2])
        assertEqual(layer.runningVariance.values, [0.9 + 0.1 * 20 / 3, 0.9])
        // Inference uses the running statistics.
        let inference = try layer.forward(input, training: false)
        XCTAssertEqual(inference.storage[0], (1 - 0.4) / (layer.runningVariance.values[0] + layer.epsilon).squareRoot(), accuracy: 1e-5)
    }

    func testBatchNorm1dNormalisesEachFeatureOverTheBatch() throws {
        let layer = try BatchNorm1d(features: 2)
        layer.scale.values = [2, 1]
        layer.shift.values = [1, 0]
        let output = try layer.forward(try Tensor(shape: [2, 2], storage: [0, 10, 2, 10]), training: true)
        let scaled = 2 / (1 + layer.epsilon).squareRoot()
        assertEqual(output.storage, [1 - scaled, 0, 1 + scaled, 0])
    }

    func testGlobalAveragePoolLinearReLUAndTanh() throws {
        let pool = GlobalAvgPool()
        let pooled = try pool.forward(try Tensor(shape: [1, 2, 2, 2], storage: [1, 2, 3, 4, -1, -1, -1, -5]), training: false)
        XCTAssertEqual(pooled.shape, [1, 2])
        assertEqual(pooled.storage, [2.5, -2])

        var generator = SplitMix64(seed: 0)
        let linear = try Linear(inFeatures: 2, outFeatures: 3, generator: &generator)
        linear.weight.values = [1, 0, 0, 1, 1, 1]
        linear.bias!.values = [0, 1, -1]
        assertEqual(try linear.forward(pooled, training: false).storage, [2.5, -1, -0.5])

        assertEqual(try ReLU().forward(try Tensor(shape: [3], storage: [-1, 0, 2]), training: false).storage, [0, 0, 2])
        assertEqual(try Tanh().forward(try Tensor(shape: [2], storage: [0, 1]), training: false).storage, [0, tanhf(1)])
    }
}
