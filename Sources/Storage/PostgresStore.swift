import Foundation

/// The service's repository over a PostgreSQL database that several replicas share.
///
/// Every change replicas must follow (an upload's code, a delete, an activation) writes a row to
/// `change_log` in its own transaction and wakes the others with `NOTIFY`. Jobs carry an owner and a
/// lease, so one retrain runs at a time across the cluster and a replica that dies mid-job is noticed.
/// Connections come from a small pool; a broken one is dropped and the next request reconnects, so a
/// PostgreSQL restart costs the requests made while it was down (503) and nothing else.
public final class PostgresStore: ServiceStore, ChangeFeed, @unchecked Sendable {
    /// The channel `NOTIFY` wakes followers on.
    static let channel = "dsch_changes"
    /// Advisory lock ordering change-log writes by commit (see the `change_log` table).
    static let changeLogLock: Int64 = 0x6473_6368_0001
    /// Advisory lock serialising migrations when several replicas start at once.
    static let migrationLock: Int64 = 0x6473_6368_0002
    /// Key of the active model version in `settings`.
    static let activeModelKey = "active_model_version"

    /// Names this process in `change_log.origin` and `jobs.owner`.
    public let replicaID: String
    /// How long a claimed job stays this replica's without a renewal.
    public let jobLeaseSeconds: Double
    private let url: String
    private let pool: PostgresPool
    private let listenLock = NSLock()
    private var listener: PostgresConnection?

    /// Connects, applies the bundled PostgreSQL migrations (one replica at a time) and opens the pool.
    public convenience init(url: String, jobLeaseSeconds: Double = 60, maximumConnections: Int = 6) throws {
        try self.init(url: url, migrations: MigrationRunner.bundledMigrations(folder: "PostgresMigrations"),
                      jobLeaseSeconds: jobLeaseSeconds, maximumConnections: maximumConnections)
    }

