/// A chain of layers run in order, with training and inference modes and whole-network gradients.
///
/// Activations live in buffers owned by the layers and are reused from call to call, so a steady
/// loop allocates only the returned output tensor. An instance keeps per-call state: it is **not**
/// safe to call from several threads at once, even for inference. Serialise calls, or give each
/// thread its own `replica()`.
public final class Sequential {
    /// Whether layers use batch statistics and keep state for backward (training) or not (inference).
    public enum Mode: Sendable { case training, inference }

    /// The layers in execution order.
    public let layers: [Layer]
    /// Expected shape of one sample (e.g. `[3, 32, 32]`), checked on every forward pass when set.
    public let sampleShape: [Int]?
    /// Mode used by `forward`; `.training` initially.
    public var mode: Mode = .training

    private let executed: [Layer]
    /// What an inference-mode pass runs: `executed`, with each batch norm that follows a convolution
    /// folded into it.
    private let inferenceSteps: [InferenceStep]
    /// The input of the latest forward pass when it ran folded: such a pass keeps nothing for
    /// backward, so a backward pass runs it again layer by layer.
    private var foldedForwardInput: Tensor?
    private let workspace = Workspace()
    private let inputBuffer = Buffer()
    private let gradientBuffers = (Buffer(), Buffer())
    private var checkedInputShape: [Int]?
    private var outputShape: [Int]?
    private var hasForwardState = false

    /// One step of an inference-mode forward pass.
    private enum InferenceStep {
        case layer(Layer)
        /// A convolution that applies the batch normalisation after it (running statistics) itself.
        case convolutionWithNorm(Conv2d, BatchNorm2d)
    }

    /// Chains `layers`; a BatchNorm directly followed by a ReLU is fused into one pass, and in
    /// inference mode a convolution directly followed by a BatchNorm2d applies it itself.
    public init(_ layers: [Layer], sampleShape: [Int]? = nil) throws {
        guard !layers.isEmpty else { throw NeuralNetError.invalidConfiguration("a Sequential needs at least one layer") }
        guard Set(layers.map(ObjectIdentifier.init)).count == layers.count else {
            throw NeuralNetError.invalidConfiguration("a layer instance may appear only once in a Sequential")
        }
        self.layers = layers
        self.sampleShape = sampleShape
        var executed: [Layer] = []
        var index = 0
        while index < layers.count {
            let layer = layers[index]
            layer.workspace = workspace
            if let norm = layer as? BatchNorm, index + 1 < layers.count, layers[index + 1] is ReLU {
                norm.fusedReLU = true
                index += 1
            }
            executed.append(layer)
            index += 1
        }
        self.executed = executed
        var inferenceSteps: [InferenceStep] = []
        index = 0
        while index < executed.count {
            if let convolution = executed[index] as? Conv2d, index + 1 < executed.count, let norm = executed[index + 1] as? BatchNorm2d {
                inferenceSteps.append(.convolutionWithNorm(convolution, norm))
                index += 2
            } else {
                inferenceSteps.append(.layer(executed[index]))
                index += 1
            }
        }
        self.inferenceSteps = inferenceSteps
        if let sampleShape { _ = try outputShape(for: [1] + sampleShape) }
    }

    /// An independent network with the same architecture, parameters, running statistics and mode,
    /// and its own buffers: the way to run inference on several threads at once (one replica each).
    public func replica() throws -> Sequential {
        let copy = try Sequential(layers.map { try $0.makeReplica() }, sampleShape: sampleShape)
        try copy.load(from: serialized())
        copy.mode = mode
        return copy
    }

    /// Trainable parameters of every layer, in layer order.
    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    /// Architecture summary recorded in (and checked against) model files.
    public var architectureDescription: String {
        var lines = ["sample: \(sampleShape.map { "\($0)" } ?? "any")"]
        for (index, layer) in layers.enumerated() { lines.append("\(index): \(layer.architectureDescription)") }
        return lines.joined(separator: "\n")
    }

