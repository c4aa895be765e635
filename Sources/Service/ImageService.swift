import Foundation
import Hashing
import HammingIndex
import Imaging
import Storage

/// The result of indexing one upload.
public struct IngestResult: Sendable {
    public var record: ImageRecord
    /// False when identical bytes were already stored (the existing id is returned).
    public var created: Bool
    public var code: String
    public var modelVersion: Int
}

/// One search hit with the stored image's metadata.
public struct SearchHit: Sendable {
    public var neighbor: Neighbor
    public var record: ImageRecord
}

/// The application without HTTP: ingest, lookup, delete and search over the store and the active model.
public final class ImageService: @unchecked Sendable {
    public let configuration: Configuration
    public let store: Store
    let logger: Logger
    private let modelLock = NSLock()
    private var serving: ServingModel
    /// A model being built by a retrain; deletes reach it too, so it never serves a deleted image.
    private var building: ServingModel?
    /// Ingest holds the read side while it encodes and stores under the current version; a model swap
    /// takes the write side, so no upload is stored under a version that is no longer served.
    private var ingestGate = pthread_rwlock_t()

    /// Opens the database, makes the cold-start model if there is none, and loads the active model's index.
    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let directory = URL(fileURLWithPath: configuration.database.path).deletingLastPathComponent().path
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        store = try Store(path: configuration.database.path)
        pthread_rwlock_init(&ingestGate, nil)
        serving = try ImageService.loadActiveModel(store: store, configuration: configuration, logger: logger)
    }

    deinit { pthread_rwlock_destroy(&ingestGate) }

    /// The model currently answering searches.
    public var currentModel: ServingModel {
        modelLock.lock()
        defer { modelLock.unlock() }
        return serving
    }

    /// Closes the database.
    public func close() { store.close() }

    // MARK: Ingest

    /// Decodes, thumbnails, encodes and stores one upload; identical bytes return the existing image.
    public func ingest(bytes: [UInt8], metadataJSON: String?) throws -> IngestResult {
        let thumbnail = try decodeThumbnail(bytes)
        let format = ImageFormat.detect(bytes)!
        let image = try ImageDecoder.info(bytes, limits: decodeLimits)
        let sha256 = SHA256.hexDigest(bytes)
        pthread_rwlock_rdlock(&ingestGate)
        defer { pthread_rwlock_unlock(&ingestGate) }
        let model = currentModel
        let code = model.codes(for: [thumbnail])[0]
        let newImage = NewImage(sha256: sha256, contentType: format.mimeType, width: image.width, height: image.height,
                                original: bytes, thumbnail: thumbnail, metadataJSON: metadataJSON)
        let inserted = try store.insertImage(newImage, code: BinaryCode.bytes(code, bits: model.bits), modelVersion: model.version)
        guard let record = try store.image(id: inserted.id) else {
            throw ServiceError.unavailable("image \(inserted.id) vanished while it was being indexed; retry")
        }
        let storedCode = inserted.created ? code : (model.code(for: inserted.id) ?? code)
        if inserted.created { try model.add(id: inserted.id, code: code) }
        return IngestResult(record: record, created: inserted.created, code: BinaryCode.hex(storedCode, bits: model.bits), modelVersion: model.version)
    }

    /// The thumbnail the encoders read: the whole image resampled to `inputSize`², RGB bytes.
    public func decodeThumbnail(_ bytes: [UInt8]) throws -> [UInt8] {
        guard ImageFormat.detect(bytes) != nil else { throw ServiceError.from(ImagingError.unsupportedFormat) }
        do {
            let size = configuration.images.inputSize
            return try ImageDecoder.decode(bytes, limits: decodeLimits).resized(width: size, height: size).pixels
        } catch let error as ImagingError {
            throw ServiceError.from(error)
        }
    }

    private var decodeLimits: DecodeLimits {
        DecodeLimits(maxBytes: configuration.images.maxBytes, maxPixels: configuration.images.maxPixels)
    }

    // MARK: Lookup and delete

    public func image(id: Int64) throws -> ImageRecord {
        guard let record = try store.image(id: id) else { throw ServiceError.notFound("no image with id \(id)") }
        return record
    }

    public func content(id: Int64) throws -> (contentType: String, bytes: [UInt8]) {
        guard let content = try store.imageContent(id: id) else { throw ServiceError.notFound("no image with id \(id)") }
        return content
    }

    /// Removes the image from the database and from the index.
    public func delete(id: Int64) throws {
        pthread_rwlock_rdlock(&ingestGate)
        defer { pthread_rwlock_unlock(&ingestGate) }
        guard try store.deleteImage(id: id) else { throw ServiceError.notFound("no image with id \(id)") }
        modelLock.lock()
        let models = [serving, building].compactMap { $0 }
        modelLock.unlock()
        for model in models { model.remove(id: id) }
    }

    // MARK: Search

    /// Nearest stored images to a stored image, leaving the image itself out.
    public func similar(to id: Int64, k: Int, maxDistance: Int?) throws -> (model: ServingModel, hits: [SearchHit]) {
        let model = currentModel
        guard let code = model.code(for: id) else {
            _ = try image(id: id)
            throw ServiceError.unavailable("image \(id) has no code under model version \(model.version) yet; retry shortly")
        }
        return (model, try hits(model: model, code: code, k: k, maxDistance: maxDistance, excluding: id))
    }

    /// Nearest stored images to an uploaded image that is not stored.
    public func search(bytes: [UInt8], k: Int, maxDistance: Int?) throws -> (model: ServingModel, code: [UInt64], hits: [SearchHit]) {
        let thumbnail = try decodeThumbnail(bytes)
        let model = currentModel
        let code = model.codes(for: [thumbnail])[0]
        return (model, code, try hits(model: model, code: code, k: k, maxDistance: maxDistance, excluding: nil))
    }

    private func hits(model: ServingModel, code: [UInt64], k: Int, maxDistance: Int?, excluding: Int64?) throws -> [SearchHit] {
        let neighbors = try model.search(code, k: k, maxDistance: maxDistance, excluding: excluding)
        let records = try store.images(ids: neighbors.map(\.id))
        // An image deleted between the index read and the metadata read is simply left out.
        return neighbors.compactMap { neighbor in records[neighbor.id].map { SearchHit(neighbor: neighbor, record: $0) } }
    }

    // MARK: Models

    /// Registers the model a retrain is filling, so that deletes reach it (nil when done).
    func setBuilding(_ model: ServingModel?) {
        modelLock.lock()
        building = model
        modelLock.unlock()
    }

    /// Makes `model` the one answering searches: catches up with every upload stored meanwhile, then, with
    /// uploads held back for that moment only, stores the switch and swaps the in-memory model.
    func activate(_ model: ServingModel, afterID: Int64 = 0) throws {
        try ImageService.catchUp(model: model, store: store, logger: logger, afterID: afterID)
        pthread_rwlock_wrlock(&ingestGate)
        defer { pthread_rwlock_unlock(&ingestGate) }
        try ImageService.catchUp(model: model, store: store, logger: logger, afterID: afterID)
        try store.setActiveModelVersion(model.version)
        modelLock.lock()
        serving = model
        if building === model { building = nil }
        modelLock.unlock()
        logger.info("model activated", [("version", "\(model.version)"), ("kind", model.encoder.kind), ("codes", "\(model.count)")])
    }

    /// A serving model for a stored version, its index filled from stored codes plus any missing ones.
    func loadModel(version: Int) throws -> ServingModel {
        guard let record = try store.model(version: version) else { throw ServiceError.notFound("no model version \(version)") }
        let model = try ServingModel(version: version, encoder: EncoderFactory.encoder(kind: record.kind, weights: record.weights))
        try ImageService.fill(model, store: store)
        return model
    }

    /// Loads the active model (making the cold-start LSH model first if the database has none) and
    /// fills its index, encoding any image that has no code under it yet.
    static func loadActiveModel(store: Store, configuration: Configuration, logger: Logger) throws -> ServingModel {
        var version = try store.activeModelVersion()
        if version == nil {
            let encoder = LSHEncoder(bits: configuration.model.bits, inputSize: configuration.images.inputSize, seed: UInt64(configuration.model.lshSeed))
            let record = ModelRecord(version: 1, kind: encoder.kind, bits: encoder.bits,
                                     configJSON: "{\"seed\":\(encoder.seed),\"inputSize\":\(encoder.inputSize)}",
                                     weights: try encoder.serialized(), metricsJSON: nil, status: "active", createdAt: "")
            try store.insertModel(record)
            try store.setActiveModelVersion(1)
            logger.info("created cold-start model", [("version", "1"), ("kind", "lsh"), ("bits", "\(encoder.bits)")])
            version = 1
        }
        guard let active = version, let record = try store.model(version: active) else {
            throw ServiceError.unavailable("the active model version is missing from the database")
        }
        let model = try ServingModel(version: active, encoder: EncoderFactory.encoder(kind: record.kind, weights: record.weights))
        try fill(model, store: store)
        try catchUp(model: model, store: store, logger: logger)
        logger.info("model loaded", [("version", "\(active)"), ("kind", record.kind), ("bits", "\(model.bits)"), ("codes", "\(model.count)")])
        return model
    }

    /// Adds every stored code of the model's version to its index.
    static func fill(_ model: ServingModel, store: Store) throws {
        for (imageID, bytes) in try store.codes(modelVersion: model.version) {
            guard let code = BinaryCode.words(bytes, bits: model.bits) else { continue }
            try model.add(id: imageID, code: code)
        }
    }

    /// Encodes images stored without a code under `model` (for example uploads that raced a model
    /// switch), in pages, storing the codes and adding them to the index.
    static func catchUp(model: ServingModel, store: Store, logger: Logger, afterID: Int64 = 0) throws {
        guard try store.imageCount() != model.count else { return }
        var cursor = afterID
        var encoded = 0
        while true {
            let page = try store.thumbnails(afterID: cursor, limit: 512)
            guard let last = page.last else { break }
            cursor = last.imageID
            let missing = page.filter { model.code(for: $0.imageID) == nil }
            if missing.isEmpty { continue }
            let codes = model.codes(for: missing.map(\.thumbnail))
            try store.putCodes(zip(missing, codes).map { (imageID: $0.0.imageID, code: BinaryCode.bytes($0.1, bits: model.bits)) },
                               modelVersion: model.version)
            for (item, code) in zip(missing, codes) { try model.add(id: item.imageID, code: code) }
            encoded += missing.count
        }
        if encoded > 0 { logger.info("encoded images missing a code", [("version", "\(model.version)"), ("images", "\(encoded)")]) }
    }
}