    /// The store with `migrations` instead of the bundled ones (for tests of the runner).
    public init(url: String, migrations: [Migration], jobLeaseSeconds: Double = 60, maximumConnections: Int = 6) throws {
        self.url = url
        self.jobLeaseSeconds = jobLeaseSeconds
        replicaID = UUID().uuidString.lowercased()
        pool = PostgresPool(url: url, maximum: max(2, maximumConnections))
        try pool.withConnection { connection in
            try connection.query("SELECT pg_advisory_lock($1)", [.integer(Self.migrationLock)])
            defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [.integer(Self.migrationLock)]) }
            try MigrationRunner.migrate(connection, migrations: migrations)
        }
    }

    /// Closes every connection, including the listener.
    public func close() {
        pool.closeAll()
        listenLock.withLock {
            listener?.close()
            listener = nil
        }
    }

    public var changeFeed: ChangeFeed? { self }

    // MARK: Helpers

    /// Runs `body` on a pooled connection, each statement in its own implicit transaction.
    private func withConnection<Result>(_ body: (PostgresConnection) throws -> Result) throws -> Result {
        try pool.withConnection(body)
    }

    /// Runs `body` in one transaction on a pooled connection.
    private func transaction<Result>(_ body: (PostgresConnection) throws -> Result) throws -> Result {
        try pool.withConnection { connection in try connection.transaction { try body(connection) } }
    }

    /// Appends to the change log inside the caller's transaction: takes the ordering lock (held to
    /// commit), writes the rows and queues one notification, which PostgreSQL sends at commit.
    private func log(_ changes: [Change], in connection: PostgresConnection) throws {
        guard !changes.isEmpty else { return }
        try connection.query("SELECT pg_advisory_xact_lock($1)", [.integer(Self.changeLogLock)])
        let codes = changes.compactMap { change -> (imageID: Int64, modelVersion: Int, code: [UInt8])? in
            if case let .code(imageID, version, code) = change { return (imageID, version, code) }
            return nil
        }
        if codes.count > 1 && codes.count == changes.count {
            // A batch of uploads: one multi-row statement per chunk instead of a round trip per row.
            for start in stride(from: 0, to: codes.count, by: Self.insertChunkSize) {
                let chunk = codes[start..<min(start + Self.insertChunkSize, codes.count)]
                let rows = (0..<chunk.count).map { row in "('code', " + Self.placeholders(4, from: row * 4 + 1) + ")" }.joined(separator: ", ")
                try connection.update("INSERT INTO change_log (kind, image_id, model_version, code, origin) VALUES \(rows)",
                                      chunk.flatMap { [SQLValue.integer($0.imageID), .int($0.modelVersion), .blob($0.code), .text(replicaID)] },
                                      prepared: true)
            }
            try connection.query("SELECT pg_notify($1, '')", [.text(Self.channel)])
            return
        }
        for change in changes {
            switch change {
            case let .code(imageID, version, code):
                try connection.update("INSERT INTO change_log (kind, image_id, model_version, code, origin) VALUES ('code', $1, $2, $3, $4)",
                                      [.integer(imageID), .int(version), .blob(code), .text(replicaID)])
            case let .delete(imageID):
                try connection.update("INSERT INTO change_log (kind, image_id, origin) VALUES ('delete', $1, $2)",
                                      [.integer(imageID), .text(replicaID)])
            case let .activate(version):
                try connection.update("INSERT INTO change_log (kind, model_version, origin) VALUES ('activate', $1, $2)",
                                      [.int(version), .text(replicaID)])
            }
        }
        try connection.query("SELECT pg_notify($1, '')", [.text(Self.channel)])
    }

    private static func activeVersion(_ connection: PostgresConnection) throws -> Int? {
        try connection.queryFirst("SELECT value FROM settings WHERE key = $1", [.text(activeModelKey)]).flatMap { Int($0.string(0)) }
    }

    /// `$first, $first+1, …` for an `IN` list of `count` values.
    private static func placeholders(_ count: Int, from first: Int = 1) -> String {
        (first..<(first + count)).map { "$\($0)" }.joined(separator: ", ")
    }

    private static let idChunkSize = 500

    // MARK: Images and codes

    private static let imageColumns = "id, sha256, content_type, width, height, byte_size, metadata, created_at"

    private static func imageRecord(_ row: PostgresRow) -> ImageRecord {
        ImageRecord(id: row.int64(0), sha256: row.string(1), contentType: row.string(2), width: row.int(3), height: row.int(4),
                    byteSize: row.int(5), metadataJSON: row.optionalString(6), createdAt: row.string(7))
    }

    /// Inserts the image, its code and the change-log row in one transaction. The active version is
    /// read under the change-log lock, which activations take too: an upload encoded under a version
    /// that stopped being active is refused (`activeVersionChanged`), never stored without a current code.
    public func insertImage(_ image: NewImage, code: [UInt8], modelVersion: Int) throws -> InsertResult {
        try transaction { connection in
            let inserted = try connection.queryFirst("""
                INSERT INTO images (sha256, content_type, width, height, byte_size, original, thumbnail, metadata)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (sha256) DO NOTHING RETURNING id
                """, [.text(image.sha256), .text(image.contentType), .int(image.width), .int(image.height),
                      .int(image.original.count), .blob(image.original), .blob(image.thumbnail), .optionalText(image.metadataJSON)])
            guard let id = inserted?.int64(0) else {
                // Read committed: a concurrent insert of the same bytes has committed by now.
                guard let existing = try connection.queryFirst("SELECT id FROM images WHERE sha256 = $1", [.text(image.sha256)]) else {
                    throw StorageUnavailableError(reason: "an image with the same bytes was being stored concurrently and vanished; retry")
                }
                return InsertResult(id: existing.int64(0), created: false)
            }
            try connection.update("INSERT INTO codes (image_id, model_version, code) VALUES ($1, $2, $3)",
                                  [.integer(id), .int(modelVersion), .blob(code)])
            try log([.code(imageID: id, modelVersion: modelVersion, code: code)], in: connection)
            if let active = try Self.activeVersion(connection), active != modelVersion {
                throw StoreError.activeVersionChanged(encoded: modelVersion, active: active)
            }
            return InsertResult(id: id, created: true)
        }
    }

    /// Rows per multi-row `INSERT` of a batch: 8 parameters each stays far below PostgreSQL's limit of
    /// 65,535, and few distinct row counts means few prepared statements per session.
    private static let insertChunkSize = 100

    /// `($first, …), (…), …`: `rows` groups of `columns` numbered parameters, for a multi-row `VALUES`.
    private static func rowPlaceholders(rows: Int, columns: Int) -> String {
        (0..<rows).map { row in "(" + placeholders(columns, from: row * columns + 1) + ")" }.joined(separator: ", ")
    }

    /// Inserts a batch in one transaction with multi-row statements, prepared once per connection: the
    /// images (`ON CONFLICT DO NOTHING`, so bytes another replica stores meanwhile are not an error),
    /// their codes, and their change-log rows, then checks the active version as `insertImage` does.
    /// Copies within the batch are collapsed first: a statement may not touch the same row twice.
    public func insertImages(_ images: [NewImage], codes: [[UInt8]], modelVersion: Int) throws -> [InsertResult] {
        precondition(images.count == codes.count, "one code per image")
        guard !images.isEmpty else { return [] }
        var firstIndex: [String: Int] = [:]
        var unique: [Int] = []
        for (index, image) in images.enumerated() where firstIndex[image.sha256] == nil {
            firstIndex[image.sha256] = index
            unique.append(index)
        }
        return try transaction { connection in
            var created: [String: Int64] = [:]
            for start in stride(from: 0, to: unique.count, by: Self.insertChunkSize) {
                let chunk = unique[start..<min(start + Self.insertChunkSize, unique.count)]
                var values: [SQLValue] = []
                values.reserveCapacity(chunk.count * 8)
                for index in chunk {
                    let image = images[index]
                    values += [.text(image.sha256), .text(image.contentType), .int(image.width), .int(image.height),
                               .int(image.original.count), .blob(image.original), .blob(image.thumbnail), .optionalText(image.metadataJSON)]
                }
                let rows = try connection.query("""
                    INSERT INTO images (sha256, content_type, width, height, byte_size, original, thumbnail, metadata)
                    VALUES \(Self.rowPlaceholders(rows: chunk.count, columns: 8))
                    ON CONFLICT (sha256) DO NOTHING RETURNING id, sha256
                    """, values, prepared: true)
                for row in rows { created[row.string(1)] = row.int64(0) }
            }
            var existing: [String: Int64] = [:]
            let stored = unique.map { images[$0].sha256 }.filter { created[$0] == nil }
            for start in stride(from: 0, to: stored.count, by: Self.idChunkSize) {
                let chunk = Array(stored[start..<min(start + Self.idChunkSize, stored.count)])
                for row in try connection.query("SELECT id, sha256 FROM images WHERE sha256 IN (\(Self.placeholders(chunk.count)))",
                                                chunk.map { .text($0) }) {
                    existing[row.string(1)] = row.int64(0)
                }
            }
            let newCodes = unique.compactMap { index in created[images[index].sha256].map { (imageID: $0, code: codes[index]) } }
                .sorted { $0.imageID < $1.imageID }
            for start in stride(from: 0, to: newCodes.count, by: Self.insertChunkSize) {
                let chunk = newCodes[start..<min(start + Self.insertChunkSize, newCodes.count)]
                try connection.update("INSERT INTO codes (image_id, model_version, code) VALUES \(Self.rowPlaceholders(rows: chunk.count, columns: 3))",
                                      chunk.flatMap { [SQLValue.integer($0.imageID), .int(modelVersion), .blob($0.code)] }, prepared: true)
            }
            try log(newCodes.map { .code(imageID: $0.imageID, modelVersion: modelVersion, code: $0.code) }, in: connection)
            if !newCodes.isEmpty, let active = try Self.activeVersion(connection), active != modelVersion {
                throw StoreError.activeVersionChanged(encoded: modelVersion, active: active)
            }
            return try images.enumerated().map { index, image in
                if let id = created[image.sha256] { return InsertResult(id: id, created: firstIndex[image.sha256] == index) }
                guard let id = existing[image.sha256] else {
                    // Read committed: a concurrent insert of the same bytes has committed by now.
                    throw StorageUnavailableError(reason: "an image with the same bytes was being stored concurrently and vanished; retry")
                }
                return InsertResult(id: id, created: false)
            }
        }
    }

    public func image(id: Int64) throws -> ImageRecord? {
        try withConnection { try $0.queryFirst("SELECT \(Self.imageColumns) FROM images WHERE id = $1", [.integer(id)]).map(Self.imageRecord) }
    }

    public func images(ids: [Int64]) throws -> [Int64: ImageRecord] {
        let unique = Array(Set(ids))
        guard !unique.isEmpty else { return [:] }
        return try withConnection { connection in
            var records: [Int64: ImageRecord] = [:]
            for start in stride(from: 0, to: unique.count, by: Self.idChunkSize) {
                let chunk = Array(unique[start..<min(start + Self.idChunkSize, unique.count)])
                for row in try connection.query("SELECT \(Self.imageColumns) FROM images WHERE id IN (\(Self.placeholders(chunk.count)))",
                                                chunk.map { .integer($0) }) {
                    let record = Self.imageRecord(row)
                    records[record.id] = record
                }
            }
            return records
        }
    }

    public func images(ids: [Int64], matching filters: [MetadataFilter]) throws -> [Int64: ImageRecord] {
        guard !filters.isEmpty else { return try images(ids: ids) }
        let unique = Array(Set(ids))
        guard !unique.isEmpty else { return [:] }
        let (condition, conditionValues) = Self.metadataCondition(filters, firstParameter: 1)
        return try withConnection { connection in
            var records: [Int64: ImageRecord] = [:]
            for start in stride(from: 0, to: unique.count, by: Self.idChunkSize) {
                let chunk = Array(unique[start..<min(start + Self.idChunkSize, unique.count)])
                let placeholders = Self.placeholders(chunk.count, from: conditionValues.count + 1)
                for row in try connection.query("SELECT \(Self.imageColumns) FROM images WHERE \(condition) AND id IN (\(placeholders))",
                                                conditionValues + chunk.map { .integer($0) }) {
                    let record = Self.imageRecord(row)
                    records[record.id] = record
                }
            }
            return records
        }
    }

    public func listImages(afterID: Int64, limit: Int, filters: [MetadataFilter]) throws -> [ImageRecord] {
        let (condition, conditionValues) = Self.metadataCondition(filters, firstParameter: 3)
        return try withConnection { connection in
            try connection.query("SELECT \(Self.imageColumns) FROM images WHERE id > $1 AND \(condition) ORDER BY id LIMIT $2",
                                 [.integer(afterID), .int(max(0, limit))] + conditionValues).map(Self.imageRecord)
        }
    }

    /// `MetadataFilter`'s rule in SQL, with its parameters numbered from `firstParameter`. Metadata is
    /// stored as canonical JSON text and read as `json` (not `jsonb`), so a number's text is as stored.
    private static func metadataCondition(_ filters: [MetadataFilter], firstParameter: Int) -> (String, [SQLValue]) {
        guard !filters.isEmpty else { return ("TRUE", []) }
        var clauses: [String] = []
        var values: [SQLValue] = []
        for (index, filter) in filters.enumerated() {
            let key = "$\(firstParameter + 2 * index)", value = "$\(firstParameter + 2 * index + 1)"
            clauses.append("""
                (CASE json_typeof(metadata::json -> \(key)::text) \
                WHEN 'string' THEN (metadata::json ->> \(key)::text) = \(value)::text \
                WHEN 'number' THEN (metadata::json -> \(key)::text)::text = \(value)::text \
                WHEN 'boolean' THEN (metadata::json -> \(key)::text)::text = \(value)::text \
                WHEN 'null' THEN \(value)::text = 'null' ELSE FALSE END)
                """)
            values += [.text(filter.key), .text(filter.value)]
        }
        return (clauses.joined(separator: " AND "), values)
    }

    public func imageContent(id: Int64) throws -> (contentType: String, bytes: [UInt8])? {
        try withConnection { try $0.queryFirst("SELECT content_type, original FROM images WHERE id = $1", [.integer(id)]).map { ($0.string(0), $0.bytes(1)) } }
    }

    /// Removes the image (its codes cascade) and logs the delete in the same transaction.
    public func deleteImage(id: Int64) throws -> Bool {
        try transaction { connection in
            guard try connection.update("DELETE FROM images WHERE id = $1", [.integer(id)]) > 0 else { return false }
            try log([.delete(imageID: id)], in: connection)
            return true
        }
    }

    public func imageCount() throws -> Int {
        try withConnection { try $0.queryFirst("SELECT count(*) FROM images")?.int(0) ?? 0 }
    }

    public func imageCount(afterID: Int64) throws -> Int {
        try withConnection { try $0.queryFirst("SELECT count(*) FROM images WHERE id > $1", [.integer(afterID)])?.int(0) ?? 0 }
    }

    public func maxImageID() throws -> Int64 {
        try withConnection { try $0.queryFirst("SELECT coalesce(max(id), 0) FROM images")?.int64(0) ?? 0 }
    }

    public func imageIDs(through throughID: Int64) throws -> [Int64] {
        try withConnection { try $0.query("SELECT id FROM images WHERE id <= $1 ORDER BY id", [.integer(throughID)]).map { $0.int64(0) } }
    }

    public func codes(modelVersion: Int) throws -> [(imageID: Int64, code: [UInt8])] {
        try withConnection { try $0.query("SELECT image_id, code FROM codes WHERE model_version = $1 ORDER BY image_id", [.int(modelVersion)])
            .map { (imageID: $0.int64(0), code: $0.bytes(1)) } }
    }

    /// Upserts codes, skipping deleted images. Codes of the active version go into the change log
    /// (the active version is read under the log's lock, which activation takes too); codes of a
    /// version still being built are not logged: a follower reads them all when that version activates.
    @discardableResult
    public func putCodes(_ codes: [(imageID: Int64, code: [UInt8])], modelVersion: Int) throws -> Set<Int64> {
        guard !codes.isEmpty else { return [] }
        return try transaction { connection in
            var stored: [(imageID: Int64, code: [UInt8])] = []
            for entry in codes {
                let changed = try connection.update("""
                    INSERT INTO codes (image_id, model_version, code)
                    SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM images WHERE id = $1)
                    ON CONFLICT (image_id, model_version) DO UPDATE SET code = excluded.code
                    """, [.integer(entry.imageID), .int(modelVersion), .blob(entry.code)])
                if changed > 0 { stored.append(entry) }
            }
            try connection.query("SELECT pg_advisory_xact_lock($1)", [.integer(Self.changeLogLock)])
            if try Self.activeVersion(connection) == modelVersion {
                try log(stored.map { .code(imageID: $0.imageID, modelVersion: modelVersion, code: $0.code) }, in: connection)
            }
            return Set(stored.map(\.imageID))
        }
    }

    @discardableResult
    public func deleteCodes(modelVersion: Int) throws -> Int {
        try withConnection { try $0.update("DELETE FROM codes WHERE model_version = $1", [.int(modelVersion)]) }
    }

    public func thumbnails(afterID: Int64, limit: Int) throws -> [(imageID: Int64, thumbnail: [UInt8])] {
        try withConnection { try $0.query("SELECT id, thumbnail FROM images WHERE id > $1 ORDER BY id LIMIT $2", [.integer(afterID), .int(limit)])
            .map { (imageID: $0.int64(0), thumbnail: $0.bytes(1)) } }
    }

    public func thumbnailsMissingCode(modelVersion: Int, afterID: Int64, limit: Int) throws -> [(imageID: Int64, thumbnail: [UInt8])] {
        try withConnection { try $0.query("""
            SELECT id, thumbnail FROM images
            WHERE id > $1 AND NOT EXISTS (SELECT 1 FROM codes WHERE image_id = images.id AND model_version = $2)
            ORDER BY id LIMIT $3
            """, [.integer(afterID), .int(modelVersion), .int(limit)]).map { (imageID: $0.int64(0), thumbnail: $0.bytes(1)) } }
    }

    public func thumbnails(ids: [Int64]) throws -> [(imageID: Int64, thumbnail: [UInt8])] {
        guard !ids.isEmpty else { return [] }
        return try withConnection { connection in
            var byID: [Int64: [UInt8]] = [:]
            for start in stride(from: 0, to: ids.count, by: Self.idChunkSize) {
                let chunk = Array(ids[start..<min(start + Self.idChunkSize, ids.count)])
                for row in try connection.query("SELECT id, thumbnail FROM images WHERE id IN (\(Self.placeholders(chunk.count)))",
                                                chunk.map { .integer($0) }) {
                    byID[row.int64(0)] = row.bytes(1)
                }
            }
            return ids.compactMap { id in byID[id].map { (imageID: id, thumbnail: $0) } }
        }
    }

    // MARK: Models

    private static let modelColumns = "version, kind, bits, config, metrics, status, created_at, trained_through_image_id"

    private static func modelRecord(_ row: PostgresRow, weights: [UInt8]) -> ModelRecord {
        ModelRecord(version: row.int(0), kind: row.string(1), bits: row.int(2), configJSON: row.string(3), weights: weights,
                    metricsJSON: row.optionalString(4), status: ModelStatus(rawValue: row.string(5)) ?? .inactive,
                    createdAt: row.string(6), trainedThroughImageID: row.optionalInt64(7))
    }

    private static func insert(_ model: ModelRecord, into connection: PostgresConnection) throws {
        try connection.update("""
            INSERT INTO models (version, kind, bits, config, weights, metrics, status, created_at, trained_through_image_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce(nullif($8, ''), dsch_now()), $9)
            """, [.int(model.version), .text(model.kind), .int(model.bits), .text(model.configJSON), .blob(model.weights),
                  .optionalText(model.metricsJSON), .text(model.status.rawValue), .text(model.createdAt),
                  model.trainedThroughImageID.map { .integer($0) } ?? .null])
    }

    /// Sets the setting and the statuses, and logs the activation, under the change-log lock.
    private func activate(_ version: Int, in connection: PostgresConnection) throws {
        try connection.query("SELECT pg_advisory_xact_lock($1)", [.integer(Self.changeLogLock)])
        guard try connection.queryFirst("SELECT 1 FROM models WHERE version = $1", [.int(version)]) != nil else {
            throw StoreError.unknownModelVersion(version)
        }
        try connection.update("UPDATE models SET status = 'inactive' WHERE status = 'active' AND version <> $1", [.int(version)])
        try connection.update("UPDATE models SET status = 'active' WHERE version = $1", [.int(version)])
        try connection.update("""
            INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value
            """, [.text(Self.activeModelKey), .text(String(version))])
        try log([.activate(modelVersion: version)], in: connection)
    }

    /// Two replicas starting on an empty database both try; the change-log lock lets one win.
    public func createInitialModel(_ model: ModelRecord) throws -> Bool {
        try transaction { connection in
            try connection.query("SELECT pg_advisory_xact_lock($1)", [.integer(Self.changeLogLock)])
            if try Self.activeVersion(connection) != nil { return false }
            try Self.insert(model, into: connection)
            try activate(model.version, in: connection)
            return true
        }
    }

    public func insertModel(_ model: ModelRecord, forJob jobID: Int64, progress: Double, message: String) throws {
        try transaction { connection in
            try Self.insert(model, into: connection)
            let changed = try connection.update("UPDATE jobs SET model_version = $1, progress = $2, message = $3 WHERE id = $4",
                                                [.int(model.version), .real(progress), .text(message), .integer(jobID)])
            if changed == 0 { throw StoreError.unknownJob(jobID) }
        }
    }

    public func model(version: Int) throws -> ModelRecord? {
        try withConnection { try $0.queryFirst("SELECT \(Self.modelColumns), weights FROM models WHERE version = $1", [.int(version)])
            .map { Self.modelRecord($0, weights: $0.bytes(8)) } }
    }

    public func models() throws -> [ModelRecord] {
        try withConnection { try $0.query("SELECT \(Self.modelColumns) FROM models ORDER BY version DESC").map { Self.modelRecord($0, weights: []) } }
    }

    public func maxModelVersion() throws -> Int {
        try withConnection { try $0.queryFirst("SELECT coalesce(max(version), 0) FROM models")?.int(0) ?? 0 }
    }

    public func pruneCodes(modelVersion: Int) throws {
        try transaction { connection in
            if try Self.activeVersion(connection) == modelVersion { throw StoreError.modelIsActive(modelVersion) }
            try connection.update("DELETE FROM codes WHERE model_version = $1", [.int(modelVersion)])
            if try connection.update("UPDATE models SET status = 'pruned' WHERE version = $1", [.int(modelVersion)]) == 0 {
                throw StoreError.unknownModelVersion(modelVersion)
            }
        }
    }

    @discardableResult
    public func deleteModel(version: Int) throws -> Bool {
        try transaction { connection in
            if try Self.activeVersion(connection) == version { throw StoreError.modelIsActive(version) }
            try connection.update("DELETE FROM codes WHERE model_version = $1", [.int(version)])
            return try connection.update("DELETE FROM models WHERE version = $1", [.int(version)]) > 0
        }
    }

    public func activeModelVersion() throws -> Int? {
        try withConnection { try Self.activeVersion($0) }
    }

    /// One transaction every replica follows through its `activate` change-log row.
    public func setActiveModelVersion(_ version: Int) throws {
        try transaction { try activate(version, in: $0) }
    }

    // MARK: Jobs

    private static let jobColumns = "id, kind, status, progress, message, config, model_version, created_at, started_at, finished_at, result"

    private static func jobRecord(_ row: PostgresRow) -> JobRecord {
        JobRecord(id: row.int64(0), kind: row.string(1), status: JobStatus(rawValue: row.string(2)) ?? .failed, progress: row.double(3),
                  message: row.optionalString(4), configJSON: row.optionalString(5), modelVersion: row.optionalInt(6),
                  createdAt: row.string(7), startedAt: row.optionalString(8), finishedAt: row.optionalString(9),
                  resultJSON: row.optionalString(10))
    }

    public func recordJobResult(id: Int64, resultJSON: String) throws {
        try withConnection { _ = try $0.update("UPDATE jobs SET result = $1 WHERE id = $2", [.text(resultJSON), .integer(id)]) }
    }

    /// An unowned queued job; `claimJob` is what the worker uses. Fails (unique violation) while
    /// another job is unfinished.
    public func createJob(kind: String, configJSON: String?) throws -> Int64 {
        try withConnection { try $0.queryFirst("INSERT INTO jobs (kind, status, config) VALUES ($1, 'queued', $2) RETURNING id",
                                     [.text(kind), .optionalText(configJSON)])?.int64(0) ?? 0 }
    }

    /// Fails abandoned jobs first (a dead replica must not block retraining forever), then inserts;
    /// the partial unique index `one_unfinished_job` turns a concurrent second claim into `busy`.
    public func claimJob(kind: String, configJSON: String?) throws -> JobClaim {
        try failAbandonedJobs(reason: Self.abandonedReason)
        do {
            let id = try withConnection { try $0.queryFirst("""
                INSERT INTO jobs (kind, status, config, owner, lease_expires_at)
                VALUES ($1, 'queued', $2, $3, now() + make_interval(secs => $4)) RETURNING id
                """, [.text(kind), .optionalText(configJSON), .text(replicaID), .real(jobLeaseSeconds)])?.int64(0) ?? 0 }
            return .claimed(jobID: id)
        } catch let error as PostgresError where error.sqlState == "23505" {
            guard let running = try withConnection({ try $0.queryFirst("SELECT id FROM jobs WHERE status IN ('queued', 'running') ORDER BY id LIMIT 1") }) else {
                // The other job finished between the insert and this read; the caller may simply ask again.
                return try claimJob(kind: kind, configJSON: configJSON)
            }
            return .busy(jobID: running.int64(0))
        }
    }

    static let abandonedReason = "abandoned: the replica running the job stopped renewing its lease"

    public func renewJobLease(id: Int64) throws -> Bool {
        try withConnection { try $0.update("""
            UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
            WHERE id = $1 AND owner = $2 AND status IN ('queued', 'running')
            """, [.integer(id), .text(replicaID), .real(jobLeaseSeconds)]) > 0 }
    }

    public func jobs(limit: Int) throws -> [JobRecord] {
        try withConnection { try $0.query("SELECT \(Self.jobColumns) FROM jobs ORDER BY id DESC LIMIT $1", [.int(limit)]).map(Self.jobRecord) }
    }

    public func job(id: Int64) throws -> JobRecord? {
        try withConnection { try $0.queryFirst("SELECT \(Self.jobColumns) FROM jobs WHERE id = $1", [.integer(id)]).map(Self.jobRecord) }
    }

    public func updateJob(id: Int64, status: JobStatus?, progress: Double?, message: String?, modelVersion: Int?) throws {
        let changed = try withConnection { try $0.update("""
            UPDATE jobs SET
                status = coalesce($1, status),
                progress = coalesce($2::double precision, progress),
                message = coalesce($3, message),
                model_version = coalesce($4::integer, model_version),
                started_at = CASE WHEN $1 = 'running' AND started_at IS NULL THEN dsch_now() ELSE started_at END,
                finished_at = CASE WHEN $1 IN ('succeeded', 'failed') THEN dsch_now() ELSE finished_at END
            WHERE id = $5
            """, [.optionalText(status?.rawValue), progress.map { .real($0) } ?? .null, .optionalText(message),
                  .optionalInt(modelVersion), .integer(id)]) }
        if changed == 0 { throw StoreError.unknownJob(id) }
    }

    /// With replicas, a job left unfinished may belong to a live replica: only jobs whose lease expired
    /// (or that never had an owner) are failed, exactly as `failAbandonedJobs` does.
    @discardableResult
    public func failInterruptedJobs(reason: String) throws -> [JobRecord] {
        try failAbandonedJobs(reason: reason)
    }

    @discardableResult
    public func failAbandonedJobs(reason: String) throws -> [JobRecord] {
        try transaction { connection in
            // A job whose model went live before its replica stopped did its work; only closing it was lost.
            if let active = try Self.activeVersion(connection) {
                try connection.update("""
                    UPDATE jobs SET status = 'succeeded', progress = 1, message = $1, finished_at = dsch_now()
                    WHERE status IN ('queued', 'running') AND (lease_expires_at IS NULL OR lease_expires_at < now()) AND model_version = $2
                    """, [.text(StoreMessages.activatedBeforeStop(active)), .int(active)])
            }
            let jobs = try connection.query("""
                UPDATE jobs SET status = 'failed', message = $1, finished_at = dsch_now()
                WHERE status IN ('queued', 'running') AND (lease_expires_at IS NULL OR lease_expires_at < now())
                RETURNING \(Self.jobColumns)
                """, [.text(reason)]).map(Self.jobRecord)
            let active = try Self.activeVersion(connection)
            for version in Set(jobs.compactMap(\.modelVersion)) where version != active {
                try connection.update("DELETE FROM codes WHERE model_version = $1", [.int(version)])
                try connection.update("DELETE FROM models WHERE version = $1 AND status = 'building'", [.int(version)])
            }
            return jobs.sorted { $0.id < $1.id }
        }
    }

    public func jobCounts() throws -> [JobStatus: Int] {
        try withConnection { connection in
            var counts: [JobStatus: Int] = [:]
            for row in try connection.query("SELECT status, count(*) FROM jobs GROUP BY status") {
                if let status = JobStatus(rawValue: row.string(0)) { counts[status] = row.int(1) }
            }
            return counts
        }
    }

    // MARK: ChangeFeed

    public func latestChangeSequence() throws -> Int64 {
        try withConnection { try $0.queryFirst("SELECT coalesce(max(sequence), 0) FROM change_log")?.int64(0) ?? 0 }
    }

    public func oldestRetainedSequence() throws -> Int64 {
        try withConnection { try $0.queryFirst("SELECT coalesce(min(sequence), 0) FROM change_log")?.int64(0) ?? 0 }
    }

    public func pendingChangeCount(after sequence: Int64) throws -> Int {
        try withConnection { connection in
            try connection.queryFirst("SELECT count(*) FROM change_log WHERE sequence > $1 AND (kind <> 'code' OR origin <> $2)",
                                      [.integer(sequence), .text(replicaID)])?.int(0) ?? 0
        }
    }

    /// Other replicas' codes, and every delete and activation: applying this replica's own deletes
    /// again keeps a late remote code from resurrecting an image this replica already removed.
    public func changes(after sequence: Int64, limit: Int) throws -> [LoggedChange] {
        try withConnection { connection in
            try connection.query("""
                SELECT sequence, kind, image_id, model_version, code FROM change_log
                WHERE sequence > $1 AND (kind <> 'code' OR origin <> $2)
                ORDER BY sequence LIMIT $3
                """, [.integer(sequence), .text(replicaID), .int(limit)]).compactMap { row in
                let change: Change
                switch row.string(1) {
                case "code": change = .code(imageID: row.int64(2), modelVersion: row.int(3), code: row.bytes(4))
                case "delete": change = .delete(imageID: row.int64(2))
                case "activate": change = .activate(modelVersion: row.int(3))
                default: return nil
                }
                return LoggedChange(sequence: row.int64(0), change: change)
            }
        }
    }

    /// Waits on a dedicated `LISTEN` connection, reconnecting it when it broke. Notifications sent while
    /// it was down are lost, which is why followers read the log after every wait, woken or not.
    public func waitForChanges(timeout: TimeInterval) throws -> Bool {
        let connection: PostgresConnection = try listenLock.withLock {
            if let listener, listener.checkAlive() { return listener }
            listener?.close()
            listener = nil
            let fresh = try PostgresConnection(url: url)
            try fresh.execute("LISTEN \(Self.channel)")
            listener = fresh
            return fresh
        }
        do {
            return try connection.waitForNotification(timeout: timeout)
        } catch {
            listenLock.withLock {
                if listener === connection { listener?.close(); listener = nil }
            }
            throw error
        }
    }

    /// Deletes change-log rows older than `age` seconds; followers that were away longer reload.
    @discardableResult
    public func pruneChanges(olderThan age: TimeInterval) throws -> Int {
        try withConnection { try $0.update("DELETE FROM change_log WHERE created_at < now() - make_interval(secs => $1)", [.real(age)]) }
    }
}

