/// Hyper-parameters of the DSCH encoder. Its defaults are the project's one set of architecture
/// defaults: `DSCHSettings` starts from them, and model files record every field, so changing a default
/// changes new models only.
public struct EncoderConfiguration: Sendable, Equatable {
    /// Code length K: width of the tanh output.
    public var bits: Int
    /// Channels (c1, c2, c3) of the three convolution stages.
    public var widths: [Int]
    /// Width of the hidden fully connected layer.
    public var hiddenWidth: Int
    /// Input channels (3 for RGB).
    public var inputChannels: Int
    /// Input height and width; a multiple of 4 because of the two 2×2 poolings.
    public var inputSize: Int
    /// Whether a batch normalisation sits between the last linear layer and the tanh, so that every
    /// bit is centred over the data and splits it about evenly.
    public var codeBatchNorm: Bool
    /// Side of the feature grid the fully connected head sees: 1 is global average pooling; a larger
    /// side max-pools the last feature map to `headGrid × headGrid` (or keeps it whole when it is
    /// smaller than that) and flattens it, which keeps where things are in the image (the silhouette)
    /// instead of only what is there.
    public var headGrid: Int

    /// The measured DSCH defaults: 64 bits, widths 16/32/64, hidden 256, 3×32×32 input, a batch
    /// normalisation on the code, and the whole 8×8 last feature map in the head.
    public init(
        bits: Int = 64, widths: [Int] = [16, 32, 64], hiddenWidth: Int = 256, inputChannels: Int = 3, inputSize: Int = 32,
        codeBatchNorm: Bool = true, headGrid: Int = 8
    ) {
        self.codeBatchNorm = codeBatchNorm
        self.headGrid = headGrid
        self.bits = bits
        self.widths = widths
        self.hiddenWidth = hiddenWidth
        self.inputChannels = inputChannels
        self.inputSize = inputSize
    }
}

extension EncoderConfiguration {
    /// Weights of the convolutions and linear layers of `Sequential.dschEncoder(self)` (biases and batch
    /// normalisation statistics not counted), or nil when the sizes are not positive or that count — or
    /// the floats of one sample's largest feature map — does not fit in an `Int`. A lower bound on the
    /// floats a serialised encoder holds, so a loader can reject a header before building the network.
    public var weightCount: Int? {
        guard widths.count == 3, widths.allSatisfy({ $0 > 0 }), bits > 0, hiddenWidth > 0, inputChannels > 0,
              inputSize > 0, headGrid > 0 else { return nil }
        func product(_ factors: Int...) -> Int? {
            var result = 1
            for factor in factors {
                let (next, overflow) = result.multipliedReportingOverflow(by: factor)
                if overflow { return nil }
                result = next
            }
            return result
        }
        let grid = min(headGrid, max(1, inputSize / 4))
        let terms = [
            product(9, inputChannels, widths[0]), product(9, widths[0], widths[0]), product(9, widths[0], widths[1]),
            product(9, widths[1], widths[1]), product(9, widths[1], widths[2]),
            product(widths[2], grid, grid, hiddenWidth), product(hiddenWidth, bits),
            // Not weights: the first feature map, so shapes computed from these sizes cannot overflow either.
            product(inputSize, inputSize, max(inputChannels, widths.max()!)).map { _ in 0 },
        ]
        var total = 0
        for term in terms {
            guard let term else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(term)
            if overflow { return nil }
            total = sum
        }
        return total
    }
}

extension Sequential {
    /// The DSCH encoder: `[conv3×3 c1, BN, ReLU]×2, maxpool2, [conv3×3 c2, BN, ReLU]×2,
    /// maxpool2, conv3×3 c3, BN, ReLU, global average pool (or max pool to the head grid, flattened),
    /// linear→hidden, ReLU, linear→bits, [BN,] tanh`,
    /// He-initialised from `seed` (the same seed gives the same weights).
    public static func dschEncoder(_ configuration: EncoderConfiguration = EncoderConfiguration(), seed: UInt64 = 0) throws -> Sequential {
        let c = configuration
        guard c.widths.count == 3, c.widths.allSatisfy({ $0 > 0 }), c.bits > 0, c.hiddenWidth > 0, c.inputChannels > 0 else {
            throw NeuralNetError.invalidConfiguration("the encoder needs three positive widths and positive bits, hidden width and input channels")
        }
        guard c.inputSize >= 4, c.inputSize % 4 == 0 else {
            throw NeuralNetError.invalidConfiguration("the encoder's input size must be a positive multiple of 4, got \(c.inputSize)")
        }
        let featureSide = c.inputSize / 4
        let grid = min(c.headGrid, featureSide)
        guard grid >= 1, featureSide % grid == 0 else {
            throw NeuralNetError.invalidConfiguration(
                "the head grid must divide the last feature map's side \(featureSide) (input size / 4), got \(c.headGrid); "
                    + "set headGrid to 1 (global average pooling), a divisor of \(featureSide), or \(featureSide) or more (the whole map)")
        }
        guard c.weightCount != nil else {
            throw NeuralNetError.invalidConfiguration("the encoder's sizes multiply past the largest integer: \(c)")
        }
        var generator = SplitMix64(seed: seed)
        var layers: [Layer] = []
        func block(_ input: Int, _ output: Int) throws {
            layers.append(try Conv2d(inChannels: input, outChannels: output, kernelSize: 3, padding: 1, bias: false, generator: &generator))
            layers.append(try BatchNorm2d(channels: output))
            layers.append(ReLU())
        }
        try block(c.inputChannels, c.widths[0])
        try block(c.widths[0], c.widths[0])
        layers.append(try MaxPool2d(kernelSize: 2))
        try block(c.widths[0], c.widths[1])
        try block(c.widths[1], c.widths[1])
        layers.append(try MaxPool2d(kernelSize: 2))
        try block(c.widths[1], c.widths[2])
        if grid == 1 {
            layers.append(GlobalAvgPool())
        } else if grid < featureSide {
            layers.append(try MaxPool2d(kernelSize: featureSide / grid))
        }
        layers.append(try Linear(inFeatures: c.widths[2] * grid * grid, outFeatures: c.hiddenWidth, generator: &generator))
        layers.append(ReLU())
        layers.append(try Linear(inFeatures: c.hiddenWidth, outFeatures: c.bits, generator: &generator))
        if c.codeBatchNorm { layers.append(try BatchNorm1d(features: c.bits)) }
        layers.append(Tanh())
        return try Sequential(layers, sampleShape: [c.inputChannels, c.inputSize, c.inputSize])
    }
}
