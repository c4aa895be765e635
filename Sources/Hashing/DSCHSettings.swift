import Foundation
import NeuralNet

/// Why DSCH settings could not be read or are unusable.
public enum DSCHSettingsError: Error, CustomStringConvertible, Equatable {
    case unknownKey(String)
    case invalidValue(key: String, reason: String)

    public var description: String {
        switch self {
        case .unknownKey(let key):
            return "unknown DSCH setting '\(key)'; known settings: \(DSCHSettings.CodingKeys.allCases.map(\.stringValue).joined(separator: ", "))"
        case .invalidValue(let key, let reason):
            return "DSCH setting '\(key)': \(reason)"
        }
    }
}

/// Every DSCH hyperparameter with its measured default; decodable from a JSON object where missing
/// keys keep defaults and unknown keys are an error naming the key.
public struct DSCHSettings: Codable, Equatable, Sendable {
    /// Where the architecture's defaults (bits, widths, hidden width, code batch norm, head grid) come
    /// from, so that the settings and the network builder cannot disagree.
    private static let architecture = EncoderConfiguration()

    /// Code length K.
    public var bits: Int = DSCHSettings.architecture.bits
    /// Training epochs over the training images, warm-up included.
    public var epochs: Int = 25
    /// Epochs of instance loss only before the first E-step.
    public var warmupEpochs: Int = 2
    /// Epochs between E-steps once the warm-up is over (the authors run one every epoch).
    public var estepEvery: Int = 1
    /// Images per step; each step sees two views of each, so 2×batchSize network inputs.
    public var batchSize: Int = 128
    /// Peak Adam learning rate of the cosine schedule.
    public var learningRate: Double = 0.003
    /// Epochs of linear learning-rate warm-up at the start of the cosine schedule.
    public var learningRateWarmupEpochs: Double = 1
    /// Learning rate at the end of the cosine schedule.
    public var minimumLearningRate: Double = 0.00003
    /// Decoupled (AdamW) weight decay.
    public var weightDecay: Double = 0.0005
    /// Temperature τ of the contrastive instance loss.
    public var temperature: Double = 0.1
    /// Temperature of the fine and coarse component losses.
    public var componentTemperature: Double = 0.3
    /// Fine semantic components M (Gaussian mixture size).
    public var fineComponents: Int = 200
    /// Coarse semantic components C (k-means groups of fine components).
    public var coarseComponents: Int = 10
    /// Keep only this many largest fine posteriors per image (0: full posteriors, as the authors do).
    public var topPosteriors: Int = 0
    /// EM iterations of the Gaussian mixture at each E-step (it stops earlier on convergence).
    public var mixtureIterations: Int = 50
    /// Whether the instance loss pulls together images that share components (sᵢⱼ = pᵢ·pⱼ); off, it is
    /// plain two-view contrastive hashing.
    public var cooccurrence: Bool = true
    /// λ_fine, weight of the fine component loss.
    public var fineWeight: Double = 0.1
    /// λ_coarse, weight of the coarse component loss.
    public var coarseWeight: Double = 0.1
    /// λ_q, weight of the quantisation loss `mean((|h| − 1)²)`.
    public var quantizationWeight: Double = 0
    /// Momentum of an exponential moving average of the encoder's weights (and batch-norm statistics),
    /// updated after every step; above 0 the E-step finds the components in the averaged encoder's codes,
    /// which move more slowly and smoothly than the trained encoder's. 0 (off) uses the trained encoder.
    public var averagedEncoderMomentum: Double = 0
    /// Weight of the decorrelation loss (the mean squared correlation between two bits over a batch).
    public var decorrelationWeight: Double = 0
    /// Width of the network's output. The codes are these outputs projected to `bits` by iterative
    /// quantisation fitted on the training images' outputs (ITQ: the principal directions, rotated to
    /// where the binary corners fit best); a wider output trains a richer representation for that
    /// projection to keep the best of (Fashion-MNIST, 64 bits, seed 24301, one thread: the network's own
    /// signs 0.753, the same network's outputs rotated 0.766, projected from 128 outputs 0.777). Below
    /// `bits` it means `bits`. 0: no projection, the signs of a `bits`-wide output are the code, as the
    /// authors train it.
    public var outputWidth: Int = 128
    /// Channels of the encoder's three convolution stages.
    public var widths: [Int] = DSCHSettings.architecture.widths
    /// Width of the encoder's hidden fully connected layer.
    public var hiddenWidth: Int = DSCHSettings.architecture.hiddenWidth
    /// A batch normalisation before the tanh, which balances every bit over the data.
    public var codeBatchNorm: Bool = DSCHSettings.architecture.codeBatchNorm
    /// Side of the feature grid the encoder's head sees (1: global average pooling; at least the last
    /// map's side, inputSize / 4: the whole map, unpooled).
    public var headGrid: Int = DSCHSettings.architecture.headGrid
    /// Whether the trained encoder's codes average the outputs for an image and its mirror image, so
    /// that both get one code (encoding does twice the work; training is unchanged).
    public var mirrorAveragedCodes: Bool = true
    /// Smallest fraction of the thumbnail a random crop covers.
    public var cropScaleMinimum: Double = 0.85
    /// Largest fraction of the thumbnail a random crop covers.
    public var cropScaleMaximum: Double = 1
    /// Probability of a horizontal flip of a view.
    public var flipProbability: Double = 0.5
    /// Brightness factor drawn from 1 ± this.
    public var brightness: Double = 0.4
    /// Contrast factor drawn from 1 ± this.
    public var contrast: Double = 0.4
    /// Probability of turning a view gray.
    public var grayscaleProbability: Double = 0.2
    /// Seed of weights, shuffling, augmentations and clustering: one seed, one result.
    public var seed: UInt64 = 0x5eed
    /// Whether training adapts the settings that depend on the collection's size to the number of
    /// training images (see `scaled(toImages:)`); off, they are used as given.
    public var scaleToCollection: Bool = true

