import XCTest
import TestSupport
@testable import Storage

/// The behaviour the service relies on, written once against `ServiceStore` and run on both
/// implementations (`SQLiteConformanceTests`, `PostgresConformanceTests`).
struct StoreConformance {
    let store: ServiceStore
    let name: String

    static func model(_ version: Int, status: ModelStatus = .inactive) -> ModelRecord {
        ModelRecord(version: version, kind: "lsh", bits: 16, configJSON: #"{"seed":1}"#, weights: [1, 2, 3, UInt8(version)],
                    metricsJSON: nil, status: status, createdAt: "", trainedThroughImageID: version > 1 ? 7 : nil)
    }

    static func image(_ seed: Int, metadata: String? = nil) -> NewImage {
        let original = (0..<(40 + seed % 5)).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ seed) }
        return NewImage(sha256: SHA256.hexDigest(original), contentType: "image/png", width: 10 + seed, height: 20,
                        original: original, thumbnail: [UInt8(truncatingIfNeeded: seed), 0, 255], metadataJSON: metadata)
    }

    func imagesAndDuplicates() throws {
        XCTAssertTrue(try store.createInitialModel(Self.model(1, status: .active)), name)
        XCTAssertFalse(try store.createInitialModel(Self.model(1, status: .active)), "a second initial model is refused (\(name))")
        let first = try store.insertImage(Self.image(1, metadata: #"{"b":1,"a":[true,null]}"#), code: [0xAA, 0x01], modelVersion: 1)
        XCTAssertTrue(first.created, name)
        XCTAssertEqual(try store.insertImage(Self.image(1), code: [0, 0], modelVersion: 1), InsertResult(id: first.id, created: false), name)
        let second = try store.insertImage(Self.image(2), code: [0xBB, 0x02], modelVersion: 1)
        XCTAssertGreaterThan(second.id, first.id, name)

        let record = try XCTUnwrap(try store.image(id: first.id), name)
        XCTAssertEqual(record.metadataJSON, #"{"b":1,"a":[true,null]}"#, "metadata is stored as given (\(name))")
        XCTAssertEqual(record.width, 11, name)
        XCTAssertEqual(record.byteSize, Self.image(1).original.count, name)
        XCTAssertTrue(record.createdAt.hasSuffix("Z") && record.createdAt.count == 24, "\(record.createdAt) (\(name))")
        XCTAssertEqual(try store.imageContent(id: second.id)?.bytes, Self.image(2).original, name)
        XCTAssertEqual(Set(try store.images(ids: [first.id, second.id, 999]).keys), [first.id, second.id], name)
        XCTAssertNil(try store.image(id: 999), name)
        XCTAssertEqual(try store.imageCount(), 2, name)
        XCTAssertEqual(try store.imageCount(afterID: first.id), 1, name)
        XCTAssertEqual(try store.maxImageID(), second.id, name)
        XCTAssertEqual(try store.imageIDs(through: first.id), [first.id], name)
        XCTAssertEqual(try store.codes(modelVersion: 1).map(\.code), [[0xAA, 0x01], [0xBB, 0x02]], name)
        XCTAssertEqual(try store.thumbnails(afterID: 0, limit: 1).map(\.imageID), [first.id], name)
        XCTAssertEqual(try store.thumbnails(ids: [second.id, 999, first.id]).map(\.imageID), [second.id, first.id], name)

        XCTAssertThrowsError(try store.insertImage(Self.image(3, metadata: "{not json"), code: [1, 2], modelVersion: 1),
                             "invalid metadata JSON is refused by the schema (\(name))")
        XCTAssertEqual(try store.imageCount(), 2, "a refused insert leaves nothing behind (\(name))")
    }

    /// A batch in one transaction: results in order, copies inside the batch and of stored images get
    /// the existing id, codes and thumbnails round-trip, and a batch the schema refuses leaves nothing.
    func batchInsert() throws {
        XCTAssertTrue(try store.createInitialModel(Self.model(1, status: .active)), name)
        XCTAssertEqual(try store.insertImages([], codes: [], modelVersion: 1), [], name)
        let stored = try store.insertImage(Self.image(1), code: [1, 1], modelVersion: 1)
        let batch = [Self.image(2, metadata: #"{"n":2}"#), Self.image(1), Self.image(3), Self.image(2), Self.image(4)]
        let results = try store.insertImages(batch, codes: [[2, 2], [9, 9], [3, 3], [8, 8], [4, 4]], modelVersion: 1)
        XCTAssertEqual(results.count, 5, name)
        XCTAssertEqual(results.map(\.created), [true, false, true, false, true], name)
        XCTAssertEqual(results[1].id, stored.id, "a copy of a stored image gets its id (\(name))")
        XCTAssertEqual(results[3].id, results[0].id, "a copy earlier in the batch gets its id (\(name))")
        XCTAssertEqual([results[0].id, results[2].id, results[4].id], [results[0].id, results[2].id, results[4].id].sorted(), "ids follow the batch order (\(name))")
        XCTAssertGreaterThan(results[0].id, stored.id, name)
        XCTAssertEqual(try store.imageCount(), 4, name)
        XCTAssertEqual(try store.codes(modelVersion: 1).map(\.code), [[1, 1], [2, 2], [3, 3], [4, 4]], "each image keeps its first code (\(name))")
        XCTAssertEqual(try store.thumbnails(ids: [results[2].id]).map(\.thumbnail), [Self.image(3).thumbnail], name)
        XCTAssertEqual(try store.imageContent(id: results[4].id)?.bytes, Self.image(4).original, name)
        XCTAssertEqual(try store.image(id: results[0].id)?.metadataJSON, #"{"n":2}"#, name)

        let again = try store.insertImages([Self.image(4), Self.image(3)], codes: [[0, 0], [0, 0]], modelVersion: 1)
        XCTAssertEqual(again, [InsertResult(id: results[4].id, created: false), InsertResult(id: results[2].id, created: false)], name)
        XCTAssertThrowsError(try store.insertImages([Self.image(5), Self.image(6, metadata: "{not json")], codes: [[5, 5], [6, 6]], modelVersion: 1),
                             "the schema refuses the batch (\(name))")
        XCTAssertEqual(try store.imageCount(), 4, "a refused batch leaves nothing behind, not even its valid images (\(name))")
        XCTAssertEqual(try store.codes(modelVersion: 1).count, 4, name)
    }

    /// `MetadataFilter`'s rule, listing pages and the newest jobs: the same answers from every store.
    func metadataFiltersAndListing() throws {
        XCTAssertTrue(try store.createInitialModel(Self.model(1, status: .active)), name)
        let metadata = [#"{"label":"shoe","n":3}"#, #"{"label":"bag","n":"3"}"#, #"{"label":"shoe","n":3.5,"done":true}"#,
                        #"{"label":["shoe"],"n":null}"#, nil]
        let ids = try metadata.enumerated().map { try store.insertImage(Self.image(10 + $0.offset, metadata: $0.element), code: [1, 1], modelVersion: 1).id }
        func matching(_ pairs: [(String, String)]) throws -> [Int64] {
            let filters = pairs.map { MetadataFilter(key: $0.0, value: $0.1)! }
            let listed = try store.listImages(afterID: 0, limit: 100, filters: filters).map(\.id)
            XCTAssertEqual(Set(try store.images(ids: ids, matching: filters).keys), Set(listed), "\(pairs) (\(name))")
            return listed
        }
        XCTAssertEqual(try matching([("label", "shoe")]), [ids[0], ids[2]], name)
        XCTAssertEqual(try matching([("n", "3")]), [ids[0], ids[1]], "numbers and strings by their text (\(name))")
        XCTAssertEqual(try matching([("n", "3.5"), ("done", "true")]), [ids[2]], name)
        XCTAssertEqual(try matching([("n", "null")]), [ids[3]], name)
        XCTAssertEqual(try matching([("label", "[\"shoe\"]")]), [], "arrays never match (\(name))")
        XCTAssertEqual(try matching([("missing", "x")]), [], name)
        XCTAssertEqual(try store.listImages(afterID: ids[1], limit: 2, filters: []).map(\.id), [ids[2], ids[3]], name)
        for kind in ["lsh", "itq"] {
            let job = try XCTUnwrap(claimed(try store.claimJob(kind: kind, configJSON: nil)), name)
            try store.updateJob(id: job, status: .failed, progress: nil, message: "done", modelVersion: nil)
        }
        XCTAssertEqual(try store.jobs(limit: 1).map(\.kind), ["itq"], "newest first (\(name))")
    }

    func codesAndDeletes() throws {
        XCTAssertTrue(try store.createInitialModel(Self.model(1, status: .active)), name)
        let ids = try (1...3).map { try store.insertImage(Self.image($0), code: [UInt8($0), 0], modelVersion: 1).id }
        let job = try XCTUnwrap(claimed(try store.claimJob(kind: "lsh", configJSON: nil)), name)
        try store.insertModel(Self.model(2, status: .building), forJob: job, progress: 0.8, message: "encoding")
        XCTAssertEqual(try store.thumbnailsMissingCode(modelVersion: 2, afterID: 0, limit: 10).map(\.imageID), ids, name)
        XCTAssertTrue(try store.deleteImage(id: ids[1]), name)
        XCTAssertFalse(try store.deleteImage(id: ids[1]), "a second delete finds nothing (\(name))")
        let stored = try store.putCodes(ids.map { (imageID: $0, code: [9, 9]) }, modelVersion: 2)
        XCTAssertEqual(stored, [ids[0], ids[2]], "the deleted image gets no code (\(name))")
        XCTAssertEqual(try store.codes(modelVersion: 1).map(\.imageID), [ids[0], ids[2]], "codes go with their image (\(name))")
        XCTAssertEqual(try store.thumbnailsMissingCode(modelVersion: 2, afterID: 0, limit: 10).count, 0, name)
        XCTAssertEqual(try store.deleteCodes(modelVersion: 2), 2, name)
    }

    func modelsAndActivation() throws {
        XCTAssertTrue(try store.createInitialModel(Self.model(1, status: .active)), name)
        let job = try XCTUnwrap(claimed(try store.claimJob(kind: "lsh", configJSON: #"{"epochs":1}"#)), name)
        try store.insertModel(Self.model(2, status: .building), forJob: job, progress: 0.8, message: "encoding")
        XCTAssertEqual(try store.job(id: job)?.modelVersion, 2, name)
        XCTAssertEqual(try store.maxModelVersion(), 2, name)
        XCTAssertEqual(try store.models().map(\.version), [2, 1], "newest first (\(name))")
        XCTAssertEqual(try store.models().first?.weights, [], "listing leaves weights out (\(name))")
        XCTAssertEqual(try store.model(version: 2)?.weights, [1, 2, 3, 2], name)
        XCTAssertEqual(try store.model(version: 2)?.trainedThroughImageID, 7, name)
        try store.setActiveModelVersion(2)
        XCTAssertEqual(try store.activeModelVersion(), 2, name)
        XCTAssertEqual(try store.models().map(\.status), [.active, .inactive], name)
        XCTAssertThrowsError(try store.setActiveModelVersion(9), name) { error in
            XCTAssertEqual(error as? StoreError, .unknownModelVersion(9), name)
        }
        XCTAssertThrowsError(try store.pruneCodes(modelVersion: 2), name) { XCTAssertEqual($0 as? StoreError, .modelIsActive(2)) }
        XCTAssertThrowsError(try store.deleteModel(version: 2), name) { XCTAssertEqual($0 as? StoreError, .modelIsActive(2)) }
        try store.pruneCodes(modelVersion: 1)
        XCTAssertEqual(try store.model(version: 1)?.status, .pruned, name)
        XCTAssertTrue(try store.deleteModel(version: 1), name)
        XCTAssertFalse(try store.deleteModel(version: 1), name)
    }

    func jobsOneAtATime() throws {
        let first = try XCTUnwrap(claimed(try store.claimJob(kind: "dsch", configJSON: nil)), name)
        XCTAssertEqual(try store.claimJob(kind: "dsch", configJSON: nil), .busy(jobID: first), "one unfinished job at a time (\(name))")
        XCTAssertTrue(try store.renewJobLease(id: first), name)
        try store.updateJob(id: first, status: .running, progress: 0.5, message: "training", modelVersion: nil)
        let running = try XCTUnwrap(try store.job(id: first), name)
        XCTAssertEqual(running.status, .running, name)
        XCTAssertNotNil(running.startedAt, name)
        XCTAssertEqual(running.progress, 0.5, name)
        XCTAssertEqual(try store.claimJob(kind: "dsch", configJSON: nil), .busy(jobID: first), name)
        try store.updateJob(id: first, status: .succeeded, progress: 1, message: nil, modelVersion: nil)
        XCTAssertEqual(try store.job(id: first)?.message, "training", "nil leaves a field as it is (\(name))")
        XCTAssertNotNil(try store.job(id: first)?.finishedAt, name)
        XCTAssertFalse(try store.renewJobLease(id: first), "a finished job has no lease (\(name))")
        let second = try XCTUnwrap(claimed(try store.claimJob(kind: "dsch", configJSON: nil)), name)
        XCTAssertGreaterThan(second, first, name)
        XCTAssertEqual(try store.jobCounts(), [.succeeded: 1, .queued: 1], name)
        XCTAssertThrowsError(try store.updateJob(id: 999, status: .failed, progress: nil, message: nil, modelVersion: nil), name) {
            XCTAssertEqual($0 as? StoreError, .unknownJob(999), name)
        }
    }

    /// A process that stopped between activating a job's model and closing the job: recovery closes it
    /// as succeeded (its model serves) rather than failed, and keeps the model.
    func jobActivatedBeforeStopSucceeds() throws {
        XCTAssertTrue(try store.createInitialModel(Self.model(1, status: .active)), name)
        let job = try store.createJob(kind: "lsh", configJSON: nil)
        try store.updateJob(id: job, status: .running, progress: 0.9, message: "encoded 4 of 4 images", modelVersion: nil)
        try store.insertModel(Self.model(2, status: .building), forJob: job, progress: 0.9, message: "encoding images")
        try store.setActiveModelVersion(2)
        XCTAssertEqual(try store.failInterruptedJobs(reason: "interrupted").map(\.id), [], name)
        let closed = try XCTUnwrap(try store.job(id: job), name)
        XCTAssertEqual(closed.status, .succeeded, name)
        XCTAssertEqual(closed.message, "model version 2 active; the service stopped before the job was closed", name)
        XCTAssertEqual(try store.activeModelVersion(), 2, name)
        XCTAssertNotNil(try store.model(version: 2), name)
    }

    func claimed(_ claim: JobClaim) -> Int64? {
        if case .claimed(let id) = claim { return id }
        XCTFail("expected a claimed job, got \(claim) (\(name))")
        return nil
    }
}

/// The conformance behaviours on SQLite (a temporary file: WAL and the reader pool).
final class SQLiteConformanceTests: XCTestCase {
    private func conformance() throws -> StoreConformance {
        let store = try Store(path: try makeTemporaryDirectory(self).appendingPathComponent("store.sqlite").path)
        addTeardownBlock { store.close() }
        return StoreConformance(store: store, name: "sqlite")
    }

    func testImagesAndDuplicates() throws { try conformance().imagesAndDuplicates() }
    func testCodesAndDeletes() throws { try conformance().codesAndDeletes() }
    func testModelsAndActivation() throws { try conformance().modelsAndActivation() }
    func testJobsOneAtATime() throws { try conformance().jobsOneAtATime() }
    func testMetadataFiltersAndListing() throws { try conformance().metadataFiltersAndListing() }
    func testJobActivatedBeforeStopSucceeds() throws { try conformance().jobActivatedBeforeStopSucceeds() }
    func testBatchInsert() throws { try conformance().batchInsert() }

    func testInterruptedJobFailsAtStartAndItsModelGoes() throws {
        let conformance = try conformance()
        let store = conformance.store
        XCTAssertTrue(try store.createInitialModel(StoreConformance.model(1, status: .active)))
        let job = try XCTUnwrap(conformance.claimed(try store.claimJob(kind: "lsh", configJSON: nil)))
        try store.insertModel(StoreConformance.model(2, status: .building), forJob: job, progress: 0.8, message: "encoding")
        XCTAssertEqual(try store.failAbandonedJobs(reason: "x"), [], "in one process no job is abandoned while it runs")
        XCTAssertEqual(try store.failInterruptedJobs(reason: "restarted").map(\.id), [job])
        XCTAssertNil(try store.model(version: 2))
        XCTAssertNil(store.changeFeed, "a single-process store has no remote changes")
    }
}
