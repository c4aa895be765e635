import XCTest
import TestSupport
@testable import Storage

/// Every behaviour test runs twice: on a private in-memory database and on a temp file (WAL, reader pool).
final class StoreTests: XCTestCase {
    private enum Kind: CaseIterable { case memory, file }

    private func makeStore(_ kind: Kind) throws -> Store {
        switch kind {
        case .memory: return try Store(path: ":memory:")
        case .file: return try Store(path: try makeTemporaryDirectory(self).appendingPathComponent("store.sqlite").path)
        }
    }

    /// Runs `body` against a fresh store of each kind, naming the kind in failures.
    private func forEachStore(_ body: (Store, String) throws -> Void) throws {
        for kind in Kind.allCases {
            let store = try makeStore(kind)
            try body(store, "\(kind)")
            store.close()
        }
    }

    private func model(_ version: Int, bits: Int = 64) -> ModelRecord {
        ModelRecord(version: version, kind: "lsh", bits: bits, configJSON: #"{"seed":1}"#, weights: [1, 2, 3, UInt8(version)],
                    metricsJSON: nil, status: .inactive, createdAt: "")
    }

    private func newImage(_ seed: Int, metadata: String? = nil) -> NewImage {
        let original = (0..<(50 + seed % 7)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
        return NewImage(sha256: SHA256.hexDigest(original), contentType: "image/png", width: 10 + seed, height: 20,
                        original: original, thumbnail: [UInt8(truncatingIfNeeded: seed), 9, 9], metadataJSON: metadata)
    }

    func testInsertReadAndDuplicateSHA() throws {
        try forEachStore { store, kind in
            try store.insertModel(model(1))
            let image = newImage(1, metadata: #"{"title":"cat"}"#)
            let first = try store.insertImage(image, code: [0xAA, 0xBB], modelVersion: 1)
            XCTAssertTrue(first.created, kind)
            let again = try store.insertImage(image, code: [0x00, 0x00], modelVersion: 1)
            XCTAssertEqual(again, InsertResult(id: first.id, created: false), kind)
            XCTAssertEqual(try store.imageCount(), 1, kind)
            XCTAssertEqual(try store.codes(modelVersion: 1).map(\.code), [[0xAA, 0xBB]], "a duplicate leaves the stored code alone (\(kind))")

            let record = try XCTUnwrap(try store.image(id: first.id), kind)
            XCTAssertEqual(record.sha256, image.sha256, kind)
            XCTAssertEqual(record.contentType, "image/png", kind)
            XCTAssertEqual(record.width, 11, kind)
            XCTAssertEqual(record.height, 20, kind)
            XCTAssertEqual(record.byteSize, image.original.count, kind)
            XCTAssertEqual(record.metadataJSON, #"{"title":"cat"}"#, kind)
            XCTAssertTrue(record.createdAt.hasSuffix("Z") && record.createdAt.count == 24, record.createdAt)
            let content = try XCTUnwrap(try store.imageContent(id: first.id), kind)
            XCTAssertEqual(content.contentType, "image/png", kind)
            XCTAssertEqual(content.bytes, image.original, kind)
            XCTAssertNil(try store.image(id: 999), kind)
            XCTAssertNil(try store.imageContent(id: 999), kind)
            XCTAssertEqual(try store.code(imageID: first.id, modelVersion: 1), [0xAA, 0xBB], kind)
        }
    }

    func testInsertIsAtomicWhenTheCodeCannotBeStored() throws {
        try forEachStore { store, kind in
            // Model version 5 does not exist, so the code row violates its foreign key: no image may remain.
            XCTAssertThrowsError(try store.insertImage(newImage(1), code: [1], modelVersion: 5), kind)
            XCTAssertEqual(try store.imageCount(), 0, kind)
            XCTAssertThrowsError(try store.insertImage(newImage(2, metadata: "not json"), code: [1], modelVersion: 5), kind)
        }
    }

    func testImagesByIDsAndIDListing() throws {
        try forEachStore { store, kind in
            try store.insertModel(model(1))
            var ids: [Int64] = []
            for seed in 0..<250 { ids.append(try store.insertImage(newImage(seed), code: [UInt8(seed % 256)], modelVersion: 1).id) }
            XCTAssertEqual(try store.imageIDs(), ids, kind)
            XCTAssertEqual(try store.maxImageID(), ids.last, kind)
            let wanted = Array(ids[10..<230]) + [ids[3], ids[3], 1_000_000]
            let records = try store.images(ids: wanted)
            XCTAssertEqual(Set(records.keys), Set(ids[10..<230] + [ids[3]]), kind)
            XCTAssertEqual(records[ids[3]]?.width, 13, kind)
            XCTAssertEqual(try store.images(ids: []), [:], kind)
        }
    }

    func testDeleteCascadesToCodes() throws {
        try forEachStore { store, kind in
            try store.insertModel(model(1))
            try store.insertModel(model(2))
            let kept = try store.insertImage(newImage(1), code: [1], modelVersion: 1).id
            let removed = try store.insertImage(newImage(2), code: [2], modelVersion: 1).id
            try store.putCodes([(imageID: removed, code: [22]), (imageID: kept, code: [11])], modelVersion: 2)
            XCTAssertTrue(try store.deleteImage(id: removed), kind)
            XCTAssertFalse(try store.deleteImage(id: removed), kind)
            XCTAssertEqual(try store.codes(modelVersion: 1).map(\.imageID), [kept], kind)
            XCTAssertEqual(try store.codes(modelVersion: 2).map(\.imageID), [kept], kind)
            XCTAssertEqual(try store.maxImageID(), kept, kind)
            XCTAssertEqual(try store.integrityCheck(), "ok", kind)
        }
    }

    func testPutCodesUpsertsAndSkipsDeletedImages() throws {
        try forEachStore { store, kind in
            try store.insertModel(model(1))
            try store.insertModel(model(2))
            let a = try store.insertImage(newImage(1), code: [1], modelVersion: 1).id
            let b = try store.insertImage(newImage(2), code: [2], modelVersion: 1).id
            try store.putCodes([(imageID: b, code: [0xB0]), (imageID: a, code: [0xA0]), (imageID: 12345, code: [0])], modelVersion: 2)
            try store.putCodes([(imageID: a, code: [0xA1])], modelVersion: 2)
            let codes = try store.codes(modelVersion: 2)
            XCTAssertEqual(codes.map(\.imageID), [a, b], kind)
            XCTAssertEqual(codes.map(\.code), [[0xA1], [0xB0]], kind)
            XCTAssertEqual(try store.deleteCodes(modelVersion: 2), 2, kind)
            XCTAssertTrue(try store.codes(modelVersion: 2).isEmpty, kind)
            XCTAssertEqual(try store.codes(modelVersion: 1).count, 2, kind)
        }
    }

    func testPutCodesReportsWhatWasStoredAndMissingCodesAreFound() throws {
        try forEachStore { store, kind in
            try store.insertModel(model(1))
            try store.insertModel(model(2))
            let ids = try (1...4).map { try store.insertImage(newImage($0), code: [1], modelVersion: 1).id }
            XCTAssertTrue(try store.deleteImage(id: ids[1]), kind)
            let stored = try store.putCodes(ids.map { (imageID: $0, code: [7]) }, modelVersion: 2)
            XCTAssertEqual(stored, [ids[0], ids[2], ids[3]], "the deleted image is reported as not stored (\(kind))")
            XCTAssertTrue(try store.deleteCodes(modelVersion: 2) == 3, kind)
            _ = try store.putCodes([(imageID: ids[2], code: [7])], modelVersion: 2)
            let missing = try store.thumbnailsMissingCode(modelVersion: 2, afterID: 0, limit: 10).map(\.imageID)
            XCTAssertEqual(missing, [ids[0], ids[3]], kind)
            XCTAssertEqual(try store.thumbnailsMissingCode(modelVersion: 2, afterID: ids[0], limit: 10).map(\.imageID), [ids[3]], kind)
            XCTAssertEqual(try store.thumbnails(ids: [ids[3], ids[1], ids[0]]).map(\.imageID), [ids[3], ids[0]],
                           "in the order asked, deleted ids left out (\(kind))")
            XCTAssertEqual(try store.imageIDs(through: ids[2]), [ids[0], ids[2]], kind)
        }
    }

    func testInitialModelIsInsertedAndActivatedTogether() throws {
        try forEachStore { store, kind in
            XCTAssertTrue(try store.createInitialModel(model(1)), kind)
            XCTAssertEqual(try store.activeModelVersion(), 1, kind)
            XCTAssertEqual(try store.model(version: 1)?.status, .active, kind)
            XCTAssertFalse(try store.createInitialModel(model(2)), "a database with an active model is left alone (\(kind))")
            XCTAssertNil(try store.model(version: 2), kind)
            // A failure inside the transaction (here a duplicate version) leaves no half-made state.
            let other = try makeStore(.memory)
            defer { other.close() }
            try other.insertModel(model(1))
            XCTAssertThrowsError(try other.createInitialModel(model(1)), kind)
            XCTAssertNil(try other.activeModelVersion(), kind)
        }
    }

    func testModelForJobAndPruningAreAtomic() throws {
        try forEachStore { store, kind in
            try store.insertModel(model(1))
            try store.setActiveModelVersion(1)
            XCTAssertThrowsError(try store.insertModel(model(2), forJob: 99, progress: 0.8, message: "x"), kind) {
                XCTAssertEqual($0 as? StoreError, .unknownJob(99))
            }
            XCTAssertNil(try store.model(version: 2), "no model row without its job (\(kind))")
            let job = try store.createJob(kind: "lsh", configJSON: nil)
            try store.insertModel(model(2), forJob: job, progress: 0.8, message: "encoding images")
            XCTAssertEqual(try store.job(id: job)?.modelVersion, 2, kind)
            XCTAssertEqual(try store.job(id: job)?.message, "encoding images", kind)

            let image = try store.insertImage(newImage(1), code: [1], modelVersion: 1).id
            try store.putCodes([(imageID: image, code: [2])], modelVersion: 2)
            XCTAssertThrowsError(try store.pruneCodes(modelVersion: 1), kind) { XCTAssertEqual($0 as? StoreError, .modelIsActive(1)) }
            try store.pruneCodes(modelVersion: 2)
            XCTAssertEqual(try store.model(version: 2)?.status, .pruned, kind)
            XCTAssertTrue(try store.codes(modelVersion: 2).isEmpty, kind)
            XCTAssertEqual(try store.codes(modelVersion: 1).count, 1, kind)
        }
    }

    func testInterruptedJobsLoseTheirUnfinishedModelInTheSameStep() throws {
        try forEachStore { store, kind in
            try store.insertModel(model(1))
            try store.setActiveModelVersion(1)
            let image = try store.insertImage(newImage(1), code: [1], modelVersion: 1).id
            let job = try store.createJob(kind: "lsh", configJSON: nil)
            try store.updateJob(id: job, status: .running)
            try store.insertModel(model(2), forJob: job, progress: 0.8, message: "encoding images")
            try store.putCodes([(imageID: image, code: [2])], modelVersion: 2)
            let failed = try store.failInterruptedJobs(reason: "interrupted")
            XCTAssertEqual(failed.map(\.id), [job], kind)
            XCTAssertEqual(failed.first?.status, .failed, kind)
            XCTAssertNil(try store.model(version: 2), kind)
            XCTAssertTrue(try store.codes(modelVersion: 2).isEmpty, kind)
            XCTAssertNotNil(try store.model(version: 1), "the active model stays (\(kind))")
        }
    }

    /// Migration 2 moves the training watermark out of the config JSON into its own column.
    func testWatermarkMigrationBackfillsFromConfig() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("old.sqlite").path
        let first = try MigrationRunner.bundledMigrations().filter { $0.id == 1 }
        let old = try Store(path: path, migrations: first)
        let database = try Database(path: path)
        try database.run("""
            INSERT INTO models (version, kind, bits, config, weights, status)
            VALUES (1, 'lsh', 64, '{"seed":1}', x'00', 'active'), (2, 'itq', 64, '{"trainedThroughImageID":41}', x'00', 'inactive')
            """)
        database.close()
        old.close()
        let store = try Store(path: path)
        defer { store.close() }
        XCTAssertNil(try store.model(version: 1)?.trainedThroughImageID)
        XCTAssertEqual(try store.model(version: 2)?.trainedThroughImageID, 41)
        try store.insertModel(ModelRecord(version: 3, kind: "itq", bits: 64, configJSON: "{}", weights: [1], metricsJSON: nil,
                                          status: .building, createdAt: "", trainedThroughImageID: 99))
        XCTAssertEqual(try store.models().first?.trainedThroughImageID, 99)
    }

    func testThumbnailsPageByID() throws {
        try forEachStore { store, kind in
            try store.insertModel(model(1))
            var ids: [Int64] = []
            for seed in 0..<7 { ids.append(try store.insertImage(newImage(seed), code: [0], modelVersion: 1).id) }
            var seen: [Int64] = []
            var after: Int64 = 0
            while true {
                let page = try store.thumbnails(afterID: after, limit: 3)
                guard let last = page.last else { break }
                XCTAssertLessThanOrEqual(page.count, 3, kind)
                seen += page.map(\.imageID)
                XCTAssertEqual(page.first?.thumbnail.first, UInt8(truncatingIfNeeded: ids.firstIndex(of: page[0].imageID)!), kind)
                after = last.imageID
            }
            XCTAssertEqual(seen, ids, kind)
        }
    }

    func testModelsAndActiveVersion() throws {
        try forEachStore { store, kind in
            XCTAssertNil(try store.activeModelVersion(), kind)
            try store.insertModel(model(1))
            try store.insertModel(model(2, bits: 128))
            XCTAssertThrowsError(try store.insertModel(model(2)), "duplicate version (\(kind))")
            let stored = try XCTUnwrap(try store.model(version: 2), kind)
            XCTAssertEqual(stored.bits, 128, kind)
            XCTAssertEqual(stored.weights, [1, 2, 3, 2], kind)
            XCTAssertFalse(stored.createdAt.isEmpty, kind)
            XCTAssertEqual(try store.models().map(\.version), [2, 1], kind)
            XCTAssertEqual(try store.models().first?.weights, [], "listing leaves weights out (\(kind))")
            XCTAssertEqual(try store.maxModelVersion(), 2, kind)

            try store.setActiveModelVersion(1)
            try store.setActiveModelVersion(2)
            XCTAssertEqual(try store.activeModelVersion(), 2, kind)
            XCTAssertEqual(try store.models().map(\.status), [.active, .inactive], kind)
            XCTAssertThrowsError(try store.setActiveModelVersion(9)) { XCTAssertEqual($0 as? StoreError, .unknownModelVersion(9)) }
            XCTAssertEqual(try store.activeModelVersion(), 2, kind)

            try store.setModelMetrics(version: 1, metricsJSON: #"{"map":0.5}"#)
            try store.setModelStatus(version: 1, status: .pruned)
            XCTAssertEqual(try store.model(version: 1)?.metricsJSON, #"{"map":0.5}"#, kind)
            XCTAssertEqual(try store.model(version: 1)?.status, .pruned, kind)
            XCTAssertThrowsError(try store.setModelStatus(version: 8, status: .inactive)) { XCTAssertEqual($0 as? StoreError, .unknownModelVersion(8)) }

            let image = try store.insertImage(newImage(1), code: [1], modelVersion: 2).id
            try store.putCodes([(imageID: image, code: [7])], modelVersion: 1)
            XCTAssertThrowsError(try store.deleteModel(version: 2)) { XCTAssertEqual($0 as? StoreError, .modelIsActive(2)) }
            XCTAssertTrue(try store.deleteModel(version: 1), kind)
            XCTAssertFalse(try store.deleteModel(version: 1), kind)
            XCTAssertTrue(try store.codes(modelVersion: 1).isEmpty, kind)
            XCTAssertEqual(try store.codes(modelVersion: 2).count, 1, kind)

            try store.setSetting("retrain.lastImageID", value: "17")
            XCTAssertEqual(try store.setting("retrain.lastImageID"), "17", kind)
            XCTAssertNil(try store.setting("missing"), kind)
        }
    }

    func testJobLifecycle() throws {
        try forEachStore { store, kind in
            let id = try store.createJob(kind: "retrain", configJSON: #"{"epochs":3}"#)
            var job = try XCTUnwrap(try store.job(id: id), kind)
            XCTAssertEqual(job.status, .queued, kind)
            XCTAssertEqual(job.progress, 0, kind)
            XCTAssertNil(job.startedAt, kind)
            XCTAssertNil(try store.runningJob(), kind)

            try store.updateJob(id: id, status: .running, modelVersion: 3)
            job = try XCTUnwrap(try store.job(id: id))
            XCTAssertEqual(job.status, .running, kind)
            XCTAssertNotNil(job.startedAt, kind)
            XCTAssertNil(job.finishedAt, kind)
            XCTAssertEqual(job.modelVersion, 3, kind)
            XCTAssertEqual(try store.runningJob()?.id, id, kind)

            try store.updateJob(id: id, progress: 0.5, message: "epoch 2 of 3")
            job = try XCTUnwrap(try store.job(id: id))
            XCTAssertEqual(job.progress, 0.5, kind)
            XCTAssertEqual(job.message, "epoch 2 of 3", kind)
            XCTAssertEqual(job.status, .running, "nil leaves the status alone (\(kind))")

            try store.updateJob(id: id, status: .succeeded, progress: 1)
            job = try XCTUnwrap(try store.job(id: id))
            XCTAssertEqual(job.status, .succeeded, kind)
            XCTAssertNotNil(job.finishedAt, kind)
            XCTAssertEqual(job.configJSON, #"{"epochs":3}"#, kind)
            XCTAssertThrowsError(try store.updateJob(id: 404, progress: 0.1)) { XCTAssertEqual($0 as? StoreError, .unknownJob(404)) }

            let interrupted = try store.createJob(kind: "retrain", configJSON: nil)
            try store.updateJob(id: interrupted, status: .running, modelVersion: 4)
            let queued = try store.createJob(kind: "retrain", configJSON: nil)
            XCTAssertEqual(try store.jobCounts(), [.succeeded: 1, .running: 1, .queued: 1], kind)
            let failed = try store.failInterruptedJobs(reason: "the service stopped during training")
            XCTAssertEqual(failed.map(\.id), [interrupted, queued], kind)
            XCTAssertEqual(failed.first?.modelVersion, 4, kind)
            XCTAssertTrue(failed.allSatisfy { $0.status == .failed && $0.finishedAt != nil && $0.message == "the service stopped during training" }, kind)
            XCTAssertEqual(try store.jobCounts(), [.succeeded: 1, .failed: 2], kind)
            XCTAssertEqual(try store.jobs().map(\.id), [queued, interrupted, id], kind)
            XCTAssertNil(try store.job(id: 404), kind)
        }
    }

    func testConcurrentInsertsFromEightThreadsAllLand() throws {
        try forEachStore { store, kind in
            try store.insertModel(model(1))
            let perThread = 25
            let results = ResultBox()
            // Eight real threads, not a pool sized to this machine's cores, so eight callers really overlap.
            let group = DispatchGroup()
            for thread in 0..<8 {
                group.enter()
                Thread {
                    defer { group.leave() }
                    for number in 0..<perThread {
                        let seed = thread * 1000 + number
                        do {
                            let result = try store.insertImage(self.newImage(seed), code: [UInt8(number)], modelVersion: 1)
                            // Reads interleaved with the writes must never fail or see a half-written image.
                            _ = try store.image(id: result.id)
                            XCTAssertEqual(try store.code(imageID: result.id, modelVersion: 1), [UInt8(number)])
                            results.append(result)
                        } catch {
                            results.fail("\(error)")
                        }
                    }
                }.start()
            }
            XCTAssertEqual(group.wait(timeout: .now() + 60), .success, kind)
            XCTAssertEqual(results.failures, [], kind)
            XCTAssertEqual(results.values.count, 8 * perThread, kind)
            XCTAssertTrue(results.values.allSatisfy(\.created), kind)
            XCTAssertEqual(Set(results.values.map(\.id)).count, 8 * perThread, kind)
            XCTAssertEqual(try store.imageCount(), 8 * perThread, kind)
            XCTAssertEqual(try store.codes(modelVersion: 1).count, 8 * perThread, kind)
            XCTAssertEqual(try store.integrityCheck(), "ok", kind)
        }
    }

    func testReopenedFileHasEverything() throws {
        // A missing parent directory is created, as on a fresh install.
        let path = try makeTemporaryDirectory(self).appendingPathComponent("data/nested/reopen.sqlite").path
        var id: Int64 = 0
        do {
            let store = try Store(path: path)
            try store.insertModel(model(1))
            try store.setActiveModelVersion(1)
            id = try store.insertImage(newImage(3), code: [3, 4], modelVersion: 1).id
            _ = try store.createJob(kind: "retrain", configJSON: nil)
            store.close()
        }
        let store = try Store(path: path)
        defer { store.close() }
        XCTAssertEqual(try store.activeModelVersion(), 1)
        XCTAssertEqual(try store.image(id: id)?.sha256, newImage(3).sha256)
        XCTAssertEqual(try store.codes(modelVersion: 1).first?.code, [3, 4])
        XCTAssertEqual(try store.jobCounts(), [.queued: 1])
        XCTAssertEqual(try store.integrityCheck(), "ok")
        let backup = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("backup.sqlite").path
        try store.backup(to: backup)
        let copy = try Store(path: backup)
        XCTAssertEqual(try copy.imageCount(), 1)
        copy.close()
    }

    func testStoreRefusesDatabaseWithEditedMigration() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("edited.sqlite").path
        let original = Migration(id: 1, name: "start", sql: "CREATE TABLE t (x INTEGER);")
        try Store(path: path, migrations: [original]).close()
        let edited = Migration(id: 1, name: "start", sql: "CREATE TABLE t (x INTEGER, y INTEGER);")
        XCTAssertThrowsError(try Store(path: path, migrations: [edited])) { error in
            guard case MigrationError.editedAfterApply(1, "start") = error else { return XCTFail("\(error)") }
        }
    }

    func testClosedStoreThrowsInsteadOfCrashing() throws {
        try forEachStore { store, kind in
            store.close()
            XCTAssertThrowsError(try store.imageCount(), kind)
            XCTAssertThrowsError(try store.createJob(kind: "retrain", configJSON: nil), kind)
        }
    }
}

/// Collects results from concurrent threads.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storedValues: [InsertResult] = []
    private var storedFailures: [String] = []
    func append(_ value: InsertResult) { lock.lock(); storedValues.append(value); lock.unlock() }
    func fail(_ message: String) { lock.lock(); storedFailures.append(message); lock.unlock() }
    var values: [InsertResult] { lock.lock(); defer { lock.unlock() }; return storedValues }
    var failures: [String] { lock.lock(); defer { lock.unlock() }; return storedFailures }
}
