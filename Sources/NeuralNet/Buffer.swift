import Foundation

/// A reusable, 64-byte aligned block of floats with a current shape.
///
/// Layers own their outputs as buffers and reuse them from step to step: a buffer only reallocates
/// when a larger batch than ever before arrives, so a steady training loop allocates nothing.
final class Buffer {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int
    private(set) var shape: [Int] = []
    private(set) var count: Int = 0

    init(capacity: Int = 0) {
        self.capacity = capacity
        pointer = Buffer.allocate(capacity)
    }

    convenience init(shape: [Int]) {
        self.init(capacity: shape.reduce(1, *))
        reshape(shape)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// Number of allocations so far, read by tests that check a steady loop allocates nothing.
    nonisolated(unsafe) static var allocationCount = 0

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        allocationCount += 1
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Sets the shape, growing the storage when needed; contents are undefined after growth.
    func reshape(_ newShape: [Int]) {
        let needed = newShape.reduce(1, *)
        if needed > capacity {
            UnsafeMutableRawPointer(pointer).deallocate()
            pointer = Buffer.allocate(needed)
            capacity = needed
        }
        if newShape != shape { shape = newShape }
        count = needed
    }

    func fill(_ value: Float) { pointer.update(repeating: value, count: count) }

    func copy(from tensor: Tensor) {
        reshape(tensor.shape)
        tensor.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    func copy(from values: [Float]) {
        precondition(values.count == count, "value count must match the buffer")
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    func tensor() -> Tensor {
        // Shape and count are consistent by construction, so this cannot throw.
        try! Tensor(shape: shape, storage: array)
    }
}

/// A trainable (or saved) tensor of a layer together with its accumulated gradient.
public final class Parameter {
    /// Name inside its layer ("weight", "bias", "running_mean", …).
    public let name: String
    /// Fixed shape of the value and of the gradient.
    public let shape: [Int]
    /// Whether decoupled weight decay applies (weights yes; biases and normalisation parameters no).
    public let appliesWeightDecay: Bool
    let value: Buffer
    let gradient: Buffer

    init(name: String, shape: [Int], appliesWeightDecay: Bool, initialValue: Float = 0) {
        self.name = name
        self.shape = shape
        self.appliesWeightDecay = appliesWeightDecay
        value = Buffer(shape: shape)
        gradient = Buffer(shape: shape)
        value.fill(initialValue)
        gradient.fill(0)
    }

    /// Number of elements.
    public var count: Int { value.count }

    /// A copy of the current value, row-major.
    public var values: [Float] {
        get { value.array }
        set {
            precondition(newValue.count == count, "\(name) holds \(count) values, \(newValue.count) given")
            value.copy(from: newValue)
        }
    }

    /// A copy of the accumulated gradient, row-major.
    public var gradients: [Float] { gradient.array }

    /// Resets the accumulated gradient to zero.
    public func zeroGradient() { gradient.fill(0) }
}

/// Fills `parameter` with He/Kaiming normal values, N(0, 2 / fanIn), suited to ReLU networks.
func kaimingNormal(_ parameter: Parameter, fanIn: Int, generator: inout SplitMix64) {
    let deviation = (2.0 / Double(fanIn)).squareRoot()
    let pointer = parameter.value.pointer
    for index in 0..<parameter.count {
        pointer[index] = Float(Double(generator.nextGaussian()) * deviation)
    }
}
