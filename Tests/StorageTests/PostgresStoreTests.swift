import XCTest
import TestSupport
@testable import Storage

/// The conformance behaviours on PostgreSQL, and what only a shared database has: the change log,
/// claims across stores, leases, stale uploads and outages. One server for the class, a fresh
/// database for each test; skipped, saying why, when PostgreSQL is not installed.
final class PostgresConformanceTests: XCTestCase {
    private static let server = SharedTemporaryPostgres()

    override class func tearDown() {
        server.destroy()
        super.tearDown()
    }

    /// The class's server, started on first use.
    private func postgres() throws -> TemporaryPostgres { try Self.server.get() }

    private func makeStore(url: String? = nil, leaseSeconds: Double = 60) throws -> PostgresStore {
        let store = try PostgresStore(url: try url ?? postgres().createDatabase(), jobLeaseSeconds: leaseSeconds)
        addTeardownBlock { store.close() }
        return store
    }

    private func conformance() throws -> StoreConformance { StoreConformance(store: try makeStore(), name: "postgresql") }

    func testImagesAndDuplicates() throws { try conformance().imagesAndDuplicates() }
    func testCodesAndDeletes() throws { try conformance().codesAndDeletes() }
    func testModelsAndActivation() throws { try conformance().modelsAndActivation() }
    func testJobsOneAtATime() throws { try conformance().jobsOneAtATime() }
    func testMetadataFiltersAndListing() throws { try conformance().metadataFiltersAndListing() }
    func testJobActivatedBeforeStopSucceeds() throws { try conformance().jobActivatedBeforeStopSucceeds() }
    func testBatchInsert() throws { try conformance().batchInsert() }

    /// A batch logs one code change per new image, in id order, and none for copies; a batch encoded
    /// under a version another replica replaced is refused whole.
    func testBatchInsertFeedsTheChangeLog() throws {
        let url = try postgres().createDatabase()
        let writer = try makeStore(url: url), follower = try makeStore(url: url)
        XCTAssertTrue(try writer.createInitialModel(StoreConformance.model(1, status: .active)))
        let start = try follower.latestChangeSequence()
        let stored = try writer.insertImage(StoreConformance.image(1), code: [1, 1], modelVersion: 1).id
        let images = (0..<250).map { StoreConformance.image(100 + $0) }
        let results = try writer.insertImages(images + [StoreConformance.image(1), StoreConformance.image(100)],
                                              codes: (0..<252).map { [UInt8($0 % 256), 7] }, modelVersion: 1)
        XCTAssertEqual(results.filter(\.created).count, 250, "three chunks of multi-row statements")
        XCTAssertEqual(results[250], InsertResult(id: stored, created: false))
        XCTAssertEqual(results[251], InsertResult(id: results[0].id, created: false))
        let seen = try follower.changes(after: start, limit: 1000)
        XCTAssertEqual(seen.map(\.change), [.code(imageID: stored, modelVersion: 1, code: [1, 1])]
                       + (0..<250).map { .code(imageID: results[$0].id, modelVersion: 1, code: [UInt8($0), 7]) })
        XCTAssertEqual(seen.map(\.sequence), seen.map(\.sequence).sorted())
        XCTAssertEqual(try writer.changes(after: start, limit: 1000), [], "a replica's own codes are not fed back to it")
        let again = try writer.insertImages(images.prefix(3).map { $0 }, codes: [[0], [0], [0]], modelVersion: 1)
        XCTAssertEqual(again.map(\.created), [false, false, false])
        XCTAssertEqual(try follower.changes(after: seen.last!.sequence, limit: 10), [], "copies log nothing")

        let job = try XCTUnwrap(StoreConformance(store: writer, name: "writer").claimed(try writer.claimJob(kind: "lsh", configJSON: nil)))
        try writer.insertModel(StoreConformance.model(2, status: .building), forJob: job, progress: 0.8, message: "encoding")
        try writer.setActiveModelVersion(2)
        XCTAssertThrowsError(try follower.insertImages([StoreConformance.image(900), StoreConformance.image(901)], codes: [[1], [2]], modelVersion: 1)) {
            XCTAssertEqual($0 as? StoreError, .activeVersionChanged(encoded: 1, active: 2))
        }
        XCTAssertEqual(try follower.imageCount(), 251, "the refused batch was rolled back")
        XCTAssertEqual(try follower.insertImages([StoreConformance.image(900)], codes: [[1]], modelVersion: 2).map(\.created), [true])
    }

