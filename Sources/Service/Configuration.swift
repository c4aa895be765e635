import Foundation
import Hashing

/// Every setting of the service with its default. `Config/default.json` is this struct's encoding
/// (a test keeps the two equal); a user file, `DSCH_*` environment variables and command-line flags
/// are layered on top, in that order, by `ConfigurationLoader`.
public struct Configuration: Codable, Equatable, Sendable {
    /// Listening socket, limits and timeouts.
    public struct Server: Codable, Equatable, Sendable {
        public var host = "0.0.0.0"
        public var port = 8080
        public var maxHeaderBytes = 16_384
        public var maxBodyBytes = 33_554_432
        public var readTimeoutSeconds = 30.0
        public var idleTimeoutSeconds = 60.0
        public var maxConnections = 256
        /// Open connections allowed from one client address.
        public var maxConnectionsPerClient = 64
        /// Request bodies buffered at once across all connections; past it uploads wait, then get 503.
        public var maxBodyBytesInFlight = 268_435_456
        /// Seconds an upload waits for room in `maxBodyBytesInFlight` before its 503.
        public var bodyBudgetWaitSeconds = 2.0
        /// Seconds a client has to take a whole response before the connection is dropped.
        public var writeTimeoutSeconds = 60.0
        /// Requests handled at once; decoding and encoding run on these.
        public var workers = 4
        /// Threads doing the sockets' reading and writing, each for many connections; 0 means one per core.
        public var eventLoops = 0
        /// Seconds a shutdown waits for in-flight requests.
        public var shutdownGraceSeconds = 10.0
    }
    /// Where the data lives: one SQLite file, or a PostgreSQL database that several replicas share.
    public struct Database: Codable, Equatable, Sendable {
        /// The SQLite file; a `postgresql://` (or `postgres://`) URI here selects PostgreSQL instead,
        /// so `--database` takes either.
        public var path = "data/dsch.sqlite"
        /// A libpq connection URI (`postgresql://user:password@host:port/database`); when set it wins
        /// over `path`, which is then ignored.
        public var url = ""

        /// The PostgreSQL URI to use, nil for SQLite at `path`.
        public var postgresURL: String? {
            if !url.isEmpty { return url }
            return Self.isPostgresURI(path) ? path : nil
        }

        /// Whether `text` is a URI libpq understands rather than a file path.
        static func isPostgresURI(_ text: String) -> Bool {
            text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
        }
    }
    /// What uploads may be, and the thumbnail the encoders read.
    public struct Images: Codable, Equatable, Sendable {
        public var maxBytes = 33_554_432
        /// Width × height above which an image is refused before decoding (decompression bombs).
        public var maxPixels = 40_000_000
        /// Longest side accepted, in pixels (a 1×40,000,000 strip is refused before decoding).
        public var maxSide = 32_768
        /// Memory libjpeg may use for one progressive JPEG's coefficients; larger ones get 413.
        public var maxDecoderMemoryBytes = 268_435_456
        /// Thumbnail side in pixels; the encoders' input.
        public var inputSize = 32
        /// Largest metadata (`meta`) accepted with an upload, in UTF-8 bytes.
        public var maxMetaBytes = 16_384
        /// Deepest nesting of objects and arrays accepted in metadata.
        public var maxMetaDepth = 16
    }
    /// Code length of every model, and the cold-start model made for an empty database.
    public struct Model: Codable, Equatable, Sendable {
        /// Bits of every code, for every kind of model (a retrain request may ask for another length).
        public var bits = 64
        public var lshSeed = 24_301
    }
    /// Query bounds.
    public struct Search: Codable, Equatable, Sendable {
        public var defaultK = 10
        public var maxK = 1000
    }
    /// Background retraining: when it starts by itself and what it keeps.
    public struct Retrain: Codable, Equatable, Sendable {
        /// Start retrains by themselves (the admin endpoint works either way).
        public var automatic = true
        /// The kind of model a retrain trains.
        public var kind = "dsch"
        /// Images needed before the first learned model is trained.
        public var minImages = 1000
        /// Images added since the active model was trained that start another retrain.
        public var afterNewImages = 5000
        /// Model versions whose codes are kept for rollback.
        public var keepVersions = 3
        /// Training uses an even sample of at most this many images.
        public var maxTrainingImages = 20_000
        /// Images held out of training to score candidate models on before one is activated (about a
        /// tenth of the collection, at most this many; 0 turns the quality gate off).
        public var qualityGateImages = 500
        /// Seconds between checks for an automatic retrain (and, with replicas, for abandoned jobs).
        public var checkSeconds = 30.0
        /// With replicas: seconds a running job stays claimed without a heartbeat; a replica killed
        /// mid-job leaves it failed this long after its last heartbeat.
        public var leaseSeconds = 60.0
    }
    /// Administration.
    public struct Admin: Codable, Equatable, Sendable {
        /// Bearer token for `/v1/admin`; empty means "generate one and write it beside the database".
        public var token = ""
        /// `DELETE /v1/images/{id}` needs the token too; set false only on a trusted network.
        public var deleteRequiresToken = true
    }

