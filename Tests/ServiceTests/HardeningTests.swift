import Foundation
import XCTest
import Hashing
import HammingIndex
import Storage
@testable import Service

/// What a hostile or careless client, a changed configuration or a damaged database must not do:
/// store oversized metadata, delete without a token, grow metric labels, crash the start-up, or leave
/// deleted images searchable after a retrain race. On PostgreSQL too, in `HardeningPostgresTests`.
class HardeningTests: ServiceTestCase {
    func testMetadataLimitsAndCanonicalForm() throws {
        let running = try startServer { $0.images.maxMetaBytes = 1024; $0.images.maxMetaDepth = 4 }
        defer { running.stop() }
        let client = running.client
        let image = try TestImages.png(seed: 5)
        func upload(meta: String) throws -> TestClient.Response {
            let query = meta.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            return try client.request("POST", "/v1/images?meta=\(query)", body: image)
        }
        let large = "{\"note\":\"" + String(repeating: "x", count: 1100) + "\"}"
        let tooLarge = try upload(meta: large)
        XCTAssertEqual(tooLarge.status, 413, tooLarge.text)
        XCTAssertTrue(tooLarge.text.contains("at most 1024 bytes"), tooLarge.text)
        let deep = try upload(meta: "{\"a\":[[[[1]]]]}")
        XCTAssertEqual(deep.status, 400, deep.text)
        XCTAssertTrue(deep.text.contains("5 levels"), deep.text)
        XCTAssertEqual(try running.server.service.store.imageCount(), 0, "nothing stored for refused metadata")

        // Brackets inside strings do not count as nesting; keys come back sorted, as stored.
        let accepted = try upload(meta: "{\"z\":\"[[[[[\",\"a\":[[[1]]]}")
        XCTAssertEqual(accepted.status, 201, accepted.text)
        XCTAssertTrue(accepted.text.contains(#""meta":{"a":[[[1]]],"z":"[[[[["}"#), accepted.text)
        let id = try XCTUnwrap(accepted.json["id"] as? Int)
        let stored = try XCTUnwrap(try running.server.service.store.image(id: Int64(id))?.metadataJSON)
        XCTAssertEqual(stored, #"{"a":[[[1]]],"z":"[[[[["}"#)
        let search = try client.request("POST", "/v1/search?k=1", body: image)
        XCTAssertTrue(search.text.contains(#""meta":{"a":[[[1]]],"z":"[[[[["}"#), search.text)
    }

    /// The 78 KB PNG that used to take the process down: a 1 × 40,000,000 strip passes the pixel
    /// limit but not the side limit, and is refused before any pixel is decoded.
    func testExtremeAspectRatiosAreRefusedBeforeDecoding() throws {
        let running = try startServer()
        defer { running.stop() }
        for (width, height) in [(1, 40_000_000), (40_000_000, 1)] as [(UInt32, UInt32)] {
            let header = TestImages.pngHeader(width: width, height: height)
            for path in ["/v1/search", "/v1/images"] {
                let response = try running.client.request("POST", path, body: header)
                XCTAssertEqual(response.status, 413, "\(width)×\(height) to \(path): \(response.text)")
                XCTAssertTrue(response.text.contains("32768"), response.text)
            }
        }
        XCTAssertEqual(try running.server.service.store.imageCount(), 0)
    }

    /// Log lines start with a millisecond UTC timestamp and keep a hostile value inside one quoted field.
    func testLogLinesAreOneLineWithAnExactTimestamp() throws {
        let stamp = Logger.timestamp()
        XCTAssertNotNil(stamp.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#, options: .regularExpression), stamp)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let parsed = try XCTUnwrap(formatter.date(from: stamp))
        XCTAssertLessThan(abs(parsed.timeIntervalSinceNow), 5)
        let lines = Locked<[String]>([])
        Logger(sink: { line in lines.update { $0.append(line) } }).info("event", [("reason", "x\ny=\"z\" w=1")])
        let line = try XCTUnwrap(lines.read { $0.first })
        XCTAssertFalse(line.contains("\n"))
        XCTAssertTrue(line.hasSuffix(#" info event reason="x\ny=\"z\" w=1""#), line)
    }

    func testNestingDepthIgnoresEscapedQuotes() throws {
        XCTAssertEqual(MetadataPolicy.nestingDepth(Array(#"{"a":"\"[[[","b":{}}"#.utf8)), 2)
        XCTAssertEqual(MetadataPolicy.nestingDepth(Array("[]".utf8)), 1)
        XCTAssertEqual(MetadataPolicy.nestingDepth(Array("\"{\"".utf8)), 0)
    }

    func testDeleteNeedsTheTokenUnlessOpened() throws {
        let running = try startServer()
        defer { running.stop() }
        let client = running.client
        let id = try XCTUnwrap(try client.request("POST", "/v1/images", body: TestImages.png(seed: 8)).json["id"] as? Int)
        XCTAssertEqual(try client.request("DELETE", "/v1/images/\(id)").status, 401)
        XCTAssertEqual(try client.request("DELETE", "/v1/images/\(id)", headers: [("Authorization", "Bearer nope")]).status, 403)
        XCTAssertEqual(try client.request("GET", "/v1/images/\(id)").status, 200, "still there")
        XCTAssertEqual(try client.request("DELETE", "/v1/images/\(id)", headers: try running.adminHeaders()).status, 204)

        let open = try startServer { $0.admin.deleteRequiresToken = false }
        defer { open.stop() }
        let other = try XCTUnwrap(try open.client.request("POST", "/v1/images", body: TestImages.png(seed: 9)).json["id"] as? Int)
        XCTAssertEqual(try open.client.request("DELETE", "/v1/images/\(other)").status, 204)
    }

    func testJunkMethodsFoldIntoOneMetricLabel() throws {
        let running = try startServer()
        defer { running.stop() }
        for index in 0..<40 { _ = try running.client.request("JUNK\(index)", "/healthz") }
        _ = try running.client.request("GET", "/healthz")
        let text = try running.client.request("GET", "/metrics").text
        XCTAssertFalse(text.contains("JUNK"), text)
        XCTAssertTrue(text.contains(#",method="other",status="405"} 40"#), text)
        XCTAssertTrue(text.contains(#"route="/healthz",method="GET",status="200"} 1"#), text)
    }

    /// A database made with one thumbnail size refuses to start with another, with a message saying what to do.
    func testChangedInputSizeRefusesToStart() throws {
        let running = try startServer()
        let directory = running.directory
        _ = try running.client.request("POST", "/v1/images", body: TestImages.png(seed: 3))
        running.server.shutdown()
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = running.server.service.configuration
        configuration.images.inputSize = 48
        XCTAssertThrowsError(try ImageService(configuration: configuration, logger: Logger(sink: { _ in }))) { error in
            XCTAssertEqual(error as? StartupError, .thumbnailSizeMismatch(configured: 48, storedBytes: 32 * 32 * 3))
            XCTAssertTrue("\(error)".contains("set images.inputSize back"), "\(error)")
        }

        // With no image yet, the model's own input size is what disagrees.
        let emptyDirectory = directory.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: emptyDirectory, withIntermediateDirectories: true)
        store.use(try store.freshDatabase(in: emptyDirectory), in: emptyDirectory, &configuration)
        configuration.images.inputSize = 32
        try ImageService(configuration: configuration, logger: Logger(sink: { _ in })).close()
        configuration.images.inputSize = 16
        XCTAssertThrowsError(try ImageService(configuration: configuration, logger: Logger(sink: { _ in }))) { error in
            XCTAssertEqual(error as? StartupError, .inputSizeMismatch(configured: 16, modelVersion: 1, modelInputSize: 32))
        }
    }

    /// Damaged weights of the active model are a typed start-up error, never a trap.
    func testCorruptModelWeightsAreATypedStartupError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-corrupt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let database = try store.freshDatabase(in: directory)
        var configuration = Configuration()
        store.use(database, in: directory, &configuration)
        store.complete(&configuration)
        try ImageService(configuration: configuration, logger: Logger(sink: { _ in })).close()
        for weights in [[UInt8](), [0x44, 0x53], [UInt8](repeating: 0xFF, count: 64)] {
            try store.run("UPDATE models SET weights = $1 WHERE version = 1", [.blob(weights)], on: database)
            XCTAssertThrowsError(try ImageService(configuration: configuration, logger: Logger(sink: { _ in }))) { error in
                guard case .unreadableModel(let version, let kind, _)? = error as? StartupError else {
                    return XCTFail("expected unreadableModel, got \(error)")
                }
                XCTAssertEqual(version, 1)
                XCTAssertEqual(kind, "lsh")
            }
        }
    }

    /// An image deleted while a retrain encodes it never enters the new index, and catching up
    /// encodes exactly the images without a code, whatever the counts say.
    func testDeletedImagesNeverBecomeGhostsAndCatchUpIsExact() throws {
        let running = try startServer()
        defer { running.stop() }
        let service = running.server.service
        var ids: [Int64] = []
        for seed in 0..<4 {
            let response = try running.client.request("POST", "/v1/images", body: TestImages.png(seed: UInt64(50 + seed)))
            ids.append(Int64(try XCTUnwrap(response.json["id"] as? Int)))
        }
        let encoder = LSHEncoder(bits: 64, inputSize: 32, seed: 7)
        let record = ModelRecord(version: 2, kind: encoder.kind.rawValue, bits: 64, configJSON: "{}", weights: try encoder.serialized(),
                                 metricsJSON: nil, status: .building, createdAt: "")
        try service.store.insertModel(record, forJob: try service.store.createJob(kind: encoder.kind.rawValue, configJSON: nil),
                                      progress: 0, message: "building")
        let building = try ServingModel(version: 2, encoder: encoder)
        // The worker read a page of thumbnails; then image 2 was deleted before the codes were written.
        let page = try service.store.thumbnails(afterID: 0, limit: 10)
        try service.delete(id: ids[1])
        XCTAssertEqual(try service.storeCodes(for: page, in: building), 3)
        XCTAssertNil(building.code(for: ids[1]), "no ghost for the deleted image")

        // A ghost id and a missing code together keep the counts equal; the catch-up must not be fooled.
        let fresh = try ServingModel(version: 2, encoder: encoder)
        try service.store.deleteCodes(modelVersion: 2)
        try service.store.putCodes([(imageID: ids[0], code: BinaryCode.bytes(building.code(for: ids[0])!, bits: 64)),
                                    (imageID: ids[2], code: BinaryCode.bytes(building.code(for: ids[2])!, bits: 64))], modelVersion: 2)
        try ImageService.fill(fresh, store: service.store)
        try fresh.add(id: 999_999, code: [0])
        XCTAssertEqual(fresh.count, try service.store.imageCount())
        try service.catchUp(fresh)
        XCTAssertEqual(fresh.code(for: ids[3]), building.code(for: ids[3]), "the missing image was encoded")
    }

    /// A writer waiting on the lock goes before readers that arrive after it, so a stream of uploads
    /// cannot hold off a model activation.
    func testWaitingWriterGoesBeforeNewReaders() throws {
        let lock = ReadWriteLock()
        let order = Locked<[String]>([])
        let readerHolding = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            lock.reading {
                readerHolding.signal()
                Thread.sleep(forTimeInterval: 0.3)
                order.update { $0.append("first reader done") }
            }
        }
        readerHolding.wait()
        DispatchQueue.global().async(group: group) {
            lock.writing { order.update { $0.append("writer") } }
        }
        Thread.sleep(forTimeInterval: 0.1)
        DispatchQueue.global().async(group: group) {
            lock.reading { order.update { $0.append("late reader") } }
        }
        group.wait()
        XCTAssertEqual(order.read { $0 }, ["first reader done", "writer", "late reader"])
    }
}

/// `HardeningTests` on PostgreSQL.
final class HardeningPostgresTests: HardeningTests {
    override class var store: TestStore { .postgresql }
    /// Tests of code that never reaches a store, so a second run would test nothing new.
    override func testLogLinesAreOneLineWithAnExactTimestamp() throws { throw sqliteOnly("the logger never touches a store") }
    override func testNestingDepthIgnoresEscapedQuotes() throws { throw sqliteOnly("metadata checks run before any store is reached") }
    override func testWaitingWriterGoesBeforeNewReaders() throws { throw sqliteOnly("the lock is in memory") }
    override func testMetadataLimitsAndCanonicalForm() throws { try super.testMetadataLimitsAndCanonicalForm() }
    override func testExtremeAspectRatiosAreRefusedBeforeDecoding() throws { try super.testExtremeAspectRatiosAreRefusedBeforeDecoding() }
    override func testDeleteNeedsTheTokenUnlessOpened() throws { try super.testDeleteNeedsTheTokenUnlessOpened() }
    override func testJunkMethodsFoldIntoOneMetricLabel() throws { try super.testJunkMethodsFoldIntoOneMetricLabel() }
    override func testChangedInputSizeRefusesToStart() throws { try super.testChangedInputSizeRefusesToStart() }
    override func testCorruptModelWeightsAreATypedStartupError() throws { try super.testCorruptModelWeightsAreATypedStartupError() }
    override func testDeletedImagesNeverBecomeGhostsAndCatchUpIsExact() throws { try super.testDeletedImagesNeverBecomeGhostsAndCatchUpIsExact() }
}
