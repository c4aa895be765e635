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

/// One image of a batch upload: the bytes as received and optional metadata JSON.
public struct Upload: Sendable {
    public var bytes: [UInt8]
    public var metadataJSON: String?
    public init(bytes: [UInt8], metadataJSON: String?) { self.bytes = bytes; self.metadataJSON = metadataJSON }
}

/// An upload decoded, thumbnailed and hashed, ready to be encoded and stored, or why it cannot be.
public struct PreparedUpload: Sendable {
    let image: Result<NewImage, ServiceError>
}

/// What became of one image of a batch.
public enum BatchIngestOutcome: Equatable, Sendable {
    /// Stored under `id`; `created` is false when identical bytes were stored before (or earlier in the batch).
    case stored(id: Int64, created: Bool)
    /// Refused (not an image, damaged, metadata over the limits); the rest of the batch is unaffected.
    case failed(ServiceError)
}

/// One search hit with the stored image's metadata.
public struct SearchHit: Sendable {
    public var neighbor: Neighbor
    public var record: ImageRecord
}

/// Why the service refuses to start on this database with this configuration.
public enum StartupError: Error, CustomStringConvertible, Equatable {
    /// The configured thumbnail size differs from the one the active model reads.
    case inputSizeMismatch(configured: Int, modelVersion: Int, modelInputSize: Int)
    /// Stored thumbnails have another size than the configured one.
    case thumbnailSizeMismatch(configured: Int, storedBytes: Int)
    /// A stored model's row or weights cannot be read.
    case unreadableModel(version: Int, kind: String, reason: String)
    /// The settings name an active model version that has no row.
    case missingActiveModel(version: Int)

    public var description: String {
        switch self {
        case let .inputSizeMismatch(configured, version, modelInputSize):
            return "images.inputSize is \(configured) but the active model version \(version) reads \(modelInputSize)×\(modelInputSize) thumbnails; set images.inputSize back to \(modelInputSize), or start with a new database"
        case let .thumbnailSizeMismatch(configured, storedBytes):
            return "images.inputSize is \(configured) (\(configured * configured * 3) bytes a thumbnail) but the database holds thumbnails of \(storedBytes) bytes; set images.inputSize back to the size the database was made with, or start with a new database"
        case let .unreadableModel(version, kind, reason):
            return "model version \(version) (\(kind)) in the database cannot be loaded: \(reason); activate another version with an older build or restore a backup"
        case let .missingActiveModel(version):
            return "the database names model version \(version) as active but has no such model; restore a backup"
        }
    }
}

/// The application without HTTP: ingest, lookup, delete and search over the store and the active model.
public final class ImageService: @unchecked Sendable {
    public let configuration: Configuration
    /// The repository; only the service and its retrain worker use it, routes go through the methods below.
    let store: ServiceStore
    let logger: Logger
    private let modelLock = NSLock()
    private var serving: ServingModel
    /// A model being built by a retrain; deletes reach it too, so it never serves a deleted image.
    private var building: ServingModel?
    /// Ingest holds the read side while it encodes and stores under the current version; a model swap
    /// takes the write side, so no upload is stored under a version that is no longer served.
    private let ingestGate = ReadWriteLock()
    /// Held around "write rows, then change an in-memory index" (ingest, delete, stored codes) so that
    /// a delete cannot fall between the two and leave a deleted id in an index.
    private let membership = NSLock()
    private let metadataPolicy: MetadataPolicy
    /// Searches served by each index method, for `/metrics`.
    private var searchCounts: [SearchMethod: Int] = [:]
    private let searchCountsLock = NSLock()
    /// Serialises duplicate grouping, so concurrent requests compute it once and share `duplicatesCache`.
    private let duplicatesLock = NSLock()
    private var duplicatesCache: (model: ServingModel, changes: UInt64, maxDistance: Int, groups: [DuplicateGroup])?
    /// Held while remote changes are applied, so the follower thread and an upload that found the
    /// active version changed never apply the same changes twice at once.
    private let followLock = NSLock()
    /// Guards the follower's position for readers outside `followLock` (`/metrics`), which must not
    /// wait for a long catch-up; writers hold both locks.
    private let followProgressLock = NSLock()
    /// The last change-log sequence number applied (only with a change feed).
    private var followedSequence: Int64 = 0
    /// When this replica last applied the change log or found nothing new in it (start-up loads the
    /// state, so it counts): the age of what it serves, at worst.
    private var lastFollowed = Date()
    /// Metadata of recently returned hits. Searches read it before the database (a record never changes,
    /// and ids are never reused, so an entry is right until its image is deleted, which removes it), and
    /// with it a search can still be answered while the database is unreachable.
    private let recentRecords = RecordCache(capacity: 50_000)

