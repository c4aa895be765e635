import Foundation
import XCTest
import Hashing
import Imaging
import Storage
@testable import Service

/// The application without sockets: `ImageService`, the automatic retrain policy and `Importer`
/// over a real SQLite file in a temporary directory, and over PostgreSQL in `InProcessPostgresTests`.
class InProcessTests: ServiceTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-inprocess-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: directory) }

    private func makeService(_ configure: (inout Configuration) -> Void = { _ in }) throws -> ImageService {
        var configuration = Configuration()
        store.use(try store.freshDatabase(in: directory), in: directory, &configuration)
        configure(&configuration)
        store.complete(&configuration)
        return try ImageService(configuration: configuration, logger: Logger(sink: { _ in }))
    }

    func testIngestSimilarSearchAndDeleteWithoutHTTP() throws {
        let service = try makeService()
        defer { service.close() }
        let images = try (0..<5).map { try TestImages.png(seed: UInt64(300 + $0)) }
        let results = try images.map { try service.ingest(bytes: $0, metadataJSON: "{ \"b\": 1, \"a\": \"x\" }") }
        XCTAssertTrue(results.allSatisfy(\.created))
        XCTAssertEqual(results[0].record.metadataJSON, #"{"a":"x","b":1}"#, "metadata is stored in canonical form")
        let again = try service.ingest(bytes: images[0], metadataJSON: nil)
        XCTAssertFalse(again.created)
        XCTAssertEqual(again.record.id, results[0].record.id)
        XCTAssertEqual(again.code, results[0].code)

        let similar = try service.similar(to: results[0].record.id, k: 10, maxDistance: nil)
        XCTAssertEqual(Set(similar.hits.map(\.record.id)), Set(results.dropFirst().map(\.record.id)))
        XCTAssertEqual(similar.hits.map(\.neighbor.distance), similar.hits.map(\.neighbor.distance).sorted())
        let search = try service.search(bytes: images[2], k: 1, maxDistance: 0)
        XCTAssertEqual(search.hits.map(\.record.id), [results[2].record.id])

        try service.delete(id: results[2].record.id)
        XCTAssertThrowsError(try service.image(id: results[2].record.id)) { XCTAssertEqual(($0 as? ServiceError)?.status, 404) }
        XCTAssertTrue(try service.search(bytes: images[2], k: 1, maxDistance: 0).hits.isEmpty)
        XCTAssertThrowsError(try service.delete(id: results[2].record.id)) { XCTAssertEqual(($0 as? ServiceError)?.status, 404) }
        XCTAssertEqual(try service.imageCount(), 4)
        XCTAssertEqual(service.currentModel.count, 4)
    }

    /// The policy the timer runs: no learned model and enough images → train; a learned model and
    /// enough images added since its snapshot → train again; otherwise nothing.
    func testAutomaticRetrainPolicy() throws {
        let service = try makeService {
            $0.retrain.minImages = 3
            $0.retrain.afterNewImages = 2
            $0.retrain.kind = "itq"
        }
        defer { service.close() }
        let worker = RetrainWorker(service: service, trainers: [], logger: Logger(sink: { _ in }), metrics: Metrics())
        func ingest(_ seeds: Range<Int>) throws {
            for seed in seeds { _ = try service.ingest(bytes: try TestImages.png(seed: UInt64(400 + seed)), metadataJSON: nil) }
        }
        try ingest(0..<2)
        XCTAssertNil(try worker.automaticRetrainReason())
        try ingest(2..<3)
        XCTAssertEqual(try worker.automaticRetrainReason()?.reason, "3 images and no itq model yet")

        // A learned model trained through the newest image, made active. A real ITQ model: on PostgreSQL
        // the service follows the activation and loads it at the next upload.
        let store = service.store
        let thumbnails = try (0..<5).map { try service.decodeThumbnail(try TestImages.png(seed: UInt64(400 + $0))) }
        let encoder = try ITQEncoder.train(thumbnails: thumbnails + thumbnails.map { $0.map { 255 - $0 } }, bits: 8, inputSize: 32, iterations: 2)
        let job = try store.createJob(kind: "itq", configJSON: nil)
        try store.insertModel(ModelRecord(version: 2, kind: "itq", bits: encoder.bits, configJSON: "{}", weights: try encoder.serialized(),
                                          metricsJSON: nil, status: .inactive, createdAt: "", trainedThroughImageID: try store.maxImageID()),
                              forJob: job, progress: 1, message: "done")
        try store.setActiveModelVersion(2)
        XCTAssertNil(try worker.automaticRetrainReason())
        try ingest(3..<4)
        XCTAssertNil(try worker.automaticRetrainReason(), "one new image is not enough")
        try ingest(4..<5)
        XCTAssertEqual(try worker.automaticRetrainReason()?.reason, "2 images added since model 2 was trained")
    }

    func testImporterCountsNewDuplicateAndFailedFiles() throws {
        let service = try makeService()
        defer { service.close() }
        let folder = directory.appendingPathComponent("photos/nested")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let first = try TestImages.png(seed: 1), second = try ImageEncoder.jpeg(TestImages.rgb(seed: 2))
        try Data(first).write(to: folder.appendingPathComponent("a.png"))
        try Data(second).write(to: folder.appendingPathComponent("b.jpg"))
        try Data(first).write(to: folder.appendingPathComponent("copy-of-a.PNG"))
        try Data("not an image".utf8).write(to: folder.appendingPathComponent("broken.png"))
        try Data("ignored".utf8).write(to: folder.appendingPathComponent("notes.txt"))
        var reports: [(Int, Int)] = []
        let importer = Importer(service: service, logger: Logger(sink: { _ in })) { reports.append(($0, $1)) }
        let summary = try importer.run(paths: [directory.appendingPathComponent("photos").path])
        XCTAssertEqual(summary.created, 2)
        XCTAssertEqual(summary.duplicates, 1)
        XCTAssertEqual(summary.failed, 1)
        XCTAssertEqual(reports.last.map { [$0.0, $0.1] }, [4, 4], "progress ends at the total")
        XCTAssertEqual(try service.imageCount(), 2)
        let stored = try service.search(bytes: second, k: 1, maxDistance: 0).hits.first?.record
        XCTAssertEqual(stored?.contentType, "image/jpeg")
        XCTAssertTrue(stored?.metadataJSON?.contains("b.jpg") ?? false, stored?.metadataJSON ?? "no metadata")
    }
}

/// `InProcessTests` on PostgreSQL.
final class InProcessPostgresTests: InProcessTests {
    override class var store: TestStore { .postgresql }
    override func testIngestSimilarSearchAndDeleteWithoutHTTP() throws { try super.testIngestSimilarSearchAndDeleteWithoutHTTP() }
    override func testAutomaticRetrainPolicy() throws { try super.testAutomaticRetrainPolicy() }
    override func testImporterCountsNewDuplicateAndFailedFiles() throws { try super.testImporterCountsNewDuplicateAndFailedFiles() }
}
