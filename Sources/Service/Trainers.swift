import Foundation
import Hashing

/// The trainers the service offers, by kind.
public enum Trainers {
    /// Every kind the service can train with the configured settings.
    public static func all(configuration: Configuration, logger: Logger) -> [ModelTrainer] {
        [DSCHModelTrainer(configuration: configuration), ITQTrainer(configuration: configuration)]
    }
}

/// Reads typed values out of a retrain request's JSON settings, refusing unknown keys.
struct TrainingSettings {
    private let values: [String: Any]

    init(_ values: [String: Any], allowed: Set<String>) throws {
        if let unknown = values.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw RetrainError.invalidSettings("unknown setting '\(unknown)'; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
        self.values = values
    }

    func int(_ key: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        guard let raw = values[key] else { return fallback }
        guard let number = raw as? NSNumber, let value = Int(exactly: number.doubleValue), range.contains(value) else {
            throw RetrainError.invalidSettings("'\(key)' must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return value
    }

    func double(_ key: String, default fallback: Double, range: ClosedRange<Double>) throws -> Double {
        guard let raw = values[key] else { return fallback }
        guard let value = (raw as? NSNumber)?.doubleValue, range.contains(value) else {
            throw RetrainError.invalidSettings("'\(key)' must be a number in \(range.lowerBound)…\(range.upperBound)")
        }
        return value
    }
}

/// Iterative quantisation (PCA then a learned rotation): seconds to train, a solid baseline.
struct ITQTrainer: ModelTrainer {
    let configuration: Configuration
    var kind: String { "itq" }

    func train(thumbnails: [[UInt8]], settings: [String: Any], progress: @escaping (Double, String) throws -> Void) throws -> TrainedModel {
        let options = try TrainingSettings(settings, allowed: ["bits", "iterations"])
        let bits = try options.int("bits", default: configuration.model.bits, range: 8...1024)
        guard bits % 8 == 0 else { throw RetrainError.invalidSettings("'bits' must be a multiple of 8") }
        let iterations = try options.int("iterations", default: 50, range: 1...1000)
        guard thumbnails.count >= bits else { throw RetrainError.tooFewImages(have: thumbnails.count, need: bits) }
        try progress(0, "training ITQ on \(thumbnails.count) images")
        let encoder = try ITQEncoder.train(thumbnails: thumbnails, bits: bits, inputSize: configuration.images.inputSize, iterations: iterations)
        try progress(1, "ITQ trained")
        return TrainedModel(encoder: encoder, configJSON: "{\"bits\":\(bits),\"iterations\":\(iterations)}", metricsJSON: nil)
    }
}

/// Deep Semantic Components Hashing: the configured `dsch` settings with the request's overrides.
struct DSCHModelTrainer: ModelTrainer {
    let configuration: Configuration
    var kind: String { "dsch" }

    func train(thumbnails: [[UInt8]], settings: [String: Any], progress: @escaping (Double, String) throws -> Void) throws -> TrainedModel {
        let resolved: DSCHSettings
        do {
            resolved = try DSCHSettings.decode(overrides: settings, base: configuration.dsch)
        } catch {
            throw RetrainError.invalidSettings("\(error)")
        }
        try progress(0, "training DSCH on \(thumbnails.count) images, \(resolved.epochs) epochs")
        let started = Date()
        var history: [[String: Any]] = []
        let encoder = try DSCHTrainer(settings: resolved, inputSize: configuration.images.inputSize).train(thumbnails: thumbnails) { report in
            history.append(["epoch": report.epoch, "seconds": report.seconds, "losses": report.losses])
            try progress(Double(report.epoch) / Double(report.epochs), report.summary)
        }
        let metrics: [String: Any] = ["trainingSeconds": Date().timeIntervalSince(started), "trainingImages": thumbnails.count, "epochs": history]
        return TrainedModel(encoder: encoder,
                            configJSON: String(decoding: try JSONEncoder().encode(resolved), as: UTF8.self),
                            metricsJSON: String(decoding: try JSONSerialization.data(withJSONObject: metrics, options: [.sortedKeys]), as: UTF8.self))
    }
}