    /// Opens the configured database (SQLite, or PostgreSQL shared with other replicas), makes the
    /// cold-start model if there is none, and loads the active model's index.
    public convenience init(configuration: Configuration, logger: Logger) throws {
        try self.init(configuration: configuration, store: try ImageService.openStore(configuration), logger: logger)
    }

    /// The store `configuration.database` names.
    public static func openStore(_ configuration: Configuration) throws -> ServiceStore {
        if let url = configuration.database.postgresURL {
            return try PostgresStore(url: url, jobLeaseSeconds: configuration.retrain.leaseSeconds,
                                     maximumConnections: configuration.server.workers + 2)
        }
        return try Store(path: configuration.database.path)
    }

    /// The service over `store` (closed again if start-up fails): makes the cold-start model if there
    /// is none and loads the active model's index.
    public init(configuration: Configuration, store: ServiceStore, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.store = store
        metadataPolicy = MetadataPolicy(maxBytes: configuration.images.maxMetaBytes, maxDepth: configuration.images.maxMetaDepth)
        do {
            // Read before loading: changes committed while the index loads are then applied again,
            // which is harmless (adds and removes are idempotent), rather than missed.
            followedSequence = try store.changeFeed?.latestChangeSequence() ?? 0
            serving = try ImageService.loadActiveModel(store: store, configuration: configuration)
            try catchUp(serving)
        } catch {
            store.close()
            throw error
        }
        logger.info("model loaded", [("version", "\(serving.version)"), ("kind", serving.encoder.kind.rawValue), ("bits", "\(serving.bits)"),
                                     ("codes", "\(serving.count)")])
    }

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
    /// `metadataJSON` is checked against the metadata limits and stored in canonical form.
    public func ingest(bytes: [UInt8], metadataJSON: String?) throws -> IngestResult {
        let image = try newImage(bytes: bytes, metadataJSON: metadataJSON)
        return try retryingWhileTheActiveVersionChanges(
            "the active model version kept changing while the image was stored; upload it again") { try ingest(image) }
    }

    /// An upload checked, decoded, thumbnailed and hashed: what the store keeps of it.
    private func newImage(bytes: [UInt8], metadataJSON: String?) throws -> NewImage {
        let metadata = try metadataPolicy.canonical(metadataJSON)
        let thumbnail = try decodeThumbnail(bytes)
        let image = try ImageDecoder.info(bytes, limits: decodeLimits)
        return NewImage(sha256: SHA256.hexDigest(bytes), contentType: image.format.mimeType, width: image.width,
                        height: image.height, original: bytes, thumbnail: thumbnail, metadataJSON: metadata)
    }

    /// Runs `body` (encode and store), again after following the change log when another replica
    /// activated a new version between encoding and the insert (the store refuses the stale code).
    private func retryingWhileTheActiveVersionChanges<T>(_ giveUpMessage: String, _ body: () throws -> T) throws -> T {
        for _ in 0..<3 {
            do {
                return try body()
            } catch StoreError.activeVersionChanged {
                try followChanges()
            }
        }
        throw ServiceError.unavailable(giveUpMessage)
    }

