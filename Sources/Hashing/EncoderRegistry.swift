import Foundation

/// The name a model kind is stored under in the `models` table. Open like a string, typed like an
/// enum: a new kind is one more constant and one registry entry, with no switch to edit.
public struct ModelKind: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Random projections: data-independent, the cold-start model.
    public static let lsh = ModelKind(rawValue: "lsh")
    /// Iterative quantisation: PCA then a learned rotation.
    public static let itq = ModelKind(rawValue: "itq")
    /// Deep Semantic Components Hashing.
    public static let dsch = ModelKind(rawValue: "dsch")

    public var description: String { rawValue }

    public init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// The typed settings of one training run, for any kind; each kind reads the fields it needs.
public struct TrainingSettings: Equatable, Sendable {
    /// Code length in bits, the one code-length setting for every kind.
    public var bits: Int
    /// Thumbnail side the encoder reads.
    public var inputSize: Int
    /// Seed of LSH's projections.
    public var lshSeed: UInt64
    /// ITQ's rotation iterations.
    public var itqIterations: Int
    /// Seed of ITQ's random initial rotation.
    public var itqSeed: UInt64
    /// DSCH's hyperparameters; its `bits` is always `bits` above.
    public var dsch: DSCHSettings

    public init(bits: Int, inputSize: Int, lshSeed: UInt64, itqIterations: Int = ITQProjection.defaultIterations,
                itqSeed: UInt64 = ITQProjection.defaultSeed, dsch: DSCHSettings = DSCHSettings()) {
        self.bits = bits
        self.inputSize = inputSize
        self.lshSeed = lshSeed
        self.itqIterations = itqIterations
        self.itqSeed = itqSeed
        self.dsch = dsch
        self.dsch.bits = bits
    }
}

/// What a training run hands back: the encoder, the settings it used and its training figures (JSON).
public struct TrainedEncoder {
    public var encoder: HashEncoder
    /// The settings actually used, as a JSON object (stored with the model).
    public var settingsJSON: String
    /// Training figures as a JSON object, when the kind records any.
    public var metricsJSON: String?
    public init(encoder: HashEncoder, settingsJSON: String, metricsJSON: String?) {
        self.encoder = encoder; self.settingsJSON = settingsJSON; self.metricsJSON = metricsJSON
    }
}

/// Why a training request was refused before any work started.
public enum TrainingSettingsError: Error, CustomStringConvertible, Equatable {
    case unknownKind(ModelKind)
    case unknownSetting(kind: ModelKind, key: String, allowed: [String])
    case invalidValue(key: String, reason: String)

    public var description: String {
        switch self {
        case .unknownKind(let kind):
            return "unknown model kind '\(kind)'; known kinds: \(EncoderRegistry.kinds.map(\.rawValue).joined(separator: ", "))"
        case .unknownSetting(let kind, let key, let allowed):
            return "'\(key)' is not a setting of \(kind) training; allowed: \(allowed.joined(separator: ", "))"
        case .invalidValue(let key, let reason):
            return "'\(key)' \(reason)"
        }
    }
}

/// One kind's registration: how its stored model files load, which settings a training request may
/// override, and how it trains.
public struct EncoderKindEntry: Sendable {
    public let kind: ModelKind
    /// Rebuilds an encoder from the bytes its `serialized()` wrote.
    public let load: @Sendable ([UInt8]) throws -> HashEncoder
    /// Keys a training request may set for this kind.
    public let settingKeys: Set<String>
    /// Trains on RGB thumbnails; `progress` takes a fraction 0…1 and a message and throws to cancel.
    public let train: @Sendable ([[UInt8]], TrainingSettings, @escaping (Double, String) throws -> Void) throws -> TrainedEncoder
}

/// Every kind the project can load and train; loading, training, the service, the CLI and the
/// evaluation all look a kind up here.
public enum EncoderRegistry {
    /// The registered kinds, in the order they are listed to users.
    public static let entries: [EncoderKindEntry] = [lsh, itq, dsch]

    /// The registered kind names.
    public static var kinds: [ModelKind] { entries.map(\.kind) }

    /// The entry of `kind`.
    public static func entry(_ kind: ModelKind) throws -> EncoderKindEntry {
        guard let entry = entries.first(where: { $0.kind == kind }) else { throw TrainingSettingsError.unknownKind(kind) }
        return entry
    }

