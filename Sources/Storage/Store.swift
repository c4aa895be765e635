import Foundation

/// The application's repositories over one SQLite file (API contract; implementation pending).
/// Writes go through one connection on one serial queue; reads use their own connection.

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
    public var description: String { fatalError("pending") }
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

/// A model version row.
public struct ModelRecord: Equatable, Sendable {
    public var version: Int
    public var kind: String
    public var bits: Int
    public var configJSON: String
    public var weights: [UInt8]
    public var metricsJSON: String?
    public var status: String
    public var createdAt: String
    public init(version: Int, kind: String, bits: Int, configJSON: String, weights: [UInt8], metricsJSON: String?, status: String, createdAt: String) {
        self.version = version; self.kind = kind; self.bits = bits; self.configJSON = configJSON; self.weights = weights
        self.metricsJSON = metricsJSON; self.status = status; self.createdAt = createdAt
    }
}

/// The result of an insert: the id, and whether a new row was made (false for identical bytes).
public struct InsertResult: Equatable, Sendable {
    public var id: Int64
    public var created: Bool
    public init(id: Int64, created: Bool) { self.id = id; self.created = created }
}

/// The database of the service: images, codes, models, jobs and settings in one file.
public final class Store: @unchecked Sendable {
    /// Opens (creating if needed) the file, turns on WAL and foreign keys, applies the bundled migrations.
    public init(path: String) throws { fatalError("pending") }
    public let path: String = ""
    /// Closes both connections after pending writes finish.
    public func close() { fatalError("pending") }

    // Images and codes
    /// Inserts image and its code in one transaction; identical sha256 returns the existing id.
    public func insertImage(_ image: NewImage, code: [UInt8], modelVersion: Int) throws -> InsertResult { fatalError("pending") }
    public func image(id: Int64) throws -> ImageRecord? { fatalError("pending") }
    public func images(ids: [Int64]) throws -> [Int64: ImageRecord] { fatalError("pending") }
    /// Content type and original bytes.
    public func imageContent(id: Int64) throws -> (contentType: String, bytes: [UInt8])? { fatalError("pending") }
    /// Removes the image and all its codes; false when the id is unknown.
    public func deleteImage(id: Int64) throws -> Bool { fatalError("pending") }
    public func imageCount() throws -> Int { fatalError("pending") }
    /// Every (image id, code bytes) stored for a model version, by id.
    public func codes(modelVersion: Int) throws -> [(imageID: Int64, code: [UInt8])] { fatalError("pending") }
    /// Stores codes for a model version (upsert), in one transaction.
    public func putCodes(_ codes: [(imageID: Int64, code: [UInt8])], modelVersion: Int) throws { fatalError("pending") }
    /// Thumbnails of images with id greater than `afterID`, by id, at most `limit`.
    public func thumbnails(afterID: Int64, limit: Int) throws -> [(imageID: Int64, thumbnail: [UInt8])] { fatalError("pending") }

    // Models and settings
    public func insertModel(_ model: ModelRecord) throws { fatalError("pending") }
    public func model(version: Int) throws -> ModelRecord? { fatalError("pending") }
    /// All models without weights, newest first.
    public func models() throws -> [ModelRecord] { fatalError("pending") }
    public func activeModelVersion() throws -> Int? { fatalError("pending") }
    public func setActiveModelVersion(_ version: Int) throws { fatalError("pending") }

    /// `PRAGMA integrity_check`'s answer ("ok" when healthy).
    public func integrityCheck() throws -> String { fatalError("pending") }
}
