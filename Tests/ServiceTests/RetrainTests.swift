import Foundation
import XCTest
import Hashing
import Storage
@testable import Service

/// Trains with an inner trainer, but only once the test opens the gate: makes "a retrain is running" a
/// state the test controls instead of a race.
final class GatedTrainer: ModelTrainer, @unchecked Sendable {
    let inner: ModelTrainer
    let gate = DispatchSemaphore(value: 0)
    var kind: ModelKind { inner.kind }
    init(_ inner: ModelTrainer) { self.inner = inner }
    func train(thumbnails: [[UInt8]], settings: TrainingSettings, progress: @escaping (Double, String) throws -> Void) throws -> TrainedEncoder {
        gate.wait()
        return try inner.train(thumbnails: thumbnails, settings: settings, progress: progress)
    }
}

/// Admin routes and retrains while serving, on SQLite and, in `RetrainPostgresTests`, on PostgreSQL.
class RetrainTests: ServiceTestCase {
    static let token = "test-token-0123456789"

    func makeServer(directory: URL? = nil, database: String? = nil, trainers: ((Configuration) -> [ModelTrainer])? = nil) throws -> RunningServer {
        try startServer(directory: directory, database: database, configure: { configuration in
            configuration.retrain.automatic = false
            configuration.admin.token = RetrainTests.token
        }, trainers: trainers)
    }

    func admin(_ client: TestClient, _ method: String, _ path: String, body: String = "") throws -> TestClient.Response {
        try client.request(method, path, body: Array(body.utf8), headers: [("Authorization", "Bearer \(RetrainTests.token)")])
    }

    @discardableResult
    func upload(_ client: TestClient, seeds: Range<Int>) throws -> [Int: Int] {
        var ids: [Int: Int] = [:]
        for seed in seeds {
            let response = try client.request("POST", "/v1/images", body: try TestImages.png(seed: UInt64(seed)))
            XCTAssertTrue([200, 201].contains(response.status), response.text)
            ids[seed] = response.json["id"] as? Int
        }
        return ids
    }

