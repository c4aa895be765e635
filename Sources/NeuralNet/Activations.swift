import Foundation

/// max(0, x), computed in place on its input buffer; backward masks by the saved output.
public final class ReLU: Layer {
    private var saved: Buffer?

    /// A rectifier (no parameters).
    public override init() { super.init() }

    public override var architectureDescription: String { "ReLU" }

    override func makeReplica() throws -> Layer { ReLU() }

    public override func outputShape(for inputShape: [Int]) throws -> [Int] {
        try Tensor.validate(shape: inputShape)
        return inputShape
    }

    override func forward(_ input: Buffer, training: Bool) -> Buffer {
        let x = input.pointer
        parallelRanges(input.count, minimumPerThread: 1 << 16) { range in
            for index in range { x[index] = max(x[index], 0) }
        }
        saved = input
        return input
    }

    override func backward(_ outputGradient: Buffer, spare: Buffer, needsInputGradient: Bool) -> Buffer? {
        guard needsInputGradient else { return nil }
        guard let output = saved else { fatalError("ReLU.backward before forward") }
        let y = output.pointer, g = outputGradient.pointer
        parallelRanges(output.count, minimumPerThread: 1 << 16) { range in
            for index in range where y[index] <= 0 { g[index] = 0 }
        }
        return outputGradient
    }
}

/// tanh(x), computed in place; backward uses 1 − tanh².
public final class Tanh: Layer {
    private var saved: Buffer?

    /// A hyperbolic tangent (no parameters).
    public override init() { super.init() }

    public override var architectureDescription: String { "Tanh" }

    override func makeReplica() throws -> Layer { Tanh() }

    public override func outputShape(for inputShape: [Int]) throws -> [Int] {
        try Tensor.validate(shape: inputShape)
        return inputShape
    }

    override func forward(_ input: Buffer, training: Bool) -> Buffer {
        let x = input.pointer
        for index in 0..<input.count { x[index] = tanhf(x[index]) }
        saved = input
        return input
    }

    override func backward(_ outputGradient: Buffer, spare: Buffer, needsInputGradient: Bool) -> Buffer? {
        guard needsInputGradient else { return nil }
        guard let output = saved else { fatalError("Tanh.backward before forward") }
        let y = output.pointer, g = outputGradient.pointer
        for index in 0..<output.count { g[index] *= 1 - y[index] * y[index] }
        return outputGradient
    }
}
