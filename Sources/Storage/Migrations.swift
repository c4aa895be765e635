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

/// Brings a database's schema up to date and refuses databases the code cannot vouch for.
public enum MigrationRunner {
    /// The migrations shipped in this target's `Migrations` resource folder, in id order.
    public static func bundledMigrations() throws -> [Migration] {
        guard let directory = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw MigrationError.missingResources
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
        return try names.map { name in
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            return try Migration(fileName: name, sql: text)
        }.sorted { $0.id < $1.id }
    }

    /// Applies the migrations of `migrations` not yet recorded in `schema_migrations`, in id order,
    /// each in its own `BEGIN IMMEDIATE` transaction together with its record.
    /// Checks every recorded migration first: one whose text changed (`editedAfterApply`) or whose id
    /// the code does not know (`unknownAppliedMigration`, a database from a newer build) stops start-up
    /// before anything is applied. Returns the ids applied now.
    /// A migration's SQL must not contain BEGIN/COMMIT itself: the runner wraps it.
    @discardableResult
    public static func migrate(_ database: Database, migrations: [Migration]) throws -> [Int] {
        let ordered = migrations.sorted { $0.id < $1.id }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where previous.id == next.id {
            throw MigrationError.duplicateID(next.id)
        }
        try database.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                checksum TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )
            """)
        let applied = try database.query("SELECT id, checksum FROM schema_migrations ORDER BY id") {
            (id: $0.int(0), checksum: $0.string(1))
        }
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
                try database.transaction {
                    try database.execute(migration.sql)
                    try database.run("INSERT INTO schema_migrations (id, name, checksum) VALUES (?, ?, ?)",
                                     [.int(migration.id), .text(migration.name), .text(migration.checksum)])
                }
            } catch let error as DatabaseError {
                throw MigrationError.failed(id: migration.id, name: migration.name, underlying: error)
            }
            newlyApplied.append(migration.id)
        }
        if !newlyApplied.isEmpty {
            // A migration may have dropped or altered a referenced table; catch that now, not on first use.
            let violations = try database.query("PRAGMA foreign_key_check") { $0.string(0) }
            if let table = violations.first { throw MigrationError.foreignKeyViolation(table: table) }
        }
        return newlyApplied
    }
}
