import Foundation
import XCTest
import Storage
@testable import Service

/// Tests that run the `dsch` executable itself and the curl scripts, as a user would; on PostgreSQL
/// too, in `ProcessPostgresTests`.
class ProcessTests: ServiceTestCase {
    static var productsDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }
    static var packageDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// A `dsch serve` child process on a free loopback port.
    final class ServerProcess {
        let process = Process()
        let port: Int

        init(database: String, arguments extra: [String] = [], environment: [String: String] = [:]) throws {
            let executable = ProcessTests.productsDirectory.appendingPathComponent("dsch")
            guard FileManager.default.isExecutableFile(atPath: executable.path) else {
                throw XCTSkip("the dsch executable is not built next to the tests (run `swift build` first)")
            }
            process.executableURL = executable
            process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--database", database] + extra
            process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("DSCH_") }.merging(environment) { $1 }
            let errors = Pipe()
            process.standardError = errors
            // Collect the log without ever blocking: the child must not stall on a full pipe either.
            let log = Locked("")
            errors.fileHandleForReading.readabilityHandler = { handle in
                let chunk = String(decoding: handle.availableData, as: UTF8.self)
                log.update { $0 += chunk }
            }
            try process.run()
            var port: Int?
            let deadline = Date().addingTimeInterval(60)
            while port == nil, Date() < deadline, process.isRunning {
                let field = log.read { text in
                    text.split(separator: "\n").lazy.flatMap { $0.split(separator: " ") }.first { $0.hasPrefix("port=") }
                }
                port = field.flatMap { Int($0.dropFirst(5)) }
                if port == nil { usleep(20_000) }
            }
            guard let port else {
                process.terminate()
                throw NSError(domain: "ServerProcess", code: 1, userInfo: [NSLocalizedDescriptionKey: "server did not start: \(log.read { $0 })"])
            }
            self.port = port
        }

        func kill9() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        func terminate() {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// kill -9 during a stream of uploads, then restart: every upload that got a 201 is stored, has its
    /// code, is found by search, and the database passes integrity_check.
    func testKillDuringUploadsLosesNothingAcknowledged() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try store.freshDatabase(in: directory)

        let first = try ServerProcess(database: database, environment: store.processEnvironment)
        let client = TestClient(port: first.port)
        let images = try (0..<400).map { try TestImages.png(seed: UInt64(50_000 + $0)) }
        let acknowledged = Locked<[(index: Int, id: Int)]>([])
        let stop = Locked(false)
        let uploaders = DispatchGroup()
        for worker in 0..<4 {
            DispatchQueue.global().async(group: uploaders) {
                for index in stride(from: worker, to: images.count, by: 4) {
                    if stop.read({ $0 }) { return }
                    guard let response = try? client.request("POST", "/v1/images", body: images[index]),
                          response.status == 201, let id = response.json["id"] as? Int else { continue }
                    acknowledged.update { $0.append((index, id)) }
                }
            }
        }
        // Let some uploads land, then kill the server mid-stream.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if acknowledged.read({ $0.count }) >= 60 { break }
            usleep(10_000)
        }
        first.kill9()
        stop.update { $0 = true }
        uploaders.wait()
        let landed = acknowledged.read { $0 }
        XCTAssertGreaterThanOrEqual(landed.count, 60)

        let second = try ServerProcess(database: database, environment: store.processEnvironment)
        let restarted = TestClient(port: second.port)
        for (index, id) in landed {
            XCTAssertEqual(try restarted.request("GET", "/v1/images/\(id)").status, 200, "upload \(id) survived")
            let search = try restarted.request("POST", "/v1/search?k=3", body: images[index])
            let exact = (search.json["results"] as? [[String: Any]] ?? []).filter { $0["distance"] as? Int == 0 }
            XCTAssertTrue(exact.contains { $0["id"] as? Int == id }, "upload \(id) is found by search")
        }
        second.terminate()
        let stored = try store.open(database)
        defer { stored.close() }
        if let file = stored as? Store { XCTAssertEqual(try file.integrityCheck(), "ok") }
        let codes = Set(try stored.codes(modelVersion: 1).map(\.imageID))
        for (_, id) in landed { XCTAssertTrue(codes.contains(Int64(id)), "upload \(id) has its code") }
    }

    /// The scripts under scripts/curl work against a running server and print what the README shows.
    func testCurlScripts() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw XCTSkip("curl is not installed") }
        let running = try startServer()
        defer { running.stop() }
        let directory = running.directory
        let image = directory.appendingPathComponent("photo.png")
        try Data(try TestImages.png(seed: 77)).write(to: image)
        let other = directory.appendingPathComponent("other.png")
        try Data(try TestImages.png(seed: 78)).write(to: other)

        let indexed = try runScript("index.sh", [image.path, "{\"label\":\"shirt\"}"], port: running.server.port)
        XCTAssertEqual(indexed.json["created"] as? Bool, true, indexed.output)
        XCTAssertTrue(indexed.output.contains("\"content_type\":\"image/png\""), "slashes are not escaped, as the README shows")
        let id = try XCTUnwrap(indexed.json["id"] as? Int)
        XCTAssertEqual((indexed.json["meta"] as? [String: Any])?["label"] as? String, "shirt")
        let second = try runScript("index.sh", [other.path], port: running.server.port)
        let otherID = try XCTUnwrap(second.json["id"] as? Int)

        let similar = try runScript("similar.sh", ["\(id)", "5"], port: running.server.port)
        XCTAssertEqual((similar.json["results"] as? [[String: Any]])?.compactMap { $0["id"] as? Int }, [otherID], similar.output)
        let search = try runScript("search.sh", [image.path, "1"], port: running.server.port)
        XCTAssertEqual((search.json["results"] as? [[String: Any]])?.first?["id"] as? Int, id, search.output)
        XCTAssertEqual(try runScript("delete.sh", ["\(id)"], port: running.server.port, token: "wrong").output, "403\n")
        let token = try running.adminToken()
        XCTAssertEqual(try runScript("delete.sh", ["\(id)"], port: running.server.port, token: token).output, "204\n")
        XCTAssertEqual(try runScript("delete.sh", ["\(id)"], port: running.server.port, token: token).output, "404\n")
    }

    private func runScript(_ name: String, _ arguments: [String], port: Int, token: String? = nil) throws -> (output: String, json: [String: Any]) {
        let process = Process()
        process.executableURL = ProcessTests.packageDirectory.appendingPathComponent("scripts/curl/\(name)")
        process.arguments = arguments
        process.environment = ["DSCH_URL": "http://127.0.0.1:\(port)", "PATH": "/usr/bin:/bin"].merging(token.map { ["DSCH_TOKEN": $0] } ?? [:]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, name)
        let text = String(decoding: data, as: UTF8.self)
        return (text, ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]) ?? [:])
    }
}

/// `ProcessTests` on PostgreSQL.
final class ProcessPostgresTests: ProcessTests {
    override class var store: TestStore { .postgresql }
    override func testKillDuringUploadsLosesNothingAcknowledged() throws { try super.testKillDuringUploadsLosesNothingAcknowledged() }
    override func testCurlScripts() throws { try super.testCurlScripts() }
}