    /// Encodes under the current version and stores, with uploads and model swaps kept apart.
    private func ingest(_ newImage: NewImage) throws -> IngestResult {
        try ingestGate.reading {
            let model = currentModel
            let code = model.codes(for: [newImage.thumbnail])[0]
            let inserted = try membership.withLock {
                let inserted = try store.insertImage(newImage, code: BinaryCode.bytes(code, bits: model.bits), modelVersion: model.version)
                if inserted.created { try model.add(id: inserted.id, code: code) }
                return inserted
            }
            guard let record = try store.image(id: inserted.id) else {
                throw ServiceError.unavailable("image \(inserted.id) was deleted while it was being indexed; upload it again")
            }
            let storedCode = inserted.created ? code : (model.code(for: inserted.id) ?? code)
            return IngestResult(record: record, created: inserted.created, code: BinaryCode.hex(storedCode, bits: model.bits), modelVersion: model.version)
        }
    }

    // MARK: Batch ingest

    /// `prepare` then `store`: a batch decoded on every core, encoded in one pass and stored in one
    /// transaction. Each image gets its own outcome, so a damaged one costs only itself.
    public func ingest(batch uploads: [Upload]) throws -> [BatchIngestOutcome] {
        try store(prepare(uploads))
    }

    /// Checks metadata, decodes, thumbnails and hashes every upload, spread over the cores. Needs no
    /// lock, so a caller may prepare the next batch while the previous one is being stored.
    public func prepare(_ uploads: [Upload]) -> [PreparedUpload] {
        uploads.indices.mappedOnEveryCore { PreparedUpload(image: prepareOne(uploads[$0])) }
    }

    private func prepareOne(_ upload: Upload) -> Result<NewImage, ServiceError> {
        do {
            return .success(try newImage(bytes: upload.bytes, metadataJSON: upload.metadataJSON))
        } catch let error as ServiceError {
            return .failure(error)
        } catch let error as ImagingError {
            return .failure(ServiceError.from(error))
        } catch {
            return .failure(.unprocessable("\(error)"))
        }
    }

    /// Encodes the prepared images under the current version in one pass and stores them in one
    /// transaction (`ServiceStore.insertImages`); the new codes join the in-memory index. A failing
    /// transaction throws and stores nothing of the batch. When another replica activates a version
    /// meanwhile, the batch is encoded again under it, as a single upload would be.
    public func store(_ prepared: [PreparedUpload]) throws -> [BatchIngestOutcome] {
        var outcomes = prepared.map { upload -> BatchIngestOutcome in
            if case .failure(let error) = upload.image { return .failed(error) }
            return .stored(id: 0, created: false)
        }
        let positions = prepared.indices.filter { if case .success = prepared[$0].image { true } else { false } }
        let images = positions.map { position -> NewImage in
            guard case .success(let image) = prepared[position].image else { preconditionFailure("filtered to successes") }
            return image
        }
        guard !images.isEmpty else { return outcomes }
        let results = try retryingWhileTheActiveVersionChanges(
            "the active model version kept changing while the images were stored; import them again") { try storeEncoded(images) }
        for (position, result) in zip(positions, results) { outcomes[position] = .stored(id: result.id, created: result.created) }
        return outcomes
    }

    /// Encodes and stores under the current version, with uploads and model swaps kept apart.
    private func storeEncoded(_ images: [NewImage]) throws -> [InsertResult] {
        try ingestGate.reading {
            let model = currentModel
            let codes = model.codes(for: images.map(\.thumbnail))
            return try membership.withLock {
                let results = try store.insertImages(images, codes: codes.map { BinaryCode.bytes($0, bits: model.bits) },
                                                     modelVersion: model.version)
                for (result, code) in zip(results, codes) where result.created { try model.add(id: result.id, code: code) }
                return results
            }
        }
    }