    func waitForJob(_ client: TestClient, _ id: Int, timeout: Double = 120) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let job = try admin(client, "GET", "/v1/admin/jobs/\(id)").json
            if let status = job["status"] as? String, status == "succeeded" || status == "failed" { return job }
            usleep(50_000)
        }
        XCTFail("job \(id) did not finish in \(timeout) s")
        return [:]
    }

    func testAdminNeedsTheToken() throws {
        let running = try makeServer()
        defer { running.stop() }
        let client = running.client
        XCTAssertEqual(try client.request("GET", "/v1/admin/models").status, 401)
        XCTAssertEqual(try client.request("GET", "/v1/admin/models", headers: [("Authorization", "Bearer wrong")]).status, 403)
        XCTAssertEqual(try client.request("POST", "/v1/admin/retrain", headers: [("Authorization", "Basic abc")]).status, 401)
        let models = try admin(client, "GET", "/v1/admin/models")
        XCTAssertEqual(models.status, 200)
        XCTAssertEqual(models.json["active_version"] as? Int, 1)
        XCTAssertTrue(AdminToken.matches("abc", "abc"))
        XCTAssertFalse(AdminToken.matches("abd", "abc"))
        XCTAssertFalse(AdminToken.matches("ab", "abc"))
        XCTAssertFalse(AdminToken.matches("abcd", "abc"))
    }

    func testGeneratedTokenIsWrittenPrivatelyAndReused() throws {
        let running = try RunningServer()
        defer { running.stop() }
        let file = running.directory.appendingPathComponent("admin-token").path
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let token = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(token.count, 64)
        XCTAssertEqual(try running.client.request("GET", "/v1/admin/models", headers: [("Authorization", "Bearer \(token)")]).status, 200)
        XCTAssertEqual(try AdminToken.resolve(configuration: running.server.service.configuration).token, token)
    }

    /// Uploads and searches go on while a retrain runs; afterwards every image is found under the new version.
    func testRetrainWhileServingThenEveryImageSearchable() throws {
        var gated: GatedTrainer!
        let running = try makeServer(trainers: { configuration in
            gated = GatedTrainer(Trainers.all().first { $0.kind == .itq }!)
            return [gated]
        })
        defer { running.stop() }
        let client = running.client
        let before = try upload(client, seeds: 0..<200)

        let started = try admin(client, "POST", "/v1/admin/retrain", body: "{\"kind\":\"itq\",\"bits\":32}")
        XCTAssertEqual(started.status, 202, started.text)
        let jobID = try XCTUnwrap(started.json["id"] as? Int)
        let again = try admin(client, "POST", "/v1/admin/retrain")
        XCTAssertEqual(again.status, 409)
        XCTAssertTrue(((again.json["error"] as? [String: Any])?["message"] as? String ?? "").contains("job \(jobID)"), again.text)

        // Traffic while the job waits at the gate and while it trains, encodes and swaps.
        let failures = Locked<[String]>([])
        let stop = Locked(false)
        let traffic = DispatchGroup()
        let during = Locked<[Int: Int]>([:])
        DispatchQueue.global().async(group: traffic) {
            var seed = 10_000
            while !stop.read({ $0 }) {
                guard let response = try? client.request("POST", "/v1/images", body: try TestImages.png(seed: UInt64(seed))),
                      response.status == 201, let id = response.json["id"] as? Int else {
                    failures.update { $0.append("upload \(seed) failed") }
                    return
                }
                during.update { $0[seed] = id }
                seed += 1
            }
        }
        for worker in 0..<2 {
            DispatchQueue.global().async(group: traffic) {
                while !stop.read({ $0 }) {
                    let response = try? client.request("GET", "/v1/images/\(before[worker]!)/similar?k=5")
                    if response?.status != 200 || (response?.json["results"] as? [[String: Any]] ?? []).isEmpty {
                        failures.update { $0.append("search failed: \(response?.status ?? 0) \(response?.text ?? "")") }
                    }
                }
            }
        }
        usleep(300_000)
        gated.gate.signal()
        let job = try waitForJob(client, jobID)
        usleep(200_000)
        stop.update { $0 = true }
        traffic.wait()
        XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
        XCTAssertEqual(job["model_version"] as? Int, 2)
        XCTAssertEqual(failures.read { $0 }, [])

        let ids = before.merging(during.read { $0 }) { first, _ in first }
        XCTAssertGreaterThan(during.read { $0.count }, 0, "some uploads happened during the retrain")
        for (seed, id) in ids {
            let search = try client.request("POST", "/v1/search?k=5", body: try TestImages.png(seed: UInt64(seed)))
            XCTAssertEqual(search.json["model_version"] as? Int, 2)
            let exact = (search.json["results"] as? [[String: Any]] ?? []).filter { $0["distance"] as? Int == 0 }
            XCTAssertTrue(exact.contains { $0["id"] as? Int == id }, "image \(id) is searchable under version 2: \(search.text)")
        }
        let metrics = try client.request("GET", "/metrics").text
        XCTAssertTrue(metrics.contains("dsch_retrain_jobs{status=\"succeeded\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("dsch_active_model_bits 32"), metrics)
        XCTAssertTrue(metrics.contains("dsch_training_seconds_total"), metrics)
    }

    /// Rollback to version 1 answers with version 1's codes, and stays after a restart.
    func testRollbackSurvivesRestart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-rollback-\(UUID().uuidString)")
        var running = try makeServer(directory: directory)
        let ids = try upload(running.client, seeds: 0..<80)
        let job = try admin(running.client, "POST", "/v1/admin/retrain", body: "{\"kind\":\"itq\",\"bits\":16}")
        XCTAssertEqual(try waitForJob(running.client, try XCTUnwrap(job.json["id"] as? Int))["status"] as? String, "succeeded")
        XCTAssertEqual(try running.client.request("GET", "/v1/images/\(ids[0]!)/similar").json["model_version"] as? Int, 2)

        let rollback = try admin(running.client, "POST", "/v1/admin/models/1/activate")
        XCTAssertEqual(rollback.status, 200, rollback.text)
        XCTAssertEqual(try running.client.request("GET", "/v1/images/\(ids[0]!)/similar").json["model_version"] as? Int, 1)
        XCTAssertEqual(try admin(running.client, "POST", "/v1/admin/models/9/activate").status, 404)
        running.server.shutdown()

        running = try makeServer(directory: directory, database: running.database)
        defer { running.stop() }
        let similar = try running.client.request("GET", "/v1/images/\(ids[0]!)/similar?k=3")
        XCTAssertEqual(similar.json["model_version"] as? Int, 1)
        XCTAssertEqual((similar.json["results"] as? [[String: Any]])?.count, 3)
        let models = try admin(running.client, "GET", "/v1/admin/models").json
        XCTAssertEqual(models["active_version"] as? Int, 1)
        XCTAssertEqual((models["models"] as? [[String: Any]])?.count, 2)
    }

    /// A retrain that cannot succeed leaves the service as it was and says why in the job.
    func testFailedRetrainChangesNothing() throws {
        let running = try makeServer()
        defer { running.stop() }
        let client = running.client
        let ids = try upload(client, seeds: 0..<20)
        let before = try client.request("GET", "/v1/images/\(ids[0]!)/similar?k=19").json["results"] as? [[String: Any]]
        let job = try admin(client, "POST", "/v1/admin/retrain", body: "{\"kind\":\"itq\",\"bits\":64}")
        XCTAssertEqual(job.status, 202)
        let finished = try waitForJob(client, try XCTUnwrap(job.json["id"] as? Int))
        XCTAssertEqual(finished["status"] as? String, "failed")
        XCTAssertTrue((finished["message"] as? String ?? "").contains("needs more than 64 training images, got 20"), "\(finished)")
        let models = try admin(client, "GET", "/v1/admin/models").json
        XCTAssertEqual(models["active_version"] as? Int, 1)
        XCTAssertEqual((models["models"] as? [[String: Any]])?.count, 1)
        let after = try client.request("GET", "/v1/images/\(ids[0]!)/similar?k=19").json["results"] as? [[String: Any]]
        XCTAssertEqual(after?.compactMap { $0["id"] as? Int }, before?.compactMap { $0["id"] as? Int })
        XCTAssertEqual(try running.server.service.store.codes(modelVersion: 2).count, 0)

        XCTAssertEqual(try admin(client, "POST", "/v1/admin/retrain", body: "{\"kind\":\"nope\"}").status, 400)
        // Settings are checked where the request arrives: no job is made for a setting the kind does not have.
        let unknownSetting = try admin(client, "POST", "/v1/admin/retrain", body: "{\"kind\":\"itq\",\"colour\":1}")
        XCTAssertEqual(unknownSetting.status, 400)
        XCTAssertTrue(unknownSetting.text.contains("'colour' is not a setting of itq training"), unknownSetting.text)
        XCTAssertEqual(try admin(client, "POST", "/v1/admin/retrain", body: "{\"kind\":\"itq\",\"bits\":12}").status, 400)
        XCTAssertEqual(try admin(client, "POST", "/v1/admin/retrain", body: "[1,2]").status, 400)
    }
}

/// `RetrainTests` on PostgreSQL.
final class RetrainPostgresTests: RetrainTests {
    override class var store: TestStore { .postgresql }
    /// SQLite only: a PostgreSQL database refuses to start without a configured token (every replica
    /// must accept the same one), so no token file is generated there.
    override func testGeneratedTokenIsWrittenPrivatelyAndReused() throws { throw sqliteOnly("PostgreSQL needs a configured admin token") }
    override func testAdminNeedsTheToken() throws { try super.testAdminNeedsTheToken() }
    override func testRetrainWhileServingThenEveryImageSearchable() throws { try super.testRetrainWhileServingThenEveryImageSearchable() }
    override func testRollbackSurvivesRestart() throws { try super.testRollbackSurvivesRestart() }
    override func testFailedRetrainChangesNothing() throws { try super.testFailedRetrainChangesNothing() }
}
