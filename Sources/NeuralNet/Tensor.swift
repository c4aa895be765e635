/// A dense Float32 tensor in contiguous row-major storage; image batches are NCHW.
///
/// `Tensor` is the value type at the public boundary of the library. Layers keep their working
/// memory in reusable internal buffers and copy in and out of tensors only at the edges of a network.
public struct Tensor: Equatable, Sendable {
    /// Extent of each dimension, outermost first (for images: batch, channels, height, width).
    public private(set) var shape: [Int]
    /// Elements in row-major order; its count always equals the product of `shape`.
    public private(set) var storage: [Float]

    /// Wraps `storage` with `shape`, checking that the element count matches.
    public init(shape: [Int], storage: [Float]) throws {
        try Tensor.validate(shape: shape)
        let expected = shape.reduce(1, *)
        guard expected == storage.count else {
            throw NeuralNetError.invalidShape(
                shape: shape,
                reason: "shape holds \(expected) elements but \(storage.count) values were given")
        }
        self.shape = shape
        self.storage = storage
    }

    /// A tensor of `shape` filled with `value` (zero by default).
    public init(shape: [Int], repeating value: Float = 0) throws {
        try Tensor.validate(shape: shape)
        self.shape = shape
        self.storage = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// Number of elements.
    public var count: Int { storage.count }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// Reads or writes one element by its row-major offset.
    public subscript(flat index: Int) -> Float {
        get { storage[index] }
        set { storage[index] = newValue }
    }

    /// Gives mutable access to the elements without copying; the count cannot change.
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer { try body($0) }
    }

    /// Gives read access to the elements without copying.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { try body($0) }
    }

    static func validate(shape: [Int]) throws {
        guard !shape.isEmpty else {
            throw NeuralNetError.invalidShape(shape: shape, reason: "a tensor needs at least one dimension")
        }
        guard shape.allSatisfy({ $0 > 0 }) else {
            throw NeuralNetError.invalidShape(shape: shape, reason: "every dimension must be positive")
        }
    }
}

/// Everything that can go wrong when building, running, or loading a network.
public enum NeuralNetError: Error, Equatable, CustomStringConvertible {
    /// A shape is malformed, or a value count does not match it.
    case invalidShape(shape: [Int], reason: String)
    /// A layer received an input whose shape it cannot take.
    case shapeMismatch(layer: String, expected: String, actual: [Int])
    /// A layer or optimiser was configured with impossible hyper-parameters.
    case invalidConfiguration(String)
    /// `backward` was called without a preceding `forward`, or with a gradient of the wrong shape.
    case backwardWithoutForward(layer: String)
    /// A serialised model is truncated or structurally invalid.
    case malformedModel(String)
    /// A serialised model was written by a format version this build cannot read.
    case unsupportedModelVersion(found: UInt32, supported: UInt32)
    /// A serialised model's bytes do not match its checksum (corrupted or edited).
    case checksumMismatch(stored: UInt32, computed: UInt32)
    /// A serialised model describes a different architecture from the network loading it.
    case architectureMismatch(expected: String, found: String)

    public var description: String {
        switch self {
        case let .invalidShape(shape, reason):
            return "invalid tensor shape \(shape): \(reason)"
        case let .shapeMismatch(layer, expected, actual):
            return "\(layer) expects input of shape \(expected) but received \(actual)"
        case let .invalidConfiguration(message):
            return "invalid network configuration: \(message)"
        case let .backwardWithoutForward(layer):
            return "\(layer): backward needs a forward pass first, and an output gradient of the output's shape"
        case let .malformedModel(message):
            return "malformed model file: \(message)"
        case let .unsupportedModelVersion(found, supported):
            return "model file format version \(found) is not supported (this build reads version \(supported))"
        case let .checksumMismatch(stored, computed):
            return "model file is corrupted: stored checksum \(stored) but contents give \(computed)"
        case let .architectureMismatch(expected, found):
            return "model file was saved for a different architecture; this network is \(expected) but the file holds \(found)"
        }
    }
}