    /// The thumbnail the encoders read: the whole image resampled to `inputSize`², RGB bytes.
    public func decodeThumbnail(_ bytes: [UInt8]) throws -> [UInt8] {
        guard ImageFormat.detect(bytes) != nil else { throw ServiceError.from(ImagingError.unsupportedFormat) }
        do {
            let size = configuration.images.inputSize
            return try ImageDecoder.thumbnail(bytes, width: size, height: size, limits: decodeLimits).pixels
        } catch let error as ImagingError {
            throw ServiceError.from(error)
        }
    }

    var decodeLimits: DecodeLimits {
        DecodeLimits(maxBytes: configuration.images.maxBytes, maxPixels: configuration.images.maxPixels,
                     maxSide: configuration.images.maxSide, maxDecoderMemoryBytes: configuration.images.maxDecoderMemoryBytes)
    }

    // MARK: Lookup and delete

    public func image(id: Int64) throws -> ImageRecord {
        guard let record = try store.image(id: id) else { throw ServiceError.notFound("no image with id \(id)") }
        return record
    }

    /// The records of those `ids` that exist.
    public func images(ids: [Int64]) throws -> [Int64: ImageRecord] { try store.images(ids: ids) }

    public func content(id: Int64) throws -> (contentType: String, bytes: [UInt8]) {
        guard let content = try store.imageContent(id: id) else { throw ServiceError.notFound("no image with id \(id)") }
        return content
    }

    /// Removes the image from the database and from every in-memory index.
    public func delete(id: Int64) throws {
        try ingestGate.reading {
            try membership.withLock {
                guard try store.deleteImage(id: id) else { throw ServiceError.notFound("no image with id \(id)") }
                modelLock.lock()
                let models = [serving, building].compactMap { $0 }
                modelLock.unlock()
                for model in models { model.remove(id: id) }
                recentRecords.remove(id)
            }
        }
    }

    /// Encodes `items` under `model`, stores the codes and adds to the index exactly the images that
    /// still exist when the codes are written; returns how many were added.
    @discardableResult
    func storeCodes(for items: [(imageID: Int64, thumbnail: [UInt8])], in model: ServingModel) throws -> Int {
        guard !items.isEmpty else { return 0 }
        let codes = model.codes(for: items.map(\.thumbnail))
        return try membership.withLock {
            let stored = try store.putCodes(zip(items, codes).map { (imageID: $0.0.imageID, code: BinaryCode.bytes($0.1, bits: model.bits)) },
                                            modelVersion: model.version)
            for (item, code) in zip(items, codes) where stored.contains(item.imageID) { try model.add(id: item.imageID, code: code) }
            return stored.count
        }
    }

    // MARK: Search

    /// Nearest stored images to a stored image, leaving the image itself out; with `filters`, the
    /// nearest among the images whose metadata matches them.
    public func similar(to id: Int64, k: Int, maxDistance: Int?, filters: [MetadataFilter] = []) throws -> (model: ServingModel, hits: [SearchHit]) {
        let model = currentModel
        guard let code = model.code(for: id) else {
            _ = try image(id: id)
            throw ServiceError.unavailable("image \(id) has no code under model version \(model.version) yet; retry shortly")
        }
        return (model, try hits(model: model, code: code, k: k, maxDistance: maxDistance, excluding: id, filters: filters))
    }

    /// Nearest stored images to an uploaded image that is not stored; with `filters`, the nearest among
    /// the images whose metadata matches them.
    public func search(bytes: [UInt8], k: Int, maxDistance: Int?, filters: [MetadataFilter] = []) throws -> (model: ServingModel, code: [UInt64], hits: [SearchHit]) {
        let thumbnail = try decodeThumbnail(bytes)
        let model = currentModel
        let code = model.codes(for: [thumbnail])[0]
        return (model, code, try hits(model: model, code: code, k: k, maxDistance: maxDistance, excluding: nil, filters: filters))
    }

