import Foundation

/// The application's repositories over one SQLite file.
/// Writes go through one connection on one serial queue; reads use their own connections.

/// A failure reported by SQLite, with the statement that caused it.
public struct DatabaseError: Error, CustomStringConvertible {
    public let resultCode: Int32
    public let message: String
    public let sql: String?
    public init(resultCode: Int32, message: String, sql: String?) {
        self.resultCode = resultCode; self.message = message; self.sql = sql
    }
    public var description: String { "SQLite error \(resultCode): \(message)" + (sql.map { " in `\($0)`" } ?? "") }
}

/// Why the schema could not be brought up to date.
public enum MigrationError: Error, CustomStringConvertible {
    case editedAfterApply(id: Int, name: String)
    case unknownAppliedMigration(id: Int)
    case badFileName(String)
    /// Two migrations share an id.
    case duplicateID(Int)
    /// A migrations folder is missing from the target's resource bundle.
    case missingResources(folder: String)
    /// A migration's SQL failed; its transaction was rolled back.
    case failed(id: Int, name: String, underlying: any Error)
    /// After migrating, `PRAGMA foreign_key_check` found rows pointing nowhere in `table`.
    case foreignKeyViolation(table: String)
    public var description: String {
        switch self {
        case .editedAfterApply(let id, let name):
            return "migration \(id) (\(name)) was edited after it was applied to this database; restore its original text and add a new migration instead"
        case .unknownAppliedMigration(let id):
            return "the database records migration \(id), which this build does not know; it was written by a newer version of dsch"
        case .badFileName(let name):
            return "migration file \(name) is not named NNNN_name.sql"
        case .duplicateID(let id):
            return "two migrations have id \(id)"
        case .missingResources(let folder):
            return "the \(folder) folder is missing from the Storage resource bundle"
        case .failed(let id, let name, let underlying):
            return "migration \(id) (\(name)) failed and was rolled back: \(underlying)"
        case .foreignKeyViolation(let table):
            return "after migrating, table \(table) has rows whose foreign keys point nowhere"
        }
    }
}

/// Why the store refused an operation that SQLite itself would have accepted.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    case unknownModelVersion(Int)
    case unknownJob(Int64)
    /// The active model version cannot be deleted; activate another one first.
    case modelIsActive(Int)
    /// An image was encoded under `encoded` but another replica made `active` the active version meanwhile.
    case activeVersionChanged(encoded: Int, active: Int)
    public var description: String {
        switch self {
        case .unknownModelVersion(let version): return "model version \(version) does not exist"
        case .unknownJob(let id): return "job \(id) does not exist"
        case .modelIsActive(let version): return "model version \(version) is active; activate another version before deleting it"
        case .activeVersionChanged(let encoded, let active):
            return "the image was encoded under model version \(encoded) but version \(active) became active meanwhile; upload it again"
        }
    }
}

/// State of a background job; the `jobs.status` column holds the raw value.
public enum JobStatus: String, Sendable, CaseIterable {
    case queued, running, succeeded, failed
    /// True once the job can no longer change.
    public var isFinished: Bool { self == .succeeded || self == .failed }
}

/// A job row (a retrain, for now).
public struct JobRecord: Equatable, Sendable {
    public var id: Int64
    public var kind: String
    public var status: JobStatus
    /// Fraction done, 0...1.
    public var progress: Double
    public var message: String?
    public var configJSON: String?
    /// The model version the job produces, once known.
    public var modelVersion: Int?
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
    /// What the job decided, as a JSON object (a retrain's quality-gate scores and its choice).
    public var resultJSON: String?
    public init(id: Int64, kind: String, status: JobStatus, progress: Double, message: String?, configJSON: String?,
                modelVersion: Int?, createdAt: String, startedAt: String?, finishedAt: String?, resultJSON: String? = nil) {
        self.resultJSON = resultJSON
        self.id = id; self.kind = kind; self.status = status; self.progress = progress; self.message = message
        self.configJSON = configJSON; self.modelVersion = modelVersion; self.createdAt = createdAt
        self.startedAt = startedAt; self.finishedAt = finishedAt
    }
}

/// A stored image's metadata (everything except the bytes).
public struct ImageRecord: Equatable, Sendable {
    public var id: Int64
    public var sha256: String
    public var contentType: String
    public var width: Int
    public var height: Int
    public var byteSize: Int
    public var metadataJSON: String?
    public var createdAt: String
    public init(id: Int64, sha256: String, contentType: String, width: Int, height: Int, byteSize: Int, metadataJSON: String?, createdAt: String) {
        self.id = id; self.sha256 = sha256; self.contentType = contentType; self.width = width; self.height = height
        self.byteSize = byteSize; self.metadataJSON = metadataJSON; self.createdAt = createdAt
    }
}

