import Foundation
import XCTest
import HammingIndex
import Imaging
import Storage
@testable import Service

/// Writes an IDX image file (and its label file) of `count` 28×28 gray images; image `copies[i]`
/// repeats image `i`'s pixels, so it is stored once.
func writeIDX(count: Int, in directory: URL, name: String = "test-images-idx3-ubyte", copies: [Int: Int] = [:]) throws -> (images: String, labels: String) {
    func word(_ value: Int) -> [UInt8] { [UInt8(value >> 24 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }
    var generator = TestRandom(seed: 2024)
    var pixels: [[UInt8]] = (0..<count).map { _ in (0..<784).map { _ in UInt8(truncatingIfNeeded: generator.next() >> 40) } }
    for (copy, original) in copies { pixels[copy] = pixels[original] }
    let images = directory.appendingPathComponent(name), labels = directory.appendingPathComponent(name + "-labels")
    try Data(word(0x803) + word(count) + word(28) + word(28) + pixels.flatMap { $0 }).write(to: images)
    try Data(word(0x801) + word(count) + (0..<count).map { UInt8($0 % 10) }).write(to: labels)
    return (images.path, labels.path)
}

/// The batched ingest path and `Importer` over it, on a real SQLite file.
final class BatchIngestTests: XCTestCase {
    private func makeService() throws -> ImageService {
        var configuration = Configuration()
        configuration.database.path = try makeTemporaryDirectory(self).appendingPathComponent("dsch.sqlite").path
        let service = try ImageService(configuration: configuration, logger: Logger(sink: { _ in }))
        addTeardownBlock { service.close() }
        return service
    }

    func testBatchStoresNewImagesCopiesAndRefusalsSeparately() throws {
        let service = try makeService()
        let (a, b, c) = (try TestImages.png(seed: 1), try TestImages.png(seed: 2), try TestImages.png(seed: 3))
        let stored = try service.ingest(bytes: a, metadataJSON: nil)
        var damaged = c
        damaged.replaceSubrange(40..<damaged.count, with: [UInt8](repeating: 7, count: damaged.count - 40))
        let outcomes = try service.ingest(batch: [
            Upload(bytes: b, metadataJSON: #"{"z":1,"a":2}"#),
            Upload(bytes: a, metadataJSON: nil),
            Upload(bytes: [1, 2, 3, 4], metadataJSON: nil),
            Upload(bytes: b, metadataJSON: nil),
            Upload(bytes: c, metadataJSON: "[1]"),
            Upload(bytes: damaged, metadataJSON: nil),
            Upload(bytes: c, metadataJSON: nil),
        ])
        guard case .stored(let bID, true) = outcomes[0], case .stored(let cID, true) = outcomes[6] else {
            return XCTFail("new images are stored: \(outcomes)")
        }
        XCTAssertEqual(outcomes[1], .stored(id: stored.record.id, created: false), "a copy of a stored image")
        XCTAssertEqual(outcomes[3], .stored(id: bID, created: false), "a copy earlier in the batch")
        let statuses = [2, 4, 5].map { index -> Int? in
            if case .failed(let error) = outcomes[index] { return error.status }
            return nil
        }
        XCTAssertEqual(statuses, [415, 400, 422], "not an image, metadata not an object, a damaged image: each refused alone")
        XCTAssertEqual(try service.imageCount(), 3)
        XCTAssertEqual(try service.image(id: bID).metadataJSON, #"{"a":2,"z":1}"#, "metadata stored canonical, as for one upload")

        // The in-memory index has every new code, equal to the one a single upload computes.
        let model = service.currentModel
        XCTAssertEqual(model.count, 3)
        for (bytes, id) in [(b, bID), (c, cID)] {
            let single = try service.ingest(bytes: bytes, metadataJSON: nil)
            XCTAssertFalse(single.created)
            XCTAssertEqual(single.record.id, id)
            XCTAssertEqual(single.code, BinaryCode.hex(try XCTUnwrap(model.code(for: id)), bits: model.bits))
            XCTAssertEqual(try service.search(bytes: bytes, k: 1, maxDistance: 0).hits.map(\.record.id), [id])
        }
        XCTAssertEqual(try service.ingest(batch: []), [])
        XCTAssertEqual(try service.ingest(batch: [Upload(bytes: [0], metadataJSON: nil)]).count, 1, "a batch with nothing to store")
    }

    func testImporterOnIDXCountsCopiesAndReportsProgress() throws {
        let service = try makeService()
        let files = try writeIDX(count: 30, in: try makeTemporaryDirectory(self), copies: [7: 3])
        let reports = Locked<[(Int, Int)]>([])
        let importer = Importer(service: service, logger: Logger(sink: { _ in }), batchSize: 8) { done, total in reports.update { $0.append((done, total)) } }
        let summary = try importer.run(paths: [files.images], labels: files.labels)
        XCTAssertEqual(summary, Importer.Summary(created: 29, duplicates: 1, failed: 0))
        XCTAssertEqual(reports.read { $0.last.map { [$0.0, $0.1] } }, [30, 30])
        let first = try XCTUnwrap(try service.store.listImages(afterID: 0, limit: 1, filters: []).first)
        XCTAssertEqual(first.metadataJSON, #"{"index":0,"label":0,"source":"test-images-idx3-ubyte"}"#)
        XCTAssertEqual(service.currentModel.count, 29)
        XCTAssertEqual(try importer.run(paths: [files.images], labels: files.labels), Importer.Summary(created: 0, duplicates: 30, failed: 0))
    }

    func testImporterFolderKeepsGoingPastABadFile() throws {
        let service = try makeService()
        let folder = try makeTemporaryDirectory(self)
        for seed in 0..<5 { try Data(try TestImages.png(seed: UInt64(100 + seed))).write(to: folder.appendingPathComponent("image\(seed).png")) }
        try Data("not a png".utf8).write(to: folder.appendingPathComponent("broken.png"))
        let messages = Locked<[String]>([])
        let importer = Importer(service: service, logger: Logger(sink: { line in messages.update { $0.append(line) } }), batchSize: 4)
        XCTAssertEqual(try importer.run(paths: [folder.path]), Importer.Summary(created: 5, duplicates: 0, failed: 1))
        XCTAssertTrue(messages.read { $0.contains { $0.contains("broken.png") } }, "the refused file is named")
        let record = try XCTUnwrap(try service.store.listImages(afterID: 0, limit: 1, filters: []).first)
        XCTAssertEqual(record.metadataJSON, "{\"path\":\"\(folder.appendingPathComponent("image0.png").path)\"}")
    }

    func testJSONStringEscapes() {
        XCTAssertEqual(Importer.jsonString("a\"b\\c\n\u{1}é/"), #""a\"b\\c\n\u0001é/""#)
    }
}

/// `dsch import` killed with SIGKILL mid-way, on SQLite and (when installed) PostgreSQL: the database
/// holds whole batches only, each image with its code and thumbnail (and, on PostgreSQL, its change-log
/// row), and running the import again stores exactly the rest.
final class ImportKillTests: XCTestCase {
    private static let server = SharedTemporaryPostgres()
    private static let token = "import-kill-test-token-0123456789"

    override class func tearDown() {
        server.destroy()
        super.tearDown()
    }

    private static let imageCount = 3000
    private static let batchSize = 50

    func testKilledImportIntoSQLiteKeepsWholeBatchesAndResumes() throws {
        let directory = try makeTemporaryDirectory(self)
        try killAndResume(database: directory.appendingPathComponent("dsch.sqlite").path, directory: directory) {
            try Store(path: directory.appendingPathComponent("dsch.sqlite").path)
        }
    }

    func testKilledImportIntoPostgreSQLKeepsTheChangeLogInStep() throws {
        let url = try Self.server.get().createDatabase()
        try killAndResume(database: url, directory: try makeTemporaryDirectory(self)) { try PostgresStore(url: url) }
    }

    /// Runs `dsch import`, kills it once part is stored, checks the database, then imports again.
    private func killAndResume(database: String, directory: URL, open: () throws -> ServiceStore) throws {
        let files = try writeIDX(count: Self.imageCount, in: directory)
        let arguments = ["import", "--database", database, "--batch-size", "\(Self.batchSize)", "--labels", files.labels, files.images]
        let first = try ImportProcess(arguments: arguments)
        XCTAssertTrue(waitUntil(timeout: 120) { first.importedSoFar >= 600 || !first.process.isRunning }, first.log)
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        XCTAssertEqual(first.process.terminationReason, .uncaughtSignal, "killed mid-way, not finished: \(first.log)")

        let store = try open()
        let stored = try store.imageCount()
        XCTAssertGreaterThan(stored, 0)
        XCTAssertLessThan(stored, Self.imageCount, "the kill came before the end")
        XCTAssertEqual(stored % Self.batchSize, 0, "a batch is stored whole or not at all")
        let version = try XCTUnwrap(try store.activeModelVersion())
        let codes = try store.codes(modelVersion: version)
        XCTAssertEqual(codes.count, stored, "every stored image has its code")
        XCTAssertEqual(try store.thumbnailsMissingCode(modelVersion: version, afterID: 0, limit: 10).count, 0)
        let thumbnails = try store.thumbnails(afterID: 0, limit: Self.imageCount)
        XCTAssertEqual(thumbnails.count, stored)
        XCTAssertTrue(thumbnails.allSatisfy { $0.thumbnail.count == 32 * 32 * 3 }, "every thumbnail is whole")
        let last = try XCTUnwrap(try store.listImages(afterID: try store.maxImageID() - 1, limit: 1, filters: []).first)
        XCTAssertEqual(last.metadataJSON, "{\"index\":\(stored - 1),\"label\":\((stored - 1) % 10),\"source\":\"test-images-idx3-ubyte\"}",
                       "batches are committed in file order")
        if let sqlite = store as? Store {
            XCTAssertEqual(try sqlite.integrityCheck(), "ok")
        }
        if let feed = store.changeFeed {
            // A new store is another replica: every code the import logged is fed to it.
            let changes = try feed.changes(after: 0, limit: Self.imageCount * 2)
            let logged = changes.compactMap { change -> (Int64, [UInt8])? in
                if case let .code(imageID, modelVersion, code) = change.change, modelVersion == version { return (imageID, code) }
                return nil
            }
            XCTAssertEqual(logged.map(\.0), codes.map(\.imageID), "one change per stored image, in id order")
            XCTAssertEqual(logged.map(\.1), codes.map(\.code), "the change log carries the stored codes")
        }
        store.close()

        let second = try ImportProcess(arguments: arguments)
        second.process.waitUntilExit()
        XCTAssertEqual(second.process.terminationStatus, 0, second.log)
        XCTAssertTrue(second.output.contains("new \(Self.imageCount - stored), already stored \(stored), failed 0"), second.output + second.log)
        let reopened = try open()
        defer { reopened.close() }
        XCTAssertEqual(try reopened.imageCount(), Self.imageCount, "the rest is stored, nothing twice")
        XCTAssertEqual(try reopened.codes(modelVersion: version).count, Self.imageCount)
    }

    /// A `dsch import` child process whose progress and output are collected as they come.
    private final class ImportProcess {
        let process = Process()
        private let errors = Locked("")
        private let standardOutput = Locked("")

        init(arguments: [String]) throws {
            let executable = ProcessTests.productsDirectory.appendingPathComponent("dsch")
            guard FileManager.default.isExecutableFile(atPath: executable.path) else {
                throw XCTSkip("the dsch executable is not built next to the tests (run `swift build` first)")
            }
            process.executableURL = executable
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("DSCH_") }
                .merging(["DSCH_ADMIN_TOKEN": ImportKillTests.token]) { $1 }
            let errorPipe = Pipe(), outputPipe = Pipe()
            process.standardError = errorPipe
            process.standardOutput = outputPipe
            errorPipe.fileHandleForReading.readabilityHandler = { [errors] handle in
                let chunk = String(decoding: handle.availableData, as: UTF8.self)
                errors.update { $0 += chunk }
            }
            outputPipe.fileHandleForReading.readabilityHandler = { [standardOutput] handle in
                let chunk = String(decoding: handle.availableData, as: UTF8.self)
                standardOutput.update { $0 += chunk }
            }
            try process.run()
        }

        var log: String { errors.read { $0 } }

        /// Standard output once the process ended (the pipe may hold the last bytes a moment longer).
        var output: String {
            _ = waitUntil(timeout: 5) { standardOutput.read { $0.contains("\n") } }
            return standardOutput.read { $0 }
        }

        /// The newest "imported N/M" progress count.
        var importedSoFar: Int {
            let text = log
            guard let range = text.range(of: "imported ", options: .backwards) else { return 0 }
            return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
        }
    }
}
