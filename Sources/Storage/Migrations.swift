import Foundation

/// One schema change: `NNNN_name.sql`, identified by its number, never edited once applied.
public struct Migration: Equatable, Sendable {
    public let id: Int
    public let name: String
    public let sql: String
    /// SHA-256 hex of the SQL text, recorded when applied and compared at every start-up.
    public var checksum: String { SHA256.hexDigest(Array(sql.utf8)) }

    public init(id: Int, name: String, sql: String) {
        self.id = id; self.name = name; self.sql = sql
    }

    /// Parses `NNNN_name.sql` (digits, an underscore, a name, `.sql`).
    public init(fileName: String, sql: String) throws {
        guard fileName.hasSuffix(".sql") else { throw MigrationError.badFileName(fileName) }
        let stem = fileName.dropLast(4)
        guard let underscore = stem.firstIndex(of: "_"),
              let id = Int(stem[..<underscore]), id > 0,
              stem[..<underscore].allSatisfy(\.isASCII),
              stem.index(after: underscore) < stem.endIndex else {
            throw MigrationError.badFileName(fileName)
        }
        self.init(id: id, name: String(stem[stem.index(after: underscore)...]), sql: sql)
    }
}

/// A database the migration runner can bring up to date: SQLite's `Database` and PostgreSQL's
/// `PostgresConnection` implement it, so both engines share one runner and one set of rules.
public protocol MigrationTarget {
    /// Creates `schema_migrations` (id, name, checksum, applied_at) when it does not exist yet.
    func createMigrationTableIfMissing() throws
    /// The recorded migrations, by id.
    func appliedMigrations() throws -> [(id: Int, checksum: String)]
    /// Runs the migration's SQL and records it in `schema_migrations`, in one transaction.
    func apply(_ migration: Migration) throws
    /// Checks the schema once new migrations were applied (SQLite: dangling foreign keys).
    func verifyAfterMigrating() throws
}

/// Brings a database's schema up to date and refuses databases the code cannot vouch for.
public enum MigrationRunner {
    /// The migrations shipped in this target's `Migrations` resource folder, in id order.
    public static func bundledMigrations() throws -> [Migration] {
        try bundledMigrations(folder: "Migrations")
    }

    /// The migrations of one resource folder of this target (`Migrations` for SQLite,
    /// `PostgresMigrations` for PostgreSQL), in id order.
    public static func bundledMigrations(folder: String) throws -> [Migration] {
        guard let directory = Bundle.module.url(forResource: folder, withExtension: nil) else {
            throw MigrationError.missingResources(folder: folder)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
        return try names.map { name in
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            return try Migration(fileName: name, sql: text)
        }.sorted { $0.id < $1.id }
    }

    /// Applies the migrations of `migrations` not yet recorded in `schema_migrations`, in id order,
    /// each in its own transaction together with its record.
    /// Checks every recorded migration first: one whose text changed (`editedAfterApply`) or whose id
    /// the code does not know (`unknownAppliedMigration`, a database from a newer build) stops start-up
    /// before anything is applied. Returns the ids applied now.
    /// A migration's SQL must not contain BEGIN/COMMIT itself: the runner wraps it.
    @discardableResult
    public static func migrate(_ target: MigrationTarget, migrations: [Migration]) throws -> [Int] {
        let ordered = migrations.sorted { $0.id < $1.id }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where previous.id == next.id {
            throw MigrationError.duplicateID(next.id)
        }
        try target.createMigrationTableIfMissing()
        let applied = try target.appliedMigrations()
        let known = Dictionary(uniqueKeysWithValues: ordered.map { ($0.id, $0) })
        for record in applied {
            guard let migration = known[record.id] else { throw MigrationError.unknownAppliedMigration(id: record.id) }
            if migration.checksum != record.checksum {
                throw MigrationError.editedAfterApply(id: migration.id, name: migration.name)
            }
        }
        let appliedIDs = Set(applied.map(\.id))
        var newlyApplied: [Int] = []
        for migration in ordered where !appliedIDs.contains(migration.id) {
            do {
                try target.apply(migration)
            } catch let error as MigrationError {
                throw error
            } catch {
                throw MigrationError.failed(id: migration.id, name: migration.name, underlying: error)
            }
            newlyApplied.append(migration.id)
        }
        if !newlyApplied.isEmpty { try target.verifyAfterMigrating() }
        return newlyApplied
    }
}

extension Database: MigrationTarget {
    public func createMigrationTableIfMissing() throws {
        try execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                checksum TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )
            """)
    }

    public func appliedMigrations() throws -> [(id: Int, checksum: String)] {
        try query("SELECT id, checksum FROM schema_migrations ORDER BY id") { (id: $0.int(0), checksum: $0.string(1)) }
    }

    /// `BEGIN IMMEDIATE`, the SQL, the record, `COMMIT`.
    public func apply(_ migration: Migration) throws {
        try transaction {
            try execute(migration.sql)
            try run("INSERT INTO schema_migrations (id, name, checksum) VALUES (?, ?, ?)",
                    [.int(migration.id), .text(migration.name), .text(migration.checksum)])
        }
    }

    /// A migration may have dropped or altered a referenced table; catch that now, not on first use.
    public func verifyAfterMigrating() throws {
        let violations = try query("PRAGMA foreign_key_check") { $0.string(0) }
        if let table = violations.first { throw MigrationError.foreignKeyViolation(table: table) }
    }
}
