/// Job messages both stores write themselves.
enum StoreMessages {
    /// The message of a job whose model was activated but whose process stopped before closing it.
    static func activatedBeforeStop(_ version: Int) -> String {
        "model version \(version) active; the service stopped before the job was closed"
    }
}

/// The repository the service works through: images with their thumbnails and codes, model versions,
/// jobs and the active version. `Store` implements it over one SQLite file, `PostgresStore` over a
/// PostgreSQL database that several replicas share; routes, the retrain worker and start-up never see
/// which implementation they have.
public protocol ServiceStore: AnyObject, Sendable {
    // Images and codes

    /// Inserts an image with its code in one transaction; identical sha256 returns the existing id.
    /// Throws `StoreError.activeVersionChanged` when another replica activated a version other than
    /// `modelVersion` meanwhile (the caller follows the change and encodes again).
    func insertImage(_ image: NewImage, code: [UInt8], modelVersion: Int) throws -> InsertResult
    /// Inserts many images with their codes (`codes[i]` is `images[i]`'s) in one transaction and
    /// returns one result per image, in order. An image whose sha256 is stored already, or appears
    /// earlier in the same batch, gets that image's id with `created` false. Throws
    /// `StoreError.activeVersionChanged` as `insertImage` does, and then stores nothing.
    func insertImages(_ images: [NewImage], codes: [[UInt8]], modelVersion: Int) throws -> [InsertResult]
    /// One image's metadata, nil when the id is unknown.
    func image(id: Int64) throws -> ImageRecord?
    /// The records of those `ids` that exist.
    func images(ids: [Int64]) throws -> [Int64: ImageRecord]
    /// The records of those `ids` that exist and whose metadata matches every filter (`MetadataFilter`
    /// states the rule); with no filters, the same as `images(ids:)`.
    func images(ids: [Int64], matching filters: [MetadataFilter]) throws -> [Int64: ImageRecord]
    /// Images with an id above `afterID` whose metadata matches every filter, by id ascending, at most
    /// `limit`: one page of the listing, whose cursor is the last id returned.
    func listImages(afterID: Int64, limit: Int, filters: [MetadataFilter]) throws -> [ImageRecord]
    /// Content type and original bytes.
    func imageContent(id: Int64) throws -> (contentType: String, bytes: [UInt8])?
    /// Removes the image and its codes; false when the id is unknown.
    func deleteImage(id: Int64) throws -> Bool
    /// Number of stored images.
    func imageCount() throws -> Int
    /// Number of images with an id above `afterID`.
    func imageCount(afterID: Int64) throws -> Int
    /// The largest image id, 0 when there are none.
    func maxImageID() throws -> Int64
    /// Image ids up to and including `throughID`, ascending.
    func imageIDs(through throughID: Int64) throws -> [Int64]
    /// Every (image id, code) stored for a model version, by id.
    func codes(modelVersion: Int) throws -> [(imageID: Int64, code: [UInt8])]
    /// Stores codes (upsert) in one transaction; returns the ids stored (deleted images are skipped).
    @discardableResult
    func putCodes(_ codes: [(imageID: Int64, code: [UInt8])], modelVersion: Int) throws -> Set<Int64>
    /// Removes every code of a model version; returns how many.
    @discardableResult
    func deleteCodes(modelVersion: Int) throws -> Int
    /// Thumbnails of images with id greater than `afterID`, by id, at most `limit`.
    func thumbnails(afterID: Int64, limit: Int) throws -> [(imageID: Int64, thumbnail: [UInt8])]
    /// Thumbnails of images above `afterID` with no code under `modelVersion`, by id, at most `limit`.
    func thumbnailsMissingCode(modelVersion: Int, afterID: Int64, limit: Int) throws -> [(imageID: Int64, thumbnail: [UInt8])]
    /// The thumbnails of those `ids` that exist, in the order of `ids`.
    func thumbnails(ids: [Int64]) throws -> [(imageID: Int64, thumbnail: [UInt8])]

    // Models

    /// Inserts the first model and activates it in one transaction; false when a version is active already.
    func createInitialModel(_ model: ModelRecord) throws -> Bool
    /// Inserts a trained model and names it on its job in one transaction.
    func insertModel(_ model: ModelRecord, forJob jobID: Int64, progress: Double, message: String) throws
    /// One model version with its weights.
    func model(version: Int) throws -> ModelRecord?
    /// All models without weights, newest first.
    func models() throws -> [ModelRecord]
    /// The highest model version stored, 0 when there is none.
    func maxModelVersion() throws -> Int
    /// Drops a version's codes and marks it pruned in one transaction.
    func pruneCodes(modelVersion: Int) throws
    /// Deletes a model version and its codes; refuses the active one.
    @discardableResult
    func deleteModel(version: Int) throws -> Bool
    /// The version answering searches.
    func activeModelVersion() throws -> Int?
    /// Makes `version` the active one, in one transaction.
    func setActiveModelVersion(_ version: Int) throws

    // Jobs

    /// Records a new queued job; returns its id.
    func createJob(kind: String, configJSON: String?) throws -> Int64
    /// Records a new queued job leased to this process, unless a job is queued or running anywhere:
    /// one retrain at a time across every replica sharing the database.
    func claimJob(kind: String, configJSON: String?) throws -> JobClaim
    /// Extends this process's lease on a job it claimed; false when the job is no longer its own
    /// (its lease expired and another replica failed it), and the work must stop.
    func renewJobLease(id: Int64) throws -> Bool
    /// Fails jobs whose owner stopped renewing their lease (a replica died mid-job) and removes their
    /// unfinished models, in one transaction; a single-process store has none and returns [].
    @discardableResult
    func failAbandonedJobs(reason: String) throws -> [JobRecord]
    /// One job, nil when unknown.
    func job(id: Int64) throws -> JobRecord?
    /// Updates the given fields of a job (nil leaves a field as it is).
    func updateJob(id: Int64, status: JobStatus?, progress: Double?, message: String?, modelVersion: Int?) throws
    /// Records what a job decided, a JSON object (a retrain's quality-gate scores and its choice).
    func recordJobResult(id: Int64, resultJSON: String) throws
    /// Fails jobs a stopped process left queued or running and removes their unfinished models, in one
    /// transaction (at start-up; with replicas, only jobs whose lease expired). A job whose model is the
    /// active one succeeded before the stop and is closed as succeeded instead (not returned).
    @discardableResult
    func failInterruptedJobs(reason: String) throws -> [JobRecord]
    /// The newest `limit` jobs, newest first.
    func jobs(limit: Int) throws -> [JobRecord]
    /// Number of jobs in each status.
    func jobCounts() throws -> [JobStatus: Int]

    // Replicas

    /// Changes committed by other processes, nil when nothing else writes to this database.
    var changeFeed: ChangeFeed? { get }

    /// Finishes pending writes and closes the connections.
    func close()
}