    func testMigrationsAreRecordedOnceAndEditsRefused() throws {
        let url = try postgres().createDatabase()
        let first = try makeStore(url: url)
        let second = try makeStore(url: url)
        XCTAssertNotEqual(first.replicaID, second.replicaID)
        let migrations = try MigrationRunner.bundledMigrations(folder: "PostgresMigrations")
        let edited = migrations.map { Migration(id: $0.id, name: $0.name, sql: $0.sql + "\n-- edited") }
        XCTAssertThrowsError(try PostgresStore(url: url, migrations: edited)) { error in
            guard case MigrationError.editedAfterApply(1, _) = error else { return XCTFail("\(error)") }
        }
    }

    /// Another store on the same database sees uploads, deletes and activations in commit order; its
    /// own codes are left out, its own deletes and activations are not.
    func testChangeLogCarriesUploadsDeletesAndActivations() throws {
        let url = try postgres().createDatabase()
        let writer = try makeStore(url: url), follower = try makeStore(url: url)
        XCTAssertTrue(try writer.createInitialModel(StoreConformance.model(1, status: .active)))
        let start = try follower.latestChangeSequence()
        let first = try writer.insertImage(StoreConformance.image(1), code: [1, 1], modelVersion: 1).id
        let second = try writer.insertImage(StoreConformance.image(2), code: [2, 2], modelVersion: 1).id
        XCTAssertTrue(try writer.deleteImage(id: first))
        let job = try XCTUnwrap(StoreConformance(store: writer, name: "writer").claimed(try writer.claimJob(kind: "lsh", configJSON: nil)))
        try writer.insertModel(StoreConformance.model(2, status: .building), forJob: job, progress: 0.8, message: "encoding")
        try writer.putCodes([(imageID: second, code: [7, 7])], modelVersion: 2)
        try writer.setActiveModelVersion(2)
        try writer.putCodes([(imageID: second, code: [8, 8])], modelVersion: 2)

        let seen = try follower.changes(after: start, limit: 100)
        XCTAssertEqual(seen.map(\.change), [
            .code(imageID: first, modelVersion: 1, code: [1, 1]),
            .code(imageID: second, modelVersion: 1, code: [2, 2]),
            .delete(imageID: first),
            .activate(modelVersion: 2),
            .code(imageID: second, modelVersion: 2, code: [8, 8]),
        ], "codes of a version being built are not logged; the follower reads them when it activates")
        XCTAssertEqual(seen.map(\.sequence), seen.map(\.sequence).sorted())
        XCTAssertEqual(try writer.changes(after: start, limit: 100).map(\.change), [.delete(imageID: first), .activate(modelVersion: 2)],
                       "a replica's own codes are not fed back to it")
        XCTAssertEqual(try follower.changes(after: seen[2].sequence, limit: 1).map(\.change), [.activate(modelVersion: 2)])
    }