    /// The first `k` neighbours by (distance, id) among the images that match `filters`.
    ///
    /// The index cannot filter, so this asks it for more neighbours than `k` and filters them in the
    /// store, widening the request fourfold until `k` matches are found or the index has nothing more
    /// within `maxDistance`. That equals "filter every image, then take the top k": any matching image
    /// outside the first `wanted` neighbours is farther (or later by id) than all of them.
    private func hits(model: ServingModel, code: [UInt64], k: Int, maxDistance: Int?, excluding: Int64?,
                      filters: [MetadataFilter]) throws -> [SearchHit] {
        guard !filters.isEmpty else {
            let neighbors = try indexSearch(model, code, k: k, maxDistance: maxDistance, excluding: excluding)
            var (records, missing) = recentRecords.records(for: neighbors.map(\.id))
            if !missing.isEmpty {
                // Only the hits' metadata needs the database, and only for hits not in memory: without the
                // database, a search whose hits are all known is still answered.
                let fetched = try store.images(ids: missing)
                recentRecords.insert(fetched.values)
                records.merge(fetched) { cached, _ in cached }
            }
            // An image deleted between the index read and the metadata read is simply left out.
            return neighbors.compactMap { neighbor in records[neighbor.id].map { SearchHit(neighbor: neighbor, record: $0) } }
        }
        var wanted = max(k * 4, 64)
        var matching: [Int64: ImageRecord] = [:]
        var checked = Set<Int64>()
        while true {
            let neighbors = try indexSearch(model, code, k: wanted, maxDistance: maxDistance, excluding: excluding)
            let unchecked = neighbors.map(\.id).filter { !checked.contains($0) }
            matching.merge(try store.images(ids: unchecked, matching: filters)) { first, _ in first }
            checked.formUnion(unchecked)
            let found = neighbors.compactMap { neighbor in matching[neighbor.id].map { SearchHit(neighbor: neighbor, record: $0) } }
            // Fewer neighbours than asked for means the index returned every code within reach.
            if found.count >= k || neighbors.count < wanted { return Array(found.prefix(k)) }
            wanted = wanted > Int.max / 4 ? Int.max : wanted * 4
        }
    }

    /// One index search, counted by the method that served it.
    private func indexSearch(_ model: ServingModel, _ code: [UInt64], k: Int, maxDistance: Int?, excluding: Int64?) throws -> [Neighbor] {
        let outcome = try model.search(code, k: k, maxDistance: maxDistance, excluding: excluding)
        searchCountsLock.withLock { searchCounts[outcome.method, default: 0] += 1 }
        return outcome.neighbors
    }

    // MARK: Listing, previews and duplicates

    /// One page of stored images with an id above `afterID` that match `filters`, by id, and the cursor
    /// for the next page (nil when this page is the last).
    public func list(afterID: Int64, limit: Int, filters: [MetadataFilter]) throws -> (images: [ImageRecord], nextAfter: Int64?) {
        let page = try store.listImages(afterID: afterID, limit: limit + 1, filters: filters)
        let images = Array(page.prefix(limit))
        return (images, page.count > limit ? images.last?.id : nil)
    }

    /// A preview of a stored image: longest side `size` (never enlarged), aspect kept, JPEG, decoded a row
    /// at a time from the original under the upload limits.
    public func preview(of record: ImageRecord, size: Int) throws -> [UInt8] {
        guard let content = try store.imageContent(id: record.id) else { throw ServiceError.notFound("no image with id \(record.id)") }
        let (width, height) = ImageService.previewSize(width: record.width, height: record.height, longestSide: size)
        do {
            let image = try ImageDecoder.thumbnail(content.bytes, width: width, height: height, limits: decodeLimits)
            return try ImageEncoder.jpeg(image, quality: 85)
        } catch let error as ImagingError {
            throw ServiceError.from(error)
        }
    }

    /// The preview's side lengths: the longer side `longestSide` (or the image's own when smaller), the
    /// other in proportion, at least 1.
    static func previewSize(width: Int, height: Int, longestSide: Int) -> (width: Int, height: Int) {
        let longest = max(width, height, 1)
        let target = min(longestSide, longest)
        func scaled(_ side: Int) -> Int { max(1, Int((Double(side) * Double(target) / Double(longest)).rounded())) }
        return (scaled(width), scaled(height))
    }

