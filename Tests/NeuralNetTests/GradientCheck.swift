import XCTest
@testable import NeuralNet

/// Finite-difference gradient checking shared by the layer and network tests.
///
/// The loss is L = Σ rᵢ·yᵢ with fixed random weights r, so ∂L/∂y = r. Numeric gradients are central
/// differences (L(x + h) − L(x − h)) / 2h with L summed in Double. The error reported is norm-wise:
/// ‖numeric − analytic‖ / max(‖numeric‖ + ‖analytic‖, 1e-6), which is below 1e-2 for a correct backward
/// pass in Float32 and near 1 for a wrong one.
enum GradientCheck {
    static func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var generator = SplitMix64(seed: seed)
        let count = shape.reduce(1, *)
        return try! Tensor(shape: shape, storage: (0..<count).map { _ in Float(generator.nextGaussian()) * scale })
    }

    static func loss(_ output: Tensor, _ weights: Tensor) -> Double {
        zip(output.storage, weights.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    static func relativeError(_ numeric: [Float], _ analytic: [Float]) -> Double {
        precondition(numeric.count == analytic.count)
        var difference = 0.0, numericNorm = 0.0, analyticNorm = 0.0
        for (n, a) in zip(numeric, analytic) {
            difference += Double(n - a) * Double(n - a)
            numericNorm += Double(n) * Double(n)
            analyticNorm += Double(a) * Double(a)
        }
        return difference.squareRoot() / max(numericNorm.squareRoot() + analyticNorm.squareRoot(), 1e-6)
    }

    /// Numeric gradient of `evaluate` with respect to the entries of `values` (restored afterwards).
    static func numericGradient(
        of values: inout [Float], step: Float, evaluate: ([Float]) throws -> Double
    ) rethrows -> [Float] {
        var gradient = [Float](repeating: 0, count: values.count)
        for index in values.indices {
            let original = values[index]
            values[index] = original + step
            let plus = try evaluate(values)
            values[index] = original - step
            let minus = try evaluate(values)
            values[index] = original
            gradient[index] = Float((plus - minus) / (2 * Double(step)))
        }
        return gradient
    }

    /// Checks input and parameter gradients of a standalone layer.
    static func check(
        _ layer: Layer, input: Tensor, training: Bool, step: Float = 1e-2, tolerance: Double = 1e-2,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let output = try layer.forward(input, training: training)
        let weights = randomTensor(output.shape, seed: 99)
        for parameter in layer.parameters { parameter.zeroGradient() }
        _ = try layer.forward(input, training: training)
        let inputGradient = try layer.backward(weights)

        var inputValues = input.storage
        let numericInput = try numericGradient(of: &inputValues, step: step) { values in
            loss(try layer.forward(try Tensor(shape: input.shape, storage: values), training: training), weights)
        }
        let inputError = relativeError(numericInput, inputGradient.storage)
        XCTAssertLessThan(inputError, tolerance, "\(layer.architectureDescription) input gradient (training: \(training))", file: file, line: line)

        for parameter in layer.parameters {
            let analytic = parameter.gradients
            var values = parameter.values
            let numeric = try numericGradient(of: &values, step: step) { values in
                parameter.values = values
                return loss(try layer.forward(input, training: training), weights)
            }
            parameter.values = values
            let error = relativeError(numeric, analytic)
            XCTAssertLessThan(error, tolerance, "\(layer.architectureDescription) \(parameter.name) gradient (training: \(training))", file: file, line: line)
        }
    }

    /// Checks input and parameter gradients of a whole network in its current mode.
    static func check(
        _ network: Sequential, input: Tensor, step: Float = 1e-2, tolerance: Double = 1e-2,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let output = try network.forward(input)
        let weights = randomTensor(output.shape, seed: 7)
        network.zeroGradients()
        let inputGradient = try network.backwardWithInputGradient(outputGradient: weights)

        var inputValues = input.storage
        let numericInput = try numericGradient(of: &inputValues, step: step) { values in
            loss(try network.forward(try Tensor(shape: input.shape, storage: values)), weights)
        }
        XCTAssertLessThan(relativeError(numericInput, inputGradient.storage), tolerance, "network input gradient (\(network.mode))", file: file, line: line)

        for (index, parameter) in network.parameters.enumerated() {
            let analytic = parameter.gradients
            var values = parameter.values
            let numeric = try numericGradient(of: &values, step: step) { values in
                parameter.values = values
                return loss(try network.forward(input), weights)
            }
            parameter.values = values
            XCTAssertLessThan(relativeError(numeric, analytic), tolerance, "network parameter \(index) \(parameter.name) (\(network.mode))", file: file, line: line)
        }
    }
}