    func testWaitForChangesIsWokenByACommit() throws {
        let url = try postgres().createDatabase()
        let writer = try makeStore(url: url), follower = try makeStore(url: url)
        XCTAssertTrue(try writer.createInitialModel(StoreConformance.model(1, status: .active)))
        _ = try follower.waitForChanges(timeout: 0.01)  // connects and listens
        let started = Date()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) {
            _ = try? writer.insertImage(StoreConformance.image(5), code: [5, 5], modelVersion: 1)
        }
        XCTAssertTrue(try follower.waitForChanges(timeout: 5))
        XCTAssertLessThan(Date().timeIntervalSince(started), 2, "woken by NOTIFY, not by the timeout")
    }

    /// An upload encoded under the version another replica just replaced is refused, not stored stale.
    func testUploadUnderAReplacedVersionIsRefused() throws {
        let url = try postgres().createDatabase()
        let one = try makeStore(url: url), two = try makeStore(url: url)
        XCTAssertTrue(try one.createInitialModel(StoreConformance.model(1, status: .active)))
        let job = try XCTUnwrap(StoreConformance(store: one, name: "one").claimed(try one.claimJob(kind: "lsh", configJSON: nil)))
        try one.insertModel(StoreConformance.model(2, status: .building), forJob: job, progress: 0.8, message: "encoding")
        try one.setActiveModelVersion(2)
        XCTAssertThrowsError(try two.insertImage(StoreConformance.image(1), code: [1, 1], modelVersion: 1)) { error in
            XCTAssertEqual(error as? StoreError, .activeVersionChanged(encoded: 1, active: 2))
        }
        XCTAssertEqual(try two.imageCount(), 0, "the refused upload was rolled back")
        XCTAssertTrue(try two.insertImage(StoreConformance.image(1), code: [1, 1], modelVersion: 2).created)
    }

    /// Claims are exclusive across stores; a lease nobody renews expires and any store fails the job
    /// and removes the model it was building.
    func testClaimIsClusterWideAndAnExpiredLeaseFailsTheJob() throws {
        let url = try postgres().createDatabase()
        let one = try makeStore(url: url, leaseSeconds: 1), two = try makeStore(url: url, leaseSeconds: 1)
        XCTAssertTrue(try one.createInitialModel(StoreConformance.model(1, status: .active)))
        let job = try XCTUnwrap(StoreConformance(store: one, name: "one").claimed(try one.claimJob(kind: "lsh", configJSON: nil)))
        XCTAssertEqual(try two.claimJob(kind: "lsh", configJSON: nil), .busy(jobID: job))
        XCTAssertFalse(try two.renewJobLease(id: job), "only the owner renews")
        XCTAssertEqual(try two.failAbandonedJobs(reason: "x"), [], "a live lease is left alone")
        try one.insertModel(StoreConformance.model(2, status: .building), forJob: job, progress: 0.8, message: "encoding")
        Thread.sleep(forTimeInterval: 1.3)
        let failed = try two.failAbandonedJobs(reason: "abandoned")
        XCTAssertEqual(failed.map(\.id), [job])
        XCTAssertEqual(failed.first?.status, .failed)
        XCTAssertNil(try two.model(version: 2), "the abandoned job's unfinished model is removed")
        XCTAssertFalse(try one.renewJobLease(id: job), "the old owner learns it lost the job")
        guard case .claimed = try two.claimJob(kind: "lsh", configJSON: nil) else { return XCTFail("a new job can be claimed") }
    }

    /// PostgreSQL going away turns into `StorageUnavailableError`; once it is back the same store
    /// works again without being reopened, and the change log resumes.
    func testOutageIsTypedAndTheStoreReconnects() throws {
        let server = try postgres()
        let url = try server.createDatabase()
        let store = try makeStore(url: url)
        XCTAssertTrue(try store.createInitialModel(StoreConformance.model(1, status: .active)))
        _ = try store.insertImage(StoreConformance.image(1), code: [1, 1], modelVersion: 1)
        _ = try store.waitForChanges(timeout: 0.01)
        try server.stopServer()
        defer { try? server.startServer() }
        XCTAssertThrowsError(try store.imageCount()) { XCTAssertTrue($0 is StorageUnavailableError, "\($0)") }
        XCTAssertThrowsError(try store.insertImage(StoreConformance.image(2), code: [2, 2], modelVersion: 1)) {
            XCTAssertTrue($0 is StorageUnavailableError, "\($0)")
        }
        XCTAssertThrowsError(try store.waitForChanges(timeout: 0.2)) { XCTAssertTrue($0 is StorageUnavailableError, "\($0)") }
        try server.startServer()
        XCTAssertEqual(try store.imageCount(), 1)
        _ = try store.insertImage(StoreConformance.image(2), code: [2, 2], modelVersion: 1)
        XCTAssertEqual(try store.imageCount(), 2)
        _ = try store.waitForChanges(timeout: 0.01)
    }
}