    public var server = Server()
    public var database = Database()
    public var images = Images()
    public var model = Model()
    public var search = Search()
    public var retrain = Retrain()
    /// DSCH training settings used by retrains (a request may override any of them); the code length
    /// is `model.bits`, not a DSCH setting of its own.
    public var dsch = DSCHSettings()
    public var admin = Admin()

    public init() {}
}

/// Why the configuration could not be read.
public enum ConfigurationError: Error, CustomStringConvertible, Equatable {
    case unknownKey(String, source: String)
    case wrongType(key: String, expected: String, source: String)
    case unreadableFile(path: String, reason: String)
    case invalid(String)

    public var description: String {
        switch self {
        case .unknownKey(let key, let source): return "unknown setting '\(key)' in \(source); see Config/default.json for the valid keys"
        case .wrongType(let key, let expected, let source): return "setting '\(key)' in \(source) must be \(expected)"
        case .unreadableFile(let path, let reason): return "cannot read configuration file \(path): \(reason)"
        case .invalid(let why): return "invalid configuration: \(why)"
        }
    }
}

/// Builds a `Configuration` from defaults, an optional JSON file, the environment and flags.
public enum ConfigurationLoader {
    /// Layers the sources in order. `overrides` are dotted keys from flags (`server.port` → "9000").
    public static func load(file: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment, overrides: [(key: String, value: String)] = []) throws -> Configuration {
        var tree = try defaultTree()
        if let file {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                throw ConfigurationError.unreadableFile(path: file, reason: error.localizedDescription)
            }
            guard let user = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw ConfigurationError.unreadableFile(path: file, reason: "not a JSON object")
            }
            try merge(user, into: &tree, prefix: "", source: file)
        }
        let keys = leafKeys(tree)
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("DSCH_") {
            guard let key = keys.first(where: { environmentName(for: $0) == name }) else {
                throw ConfigurationError.unknownKey(name, source: "the environment")
            }
            try set(key, text: value, in: &tree, source: "environment variable \(name)")
        }
        for (key, value) in overrides {
            guard keys.contains(key) else { throw ConfigurationError.unknownKey(key, source: "the command line") }
            try set(key, text: value, in: &tree, source: "the command line")
        }
        var configuration: Configuration
        do {
            configuration = try JSONDecoder().decode(Configuration.self, from: JSONSerialization.data(withJSONObject: tree))
        } catch {
            throw ConfigurationError.invalid("\(error)")
        }
        configuration.dsch.bits = configuration.model.bits
        try configuration.validate()
        return configuration
    }

    /// Keys the encoded `Configuration` carries that are not settings of their own: `dsch.bits` is
    /// always `model.bits`, the one code length of the service.
    static let derivedKeys: [(section: String, key: String)] = [("dsch", "bits")]

    /// A configuration as the JSON tree users see (`Config/default.json`, `dsch config`): derived keys left out.
    public static func tree(of configuration: Configuration) throws -> [String: Any] {
        guard var tree = try JSONSerialization.jsonObject(with: JSONEncoder().encode(configuration)) as? [String: Any] else {
            throw ConfigurationError.invalid("the configuration did not encode as a JSON object")
        }
        for (section, key) in derivedKeys {
            guard var values = tree[section] as? [String: Any] else { continue }
            values[key] = nil
            tree[section] = values
        }
        return tree
    }

    /// `server.maxBodyBytes` → `DSCH_SERVER_MAX_BODY_BYTES`; `admin.token` → `DSCH_ADMIN_TOKEN`.
    public static func environmentName(for key: String) -> String {
        var name = "DSCH"
        for part in key.split(separator: ".") {
            name += "_"
            for character in part {
                if character.isUppercase { name += "_" }
                name += character.uppercased()
            }
        }
        return name
    }

    /// The defaults as a JSON tree, the shape every other layer must match.
    static func defaultTree() throws -> [String: Any] {
        try tree(of: Configuration())
    }

    /// Every dotted leaf key of a tree, sorted.
    static func leafKeys(_ tree: [String: Any], prefix: String = "") -> [String] {
        tree.keys.sorted().flatMap { key -> [String] in
            let path = prefix.isEmpty ? key : prefix + "." + key
            if let child = tree[key] as? [String: Any] { return leafKeys(child, prefix: path) }
            return [path]
        }
    }

    private static func merge(_ user: [String: Any], into tree: inout [String: Any], prefix: String, source: String) throws {
        for (key, value) in user {
            let path = prefix.isEmpty ? key : prefix + "." + key
            guard let existing = tree[key] else { throw ConfigurationError.unknownKey(path, source: source) }
            if var section = existing as? [String: Any] {
                guard let userSection = value as? [String: Any] else {
                    throw ConfigurationError.wrongType(key: path, expected: "an object", source: source)
                }
                try merge(userSection, into: &section, prefix: path, source: source)
                tree[key] = section
            } else {
                guard sameKind(existing, value) else {
                    throw ConfigurationError.wrongType(key: path, expected: kindName(existing), source: source)
                }
                tree[key] = value
            }
        }
    }

    private static func set(_ key: String, text: String, in tree: inout [String: Any], source: String) throws {
        let parts = key.split(separator: ".").map(String.init)
        guard parts.count == 2, var section = tree[parts[0]] as? [String: Any], let existing = section[parts[1]] else {
            throw ConfigurationError.unknownKey(key, source: source)
        }
        let value: Any
        if existing is [Any] {
            guard let array = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [Any] else {
                throw ConfigurationError.wrongType(key: key, expected: "a JSON array such as [32,64,128]", source: source)
            }
            value = array
        } else if existing is String {
            value = text
        } else if isBoolean(existing) {
            guard let flag = Bool(text.lowercased()) else { throw ConfigurationError.wrongType(key: key, expected: "true or false", source: source) }
            value = flag
        } else {
            if let integer = Int(text) {
                value = integer
            } else if let number = Double(text) {
                value = number
            } else {
                throw ConfigurationError.wrongType(key: key, expected: "a number", source: source)
            }
        }
        section[parts[1]] = value
        tree[parts[0]] = section
    }

    private static func isBoolean(_ value: Any) -> Bool {
        if type(of: value) == Bool.self { return true }
        // JSONSerialization may hand booleans back as NSNumber of ObjC type "c" (char).
        guard let number = value as? NSNumber, type(of: value) != Int.self, type(of: value) != Double.self else { return false }
        return String(cString: number.objCType) == "c"
    }

    private static func sameKind(_ a: Any, _ b: Any) -> Bool {
        if a is [Any] { return b is [Any] }
        if a is String { return b is String }
        if isBoolean(a) { return isBoolean(b) }
        if a is NSNumber { return b is NSNumber && !isBoolean(b) }
        return false
    }

    private static func kindName(_ value: Any) -> String {
        if value is [Any] { return "an array" }
        if value is String { return "a string" }
        if isBoolean(value) { return "true or false" }
        return "a number"
    }
}

