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

/// A small, fast, seedable generator (xoshiro256**) so that initialisation is reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    /// Expands `seed` with SplitMix64 into the full state, as the xoshiro authors recommend.
    public init(seed: UInt64) {
        var mix = seed
        func next() -> UInt64 {
            mix &+= 0x9E37_79B9_7F4A_7C15
            var z = mix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (next(), next(), next(), next())
    }

    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let shifted = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= shifted
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// A standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Double {
        let u1 = Double(next() >> 11) * 0x1.0p-53
        let u2 = Double(next() >> 11) * 0x1.0p-53
        return (-2 * log(max(u1, .leastNonzeroMagnitude))).squareRoot() * cos(2 * .pi * u2)
    }
}

/// Fills `parameter` with He/Kaiming normal values, N(0, 2 / fanIn), suited to ReLU networks.
func kaimingNormal(_ parameter: Parameter, fanIn: Int, generator: inout SeededGenerator) {
    let deviation = (2.0 / Double(fanIn)).squareRoot()
    let pointer = parameter.value.pointer
    for index in 0..<parameter.count {
        pointer[index] = Float(generator.nextGaussian() * deviation)
    }
}
