import CBLAS

/// Fully connected layer `y = x·Wᵀ + b` over `[N, in]` input (trailing dimensions are flattened).
public final class Linear: Layer {
    /// Input features.
    public let inFeatures: Int
    /// Output features.
    public let outFeatures: Int
    /// Weights, `[out, in]`.
    public let weight: Parameter
    /// Bias, `[out]`.
    public let bias: Parameter?

    private let output = Buffer()
    private var savedInput: Buffer?

    /// A linear layer with He-initialised weights drawn from `generator` and a zero bias.
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, generator: inout SplitMix64) throws {
        guard inFeatures > 0, outFeatures > 0 else {
            throw NeuralNetError.invalidConfiguration("Linear needs positive feature counts")
        }
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(name: "weight", shape: [outFeatures, inFeatures], appliesWeightDecay: true)
        self.bias = bias ? Parameter(name: "bias", shape: [outFeatures], appliesWeightDecay: false) : nil
        super.init()
        kaimingNormal(weight, fanIn: inFeatures, generator: &generator)
    }

    public override var architectureDescription: String {
        "Linear(in: \(inFeatures), out: \(outFeatures), bias: \(bias != nil))"
    }

    public override var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    override func makeReplica() throws -> Layer {
        var generator = SplitMix64(seed: 0)
        return try Linear(inFeatures: inFeatures, outFeatures: outFeatures, bias: bias != nil, generator: &generator)
    }

    public override func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count >= 2, inputShape.allSatisfy({ $0 > 0 }),
              inputShape.dropFirst().reduce(1, *) == inFeatures else {
            throw NeuralNetError.shapeMismatch(layer: architectureDescription, expected: "[N, \(inFeatures)]", actual: inputShape)
        }
        return [inputShape[0], outFeatures]
    }

    override func forward(_ input: Buffer, training: Bool) -> Buffer {
        let batch = input.shape[0]
        savedInput = input
        output.reshape([batch, outFeatures])
        let y = output.pointer
        if let bias {
            for row in 0..<batch { (y + row * outFeatures).update(from: bias.value.pointer, count: outFeatures) }
        }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(batch), Int32(outFeatures), Int32(inFeatures),
            1, input.pointer, Int32(inFeatures), weight.value.pointer, Int32(inFeatures),
            bias == nil ? 0 : 1, y, Int32(outFeatures))
        return output
    }

    override func backward(_ outputGradient: Buffer, spare: Buffer, needsInputGradient: Bool) -> Buffer? {
        guard let input = savedInput else { fatalError("Linear.backward before forward") }
        let batch = input.shape[0], dy = outputGradient.pointer
        cblas_sgemm(
            CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), Int32(batch),
            1, dy, Int32(outFeatures), input.pointer, Int32(inFeatures), 1, weight.gradient.pointer, Int32(inFeatures))
        if let bias {
            let db = bias.gradient.pointer
            for row in 0..<batch {
                let line = dy + row * outFeatures
                for column in 0..<outFeatures { db[column] += line[column] }
            }
        }
        guard needsInputGradient else { return nil }
        spare.reshape(input.shape)
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(batch), Int32(inFeatures), Int32(outFeatures),
            1, dy, Int32(outFeatures), weight.value.pointer, Int32(inFeatures), 0, spare.pointer, Int32(inFeatures))
        return spare
    }
}
