import Foundation
import NeuralNet

/// Why DSCH training could not run.
public enum DSCHTrainingError: Error, CustomStringConvertible, Equatable {
    case badThumbnail(index: Int, bytes: Int, expected: Int)
    case tooFewImages(images: Int, needed: Int)
    case tooFewImagesForComponents(images: Int, fineComponents: Int)

    public var description: String {
        switch self {
        case .badThumbnail(let index, let bytes, let expected):
            return "thumbnail \(index) has \(bytes) bytes, expected \(expected) (inputSize²×3 RGB)"
        case .tooFewImages(let images, let needed):
            return "DSCH training needs at least \(needed) images, got \(images)"
        case .tooFewImagesForComponents(let images, let fineComponents):
            return "\(fineComponents) fine components need at least as many training images, but there are \(images); "
                + "set fineComponents to at most \(images) (and coarseComponents no higher), or add images"
        }
    }
}

/// One epoch's report.
public struct DSCHEpochReport: Sendable {
    /// 1-based epoch number.
    public var epoch: Int
    public var epochs: Int
    /// Mean losses of the epoch's steps by name ("instance", "fine", "coarse", "quantization", "total").
    public var losses: [String: Double]
    /// Wall time of the epoch, its E-step included.
    public var seconds: Double
    /// Estimated wall time of the remaining epochs.
    public var etaSeconds: Double
    /// Whether an E-step ran before this epoch's M-step.
    public var ranExpectationStep: Bool = false

    public init(epoch: Int, epochs: Int, losses: [String: Double], seconds: Double, etaSeconds: Double) {
        self.epoch = epoch
        self.epochs = epochs
        self.losses = losses
        self.seconds = seconds
        self.etaSeconds = etaSeconds
    }

    /// One line for a terminal: epoch, losses in name order, time and ETA.
    public var summary: String {
        let losses = self.losses.keys.sorted().map { String(format: "%@ %.4f", $0, self.losses[$0]!) }.joined(separator: "  ")
        return String(format: "epoch %d/%d%@  %@  %.1f s  eta %.0f s", epoch, epochs, ranExpectationStep ? " (E-step)" : "",
                      losses, seconds, etaSeconds)
    }
}

/// The DSCH EM loop: warm-up epochs of instance loss only, then an E-step (semantic components from the
/// codes of every training image) every `estepEvery` epochs and M-step epochs of minibatch training
/// against the components held fixed. Deterministic for a given seed and thread count.
public final class DSCHTrainer {
    public let settings: DSCHSettings
    /// The settings the latest `train` used: `settings` scaled to its number of images.
    public private(set) var trainedSettings: DSCHSettings
    public let inputSize: Int
    /// The semantic components of the latest E-step, kept for inspection.
    public private(set) var components: SemanticComponents?

    /// Mixed into the seed for the order of the training images, so that it is not the weights' stream.
    static let shuffleSeedSalt: UInt64 = 0x7368_7566_666c_65  // "shuffle" in ASCII
    /// Step multiplier of the augmentation seeds (2⁶⁴ / golden ratio), so that consecutive steps get
    /// seeds far apart.
    static let augmentationSeedStride: UInt64 = 0x9e37_79b9_7f4a_7c15

    /// A trainer of an encoder for `inputSize`×`inputSize` thumbnails with `settings`.
    public init(settings: DSCHSettings, inputSize: Int) {
        self.settings = settings
        trainedSettings = settings
        self.inputSize = inputSize
    }

