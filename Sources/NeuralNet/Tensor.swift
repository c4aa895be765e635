/// Float32 NCHW tensors (placeholder; the NeuralNet work fills this target in).
public struct Tensor {
    public var shape: [Int]
    public var storage: [Float]
    public init(shape: [Int], storage: [Float]) { self.shape = shape; self.storage = storage }
}