    /// Shape of the output for an input of `inputShape`, or the first layer's complaint about it.
    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        if let sampleShape, Array(inputShape.dropFirst()) != sampleShape {
            throw NeuralNetError.shapeMismatch(layer: "network input", expected: "[N] + \(sampleShape)", actual: inputShape)
        }
        var shape = inputShape
        for layer in layers { shape = try layer.outputShape(for: shape) }
        return shape
    }

    /// Runs the network on `input` in the current `mode`.
    public func forward(_ input: Tensor) throws -> Tensor {
        if input.shape != checkedInputShape {
            outputShape = try outputShape(for: input.shape)
            checkedInputShape = input.shape
        }
        inputBuffer.copy(from: input)
        hasForwardState = true
        guard mode == .inference, inferenceSteps.count < executed.count else {
            foldedForwardInput = nil
            return runLayers(training: mode == .training).tensor()
        }
        var activation = inputBuffer
        for step in inferenceSteps {
            switch step {
            case .layer(let layer): activation = layer.forward(activation, training: false)
            case .convolutionWithNorm(let convolution, let norm): activation = convolution.forwardFolding(norm, input: activation)
            }
        }
        foldedForwardInput = input
        return activation.tensor()
    }

    /// Runs every layer in turn on `inputBuffer`, keeping what backward needs.
    private func runLayers(training: Bool) -> Buffer {
        var activation = inputBuffer
        for layer in executed { activation = layer.forward(activation, training: training) }
        return activation
    }

    /// Back-propagates `outputGradient` (the loss gradient with respect to the latest `forward`
    /// output), adding into every parameter's gradient.
    public func backward(outputGradient: Tensor) throws {
        _ = try propagate(outputGradient, needsInputGradient: false)
    }

    /// Like `backward(outputGradient:)`, and also returns the gradient with respect to the input.
    public func backwardWithInputGradient(outputGradient: Tensor) throws -> Tensor {
        try propagate(outputGradient, needsInputGradient: true)!.tensor()
    }

    private func propagate(_ outputGradient: Tensor, needsInputGradient: Bool) throws -> Buffer? {
        guard hasForwardState, outputGradient.shape == outputShape else {
            throw NeuralNetError.backwardWithoutForward(layer: "Sequential")
        }
        if let input = foldedForwardInput {
            inputBuffer.copy(from: input)
            _ = runLayers(training: false)
            foldedForwardInput = nil
        }
        let (first, second) = gradientBuffers
        first.copy(from: outputGradient)
        var gradient: Buffer? = first
        for (index, layer) in executed.enumerated().reversed() {
            let current = gradient!
            let spare = current === first ? second : first
            gradient = layer.backward(current, spare: spare, needsInputGradient: needsInputGradient || index > 0)
        }
        return gradient
    }

    /// Moves every parameter and running statistic of this network towards `other`'s (same
    /// architecture): `mine = momentum · mine + (1 − momentum) · theirs`, the exponential moving
    /// average of a "momentum" encoder.
    public func moveAverage(towards other: Sequential, momentum: Float) {
        let mine = layers.flatMap { $0.parameters + $0.state }, theirs = other.layers.flatMap { $0.parameters + $0.state }
        precondition(mine.count == theirs.count, "moveAverage needs two networks of the same architecture")
        let keep = SIMD8<Float>(repeating: momentum), take = SIMD8<Float>(repeating: 1 - momentum)
        for (target, source) in zip(mine, theirs) {
            precondition(target.count == source.count, "moveAverage needs two networks of the same architecture")
            let to = target.value.pointer, from = source.value.pointer, count = target.count
            var index = 0
            while index + 8 <= count {
                store8(load8(to, index) * keep + load8(from, index) * take, to, index)
                index += 8
            }
            while index < count {
                to[index] = momentum * to[index] + (1 - momentum) * from[index]
                index += 1
            }
        }
    }

    /// Resets every parameter gradient to zero.
    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }

    /// Every saved tensor with a stable name: parameters and running statistics, layer by layer.
    var namedTensors: [(name: String, parameter: Parameter)] {
        layers.enumerated().flatMap { index, layer in
            (layer.parameters + layer.state).map { (name: "\(index).\($0.name)", parameter: $0) }
        }
    }
}
