/// Scratch memory shared by the layers of one network, which run one at a time; one set per worker
/// thread.
final class Workspace {
    /// im2col columns of one image (and their gradient during backward), per worker.
    private(set) var columns: [Buffer] = []
    /// Partial weight gradients of workers other than the first, which adds into the parameter directly.
    private(set) var weightGradients: [Buffer] = []

    /// Makes sure `workers` sets of scratch exist with at least the given sizes.
    func prepare(workers: Int, columnCount: Int, weightCount: Int) {
        while columns.count < workers {
            columns.append(Buffer())
            weightGradients.append(Buffer())
        }
        for worker in 0..<workers {
            columns[worker].reshape([columnCount])
            weightGradients[worker].reshape([weightCount])
        }
    }
}

/// A network layer with an explicit forward and backward pass.
///
/// Inside a `Sequential` layers hand each other reusable buffers; used on its own, a layer takes and
/// returns `Tensor`s through `forward(_:training:)` and `backward(_:)`. A layer keeps what its backward
/// pass needs from the latest forward pass, so one instance must not run on several threads at once.
public class Layer {
    var workspace = Workspace()
    private var standaloneInput = Buffer()
    private var standaloneGradient = Buffer()
    private var standaloneSpare = Buffer()
    var lastOutputShape: [Int]?

    init() {
        // Fixes the thread configuration (OpenBLAS single-threaded) before any product runs.
        _ = ComputeThreads.workerCount
    }

    /// Architecture line recorded in model files; it names the layer and every hyper-parameter.
    public var architectureDescription: String { fatalError("subclasses describe themselves") }

    /// Trainable parameters, in a fixed order.
    public var parameters: [Parameter] { [] }

    /// Saved, non-trained state (BatchNorm running statistics), in a fixed order.
    public var state: [Parameter] { [] }

    /// Shape of the output for an input of `inputShape`; throws when the layer cannot take that input.
    public func outputShape(for inputShape: [Int]) throws -> [Int] { fatalError("subclasses compute shapes") }

    /// Runs the layer on `input` in training mode (batch statistics, saving state for backward) or
    /// inference mode.
    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let shape = try outputShape(for: input.shape)
        standaloneInput.copy(from: input)
        let output = forward(standaloneInput, training: training)
        assert(output.shape == shape)
        lastOutputShape = shape
        return output.tensor()
    }

    /// Back-propagates `outputGradient` through the latest forward pass, accumulating parameter
    /// gradients, and returns the gradient with respect to that pass's input.
    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let shape = lastOutputShape, shape == outputGradient.shape else {
            throw NeuralNetError.backwardWithoutForward(layer: architectureDescription)
        }
        standaloneGradient.copy(from: outputGradient)
        let result = backward(standaloneGradient, spare: standaloneSpare, needsInputGradient: true)!
        return result.tensor()
    }

    /// A new layer with the same architecture and fresh buffers; values are copied by the caller.
    func makeReplica() throws -> Layer { fatalError("subclasses replicate themselves") }

    // MARK: Buffer-level interface used by Sequential.

    /// Computes the output for an input whose shape was already validated. May return `input` itself
    /// when the layer works in place.
    func forward(_ input: Buffer, training: Bool) -> Buffer { fatalError("subclasses implement forward") }

    /// Accumulates parameter gradients and, when asked, returns the input gradient, written either
    /// into `outputGradient` (element-wise layers) or into `spare`.
    func backward(_ outputGradient: Buffer, spare: Buffer, needsInputGradient: Bool) -> Buffer? {
        fatalError("subclasses implement backward")
    }
}

func requireRank(_ shape: [Int], _ rank: Int, layer: Layer, expected: String) throws {
    guard shape.count == rank, shape.allSatisfy({ $0 > 0 }) else {
        throw NeuralNetError.shapeMismatch(layer: layer.architectureDescription, expected: expected, actual: shape)
    }
}
