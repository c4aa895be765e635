import Foundation

/// Updates parameters from their accumulated gradients.
public protocol Optimizer: AnyObject {
    /// Step size used by the next `step()`; schedules set it before each step.
    var learningRate: Float { get set }
    /// Applies one update from the current gradients (it does not reset them).
    func step()
    /// Resets the gradients of every parameter this optimiser updates.
    func zeroGradients()
}

/// Adam with decoupled weight decay (AdamW): `p ← p·(1 − lr·decay)` before the Adam update, applied
/// only to parameters whose `appliesWeightDecay` is set.
public final class Adam: Optimizer {
    public var learningRate: Float
    /// Decay rates of the first and second moment estimates.
    public let beta1: Float, beta2: Float
    /// Added to the root of the second moment.
    public let epsilon: Float
    /// Decoupled weight decay factor.
    public let weightDecay: Float
    private let parameters: [Parameter]
    private var firstMoments: [[Float]]
    private var secondMoments: [[Float]]
    private var stepCount = 0

    /// An optimiser over `parameters` (usually `network.parameters`).
    public init(
        parameters: [Parameter], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
        epsilon: Float = 1e-8, weightDecay: Float = 0
    ) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        firstMoments = parameters.map { [Float](repeating: 0, count: $0.count) }
        secondMoments = parameters.map { [Float](repeating: 0, count: $0.count) }
    }

    public func step() {
        stepCount += 1
        let correction1 = 1 - Float(pow(Double(beta1), Double(stepCount)))
        let correction2 = 1 - Float(pow(Double(beta2), Double(stepCount)))
        let stepSize = learningRate / correction1
        let rootCorrection2 = correction2.squareRoot()
        for (index, parameter) in parameters.enumerated() {
            let value = parameter.value.pointer, gradient = parameter.gradient.pointer
            let decay: Float = parameter.appliesWeightDecay ? 1 - learningRate * weightDecay : 1
            let beta1 = self.beta1, beta2 = self.beta2, epsilon = self.epsilon
            firstMoments[index].withUnsafeMutableBufferPointer { m in
                secondMoments[index].withUnsafeMutableBufferPointer { v in
                    for element in 0..<parameter.count {
                        let g = gradient[element]
                        m[element] = beta1 * m[element] + (1 - beta1) * g
                        v[element] = beta2 * v[element] + (1 - beta2) * g * g
                        let denominator = v[element].squareRoot() / rootCorrection2 + epsilon
                        value[element] = value[element] * decay - stepSize * m[element] / denominator
                    }
                }
            }
        }
    }

    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }
}

/// Stochastic gradient descent with (optionally Nesterov) momentum and L2 weight decay added to the
/// gradient of parameters whose `appliesWeightDecay` is set, as PyTorch's SGD does.
public final class SGD: Optimizer {
    public var learningRate: Float
    /// Velocity decay.
    public let momentum: Float
    /// L2 penalty factor.
    public let weightDecay: Float
    /// Whether to use Nesterov momentum.
    public let nesterov: Bool
    private let parameters: [Parameter]
    private var velocities: [[Float]]

    /// An optimiser over `parameters` (usually `network.parameters`).
    public init(parameters: [Parameter], learningRate: Float, momentum: Float = 0.9, weightDecay: Float = 0, nesterov: Bool = false) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        velocities = parameters.map { [Float](repeating: 0, count: $0.count) }
    }

    public func step() {
        for (index, parameter) in parameters.enumerated() {
            let value = parameter.value.pointer, gradient = parameter.gradient.pointer
            let decay = parameter.appliesWeightDecay ? weightDecay : 0
            let momentum = self.momentum, rate = learningRate, nesterov = self.nesterov
            velocities[index].withUnsafeMutableBufferPointer { velocity in
                for element in 0..<parameter.count {
                    let g = gradient[element] + decay * value[element]
                    velocity[element] = momentum * velocity[element] + g
                    let direction = nesterov ? g + momentum * velocity[element] : velocity[element]
                    value[element] -= rate * direction
                }
            }
        }
    }

    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }
}

/// Learning rate as a function of the step number (0-based).
public protocol LearningRateSchedule: Sendable {
    /// The rate to use for step `step`.
    func learningRate(at step: Int) -> Float
}

/// Linear warm-up to `base`, then half a cosine down to `minimum` at `totalSteps`.
public struct CosineSchedule: LearningRateSchedule {
    public let base: Float, minimum: Float
    public let totalSteps: Int, warmupSteps: Int

    /// A cosine decay over `totalSteps` steps, the first `warmupSteps` of which ramp up linearly.
    public init(base: Float, totalSteps: Int, warmupSteps: Int = 0, minimum: Float = 0) {
        self.base = base
        self.minimum = minimum
        self.totalSteps = max(totalSteps, 1)
        self.warmupSteps = max(warmupSteps, 0)
    }

    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        let span = max(totalSteps - warmupSteps, 1)
        let progress = min(Double(step - warmupSteps) / Double(span), 1)
        return minimum + (base - minimum) * Float(0.5 * (1 + cos(Double.pi * progress)))
    }
}

/// `base` multiplied by `factor` every `interval` steps.
public struct StepSchedule: LearningRateSchedule {
    public let base: Float, factor: Float
    public let interval: Int

    /// A staircase decay: `base · factor^(step / interval)`.
    public init(base: Float, interval: Int, factor: Float = 0.1) {
        self.base = base
        self.interval = max(interval, 1)
        self.factor = factor
    }

    public func learningRate(at step: Int) -> Float {
        base * Float(pow(Double(factor), Double(step / interval)))
    }
}
