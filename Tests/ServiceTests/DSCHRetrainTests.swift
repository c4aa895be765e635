import Foundation
import XCTest
import Storage
@testable import Service

/// Retrains with the real DSCH trainer (small network, few epochs), in process and in a child process
/// killed at chosen moments; on PostgreSQL too, in `DSCHRetrainPostgresTests`.
class DSCHRetrainTests: ServiceTestCase {
    static let token = "dsch-test-token"
    /// A network and mixture small enough for a debug build to train in seconds.
    static let smallDSCH: [String: Any] = [
        "bits": 16, "epochs": 2, "warmupEpochs": 1, "batchSize": 32, "widths": [8, 8, 16], "hiddenWidth": 32,
        "fineComponents": 8, "coarseComponents": 3, "mixtureIterations": 10, "scaleToCollection": false,
    ]

    func admin(_ client: TestClient, _ method: String, _ path: String, body: [String: Any]? = nil) throws -> TestClient.Response {
        let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) } ?? []
        return try client.request(method, path, body: bytes, headers: [("Authorization", "Bearer \(DSCHRetrainTests.token)")])
    }

    func uploadAll(_ client: TestClient, count: Int) throws -> [Int] {
        let ids = Locked([Int]())
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for seed in stride(from: worker, to: count, by: 8) {
                if let id = (try? client.request("POST", "/v1/images", body: try TestImages.png(seed: UInt64(seed))))?.json["id"] as? Int {
                    ids.update { $0.append(id) }
                }
            }
        }
        return ids.read { $0.sorted() }
    }

    func job(_ client: TestClient, _ id: Int) throws -> [String: Any] { try admin(client, "GET", "/v1/admin/jobs/\(id)").json }

    /// The default trainer trains a DSCH model on the stored thumbnails and serves it.
    func testDSCHRetrainActivatesALearnedModel() throws {
        let running = try startServer(configure: { configuration in
            configuration.retrain.automatic = false
            configuration.admin.token = DSCHRetrainTests.token
        })
        defer { running.stop() }
        let client = running.client
        let ids = try uploadAll(client, count: 120)
        XCTAssertEqual(ids.count, 120)
        let started = try admin(client, "POST", "/v1/admin/retrain", body: DSCHRetrainTests.smallDSCH)
        XCTAssertEqual(started.status, 202, started.text)
        let jobID = try XCTUnwrap(started.json["id"] as? Int)
        var state: [String: Any] = [:]
        let deadline = Date().addingTimeInterval(240)
        repeat {
            usleep(100_000)
            state = try job(client, jobID)
        } while !["succeeded", "failed"].contains(state["status"] as? String ?? "") && Date() < deadline
        XCTAssertEqual(state["status"] as? String, "succeeded", "\(state)")
        let models = try admin(client, "GET", "/v1/admin/models").json
        XCTAssertEqual(models["active_version"] as? Int, 2)
        let active = (models["models"] as? [[String: Any]])?.first { $0["version"] as? Int == 2 }
        XCTAssertEqual(active?["kind"] as? String, "dsch")
        XCTAssertEqual(active?["bits"] as? Int, 16)
        XCTAssertNotNil((active?["metrics"] as? [String: Any])?["epochs"], "training losses are recorded")
        let search = try client.request("POST", "/v1/search?k=3", body: try TestImages.png(seed: 5))
        XCTAssertEqual(search.json["model_version"] as? Int, 2)
        XCTAssertEqual(((search.json["query"] as? [String: Any])?["code"] as? String)?.count, 4, "16-bit codes are 4 hex digits")
        XCTAssertTrue((search.json["results"] as? [[String: Any]] ?? []).contains { $0["distance"] as? Int == 0 })

        // Scaled to the collection, 5,000 fine components would be cut to what 120 images support.
        let impossible = try admin(client, "POST", "/v1/admin/retrain",
                                   body: ["fineComponents": 5000, "epochs": 1, "warmupEpochs": 0, "scaleToCollection": false])
        XCTAssertEqual(impossible.status, 202)
        let impossibleID = try XCTUnwrap(impossible.json["id"] as? Int)
        let ended = try waitUntil(timeout: 120, interval: 0.1) {
            state = try job(client, impossibleID)
            return !["running", "queued"].contains(state["status"] as? String ?? "")
        }
        XCTAssertTrue(ended, "the impossible job ended within 120 s: \(state)")
        XCTAssertEqual(state["status"] as? String, "failed")
        XCTAssertTrue((state["message"] as? String ?? "").contains("5000"), "the reason names the component count: \(state)")
        XCTAssertEqual(try admin(client, "GET", "/v1/admin/models").json["active_version"] as? Int, 2)
    }

    /// kill -9 while training, and again while re-encoding; after each restart the previous version is
    /// active, the job failed with a reason, no code of the unfinished version remains, no image is lost.
    func testKillDuringTrainingAndDuringEncoding() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-retrain-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try store.freshDatabase(in: directory)
        var environment = ["DSCH_ADMIN_TOKEN": DSCHRetrainTests.token, "DSCH_RETRAIN_AUTOMATIC": "false",
                           "DSCH_RETRAIN_MAX_TRAINING_IMAGES": "64"]
        if store == .postgresql {
            // A restarted replica cannot tell its own dead job from another replica's live one: the job
            // fails once its lease runs out, so a short lease, checked often, keeps the wait short.
            environment["DSCH_RETRAIN_LEASE_SECONDS"] = "3"
            environment["DSCH_RETRAIN_CHECK_SECONDS"] = "0.5"
        }

        var server = try ProcessTests.ServerProcess(database: database, environment: environment)
        let ids = try uploadAll(TestClient(port: server.port), count: 400)
        XCTAssertEqual(ids.count, 400)

        // Phase 1: many epochs, so the kill lands in training. Phase 2: a wide network trained for one
        // epoch on 64 images, so most of the job is encoding 400 images in a debug build.
        var long = DSCHRetrainTests.smallDSCH
        long["epochs"] = 400
        var wide = DSCHRetrainTests.smallDSCH
        wide["epochs"] = 1
        wide["warmupEpochs"] = 1
        wide["widths"] = [64, 128, 256]
        wide["hiddenWidth"] = 256
        // Without it the quality gate may pick the ITQ model it trains beside, which encodes in a blink.
        wide["force"] = true
        for (settings, phase) in [(long, "training"), (wide, "encoding")] {
            let client = TestClient(port: server.port)
            let started = try admin(client, "POST", "/v1/admin/retrain", body: settings)
            XCTAssertEqual(started.status, 202, started.text)
            let jobID = try XCTUnwrap(started.json["id"] as? Int)
            let deadline = Date().addingTimeInterval(240)
            var state: [String: Any] = [:]
            while Date() < deadline {
                state = try job(client, jobID)
                let message = state["message"] as? String ?? ""
                // "encoding images" comes as encoding starts; "encoded N of M" only after each page of
                // 512, which for 400 images is the end, when activation may already have committed.
                let reached = phase == "training" ? message.hasPrefix("epoch") : message.hasPrefix("encod")
                if reached || state["status"] as? String != "running" && state["status"] as? String != "queued" { break }
                usleep(5_000)
            }
            XCTAssertEqual(state["status"] as? String, "running", "the kill lands while \(phase): \(state)")
            server.kill9()

            server = try ProcessTests.ServerProcess(database: database, environment: environment)
            let restarted = TestClient(port: server.port)
            var after = try job(restarted, jobID)
            if store == .postgresql {
                XCTAssertTrue(try waitUntil(timeout: 20, interval: 0.1) {
                    after = try job(restarted, jobID)
                    return after["status"] as? String != "running"
                }, "the job fails once its lease runs out: \(after)")
            }
            XCTAssertEqual(after["status"] as? String, "failed")
            let reason = after["message"] as? String ?? ""
            XCTAssertTrue(reason.contains("interrupted") || store == .postgresql && reason.contains("stopped renewing its lease"), "\(after)")
            let models = try admin(restarted, "GET", "/v1/admin/models").json
            XCTAssertEqual(models["active_version"] as? Int, 1)
            XCTAssertEqual((models["models"] as? [[String: Any]])?.count, 1, "the unfinished model is gone")
            XCTAssertEqual(try restarted.request("GET", "/metrics").text.contains("dsch_images_indexed 400"), true)
            let similar = try restarted.request("GET", "/v1/images/\(ids[0])/similar?k=5")
            XCTAssertEqual(similar.json["model_version"] as? Int, 1)
            XCTAssertEqual((similar.json["results"] as? [[String: Any]])?.count, 5)
        }
        server.terminate()
        let stored = try store.open(database)
        defer { stored.close() }
        if let file = stored as? Store { XCTAssertEqual(try file.integrityCheck(), "ok") }
        XCTAssertEqual(try stored.imageCount(), 400)
        XCTAssertEqual(try stored.codes(modelVersion: 2).count + stored.codes(modelVersion: 3).count, 0)
        XCTAssertEqual(try stored.codes(modelVersion: 1).count, 400)
    }
}

/// `DSCHRetrainTests` on PostgreSQL.
final class DSCHRetrainPostgresTests: DSCHRetrainTests {
    override class var store: TestStore { .postgresql }
    override func testDSCHRetrainActivatesALearnedModel() throws { try super.testDSCHRetrainActivatesALearnedModel() }
    override func testKillDuringTrainingAndDuringEncoding() throws { try super.testKillDuringTrainingAndDuringEncoding() }
}