/// An image to insert, with its code under the active model version.
public struct NewImage: Sendable {
    public var sha256: String
    public var contentType: String
    public var width: Int
    public var height: Int
    public var original: [UInt8]
    public var thumbnail: [UInt8]
    public var metadataJSON: String?
    public init(sha256: String, contentType: String, width: Int, height: Int, original: [UInt8], thumbnail: [UInt8], metadataJSON: String?) {
        self.sha256 = sha256; self.contentType = contentType; self.width = width; self.height = height
        self.original = original; self.thumbnail = thumbnail; self.metadataJSON = metadataJSON
    }
}

/// Where a model version is in its life; the `models.status` column holds the raw value.
public enum ModelStatus: String, Sendable, CaseIterable {
    /// Written by a retrain that has not finished encoding; never served.
    case building
    /// The version answering searches.
    case active
    /// A finished version kept (with its codes) for rollback.
    case inactive
    /// A finished version whose codes were dropped; activating it re-encodes every image.
    case pruned

    /// Whether the version finished training and can be activated.
    public var isFinished: Bool { self != .building }
}

/// A model version row.
public struct ModelRecord: Equatable, Sendable {
    public var version: Int
    /// The kind's registered name (the storage layer does not know the encoders).
    public var kind: String
    public var bits: Int
    public var configJSON: String
    public var weights: [UInt8]
    public var metricsJSON: String?
    public var status: ModelStatus
    public var createdAt: String
    /// The newest image id the model was trained on (nil for data-independent models).
    public var trainedThroughImageID: Int64?
    public init(version: Int, kind: String, bits: Int, configJSON: String, weights: [UInt8], metricsJSON: String?, status: ModelStatus,
                createdAt: String, trainedThroughImageID: Int64? = nil) {
        self.version = version; self.kind = kind; self.bits = bits; self.configJSON = configJSON; self.weights = weights
        self.metricsJSON = metricsJSON; self.status = status; self.createdAt = createdAt; self.trainedThroughImageID = trainedThroughImageID
    }
}

/// The result of an insert: the id, and whether a new row was made (false for identical bytes).
public struct InsertResult: Equatable, Sendable {
    public var id: Int64
    public var created: Bool
    public init(id: Int64, created: Bool) { self.id = id; self.created = created }
}


/// The database of the service: images, codes, models, jobs and settings in one file.
///
/// Every write runs on one connection on one serial queue, so writers never contend for SQLite's lock.
/// Reads use a small pool of separate connections: in WAL mode they see the last committed state and
/// never wait for the writer. A private in-memory database (":memory:") cannot be shared between
/// connections, so there reads go through the writer's queue as well.
public final class Store: ServiceStore, @unchecked Sendable {
    /// Key of the active model version in `settings`.
    static let activeModelKey = "active_model_version"
    /// SQL for "now" in the format of the `created_at` columns.
    static let now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

    /// The file opened (":memory:" for a private in-memory database).
    public let path: String
    private let writer: Database
    private let writeQueue: DispatchQueue
    private let readers: ReaderPool?

    /// Opens (creating if needed) the file, turns on WAL and foreign keys, applies the bundled migrations.
    public convenience init(path: String) throws {
        try self.init(path: path, migrations: MigrationRunner.bundledMigrations())
    }

    /// Opens the database and applies `migrations` instead of the bundled ones (for tests of the runner).
    /// The parent directory of a file path is created when missing, so a fresh install can start.
    public init(path: String, migrations: [Migration], maximumReaders: Int = 4) throws {
        self.path = path
        let isPrivateMemory = path == ":memory:" || path.isEmpty
        if !isPrivateMemory && !path.hasPrefix("file:") {
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent()
            try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        }
        writer = try Database(path: path)
        writeQueue = DispatchQueue(label: "dsch.storage.writer")
        try MigrationRunner.migrate(writer, migrations: migrations)
        readers = isPrivateMemory ? nil : ReaderPool(path: path, maximum: max(1, maximumReaders))
    }

    /// Closes both connections after pending writes finish.
    public func close() {
        writeQueue.sync { writer.close() }
        readers?.closeAll()
    }

