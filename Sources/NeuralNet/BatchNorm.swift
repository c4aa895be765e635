import Foundation

/// Batch normalisation over the channel axis (axis 1) of `[N, C, …]` input.
///
/// Training mode normalises with the batch's statistics and updates exponential running averages
/// (momentum 0.1, unbiased variance, as PyTorch does); inference mode uses the running averages.
/// Inside a `Sequential`, a following ReLU is fused into this layer to save two passes over memory.
public class BatchNorm: Layer {
    /// Number of channels (features).
    public let channels: Int
    /// Weight of the newest batch in the running averages.
    public let momentum: Float
    /// Added to the variance before the square root.
    public let epsilon: Float
    /// Per-channel scale γ.
    public let scale: Parameter
    /// Per-channel shift β.
    public let shift: Parameter
    /// Running mean used in inference mode.
    public let runningMean: Parameter
    /// Running variance used in inference mode.
    public let runningVariance: Parameter

    /// Set by `Sequential` when a ReLU follows: the output is clamped at zero here instead.
    var fusedReLU = false
    private let output = Buffer()
    private var savedInput: Buffer?
    private var savedTraining = true
    private var batchMean: [Float]
    private var batchInverseDeviation: [Float]

    init(channels: Int, momentum: Float, epsilon: Float) throws {
        guard channels > 0, momentum >= 0, momentum <= 1, epsilon > 0 else {
            throw NeuralNetError.invalidConfiguration("BatchNorm needs channels > 0, momentum in [0, 1] and epsilon > 0")
        }
        self.channels = channels
        self.momentum = momentum
        self.epsilon = epsilon
        scale = Parameter(name: "weight", shape: [channels], appliesWeightDecay: false, initialValue: 1)
        shift = Parameter(name: "bias", shape: [channels], appliesWeightDecay: false, initialValue: 0)
        runningMean = Parameter(name: "running_mean", shape: [channels], appliesWeightDecay: false, initialValue: 0)
        runningVariance = Parameter(name: "running_var", shape: [channels], appliesWeightDecay: false, initialValue: 1)
        batchMean = [Float](repeating: 0, count: channels)
        batchInverseDeviation = [Float](repeating: 1, count: channels)
    }

    public override var parameters: [Parameter] { [scale, shift] }
    public override var state: [Parameter] { [runningMean, runningVariance] }

    /// Elements per channel per sample (1 for `[N, C]`, H·W for `[N, C, H, W]`).
    private func spatial(_ shape: [Int]) -> Int { shape.dropFirst(2).reduce(1, *) }

