import Foundation
import Hashing

/// Trains a new encoder of one kind from stored thumbnails; the retrain worker's seam (tests wrap it).
public protocol ModelTrainer: Sendable {
    /// The model kind it produces.
    var kind: ModelKind { get }
    /// Trains on `thumbnails` (RGB, `settings.inputSize`² each). `progress` takes a fraction in 0…1 and a
    /// short message; it throws when the job is cancelled, and the trainer lets that error end training.
    func train(thumbnails: [[UInt8]], settings: TrainingSettings, progress: @escaping (Double, String) throws -> Void) throws -> TrainedEncoder
}

/// A kind's trainer as the encoder registry defines it.
struct RegisteredTrainer: ModelTrainer {
    let entry: EncoderKindEntry
    var kind: ModelKind { entry.kind }

    func train(thumbnails: [[UInt8]], settings: TrainingSettings, progress: @escaping (Double, String) throws -> Void) throws -> TrainedEncoder {
        try entry.train(thumbnails, settings, progress)
    }
}

/// The trainers the service offers, by kind.
public enum Trainers {
    /// Every kind the encoder registry can train.
    public static func all() -> [ModelTrainer] { EncoderRegistry.entries.map { RegisteredTrainer(entry: $0) } }
}

/// A retrain request decoded once, where it enters the service: the kind and the typed settings.
public struct RetrainRequest: Sendable {
    public var kind: ModelKind
    public var settings: TrainingSettings
    /// The overrides as sent (canonical JSON), recorded on the job.
    public var overridesJSON: String
    /// Activate the new model even when the quality gate scores another candidate higher.
    public var force = false

    /// The configured kind and settings with no overrides (automatic retrains).
    public init(configuration: Configuration) {
        kind = ModelKind(rawValue: configuration.retrain.kind)
        settings = configuration.trainingSettings
        overridesJSON = "{}"
    }

    /// A request body (a JSON object, possibly empty): `kind` picks the model kind, `force` skips the
    /// quality gate's choice, every other key overrides one of that kind's training settings.
    public init(body: [UInt8], configuration: Configuration) throws {
        var overrides: [String: Any] = [:]
        if !body.isEmpty {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
                throw RetrainError.invalidSettings("the body must be a JSON object of training settings, e.g. {\"bits\":64,\"epochs\":20}")
            }
            overrides = object
        }
        let kindValue = overrides.removeValue(forKey: "kind")
        if let kindValue, !(kindValue is String) { throw RetrainError.invalidSettings("'kind' must be a string such as \"dsch\" or \"itq\"") }
        if overrides.removeValue(forKey: "force") != nil {
            // JSONSerialization hands booleans back as numbers; the decoder tells true from 1.
            struct ForceField: Decodable { let force: Bool }
            guard let field = try? JSONDecoder().decode(ForceField.self, from: Data(body)) else {
                throw RetrainError.invalidSettings("'force' must be true or false")
            }
            force = field.force
        }
        kind = (kindValue as? String).map(ModelKind.init(rawValue:)) ?? ModelKind(rawValue: configuration.retrain.kind)
        do {
            settings = try EncoderRegistry.settings(for: kind, overrides: overrides, base: configuration.trainingSettings)
        } catch {
            throw RetrainError.invalidSettings("\(error)")
        }
        let data = try JSONSerialization.data(withJSONObject: overrides, options: [.sortedKeys, .withoutEscapingSlashes])
        overridesJSON = String(decoding: data, as: UTF8.self)
    }
}