    /// The defaults.
    public init() {}

    /// Setting names as they appear in JSON.
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case bits, epochs, warmupEpochs, estepEvery, batchSize, learningRate, learningRateWarmupEpochs
        case minimumLearningRate, weightDecay, temperature, componentTemperature, fineComponents
        case coarseComponents, topPosteriors, mixtureIterations, cooccurrence, fineWeight, coarseWeight
        case quantizationWeight, averagedEncoderMomentum, decorrelationWeight, outputWidth, widths, hiddenWidth, codeBatchNorm, headGrid, mirrorAveragedCodes, cropScaleMinimum, cropScaleMaximum
        case flipProbability, brightness, contrast, grayscaleProbability, seed, scaleToCollection
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Reads the keys present over the defaults; a key that is not a setting is an error naming it.
    public init(from decoder: Decoder) throws {
        for key in try decoder.container(keyedBy: AnyKey.self).allKeys where CodingKeys(stringValue: key.stringValue) == nil {
            throw DSCHSettingsError.unknownKey(key.stringValue)
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func read<Value: Decodable>(_ key: CodingKeys, _ current: Value) throws -> Value {
            do { return try container.decodeIfPresent(Value.self, forKey: key) ?? current } catch {
                throw DSCHSettingsError.invalidValue(key: key.stringValue, reason: "expected a value of type \(Value.self)")
            }
        }
        bits = try read(.bits, bits)
        epochs = try read(.epochs, epochs)
        warmupEpochs = try read(.warmupEpochs, warmupEpochs)
        estepEvery = try read(.estepEvery, estepEvery)
        batchSize = try read(.batchSize, batchSize)
        learningRate = try read(.learningRate, learningRate)
        learningRateWarmupEpochs = try read(.learningRateWarmupEpochs, learningRateWarmupEpochs)
        minimumLearningRate = try read(.minimumLearningRate, minimumLearningRate)
        weightDecay = try read(.weightDecay, weightDecay)
        temperature = try read(.temperature, temperature)
        componentTemperature = try read(.componentTemperature, componentTemperature)
        fineComponents = try read(.fineComponents, fineComponents)
        coarseComponents = try read(.coarseComponents, coarseComponents)
        topPosteriors = try read(.topPosteriors, topPosteriors)
        mixtureIterations = try read(.mixtureIterations, mixtureIterations)
        cooccurrence = try read(.cooccurrence, cooccurrence)
        fineWeight = try read(.fineWeight, fineWeight)
        coarseWeight = try read(.coarseWeight, coarseWeight)
        quantizationWeight = try read(.quantizationWeight, quantizationWeight)
        averagedEncoderMomentum = try read(.averagedEncoderMomentum, averagedEncoderMomentum)
        decorrelationWeight = try read(.decorrelationWeight, decorrelationWeight)
        outputWidth = try read(.outputWidth, outputWidth)
        widths = try read(.widths, widths)
        hiddenWidth = try read(.hiddenWidth, hiddenWidth)
        codeBatchNorm = try read(.codeBatchNorm, codeBatchNorm)
        headGrid = try read(.headGrid, headGrid)
        mirrorAveragedCodes = try read(.mirrorAveragedCodes, mirrorAveragedCodes)
        cropScaleMinimum = try read(.cropScaleMinimum, cropScaleMinimum)
        cropScaleMaximum = try read(.cropScaleMaximum, cropScaleMaximum)
        flipProbability = try read(.flipProbability, flipProbability)
        brightness = try read(.brightness, brightness)
        contrast = try read(.contrast, contrast)
        grayscaleProbability = try read(.grayscaleProbability, grayscaleProbability)
        seed = try read(.seed, seed)
        scaleToCollection = try read(.scaleToCollection, scaleToCollection)
    }

    /// Training images the defaults were measured with (EVALUATION.md's training set).
    public static let referenceImages = 5_000
    /// Training images per fine component at the reference size (5,000 images, 200 components).
    static let imagesPerFineComponent = 25
    /// Bounds of the factor the warm-ups and, for collections larger than 5,000 images, the epochs are
    /// scaled by: a huge collection trains at least 40 % of the epochs, a tiny one warms up for at most
    /// four times the epochs.
    static let epochScaleBounds = 0.4...4.0

    /// These settings adapted to a collection of `count` training images, when `scaleToCollection` is
    /// on. The defaults were measured on 5,000 images. The warm-ups (epochs before the first E-step, and
    /// of the learning rate) keep about the same number of steps: scaled by 5,000 / count, bounded to
    /// 0.4…4, and lengthened to at most half the epochs. The epochs do the same for a larger collection,
    /// but a smaller one trains the same epochs, not more: more passes over a small collection overfit it
    /// (Fashion-MNIST, 1,000 images, 64 bits, warm-ups scaled: 100 epochs 0.469 mAP, 40 epochs 0.503,
    /// 24 epochs 0.516, 12 epochs 0.492). Every size keeps about 25 images per fine component (never
    /// more fine components than set, nor more coarse than fine). At 5,000 images nothing changes.
    public func scaled(toImages count: Int) -> DSCHSettings {
        guard scaleToCollection, count > 0 else { return self }
        var result = self
        let bounds = DSCHSettings.epochScaleBounds
        let factor = min(max(Double(DSCHSettings.referenceImages) / Double(count), bounds.lowerBound), bounds.upperBound)
        result.epochs = max(1, Int((Double(epochs) * min(factor, 1)).rounded()))
        // A larger collection shortens the warm-ups with the epochs; a smaller one keeps the epochs and
        // lengthens the warm-ups, but only to half the epochs (or what was set), so the E-steps get their turn.
        let lengthens = factor > 1
        let warmupScale = lengthens ? factor : Double(result.epochs) / Double(epochs)
        let scaledWarmup = Int((Double(warmupEpochs) * warmupScale).rounded())
        result.warmupEpochs = lengthens ? min(scaledWarmup, max(warmupEpochs, result.epochs / 2)) : scaledWarmup
        let scaledRateWarmup = learningRateWarmupEpochs * warmupScale
        result.learningRateWarmupEpochs = lengthens
            ? min(scaledRateWarmup, max(learningRateWarmupEpochs, Double(result.epochs) / 2)) : scaledRateWarmup
        result.fineComponents = max(1, min(fineComponents, count / DSCHSettings.imagesPerFineComponent))
        result.coarseComponents = min(coarseComponents, result.fineComponents)
        return result
    }

    /// Whether training runs E-steps at all (any part that needs the semantic components is on).
    public var usesComponents: Bool { cooccurrence || fineWeight > 0 || coarseWeight > 0 }

    /// The augmentation of the training views.
    public var augmentation: AugmentationSettings {
        var result = AugmentationSettings()
        result.cropScale = Float(cropScaleMinimum)...Float(cropScaleMaximum)
        result.flipProbability = Float(flipProbability)
        result.brightness = Float(brightness)
        result.contrast = Float(contrast)
        result.grayscaleProbability = Float(grayscaleProbability)
        return result
    }

    /// Whether the codes are a projection of the network's outputs rather than their signs.
    public var projectsOutputs: Bool { outputWidth > 0 }

    /// Width of the network's output: `outputWidth`, but never below `bits`; `bits` without a projection.
    public var networkOutputWidth: Int { projectsOutputs ? max(outputWidth, bits) : bits }

    /// The network these settings build for thumbnails of `inputSize` (its output `networkOutputWidth` wide).
    public func encoderConfiguration(inputSize: Int) -> EncoderConfiguration {
        EncoderConfiguration(
            bits: networkOutputWidth, widths: widths, hiddenWidth: hiddenWidth, inputChannels: 3, inputSize: inputSize, codeBatchNorm: codeBatchNorm,
            headGrid: headGrid)
    }

    /// Checks every range; the error names the setting and what to change.
    public func validate() throws {
        func require(_ condition: Bool, _ key: CodingKeys, _ reason: String) throws {
            if !condition { throw DSCHSettingsError.invalidValue(key: key.stringValue, reason: reason) }
        }
        try require(bits >= 1 && bits <= 1024, .bits, "must be between 1 and 1024, got \(bits)")
        try require(epochs >= 1, .epochs, "must be at least 1, got \(epochs)")
        try require(warmupEpochs >= 0, .warmupEpochs, "must not be negative, got \(warmupEpochs)")
        try require(estepEvery >= 1, .estepEvery, "must be at least 1, got \(estepEvery)")
        try require(batchSize >= 2, .batchSize, "must be at least 2, got \(batchSize)")
        try require(learningRate > 0 && learningRate.isFinite, .learningRate, "must be positive, got \(learningRate)")
        try require(learningRateWarmupEpochs >= 0, .learningRateWarmupEpochs, "must not be negative")
        try require(minimumLearningRate >= 0 && minimumLearningRate <= learningRate, .minimumLearningRate,
                    "must be between 0 and learningRate (\(learningRate)), got \(minimumLearningRate)")
        try require(weightDecay >= 0, .weightDecay, "must not be negative, got \(weightDecay)")
        try require(temperature > 0, .temperature, "must be positive, got \(temperature)")
        try require(componentTemperature > 0, .componentTemperature, "must be positive, got \(componentTemperature)")
        try require(fineComponents >= 1, .fineComponents, "must be at least 1, got \(fineComponents)")
        try require(coarseComponents >= 1 && coarseComponents <= fineComponents, .coarseComponents,
                    "must be between 1 and fineComponents (\(fineComponents)), got \(coarseComponents)")
        try require(topPosteriors >= 0, .topPosteriors, "must be 0 (full posteriors) or a positive count")
        try require(mixtureIterations >= 1, .mixtureIterations, "must be at least 1, got \(mixtureIterations)")
        try require(fineWeight >= 0, .fineWeight, "must not be negative, got \(fineWeight)")
        try require(coarseWeight >= 0, .coarseWeight, "must not be negative, got \(coarseWeight)")
        try require(quantizationWeight >= 0, .quantizationWeight, "must not be negative, got \(quantizationWeight)")
        try require(averagedEncoderMomentum >= 0 && averagedEncoderMomentum < 1, .averagedEncoderMomentum,
                    "must be in 0…1 (exclusive; 0 is off), got \(averagedEncoderMomentum)")
        try require(decorrelationWeight >= 0, .decorrelationWeight, "must not be negative, got \(decorrelationWeight)")
        try require(outputWidth >= 0 && outputWidth <= 1024, .outputWidth, "must be 0 (no projection) or at most 1024, got \(outputWidth)")
        try require(widths.count == 3 && widths.allSatisfy { $0 >= 1 }, .widths, "must be three positive channel counts, got \(widths)")
        try require(hiddenWidth >= 1, .hiddenWidth, "must be positive, got \(hiddenWidth)")
        try require(headGrid >= 1 && headGrid <= 255, .headGrid,
                    "must be between 1 (global average pooling) and 255, and divide inputSize / 4 when smaller; got \(headGrid)")
        try require(cropScaleMinimum > 0 && cropScaleMinimum <= cropScaleMaximum && cropScaleMaximum <= 1, .cropScaleMinimum,
                    "need 0 < cropScaleMinimum ≤ cropScaleMaximum ≤ 1, got \(cropScaleMinimum)…\(cropScaleMaximum)")
        for (key, value) in [(CodingKeys.flipProbability, flipProbability), (.grayscaleProbability, grayscaleProbability)] {
            try require(value >= 0 && value <= 1, key, "must be a probability in 0…1, got \(value)")
        }
        for (key, value) in [(CodingKeys.brightness, brightness), (.contrast, contrast)] {
            try require(value >= 0 && value < 1, key, "must be in 0…1 (exclusive), got \(value)")
        }
    }

    /// The parts of DSCH that can be switched off, to show what each adds.
    public enum Ablation: String, CaseIterable, Sendable {
        /// Plain two-view contrastive hashing: no co-occurrence, no component losses.
        case plain
        /// Contrastive loss with the co-occurrence targets, no component losses.
        case cooccurrence
        /// Co-occurrence and the fine component loss.
        case fine
        /// Everything: co-occurrence, fine and coarse component losses.
        case full
    }

    /// These settings with the parts after `ablation` switched off (the weights kept for the others).
    public func applying(_ ablation: Ablation) -> DSCHSettings {
        var result = self
        switch ablation {
        case .plain: result.cooccurrence = false; result.fineWeight = 0; result.coarseWeight = 0
        case .cooccurrence: result.cooccurrence = true; result.fineWeight = 0; result.coarseWeight = 0
        case .fine: result.cooccurrence = true; result.coarseWeight = 0
        case .full: break
        }
        return result
    }
}

extension DSCHSettings {
    /// `base` with the given keys replaced (values as JSONSerialization produces them), validated.
    /// Unknown keys and wrongly typed values are errors naming the key.
    public static func decode(overrides: [String: Any], base: DSCHSettings = DSCHSettings()) throws -> DSCHSettings {
        for key in overrides.keys.sorted() where CodingKeys(stringValue: key) == nil { throw DSCHSettingsError.unknownKey(key) }
        let baseData = try JSONEncoder().encode(base)
        guard var merged = try JSONSerialization.jsonObject(with: baseData) as? [String: Any] else {
            throw DSCHSettingsError.invalidValue(key: "", reason: "settings did not encode as a JSON object")
        }
        for (key, value) in overrides {
            guard JSONSerialization.isValidJSONObject([key: value]) else {
                throw DSCHSettingsError.invalidValue(key: key, reason: "value \(value) is not a JSON value")
            }
            merged[key] = value
        }
        let data = try JSONSerialization.data(withJSONObject: merged)
        let settings = try JSONDecoder().decode(DSCHSettings.self, from: data)
        try settings.validate()
        return settings
    }

    /// Settings from a JSON object's bytes over `base`.
    public static func decode(json: [UInt8], base: DSCHSettings = DSCHSettings()) throws -> DSCHSettings {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] else {
            throw DSCHSettingsError.invalidValue(key: "", reason: "settings must be a JSON object")
        }
        return try decode(overrides: object, base: base)
    }
}