    /// Runs `body` on the writer connection, serialised with every other write.
    @discardableResult
    private func write<Result>(_ body: (Database) throws -> Result) throws -> Result {
        try writeQueue.sync { try body(writer) }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction on the writer connection.
    private func writeTransaction<Result>(_ body: (Database) throws -> Result) throws -> Result {
        try writeQueue.sync { try writer.transaction { try body(writer) } }
    }

    /// Runs `body` on a reader connection (the writer's queue for an in-memory database).
    @discardableResult
    private func read<Result>(_ body: (Database) throws -> Result) throws -> Result {
        guard let readers else { return try write(body) }
        return try readers.withReader(body)
    }

    // MARK: Images and codes

    /// Ids per `IN (…)` list: under SQLite's bound-parameter limit, and few distinct statements.
    private static let idChunkSize = 100

    /// `?, ?, …` for an `IN` list of `count` values.
    private static func placeholders(_ count: Int) -> String { Array(repeating: "?", count: count).joined(separator: ", ") }

    private static let imageColumns = "id, sha256, content_type, width, height, byte_size, metadata, created_at"

    private static func imageRecord(_ row: Statement) -> ImageRecord {
        ImageRecord(id: row.int64(0), sha256: row.string(1), contentType: row.string(2), width: row.int(3),
                    height: row.int(4), byteSize: row.int(5), metadataJSON: row.optionalString(6), createdAt: row.string(7))
    }

    /// Inserts image and its code in one transaction; identical sha256 returns the existing id.
    /// `metadataJSON` must be valid JSON and `modelVersion` an existing model (the schema enforces both).
    public func insertImage(_ image: NewImage, code: [UInt8], modelVersion: Int) throws -> InsertResult {
        try insertImages([image], codes: [code], modelVersion: modelVersion)[0]
    }

    /// Inserts a batch in one transaction through the writer's cached statements: one commit (and one
    /// sync to disk) for the whole batch is what makes bulk imports fast. A sha256 seen earlier in the
    /// batch is found by the same lookup as a stored one, since the transaction sees its own rows.
    public func insertImages(_ images: [NewImage], codes: [[UInt8]], modelVersion: Int) throws -> [InsertResult] {
        precondition(images.count == codes.count, "one code per image")
        guard !images.isEmpty else { return [] }
        return try writeTransaction { database in
            var results: [InsertResult] = []
            results.reserveCapacity(images.count)
            for (image, code) in zip(images, codes) {
                if let existing = try database.queryScalarInt("SELECT id FROM images WHERE sha256 = ?", [.text(image.sha256)]) {
                    results.append(InsertResult(id: existing, created: false))
                    continue
                }
                try database.run("""
                    INSERT INTO images (sha256, content_type, width, height, byte_size, thumbnail, metadata)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, [.text(image.sha256), .text(image.contentType), .int(image.width), .int(image.height),
                          .int(image.original.count), .blob(image.thumbnail), .optionalText(image.metadataJSON)])
                let id = database.lastInsertRowID
                try database.run("INSERT INTO image_originals (image_id, original) VALUES (?, ?)", [.integer(id), .blob(image.original)])
                try database.run("INSERT INTO codes (image_id, model_version, code) VALUES (?, ?, ?)",
                                 [.integer(id), .int(modelVersion), .blob(code)])
                results.append(InsertResult(id: id, created: true))
            }
            return results
        }
    }

    /// One image's metadata, nil when the id is unknown.
    public func image(id: Int64) throws -> ImageRecord? {
        try read { try $0.queryFirst("SELECT \(Self.imageColumns) FROM images WHERE id = ?", [.integer(id)], row: Self.imageRecord) }
    }

    /// The records of those `ids` that exist (unknown ids are simply absent).
    public func images(ids: [Int64]) throws -> [Int64: ImageRecord] {
        try images(ids: ids, matching: [])
    }

    /// The records of those `ids` that exist and whose metadata matches every filter.
    public func images(ids: [Int64], matching filters: [MetadataFilter]) throws -> [Int64: ImageRecord] {
        let unique = Array(Set(ids))
        guard !unique.isEmpty else { return [:] }
        let (condition, conditionValues) = Self.metadataCondition(filters, firstParameter: 1)
        return try read { database in
            var records: [Int64: ImageRecord] = [:]
            for start in stride(from: 0, to: unique.count, by: Self.idChunkSize) {
                let chunk = unique[start..<min(start + Self.idChunkSize, unique.count)]
                // Cached per filter and list length: a search asks for the same k again and again.
                let placeholders = (0..<chunk.count).map { "?\(conditionValues.count + 1 + $0)" }.joined(separator: ", ")
                for record in try database.query("SELECT \(Self.imageColumns) FROM images WHERE \(condition) AND id IN (\(placeholders))",
                                                 conditionValues + chunk.map { .integer($0) }, row: Self.imageRecord) {
                    records[record.id] = record
                }
            }
            return records
        }
    }

    /// Images with an id above `afterID` whose metadata matches every filter, by id, at most `limit`.
    public func listImages(afterID: Int64, limit: Int, filters: [MetadataFilter]) throws -> [ImageRecord] {
        let (condition, conditionValues) = Self.metadataCondition(filters, firstParameter: 3)
        return try read { database in
            try database.query("SELECT \(Self.imageColumns) FROM images WHERE id > ?1 AND \(condition) ORDER BY id LIMIT ?2",
                               [.integer(afterID), .int(max(0, limit))] + conditionValues, row: Self.imageRecord)
        }
    }

    /// The SQL condition "metadata matches every filter" (see `MetadataFilter` for the rule) with its
    /// values, numbered from `firstParameter` on: `TRUE` with no values when there are no filters.
    /// `->` gives a value's JSON text as stored, so numbers and booleans compare by their text.
    static func metadataCondition(_ filters: [MetadataFilter], firstParameter: Int) -> (sql: String, values: [SQLValue]) {
        guard !filters.isEmpty else { return ("TRUE", []) }
        var clauses: [String] = []
        var values: [SQLValue] = []
        for filter in filters {
            let path = "?\(firstParameter + values.count)", value = "?\(firstParameter + values.count + 1)"
            values += [.text(filter.jsonPath), .text(filter.value)]
            clauses.append("""
                ((json_type(metadata, \(path)) = 'text' AND json_extract(metadata, \(path)) = \(value)) \
                OR (json_type(metadata, \(path)) IN ('integer', 'real', 'true', 'false', 'null') AND (metadata -> \(path)) = \(value)))
                """)
        }
        return (clauses.joined(separator: " AND "), values)
    }

    /// Content type and original bytes.
    public func imageContent(id: Int64) throws -> (contentType: String, bytes: [UInt8])? {
        try read {
            try $0.queryFirst("""
                SELECT images.content_type, image_originals.original FROM images
                JOIN image_originals ON image_originals.image_id = images.id WHERE images.id = ?
                """, [.integer(id)]) { ($0.string(0), $0.blob(1)) }
        }
    }

    /// Removes the image and all its codes; false when the id is unknown.
    public func deleteImage(id: Int64) throws -> Bool {
        try write { try $0.run("DELETE FROM images WHERE id = ?", [.integer(id)]) > 0 }
    }

    /// Number of stored images.
    public func imageCount() throws -> Int {
        try read { Int(try $0.queryScalarInt("SELECT count(*) FROM images") ?? 0) }
    }

    /// Number of images with an id above `afterID` (added since that watermark).
    public func imageCount(afterID: Int64) throws -> Int {
        try read { Int(try $0.queryScalarInt("SELECT count(*) FROM images WHERE id > ?", [.integer(afterID)]) ?? 0) }
    }

    /// The largest image id, 0 when there are no images (a watermark for "images added since").
    public func maxImageID() throws -> Int64 {
        try read { try $0.queryScalarInt("SELECT max(id) FROM images") ?? 0 }
    }

    /// Every image id, ascending.
    public func imageIDs() throws -> [Int64] {
        try read { try $0.query("SELECT id FROM images ORDER BY id") { $0.int64(0) } }
    }

    /// Every (image id, code bytes) stored for a model version, by id.
    public func codes(modelVersion: Int) throws -> [(imageID: Int64, code: [UInt8])] {
        try read { database in
            try database.query("SELECT image_id, code FROM codes WHERE model_version = ? ORDER BY image_id", [.int(modelVersion)]) {
                (imageID: $0.int64(0), code: $0.blob(1))
            }
        }
    }

    /// The code of one image under one model version, if stored.
    public func code(imageID: Int64, modelVersion: Int) throws -> [UInt8]? {
        try read { try $0.queryFirst("SELECT code FROM codes WHERE image_id = ? AND model_version = ?", [.integer(imageID), .int(modelVersion)]) { $0.blob(0) } }
    }

    /// Stores codes for a model version (upsert), in one transaction, and returns the ids stored.
    /// Codes of images deleted in the meantime are skipped rather than failing the whole batch, so a
    /// retrain that encoded an image just before its deletion still completes; the caller adds only
    /// the returned ids to its index, so a deleted image never comes back as a "ghost".
    @discardableResult
    public func putCodes(_ codes: [(imageID: Int64, code: [UInt8])], modelVersion: Int) throws -> Set<Int64> {
        guard !codes.isEmpty else { return [] }
        return try writeTransaction { database in
            var stored = Set<Int64>()
            for entry in codes {
                let changed = try database.run("""
                    INSERT INTO codes (image_id, model_version, code)
                    SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?1)
                    ON CONFLICT (image_id, model_version) DO UPDATE SET code = excluded.code
                    """, [.integer(entry.imageID), .int(modelVersion), .blob(entry.code)])
                if changed > 0 { stored.insert(entry.imageID) }
            }
            return stored
        }
    }

    /// Removes every code of a model version (a failed or abandoned retrain); returns how many.
    @discardableResult
    public func deleteCodes(modelVersion: Int) throws -> Int {
        try write { try $0.run("DELETE FROM codes WHERE model_version = ?", [.int(modelVersion)]) }
    }

    /// Thumbnails of images with id greater than `afterID`, by id, at most `limit`.
    public func thumbnails(afterID: Int64, limit: Int) throws -> [(imageID: Int64, thumbnail: [UInt8])] {
        try read { database in
            try database.query("SELECT id, thumbnail FROM images WHERE id > ? ORDER BY id LIMIT ?", [.integer(afterID), .int(limit)]) {
                (imageID: $0.int64(0), thumbnail: $0.blob(1))
            }
        }
    }

    /// Thumbnails of images above `afterID` that have no code under `modelVersion`, by id, at most
    /// `limit`: what a model must still encode before it can serve every image.
    public func thumbnailsMissingCode(modelVersion: Int, afterID: Int64, limit: Int) throws -> [(imageID: Int64, thumbnail: [UInt8])] {
        try read { database in
            try database.query("""
                SELECT id, thumbnail FROM images
                WHERE id > ?1 AND NOT EXISTS (SELECT 1 FROM codes WHERE image_id = images.id AND model_version = ?2)
                ORDER BY id LIMIT ?3
                """, [.integer(afterID), .int(modelVersion), .int(limit)]) { (imageID: $0.int64(0), thumbnail: $0.blob(1)) }
        }
    }

    /// The thumbnails of those `ids` that still exist, in the order of `ids`.
    public func thumbnails(ids: [Int64]) throws -> [(imageID: Int64, thumbnail: [UInt8])] {
        guard !ids.isEmpty else { return [] }
        return try read { database in
            var byID: [Int64: [UInt8]] = [:]
            for start in stride(from: 0, to: ids.count, by: Self.idChunkSize) {
                let chunk = ids[start..<min(start + Self.idChunkSize, ids.count)]
                for (id, thumbnail) in try database.query("SELECT id, thumbnail FROM images WHERE id IN (\(Self.placeholders(chunk.count)))",
                                                            chunk.map { .integer($0) }, row: { ($0.int64(0), $0.blob(1)) }) {
                    byID[id] = thumbnail
                }
            }
            return ids.compactMap { id in byID[id].map { (imageID: id, thumbnail: $0) } }
        }
    }

    /// Image ids up to and including `throughID`, ascending.
    public func imageIDs(through throughID: Int64) throws -> [Int64] {
        try read { try $0.query("SELECT id FROM images WHERE id <= ? ORDER BY id", [.integer(throughID)]) { $0.int64(0) } }
    }

    // MARK: Models and settings

    /// Inserts a model version; an empty `createdAt` means now.
    public func insertModel(_ model: ModelRecord) throws {
        try write { try Self.insert(model, into: $0) }
    }

    /// Makes `model` the active version of an empty database in one transaction (insert and activation),
    /// so a crash between the two cannot leave a database without an active model. Returns false, and
    /// changes nothing, when a version is already active.
    public func createInitialModel(_ model: ModelRecord) throws -> Bool {
        try writeTransaction { database in
            if try Self.activeVersion(database) != nil { return false }
            try Self.insert(model, into: database)
            try Self.activate(model.version, in: database)
            return true
        }
    }

    /// Records a freshly trained model and names it on its job, in one transaction, so a crash never
    /// leaves a model row that no job owns (which start-up recovery could not find and remove).
    public func insertModel(_ model: ModelRecord, forJob jobID: Int64, progress: Double, message: String) throws {
        try writeTransaction { database in
            try Self.insert(model, into: database)
            let changed = try database.run("UPDATE jobs SET model_version = ?, progress = ?, message = ? WHERE id = ?",
                                           [.int(model.version), .real(progress), .text(message), .integer(jobID)])
            if changed == 0 { throw StoreError.unknownJob(jobID) }
        }
    }

    /// Drops a version's codes and marks it "pruned" in one transaction; the model row stays for
    /// re-encoding later. Refuses the active version.
    public func pruneCodes(modelVersion: Int) throws {
        try writeTransaction { database in
            if try Self.activeVersion(database) == modelVersion { throw StoreError.modelIsActive(modelVersion) }
            try database.run("DELETE FROM codes WHERE model_version = ?", [.int(modelVersion)])
            if try database.run("UPDATE models SET status = 'pruned' WHERE version = ?", [.int(modelVersion)]) == 0 {
                throw StoreError.unknownModelVersion(modelVersion)
            }
        }
    }

    private static func insert(_ model: ModelRecord, into database: Database) throws {
        try database.run("""
            INSERT INTO models (version, kind, bits, config, weights, metrics, status, created_at, trained_through_image_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, coalesce(nullif(?, ''), \(Self.now)), ?)
            """, [.int(model.version), .text(model.kind), .int(model.bits), .text(model.configJSON), .blob(model.weights),
                  .optionalText(model.metricsJSON), .text(model.status.rawValue), .text(model.createdAt),
                  model.trainedThroughImageID.map { .integer($0) } ?? .null])
    }

    private static func activeVersion(_ database: Database) throws -> Int? {
        try database.queryScalarText("SELECT value FROM settings WHERE key = ?", [.text(activeModelKey)]).flatMap { Int($0) }
    }

    private static func activate(_ version: Int, in database: Database) throws {
        guard try database.queryScalarInt("SELECT 1 FROM models WHERE version = ?", [.int(version)]) != nil else {
            throw StoreError.unknownModelVersion(version)
        }
        try database.run("UPDATE models SET status = 'inactive' WHERE status = 'active' AND version != ?", [.int(version)])
        try database.run("UPDATE models SET status = 'active' WHERE version = ?", [.int(version)])
        try database.run("""
            INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value
            """, [.text(activeModelKey), .text(String(version))])
    }

    private static let modelColumns = "version, kind, bits, config, metrics, status, created_at, trained_through_image_id"

    /// A row's status; a value this build does not know (written by hand or by another version)
    /// reads as inactive, so it is listed but never served without an explicit activation.
    private static func modelRecord(_ row: Statement, weights: [UInt8]) -> ModelRecord {
        ModelRecord(version: row.int(0), kind: row.string(1), bits: row.int(2), configJSON: row.string(3), weights: weights,
                    metricsJSON: row.optionalString(4), status: ModelStatus(rawValue: row.string(5)) ?? .inactive,
                    createdAt: row.string(6), trainedThroughImageID: row.isNull(7) ? nil : row.int64(7))
    }

    /// One model version with its weights, nil when unknown.
    public func model(version: Int) throws -> ModelRecord? {
        try read { try $0.queryFirst("SELECT \(Self.modelColumns), weights FROM models WHERE version = ?", [.int(version)]) {
            Self.modelRecord($0, weights: $0.blob(8))
        } }
    }

    /// All models without weights, newest first.
    public func models() throws -> [ModelRecord] {
        try read { try $0.query("SELECT \(Self.modelColumns) FROM models ORDER BY version DESC") { Self.modelRecord($0, weights: []) } }
    }

    /// The highest model version stored, 0 when there is none.
    public func maxModelVersion() throws -> Int {
        try read { Int(try $0.queryScalarInt("SELECT max(version) FROM models") ?? 0) }
    }

    /// Sets a model's status.
    public func setModelStatus(version: Int, status: ModelStatus) throws {
        let changed = try write { try $0.run("UPDATE models SET status = ? WHERE version = ?", [.text(status.rawValue), .int(version)]) }
        if changed == 0 { throw StoreError.unknownModelVersion(version) }
    }

    /// Sets a model's metrics JSON (evaluation figures measured after training).
    public func setModelMetrics(version: Int, metricsJSON: String?) throws {
        let changed = try write { try $0.run("UPDATE models SET metrics = ? WHERE version = ?", [.optionalText(metricsJSON), .int(version)]) }
        if changed == 0 { throw StoreError.unknownModelVersion(version) }
    }

    /// Deletes a model version and its codes; false when it does not exist. Refuses the active version.
    @discardableResult
    public func deleteModel(version: Int) throws -> Bool {
        try writeTransaction { database in
            if try Self.activeVersion(database) == version { throw StoreError.modelIsActive(version) }
            try database.run("DELETE FROM codes WHERE model_version = ?", [.int(version)])
            return try database.run("DELETE FROM models WHERE version = ?", [.int(version)]) > 0
        }
    }

    /// The version search should use, nil before the first model is activated.
    public func activeModelVersion() throws -> Int? {
        try read { try Self.activeVersion($0) }
    }

    /// Makes `version` the active one, in one transaction: the setting, status "active" for it and
    /// "inactive" for the version it replaces. Throws `unknownModelVersion` when it does not exist.
    public func setActiveModelVersion(_ version: Int) throws {
        try writeTransaction { try Self.activate(version, in: $0) }
    }

    /// A setting's value, if set.
    public func setting(_ key: String) throws -> String? {
        try read { try $0.queryScalarText("SELECT value FROM settings WHERE key = ?", [.text(key)]) }
    }

    /// Sets (or replaces) a setting.
    public func setSetting(_ key: String, value: String) throws {
        try write { try $0.run("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               [.text(key), .text(value)]) }
    }

    // MARK: Jobs

    private static let jobColumns = "id, kind, status, progress, message, config, model_version, created_at, started_at, finished_at, result"

    private static func jobRecord(_ row: Statement) -> JobRecord {
        JobRecord(id: row.int64(0), kind: row.string(1), status: JobStatus(rawValue: row.string(2)) ?? .failed,
                  progress: row.double(3), message: row.optionalString(4), configJSON: row.optionalString(5),
                  modelVersion: row.optionalInt(6), createdAt: row.string(7), startedAt: row.optionalString(8),
                  finishedAt: row.optionalString(9), resultJSON: row.optionalString(10))
    }

    /// Records what a job decided (a JSON object), shown with the job.
    public func recordJobResult(id: Int64, resultJSON: String) throws {
        try write { _ = try $0.run("UPDATE jobs SET result = ? WHERE id = ?", [.text(resultJSON), .integer(id)]) }
    }

    /// Records a new job in status `queued`; returns its id.
    public func createJob(kind: String, configJSON: String?) throws -> Int64 {
        try write { database in
            try database.run("INSERT INTO jobs (kind, status, config) VALUES (?, 'queued', ?)", [.text(kind), .optionalText(configJSON)])
            return database.lastInsertRowID
        }
    }

    /// A new queued job, unless one is queued or running (one process owns the file: no lease needed).
    public func claimJob(kind: String, configJSON: String?) throws -> JobClaim {
        try writeTransaction { database in
            if let running = try database.queryScalarInt("SELECT id FROM jobs WHERE status IN ('queued', 'running') ORDER BY id LIMIT 1") {
                return .busy(jobID: running)
            }
            try database.run("INSERT INTO jobs (kind, status, config) VALUES (?, 'queued', ?)", [.text(kind), .optionalText(configJSON)])
            return .claimed(jobID: database.lastInsertRowID)
        }
    }

    /// True while the job is unfinished: in a single process nobody else can take it over.
    public func renewJobLease(id: Int64) throws -> Bool {
        try read { try $0.queryScalarInt("SELECT 1 FROM jobs WHERE id = ? AND status IN ('queued', 'running')", [.integer(id)]) != nil }
    }

    /// None: the only process that could own a job is this one (`failInterruptedJobs` covers restarts).
    @discardableResult
    public func failAbandonedJobs(reason: String) throws -> [JobRecord] { [] }

    /// Nil: one process owns the file, so there are no remote changes to follow.
    public var changeFeed: ChangeFeed? { nil }

    /// One job, nil when the id is unknown.
    public func job(id: Int64) throws -> JobRecord? {
        try read { try $0.queryFirst("SELECT \(Self.jobColumns) FROM jobs WHERE id = ?", [.integer(id)], row: Self.jobRecord) }
    }

    /// The most recent jobs, newest first.
    public func jobs(limit: Int = 50) throws -> [JobRecord] {
        try read { try $0.query("SELECT \(Self.jobColumns) FROM jobs ORDER BY id DESC LIMIT ?", [.int(limit)], row: Self.jobRecord) }
    }

    /// The job in status `running`, if any (the oldest, should there be several).
    public func runningJob() throws -> JobRecord? {
        try read { try $0.queryFirst("SELECT \(Self.jobColumns) FROM jobs WHERE status = 'running' ORDER BY id LIMIT 1", row: Self.jobRecord) }
    }

    /// Updates the given fields of a job; nil leaves a field as it is. Moving to `running` stamps
    /// `started_at` (once), moving to `succeeded` or `failed` stamps `finished_at`.
    public func updateJob(id: Int64, status: JobStatus? = nil, progress: Double? = nil, message: String? = nil, modelVersion: Int? = nil) throws {
        let changed = try write { database in
            try database.run("""
                UPDATE jobs SET
                    status = coalesce(?1, status),
                    progress = coalesce(?2, progress),
                    message = coalesce(?3, message),
                    model_version = coalesce(?4, model_version),
                    started_at = CASE WHEN ?1 = 'running' AND started_at IS NULL THEN \(Self.now) ELSE started_at END,
                    finished_at = CASE WHEN ?1 IN ('succeeded', 'failed') THEN \(Self.now) ELSE finished_at END
                WHERE id = ?5
                """, [.optionalText(status?.rawValue), progress.map { .real($0) } ?? .null, .optionalText(message),
                      .optionalInt(modelVersion), .integer(id)])
        }
        if changed == 0 { throw StoreError.unknownJob(id) }
    }

    /// Marks every job left `queued` or `running` (by a process that stopped) as failed with `reason`
    /// and removes the models they were building (never the active one) with their codes, all in one
    /// transaction, so a crash during recovery leaves either the old state or the recovered one.
    /// Returns the failed jobs as they are now.
    @discardableResult
    public func failInterruptedJobs(reason: String) throws -> [JobRecord] {
        try writeTransaction { database in
            // A job whose model went live before the process stopped did its work; only closing it was lost.
            if let active = try Self.activeVersion(database) {
                try database.run("""
                    UPDATE jobs SET status = 'succeeded', progress = 1, message = ?, finished_at = \(Self.now)
                    WHERE status IN ('queued', 'running') AND model_version = ?
                    """, [.text(StoreMessages.activatedBeforeStop(active)), .int(active)])
            }
            let ids = try database.query("SELECT id FROM jobs WHERE status IN ('queued', 'running') ORDER BY id") { $0.int64(0) }
            try database.run("""
                UPDATE jobs SET status = 'failed', message = ?, finished_at = \(Self.now)
                WHERE status IN ('queued', 'running')
                """, [.text(reason)])
            let jobs = try ids.compactMap { id in
                try database.queryFirst("SELECT \(Self.jobColumns) FROM jobs WHERE id = ?", [.integer(id)], row: Self.jobRecord)
            }
            let active = try Self.activeVersion(database)
            for version in Set(jobs.compactMap(\.modelVersion)) where version != active {
                try database.run("DELETE FROM codes WHERE model_version = ?", [.int(version)])
                try database.run("DELETE FROM models WHERE version = ?", [.int(version)])
            }
            return jobs
        }
    }

    /// Number of jobs in each status (statuses with no job are absent).
    public func jobCounts() throws -> [JobStatus: Int] {
        try read { database in
            var counts: [JobStatus: Int] = [:]
            for (status, count) in try database.query("SELECT status, count(*) FROM jobs GROUP BY status", row: { ($0.string(0), $0.int(1)) }) {
                if let status = JobStatus(rawValue: status) { counts[status] = count }
            }
            return counts
        }
    }

    // MARK: Maintenance

    /// `PRAGMA integrity_check`'s answer ("ok" when healthy).
    public func integrityCheck() throws -> String {
        try write { try $0.query("PRAGMA integrity_check") { $0.string(0) }.joined(separator: "\n") }
    }

    /// Writes a consistent copy of the database to `path` (`VACUUM INTO`), while the service runs.
    /// A file database gets its own short-lived connection, so writes continue during the copy.
    public func backup(to path: String) throws {
        let sql = "VACUUM INTO ?"
        guard readers != nil else { return try write { try $0.run(sql, [.text(path)]) } }
        let connection = try Database(path: self.path, walMode: false)
        defer { connection.close() }
        try connection.run(sql, [.text(path)])
    }
}

/// Reader connections, opened on demand up to `maximum` and handed out one caller at a time.
private final class ReaderPool: @unchecked Sendable {
    private let path: String
    private let maximum: Int
    private let condition = NSCondition()
    private var idle: [Database] = []
    private var opened = 0
    private var isClosed = false

    init(path: String, maximum: Int) { self.path = path; self.maximum = maximum }

    func withReader<Result>(_ body: (Database) throws -> Result) throws -> Result {
        let database = try checkOut()
        defer { checkIn(database) }
        return try body(database)
    }

    private func checkOut() throws -> Database {
        condition.lock()
        while idle.isEmpty && opened >= maximum && !isClosed { condition.wait() }
        if isClosed {
            condition.unlock()
            throw DatabaseError(resultCode: 21 /* SQLITE_MISUSE */, message: "the store is closed", sql: nil)
        }
        if let database = idle.popLast() {
            condition.unlock()
            return database
        }
        opened += 1
        condition.unlock()
        do {
            // The writer already set WAL, which is stored in the file; readers only need their own pragmas.
            let database = try Database(path: path, walMode: false)
            try database.execute("PRAGMA query_only = ON")
            // Reads through a memory map of the file instead of a pread(2) per page: pread was 10 % of a
            // `similar` request. The map is address space backed by the system's page cache, which the
            // system reclaims as it needs, not memory this process holds.
            _ = try database.queryScalarText("PRAGMA mmap_size = \(Self.readerMapBytes)")
            return database
        } catch {
            condition.lock()
            opened -= 1
            condition.signal()
            condition.unlock()
            throw error
        }
    }

    /// How much of the file a reader connection maps (1 GiB; SQLite falls back to reads beyond it).
    static let readerMapBytes = 1 << 30

    private func checkIn(_ database: Database) {
        condition.lock()
        if isClosed { database.close() } else { idle.append(database) }
        condition.signal()
        condition.unlock()
    }

    func closeAll() {
        condition.lock()
        isClosed = true
        for database in idle { database.close() }
        idle.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}