    override func forward(_ input: Buffer, training: Bool) -> Buffer {
        let shape = input.shape
        let batch = shape[0], size = spatial(shape), count = batch * size
        savedInput = input
        savedTraining = training
        output.reshape(shape)
        let x = input.pointer, y = output.pointer, channels = self.channels
        let gamma = scale.value.pointer, beta = shift.value.pointer
        let clamp = fusedReLU
        let eps = epsilon, momentum = self.momentum
        let meanOut = runningMean.value.pointer, varianceOut = runningVariance.value.pointer
        batchMean.withUnsafeMutableBufferPointer { means in
            batchInverseDeviation.withUnsafeMutableBufferPointer { inverses in
                let means = means.baseAddress!, inverses = inverses.baseAddress!
                parallelRanges(channels) { range in
                    for channel in range {
                        var mean: Float, inverse: Float
                        if training {
                            let pivot = x[channel * size]
                            var total = 0.0, squares = 0.0
                            for sample in 0..<batch {
                                let (s, q) = shiftedMoments(x + (sample * channels + channel) * size, size, shift: pivot)
                                total += Double(s)
                                squares += Double(q)
                            }
                            let shiftedMean = total / Double(count)
                            let variance = max(squares / Double(count) - shiftedMean * shiftedMean, 0)
                            mean = Float(shiftedMean) + pivot
                            inverse = Float(1 / (variance + Double(eps)).squareRoot())
                            let unbiased = count > 1 ? variance * Double(count) / Double(count - 1) : variance
                            meanOut[channel] = (1 - momentum) * meanOut[channel] + momentum * mean
                            varianceOut[channel] = (1 - momentum) * varianceOut[channel] + momentum * Float(unbiased)
                        } else {
                            mean = meanOut[channel]
                            inverse = BatchNorm.inverseDeviation(variance: varianceOut[channel], epsilon: eps)
                        }
                        means[channel] = mean
                        inverses[channel] = inverse
                        let (a, b) = BatchNorm.affineMap(scale: gamma[channel], shift: beta[channel], mean: mean, inverse: inverse)
                        for sample in 0..<batch {
                            let offset = (sample * channels + channel) * size
                            let source = x + offset, target = y + offset
                            if clamp {
                                for index in 0..<size { target[index] = max(source[index] * a + b, 0) }
                            } else {
                                for index in 0..<size { target[index] = source[index] * a + b }
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    override func backward(_ outputGradient: Buffer, spare: Buffer, needsInputGradient: Bool) -> Buffer? {
        guard let input = savedInput else { fatalError("BatchNorm.backward before forward") }
        let shape = input.shape
        let batch = shape[0], size = spatial(shape), count = Float(batch * size)
        if needsInputGradient { spare.reshape(shape) }
        let x = input.pointer, y = output.pointer, dy = outputGradient.pointer, dx = spare.pointer
        let channels = self.channels, clamp = fusedReLU, training = savedTraining
        let gamma = scale.value.pointer
        let dGamma = scale.gradient.pointer, dBeta = shift.gradient.pointer
        batchMean.withUnsafeBufferPointer { means in
            batchInverseDeviation.withUnsafeBufferPointer { inverses in
                let means = means.baseAddress!, inverses = inverses.baseAddress!
                parallelRanges(channels) { range in
                    for channel in range {
                        let mean = means[channel], inverse = inverses[channel]
                        // Σ dy and Σ dy·x̂ over the channel, with the ReLU mask applied when fused.
                        var sumGradient = 0.0, sumProduct = 0.0
                        for sample in 0..<batch {
                            let offset = (sample * channels + channel) * size
                            let (s, p) = BatchNorm.gradientMoments(
                                dy + offset, output: y + offset, input: x + offset, count: size, mean: mean, masked: clamp)
                            sumGradient += Double(s)
                            sumProduct += Double(p)
                        }
                        let productSum = Float(sumProduct) * inverse
                        dGamma[channel] += productSum
                        dBeta[channel] += Float(sumGradient)
                        guard needsInputGradient else { continue }
                        let a = gamma[channel] * inverse
                        // Training: dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy·x̂)); inference: dx = γ/σ · dy.
                        let meanGradient = training ? Float(sumGradient) / count : 0
                        let meanProduct = training ? productSum / count : 0
                        for sample in 0..<batch {
                            let offset = (sample * channels + channel) * size
                            BatchNorm.inputGradient(
                                dy + offset, output: y + offset, input: x + offset, into: dx + offset, count: size,
                                mean: mean, inverse: inverse, scale: a, meanGradient: meanGradient,
                                meanProduct: meanProduct, masked: clamp)
                        }
                    }
                }
            }
        }
        return needsInputGradient ? spare : nil
    }
}

extension BatchNorm {
    /// The per-channel map `y = scales[c] · x + shifts[c]` inference mode applies (before the fused
    /// ReLU), from the running statistics; a convolution that folds this layer in applies it itself.
    func inferenceAffineMap() -> (scales: [Float], shifts: [Float]) {
        let gamma = scale.value.pointer, beta = shift.value.pointer
        let means = runningMean.value.pointer, variances = runningVariance.value.pointer
        var scales = [Float](repeating: 0, count: channels), shifts = [Float](repeating: 0, count: channels)
        for channel in 0..<channels {
            let inverse = BatchNorm.inverseDeviation(variance: variances[channel], epsilon: epsilon)
            (scales[channel], shifts[channel]) = BatchNorm.affineMap(
                scale: gamma[channel], shift: beta[channel], mean: means[channel], inverse: inverse)
        }
        return (scales, shifts)
    }

    @inline(__always)
    static func inverseDeviation(variance: Float, epsilon: Float) -> Float { 1 / (variance + epsilon).squareRoot() }

    /// γ·(x − mean)·inverse + β written as a·x + b, the form both the layer and a folding convolution use.
    @inline(__always)
    static func affineMap(scale gamma: Float, shift beta: Float, mean: Float, inverse: Float) -> (Float, Float) {
        let a = gamma * inverse
        return (a, beta - mean * a)
    }

    /// (Σ g, Σ g·(x − mean)) over one run, g being the output gradient masked by the fused ReLU.
    @inline(__always)
    static func gradientMoments(
        _ dy: UnsafeMutablePointer<Float>, output y: UnsafeMutablePointer<Float>, input x: UnsafeMutablePointer<Float>,
        count: Int, mean: Float, masked: Bool
    ) -> (Float, Float) {
        var sums = SIMD8<Float>(), products = SIMD8<Float>()
        let means = SIMD8<Float>(repeating: mean)
        var index = 0
        while index + 8 <= count {
            var g = load8(dy, index)
            if masked { g.replace(with: 0, where: load8(y, index) .<= 0) }
            sums += g
            products += g * (load8(x, index) - means)
            index += 8
        }
        var s = sums.sum(), p = products.sum()
        while index < count {
            let g = masked && y[index] <= 0 ? 0 : dy[index]
            s += g
            p += g * (x[index] - mean)
            index += 1
        }
        return (s, p)
    }

    /// dx = scale · (g − meanGradient − x̂ · meanProduct) over one run.
    @inline(__always)
    static func inputGradient(
        _ dy: UnsafeMutablePointer<Float>, output y: UnsafeMutablePointer<Float>, input x: UnsafeMutablePointer<Float>,
        into dx: UnsafeMutablePointer<Float>, count: Int, mean: Float, inverse: Float, scale: Float,
        meanGradient: Float, meanProduct: Float, masked: Bool
    ) {
        let means = SIMD8<Float>(repeating: mean), inverses = SIMD8<Float>(repeating: inverse)
        let scales = SIMD8<Float>(repeating: scale), meanGradients = SIMD8<Float>(repeating: meanGradient)
        let meanProducts = SIMD8<Float>(repeating: meanProduct)
        var index = 0
        while index + 8 <= count {
            var g = load8(dy, index)
            if masked { g.replace(with: 0, where: load8(y, index) .<= 0) }
            let normalised = (load8(x, index) - means) * inverses
            store8(scales * (g - meanGradients - normalised * meanProducts), dx, index)
            index += 8
        }
        while index < count {
            let g = masked && y[index] <= 0 ? 0 : dy[index]
            dx[index] = scale * (g - meanGradient - (x[index] - mean) * inverse * meanProduct)
            index += 1
        }
    }
}

/// Batch normalisation of `[N, C, H, W]` feature maps, statistics per channel over N, H and W.
public final class BatchNorm2d: BatchNorm {
    /// A batch norm with γ = 1, β = 0, running mean 0 and running variance 1.
    public override init(channels: Int, momentum: Float = 0.1, epsilon: Float = 1e-5) throws {
        try super.init(channels: channels, momentum: momentum, epsilon: epsilon)
    }

    public override var architectureDescription: String {
        "BatchNorm2d(channels: \(channels), momentum: \(momentum), epsilon: \(epsilon))"
    }

    override func makeReplica() throws -> Layer { try BatchNorm2d(channels: channels, momentum: momentum, epsilon: epsilon) }

    public override func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 4, inputShape[1] == channels, inputShape.allSatisfy({ $0 > 0 }) else {
            throw NeuralNetError.shapeMismatch(layer: architectureDescription, expected: "[N, \(channels), H, W]", actual: inputShape)
        }
        return inputShape
    }
}

/// Batch normalisation of `[N, C]` features, statistics per feature over the batch.
public final class BatchNorm1d: BatchNorm {
    /// A batch norm with γ = 1, β = 0, running mean 0 and running variance 1.
    public init(features: Int, momentum: Float = 0.1, epsilon: Float = 1e-5) throws {
        try super.init(channels: features, momentum: momentum, epsilon: epsilon)
    }

    public override var architectureDescription: String {
        "BatchNorm1d(features: \(channels), momentum: \(momentum), epsilon: \(epsilon))"
    }

    override func makeReplica() throws -> Layer { try BatchNorm1d(features: channels, momentum: momentum, epsilon: epsilon) }

    public override func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 2, inputShape[1] == channels, inputShape.allSatisfy({ $0 > 0 }) else {
            throw NeuralNetError.shapeMismatch(layer: architectureDescription, expected: "[N, \(channels)]", actual: inputShape)
        }
        return inputShape
    }
}