    /// Trains on thumbnails (RGB bytes inputSize²×3 each). `progress` is called after each epoch (and may
    /// throw to cancel: rethrow its error).
    public func train(thumbnails: [[UInt8]], progress: (DSCHEpochReport) throws -> Void) throws -> DSCHEncoder {
        try self.settings.validate()
        var settings = self.settings.scaled(toImages: thumbnails.count)
        // Fitting the projection needs more images than bits; a smaller collection trains its codes directly.
        if settings.projectsOutputs && thumbnails.count <= settings.bits { settings.outputWidth = 0 }
        trainedSettings = settings
        // Every loss and the E-step work on the network's outputs; the code's bits come from them at the end.
        let size = inputSize, bits = settings.networkOutputWidth
        for (index, thumbnail) in thumbnails.enumerated() where thumbnail.count != size * size * 3 {
            throw DSCHTrainingError.badThumbnail(index: index, bytes: thumbnail.count, expected: size * size * 3)
        }
        let count = thumbnails.count
        guard count >= 2 else { throw DSCHTrainingError.tooFewImages(images: count, needed: 2) }
        if settings.usesComponents && settings.fineComponents > count {
            throw DSCHTrainingError.tooFewImagesForComponents(images: count, fineComponents: settings.fineComponents)
        }

        let configuration = settings.encoderConfiguration(inputSize: size)
        let network = try Sequential.dschEncoder(configuration, seed: settings.seed)
        let averaged = settings.averagedEncoderMomentum > 0 ? try network.replica() : nil
        let optimizer = Adam(
            parameters: network.parameters, learningRate: Float(settings.learningRate),
            weightDecay: Float(settings.weightDecay))
        let batch = min(settings.batchSize, count)
        let stepsPerEpoch = count / batch
        let schedule = CosineSchedule(
            base: Float(settings.learningRate), totalSteps: stepsPerEpoch * settings.epochs,
            warmupSteps: Int(settings.learningRateWarmupEpochs * Double(stepsPerEpoch)),
            minimum: Float(settings.minimumLearningRate))
        let augmentation = settings.augmentation
        var shuffler = SplitMix64(seed: settings.seed ^ DSCHTrainer.shuffleSeedSalt)
        var order = Array(0..<count)
        var step = 0
        var elapsed = 0.0
        let clock = ContinuousClock()
        components = nil

        for epoch in 0..<settings.epochs {
            let started = clock.now
            var ranExpectationStep = false
            if settings.usesComponents, epoch >= settings.warmupEpochs,
               (epoch - settings.warmupEpochs) % settings.estepEvery == 0 {
                components = try expectationStep(network: averaged ?? network, thumbnails: thumbnails, epoch: epoch)
                ranExpectationStep = true
            }
            network.mode = .training
            order.shuffle(using: &shuffler)
            var sums: [String: Double] = [:]
            for batchIndex in 0..<stepsPerEpoch {
                let indices = Array(order[(batchIndex * batch)..<((batchIndex + 1) * batch)])
                let views = Augmentation.twoViews(
                    batch: indices.map { thumbnails[$0] }, size: size, settings: augmentation,
                    seed: settings.seed &+ DSCHTrainer.augmentationSeedStride &* UInt64(step + 1))
                optimizer.learningRate = schedule.learningRate(at: step)
                optimizer.zeroGradients()
                let codes = try network.forward(Tensor(shape: [2 * batch, 3, size, size], storage: views)).storage
                let (losses, gradient) = objective(codes: codes, indices: indices, batch: batch, bits: bits)
                for (name, value) in losses { sums[name, default: 0] += value }
                try network.backward(outputGradient: Tensor(shape: [2 * batch, bits], storage: gradient))
                optimizer.step()
                averaged?.moveAverage(towards: network, momentum: Float(settings.averagedEncoderMomentum))
                step += 1
            }
            let seconds = (clock.now - started).inSeconds
            elapsed += seconds
            var report = DSCHEpochReport(
                epoch: epoch + 1, epochs: settings.epochs,
                losses: sums.mapValues { $0 / Double(max(stepsPerEpoch, 1)) }, seconds: seconds,
                etaSeconds: elapsed / Double(epoch + 1) * Double(settings.epochs - epoch - 1))
            report.ranExpectationStep = ranExpectationStep
            try progress(report)
        }
        network.mode = .inference
        let encoder = try DSCHEncoder(network: network, configuration: configuration, averagesMirrorImages: settings.mirrorAveragedCodes)
        return settings.projectsOutputs ? try encoder.projected(toBits: settings.bits, fittedOn: thumbnails) : encoder
    }

    /// The E-step: codes of every training image without augmentation, then the fine and coarse components.
    private func expectationStep(network: Sequential, thumbnails: [[UInt8]], epoch: Int) throws -> SemanticComponents {
        let mode = network.mode
        network.mode = .inference
        let codes = try DSCHEncoder.forward(network, thumbnails: thumbnails, size: inputSize)
        network.mode = mode
        return try SemanticComponents.find(
            codes: codes, images: thumbnails.count, bits: trainedSettings.networkOutputWidth, fineCount: trainedSettings.fineComponents,
            coarseCount: trainedSettings.coarseComponents, seed: trainedSettings.seed &+ UInt64(epoch),
            topPosteriors: trainedSettings.topPosteriors > 0 ? trainedSettings.topPosteriors : nil,
            maxIterations: trainedSettings.mixtureIterations)
    }

    /// `L = L_ins + λ_fine·L_fine + λ_coarse·L_coarse + λ_q·L_q + λ_d·L_decorrelation` and its gradient for one batch's codes.
    private func objective(codes: [Float], indices: [Int], batch: Int, bits: Int) -> (losses: [String: Double], gradient: [Float]) {
        let settings = trainedSettings
        var losses: [String: Double] = [:]
        let finePosteriors = components.map { $0.finePosteriors(of: indices) }
        let instance = DSCHLoss.instance(
            codes: codes, batchSize: batch, bits: bits, temperature: Float(settings.temperature),
            posteriors: settings.cooccurrence ? finePosteriors : nil, components: components?.fineCount ?? 0)
        var gradient = instance.gradient
        losses["instance"] = Double(instance.loss)
        var total = Double(instance.loss)
        func add(_ name: String, _ weight: Double, _ term: LossAndGradient) {
            losses[name] = Double(term.loss)
            total += weight * Double(term.loss)
            let scale = Float(weight)
            for index in gradient.indices { gradient[index] += scale * term.gradient[index] }
        }
        if let components, let finePosteriors {
            if settings.fineWeight > 0 {
                add("fine", settings.fineWeight, DSCHLoss.component(
                    codes: codes, rows: 2 * batch, bits: bits, posteriors: finePosteriors,
                    weights: components.fineWeights, centres: components.fineCentres,
                    components: components.fineCount, temperature: Float(settings.componentTemperature)))
            }
            if settings.coarseWeight > 0 {
                add("coarse", settings.coarseWeight, DSCHLoss.component(
                    codes: codes, rows: 2 * batch, bits: bits, posteriors: components.coarsePosteriors(of: indices),
                    weights: components.coarseWeights, centres: components.coarseCentres,
                    components: components.coarseCount, temperature: Float(settings.componentTemperature)))
            }
        }
        if settings.quantizationWeight > 0 {
            add("quantization", settings.quantizationWeight, DSCHLoss.quantization(codes: codes))
        }
        if settings.decorrelationWeight > 0 {
            add("decorrelation", settings.decorrelationWeight, DSCHLoss.decorrelation(codes: codes, rows: 2 * batch, bits: bits))
        }
        losses["total"] = total
        return (losses, gradient)
    }
}