    /// Groups of stored images whose codes under the active model are within `maxDistance` of each
    /// other (see `DuplicateGroups`). The last answer is kept until an image is added or removed or the
    /// model changes, so paging through the groups computes them once.
    public func duplicateGroups(maxDistance: Int) throws -> (model: ServingModel, groups: [DuplicateGroup]) {
        try duplicatesLock.withLock {
            let model = currentModel
            if let cached = duplicatesCache, cached.model === model, cached.changes == model.changeCount, cached.maxDistance == maxDistance {
                return (model, cached.groups)
            }
            let (index, changes) = try model.snapshot()
            let groups = try DuplicateGroups.find(in: index, maxDistance: maxDistance)
            duplicatesCache = (model, changes, maxDistance, groups)
            return (model, groups)
        }
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
        try catchUp(model, afterID: afterID)
        try ingestGate.writing {
            try catchUp(model, afterID: afterID)
            try store.setActiveModelVersion(model.version)
            modelLock.lock()
            serving = model
            if building === model { building = nil }
            modelLock.unlock()
        }
        // Another replica may have stored an upload under the old version just before the switch
        // committed (its gate is its own); from now on the store refuses those, so one more pass finds them all.
        if store.changeFeed != nil { try catchUp(model, afterID: afterID) }
        logger.info("model activated", [("version", "\(model.version)"), ("kind", model.encoder.kind.rawValue), ("codes", "\(model.count)")])
    }

    /// Activates a stored, finished version (a rollback): loads its encoder, fills its index from the
    /// stored codes, encodes what is missing, then switches. Returns the version's row.
    func activate(version: Int) throws -> ModelRecord {
        guard let record = try store.model(version: version), record.status.isFinished else {
            throw ServiceError.notFound("no finished model version \(version)")
        }
        try activate(try loadModel(version: version))
        return record
    }

    // MARK: Following other replicas

    /// Applies every change other replicas committed since the last call, in commit order: their
    /// uploads' codes join the index, deletes leave it, an activation loads and swaps in that version.
    /// Returns how many changes were applied; without a change feed (SQLite) there are none.
    @discardableResult
    public func followChanges() throws -> Int {
        guard let feed = store.changeFeed else { return 0 }
        return try followLock.withLock {
            var applied = 0
            let oldest = try feed.oldestRetainedSequence()
            if oldest > followedSequence + 1 {
                // The log was pruned past this replica's place: reload the active version from the rows.
                logger.warning("change log pruned past this replica's position; reloading the index",
                               [("position", "\(followedSequence)"), ("oldest", "\(oldest)")])
                followProgressLock.withLock { followedSequence = oldest - 1 }
                if let active = try store.activeModelVersion() { try swapToRemote(version: active) }
            }
            while true {
                let batch = try feed.changes(after: followedSequence, limit: 1000)
                for logged in batch {
                    try apply(logged.change)
                    followProgressLock.withLock { followedSequence = logged.sequence }
                    applied += 1
                }
                if batch.count < 1000 {
                    followProgressLock.withLock { lastFollowed = Date() }
                    return applied
                }
            }
        }
    }

    /// The change-log position this replica has applied through.
    public var followedChangeSequence: Int64 { followProgressLock.withLock { followedSequence } }

    /// How far this replica is behind the others: change-log entries it has not applied yet, and
    /// seconds since it last applied the log or found it caught up. Always zero without a change
    /// feed (SQLite), where no other process writes.
    public func changeFeedLag() throws -> (entries: Int, secondsSinceApplied: Double) {
        guard let feed = store.changeFeed else { return (0, 0) }
        let (sequence, last) = followProgressLock.withLock { (followedSequence, lastFollowed) }
        return (try feed.pendingChangeCount(after: sequence), max(0, Date().timeIntervalSince(last)))
    }

