import Foundation
import Storage

/// Work on a database file without serving it: backups and the duplicate report of `dsch duplicates`.
/// Both are safe while a server has the same file open (SQLite WAL: readers never block the writer).
public enum Maintenance {
    /// Why a maintenance command refused to run.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Opens a database that must already exist: a mistyped path is an error, not a new empty file.
    /// A PostgreSQL URI opens the shared database of the replicas.
    static func openExisting(_ path: String) throws -> ServiceStore {
        if Configuration.Database.isPostgresURI(path) { return try PostgresStore(url: path) }
        return try Store(path: try existingFile(path))
    }

    /// `path` when a file is there: a mistyped path must not become a new, empty database.
    private static func existingFile(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw Failure(description: "no database at \(path); pass --database FILE (the file dsch serve uses)")
        }
        return path
    }

    /// Writes a consistent copy of the database at `databasePath` to the new file `output` (`VACUUM
    /// INTO`) while the service may keep running; returns the copy's size in bytes. Restoring is
    /// starting the service with `--database output`.
    @discardableResult
    public static func backup(databasePath: String, to output: String) throws -> Int {
        guard !FileManager.default.fileExists(atPath: output) else {
            throw Failure(description: "\(output) exists; a backup writes only a new file, so choose another name or remove it")
        }
        guard !Configuration.Database.isPostgresURI(databasePath) else {
            throw Failure(description: "dsch backup copies SQLite files; back up a PostgreSQL database with pg_dump or its replication")
        }
        let store = try Store(path: try existingFile(databasePath))
        defer { store.close() }
        try store.backup(to: output)
        let attributes = try FileManager.default.attributesOfItem(atPath: output)
        return (attributes[.size] as? NSNumber)?.intValue ?? 0
    }

    /// The duplicate groups of the active model's stored codes, as `/v1/duplicates` computes them, with
    /// each member's sha256 for the CSV.
    public static func duplicateReport(databasePath: String, maxDistance: Int) throws -> DuplicateReport {
        let store = try openExisting(databasePath)
        defer { store.close() }
        let (version, index) = try DuplicateGroups.activeIndex(store: store)
        guard (0...index.bits).contains(maxDistance) else {
            throw Failure(description: "--max-distance must be an integer from 0 to \(index.bits), the code length of model version \(version)")
        }
        let groups = try DuplicateGroups.find(in: index, maxDistance: maxDistance)
        let records = try store.images(ids: groups.flatMap { $0.members.map(\.id) })
        return DuplicateReport(modelVersion: version, maxDistance: maxDistance, groups: groups, sha256: records.mapValues(\.sha256))
    }
}

/// Duplicate groups of a database, ready to print or write as CSV.
public struct DuplicateReport: Sendable {
    public var modelVersion: Int
    public var maxDistance: Int
    public var groups: [DuplicateGroup]
    /// The digest of every grouped image.
    public var sha256: [Int64: String]

    /// `group,id,sha256,distance`: groups numbered from 1 in report order (largest first), members by id,
    /// distance to the group's first image.
    public var csv: String {
        var lines = ["group,id,sha256,distance"]
        for (number, group) in groups.enumerated() {
            for member in group.members {
                lines.append("\(number + 1),\(member.id),\(sha256[member.id] ?? ""),\(member.distanceToFirst)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