    /// The encoder a stored model of `kind` describes.
    public static func load(kind: ModelKind, data: [UInt8]) throws -> HashEncoder {
        guard let entry = entries.first(where: { $0.kind == kind }) else { throw HashEncoderError.unknownKind(kind.rawValue) }
        return try entry.load(data)
    }

    /// `base` with a training request's overrides applied (values as JSONSerialization produces them);
    /// a key the kind does not train with, or a value of the wrong type or range, is an error naming it.
    public static func settings(for kind: ModelKind, overrides: [String: Any], base: TrainingSettings) throws -> TrainingSettings {
        let entry = try entry(kind)
        for key in overrides.keys.sorted() where !entry.settingKeys.contains(key) {
            throw TrainingSettingsError.unknownSetting(kind: kind, key: key, allowed: entry.settingKeys.sorted())
        }
        var settings = base
        if let value = overrides["bits"] {
            guard let bits = integer(value), (8...1024).contains(bits), bits % 8 == 0 else {
                throw TrainingSettingsError.invalidValue(key: "bits", reason: "must be a multiple of 8 in 8…1024")
            }
            settings.bits = bits
        }
        if let value = overrides["iterations"] {
            guard let iterations = integer(value), (1...1000).contains(iterations) else {
                throw TrainingSettingsError.invalidValue(key: "iterations", reason: "must be an integer in 1…1000")
            }
            settings.itqIterations = iterations
        }
        if kind == .dsch {
            var dschOverrides = overrides
            dschOverrides["bits"] = nil
            do {
                settings.dsch = try DSCHSettings.decode(overrides: dschOverrides, base: settings.dsch)
            } catch {
                throw TrainingSettingsError.invalidValue(key: "dsch", reason: "\(error)")
            }
        }
        settings.dsch.bits = settings.bits
        return settings
    }

    private static func integer(_ value: Any) -> Int? {
        (value as? NSNumber).flatMap { Int(exactly: $0.doubleValue) }
    }

    private static func json(_ object: [String: Any]) -> String {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    private static let lsh = EncoderKindEntry(
        kind: .lsh, load: { try LSHEncoder.load($0) }, settingKeys: ["bits"],
        train: { _, settings, progress in
            // Data-independent: "training" draws the projections from the seed.
            let encoder = LSHEncoder(bits: settings.bits, inputSize: settings.inputSize, seed: settings.lshSeed)
            try progress(1, "LSH projections drawn")
            return TrainedEncoder(encoder: encoder, settingsJSON: json(["bits": settings.bits, "seed": settings.lshSeed]), metricsJSON: nil)
        })

    private static let itq = EncoderKindEntry(
        kind: .itq, load: { try ITQEncoder.load($0) }, settingKeys: ["bits", "iterations"],
        train: { thumbnails, settings, progress in
            try progress(0, "training ITQ on \(thumbnails.count) images")
            let encoder = try ITQEncoder.train(thumbnails: thumbnails, bits: settings.bits, inputSize: settings.inputSize,
                                               iterations: settings.itqIterations, seed: settings.itqSeed)
            try progress(1, "ITQ trained")
            return TrainedEncoder(encoder: encoder, settingsJSON: json(["bits": settings.bits, "iterations": settings.itqIterations]),
                                  metricsJSON: nil)
        })

    private static let dsch = EncoderKindEntry(
        kind: .dsch, load: { try DSCHEncoder.load($0) },
        settingKeys: Set(DSCHSettings.CodingKeys.allCases.map(\.stringValue)).union(["bits"]),
        train: { thumbnails, settings, progress in
            try progress(0, "training DSCH on \(thumbnails.count) images, \(settings.dsch.scaled(toImages: thumbnails.count).epochs) epochs")
            let started = Date()
            var history: [[String: Any]] = []
            let trainer = DSCHTrainer(settings: settings.dsch, inputSize: settings.inputSize)
            let encoder = try trainer.train(thumbnails: thumbnails) { report in
                history.append(["epoch": report.epoch, "seconds": report.seconds, "losses": report.losses])
                try progress(Double(report.epoch) / Double(report.epochs), report.summary)
            }
            let metrics: [String: Any] = ["trainingSeconds": Date().timeIntervalSince(started), "trainingImages": thumbnails.count,
                                          "epochs": history]
            let encoded = JSONEncoder()
            encoded.outputFormatting = [.sortedKeys]
            // The settings as scaled to the collection, so the model records what it was trained with.
            return TrainedEncoder(encoder: encoder, settingsJSON: String(decoding: try encoded.encode(trainer.trainedSettings), as: UTF8.self),
                                  metricsJSON: json(metrics))
        })
}