    private func apply(_ change: Change) throws {
        switch change {
        case let .code(imageID, version, bytes):
            membership.withLock {
                let model = currentModel
                guard model.version == version, let code = BinaryCode.words(bytes, bits: model.bits) else { return }
                try? model.add(id: imageID, code: code)
            }
        case let .delete(imageID):
            membership.withLock {
                modelLock.lock()
                let models = [serving, building].compactMap { $0 }
                modelLock.unlock()
                for model in models { model.remove(id: imageID) }
                recentRecords.remove(imageID)
            }
        case let .activate(version):
            guard currentModel.version != version else { return }
            try swapToRemote(version: version)
        }
    }

    /// Loads a version another replica activated (its codes are all stored by then) and serves it.
    private func swapToRemote(version: Int) throws {
        let model = try loadModel(version: version)
        let swapped = ingestGate.writing {
            modelLock.lock()
            defer { modelLock.unlock() }
            // This replica's own worker may have activated the version while it loaded: its index is
            // newer than the rows read here (uploads since went into it), so it stays.
            guard serving.version != version else { return false }
            serving = model
            return true
        }
        guard swapped else { return }
        logger.info("followed activation", [("version", "\(version)"), ("codes", "\(model.count)")])
    }

    // MARK: Reads for the admin API and metrics

    /// Number of stored images.
    public func imageCount() throws -> Int { try store.imageCount() }
    /// Every model version, newest first, without weights.
    public func models() throws -> [ModelRecord] { try store.models() }
    /// The version the database names as active.
    public func activeModelVersion() throws -> Int? { try store.activeModelVersion() }
    /// One job.
    public func job(id: Int64) throws -> JobRecord? { try store.job(id: id) }
    /// The newest jobs, newest first.
    public func jobs(limit: Int) throws -> [JobRecord] { try store.jobs(limit: limit) }
    /// Jobs by status.
    public func jobCounts() throws -> [JobStatus: Int] { try store.jobCounts() }
    /// Searches served so far by each index method (flat scan or multi-index hashing).
    public func searchMethodCounts() -> [SearchMethod: Int] { searchCountsLock.withLock { searchCounts } }

    /// A serving model for a stored version, its index filled from stored codes plus any missing ones.
    func loadModel(version: Int) throws -> ServingModel {
        guard let record = try store.model(version: version) else { throw ServiceError.notFound("no model version \(version)") }
        let model: ServingModel
        do {
            model = try ImageService.servingModel(record, configuration: configuration)
        } catch let error as StartupError {
            throw ServiceError.conflict("\(error)")
        }
        try ImageService.fill(model, store: store)
        return model
    }

    /// The encoder of a stored model row, refused when it cannot be read or reads other thumbnails
    /// than the configured ones (encoding would otherwise trap on every request).
    static func servingModel(_ record: ModelRecord, configuration: Configuration) throws -> ServingModel {
        let encoder: HashEncoder
        do {
            encoder = try EncoderRegistry.load(kind: ModelKind(rawValue: record.kind), data: record.weights)
        } catch {
            throw StartupError.unreadableModel(version: record.version, kind: record.kind, reason: "\(error)")
        }
        guard encoder.inputSize == configuration.images.inputSize else {
            throw StartupError.inputSizeMismatch(configured: configuration.images.inputSize, modelVersion: record.version,
                                                 modelInputSize: encoder.inputSize)
        }
        return try ServingModel(version: record.version, encoder: encoder)
    }