/// Connections opened on demand up to `maximum`, handed to one caller at a time; one that broke is
/// dropped instead of returned, so the next caller reconnects.
private final class PostgresPool: @unchecked Sendable {
    private let url: String
    private let maximum: Int
    private let condition = NSCondition()
    private var idle: [PostgresConnection] = []
    private var opened = 0
    private var isClosed = false

    init(url: String, maximum: Int) { self.url = url; self.maximum = maximum }

    func withConnection<Result>(_ body: (PostgresConnection) throws -> Result) throws -> Result {
        let connection = try checkOut()
        do {
            let result = try body(connection)
            checkIn(connection)
            return result
        } catch {
            checkIn(connection)
            throw error
        }
    }

    private func checkOut() throws -> PostgresConnection {
        condition.lock()
        while idle.isEmpty && opened >= maximum && !isClosed { condition.wait() }
        if isClosed {
            condition.unlock()
            throw StorageUnavailableError(reason: "the store is closed")
        }
        while let connection = idle.popLast() {
            if connection.checkAlive() {
                condition.unlock()
                return connection
            }
            connection.close()
            opened -= 1
        }
        opened += 1
        condition.unlock()
        do {
            return try PostgresConnection(url: url)
        } catch {
            condition.lock()
            opened -= 1
            condition.signal()
            condition.unlock()
            throw error
        }
    }

    private func checkIn(_ connection: PostgresConnection) {
        condition.lock()
        if isClosed || !connection.isHealthy {
            connection.close()
            opened -= 1
        } else {
            idle.append(connection)
        }
        condition.signal()
        condition.unlock()
    }

    func closeAll() {
        condition.lock()
        isClosed = true
        for connection in idle { connection.close() }
        opened -= idle.count
        idle.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}