extension Configuration {
    /// The training settings of a retrain with no overrides: `model.bits` is the one code length.
    public var trainingSettings: TrainingSettings {
        TrainingSettings(bits: model.bits, inputSize: images.inputSize, lshSeed: UInt64(model.lshSeed), dsch: dsch)
    }

    /// Checks ranges that the types alone do not.
    public func validate() throws {
        func require(_ condition: Bool, _ message: String) throws {
            if !condition { throw ConfigurationError.invalid(message) }
        }
        try require((0...65_535).contains(server.port), "server.port must be 0…65535")
        try require(server.workers >= 1, "server.workers must be at least 1")
        try require(server.eventLoops >= 0, "server.eventLoops must be 0 (one per core) or more")
        try require(server.maxConnections >= 1, "server.maxConnections must be at least 1")
        try require(server.maxConnectionsPerClient >= 1, "server.maxConnectionsPerClient must be at least 1")
        try require(server.maxBodyBytesInFlight >= server.maxBodyBytes,
                    "server.maxBodyBytesInFlight must be at least server.maxBodyBytes, or the largest uploads could never be accepted")
        try require(images.maxBytes <= server.maxBodyBytes, "images.maxBytes must not exceed server.maxBodyBytes")
        try require(server.bodyBudgetWaitSeconds >= 0 && server.writeTimeoutSeconds > 0,
                    "server.bodyBudgetWaitSeconds must be ≥ 0 and server.writeTimeoutSeconds positive")
        try require(images.inputSize >= 8 && images.inputSize <= 256, "images.inputSize must be 8…256")
        try require(model.bits >= 8 && model.bits <= 1024 && model.bits % 8 == 0, "model.bits must be a multiple of 8 in 8…1024")
        try require(search.defaultK >= 1 && search.defaultK <= search.maxK, "search.defaultK must be 1…search.maxK")
        try require(!database.path.isEmpty || !database.url.isEmpty, "database.path must not be empty")
        try require(database.url.isEmpty || Database.isPostgresURI(database.url),
                    "database.url must be a postgresql:// URI; for an SQLite file set database.path instead")
        try require(database.postgresURL == nil || !admin.token.isEmpty,
                    "with a PostgreSQL database every replica must accept the same admin token: set admin.token (DSCH_ADMIN_TOKEN)")
        try require(retrain.leaseSeconds >= 1, "retrain.leaseSeconds must be at least 1")
        try require(retrain.minImages >= 1 && retrain.afterNewImages >= 1, "retrain.minImages and retrain.afterNewImages must be at least 1")
        try require(retrain.keepVersions >= 1, "retrain.keepVersions must be at least 1")
        try require(retrain.maxTrainingImages >= 1, "retrain.maxTrainingImages must be at least 1")
        try require(retrain.qualityGateImages >= 0, "retrain.qualityGateImages must not be negative (0 turns the gate off)")
        try require(retrain.checkSeconds > 0, "retrain.checkSeconds must be positive")
        try require(images.maxSide >= 1 && images.maxPixels >= 1 && images.maxDecoderMemoryBytes >= 1 << 20,
                    "images.maxSide and images.maxPixels must be positive and images.maxDecoderMemoryBytes at least 1048576")
        try require(images.maxMetaBytes >= 2 && images.maxMetaBytes <= 1 << 20, "images.maxMetaBytes must be 2…1048576")
        try require(images.maxMetaDepth >= 1 && images.maxMetaDepth <= 64, "images.maxMetaDepth must be 1…64")
        do { try dsch.validate() } catch { throw ConfigurationError.invalid("dsch: \(error)") }
    }
}