    /// Loads the active model (making the cold-start LSH model first if the database has none) and
    /// fills its index from the stored codes.
    static func loadActiveModel(store: ServiceStore, configuration: Configuration) throws -> ServingModel {
        let inputSize = configuration.images.inputSize
        if let stored = try store.thumbnails(afterID: 0, limit: 1).first, stored.thumbnail.count != inputSize * inputSize * 3 {
            throw StartupError.thumbnailSizeMismatch(configured: inputSize, storedBytes: stored.thumbnail.count)
        }
        if try store.activeModelVersion() == nil {
            let encoder = LSHEncoder(bits: configuration.model.bits, inputSize: inputSize, seed: UInt64(configuration.model.lshSeed))
            let record = ModelRecord(version: 1, kind: encoder.kind.rawValue, bits: encoder.bits,
                                     configJSON: "{\"inputSize\":\(encoder.inputSize),\"seed\":\(encoder.seed)}",
                                     weights: try encoder.serialized(), metricsJSON: nil, status: .active, createdAt: "")
            _ = try store.createInitialModel(record)
        }
        guard let active = try store.activeModelVersion() else { throw StartupError.missingActiveModel(version: 0) }
        guard let record = try store.model(version: active) else { throw StartupError.missingActiveModel(version: active) }
        let model = try servingModel(record, configuration: configuration)
        try fill(model, store: store)
        return model
    }

    /// Adds every stored code of the model's version to its index; a stored code of the wrong length
    /// is left out (and re-encoded by the catch-up that follows) rather than trusted.
    static func fill(_ model: ServingModel, store: ServiceStore) throws {
        for (imageID, bytes) in try store.codes(modelVersion: model.version) {
            guard let code = BinaryCode.words(bytes, bits: model.bits) else { continue }
            try model.add(id: imageID, code: code)
        }
    }

    /// Encodes the images above `afterID` stored without a code under `model` (uploads that raced a
    /// model switch), in pages, storing the codes and adding them to the index.
    func catchUp(_ model: ServingModel, afterID: Int64 = 0) throws {
        var cursor = afterID
        var encoded = 0
        while true {
            let page = try store.thumbnailsMissingCode(modelVersion: model.version, afterID: cursor, limit: ImageService.encodingPageSize)
            guard let last = page.last else { break }
            cursor = last.imageID
            encoded += try storeCodes(for: page, in: model)
        }
        if encoded > 0 { logger.info("encoded images missing a code", [("version", "\(model.version)"), ("images", "\(encoded)")]) }
    }

    /// Thumbnails encoded per batch when catching up or re-encoding: large enough for the encoder's
    /// batched forward pass, small enough to keep memory flat.
    static let encodingPageSize = 512
}

/// A bounded map from image id to metadata. Records never change after insert, so the only way one
/// goes stale is a delete, which removes it. When full, an arbitrary entry makes room: recency is not
/// worth a list here, the cache only has to cover the searches that repeat.
final class RecordCache: @unchecked Sendable {
    private let capacity: Int
    private let lock = NSLock()
    private var records: [Int64: ImageRecord] = [:]

    init(capacity: Int) { self.capacity = max(1, capacity) }

    func insert<S: Sequence>(_ new: S) where S.Element == ImageRecord {
        lock.withLock {
            for record in new {
                if records.count >= capacity, records[record.id] == nil { records.remove(at: records.startIndex) }
                records[record.id] = record
            }
        }
    }

    func remove(_ id: Int64) { _ = lock.withLock { records.removeValue(forKey: id) } }

    /// The cached records of `ids`, and the ids not cached.
    func records(for ids: [Int64]) -> (found: [Int64: ImageRecord], missing: [Int64]) {
        lock.withLock {
            var found: [Int64: ImageRecord] = [:]
            var missing: [Int64] = []
            for id in ids {
                if let record = records[id] { found[id] = record } else { missing.append(id) }
            }
            return (found, missing)
        }
    }
}

extension Range<Int> {
    /// `transform` of every index, spread over the cores (work split by stride; a few items per core at
    /// least, so tiny batches stay on one thread), in index order.
    func mappedOnEveryCore<T>(_ transform: (Int) -> T) -> [T] {
        var results = [T?](repeating: nil, count: count)
        let workers = Swift.max(1, Swift.min(ProcessInfo.processInfo.activeProcessorCount, count / 8))
        results.withUnsafeMutableBufferPointer { slots in
            let slots = slots
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for offset in stride(from: worker, to: count, by: workers) { slots[offset] = transform(lowerBound + offset) }
            }
        }
        return results.map { $0! }
    }
}
