import Foundation
import XCTest
import Hashing
import Storage
@testable import Service

/// Two replicas in this process, each a full `DschServer` on its own port, sharing one PostgreSQL
/// database: what one acknowledges the other serves within two seconds, retrains run once across both,
/// and a database restart under load costs 503s, never a crash or an acknowledged upload.
/// Skipped, saying why, when PostgreSQL is not installed.
final class ReplicaTests: XCTestCase {
    static let token = "replica-test-token-0123456789"
    private static let server = SharedTemporaryPostgres()

    override class func tearDown() {
        server.destroy()
        super.tearDown()
    }

    /// The class's server, started on first use.
    private func postgres() throws -> TemporaryPostgres { try Self.server.get() }

    /// A replica on `url`; stopped when the test ends.
    private func replica(_ url: String, trainers: ((Configuration) -> [ModelTrainer])? = nil) throws -> RunningServer {
        let running = try RunningServer(configure: { configuration in
            configuration.database.url = url
            configuration.admin.token = ReplicaTests.token
            configuration.retrain.automatic = false
            configuration.retrain.checkSeconds = 0.5
        }, trainers: trainers)
        addTeardownBlock { running.stop() }
        return running
    }

    private var adminHeaders: [(String, String)] { [("Authorization", "Bearer \(ReplicaTests.token)")] }

    private func upload(_ running: RunningServer, seed: Int) throws -> Int {
        let response = try running.client.request("POST", "/v1/images", body: try TestImages.png(seed: UInt64(seed)))
        XCTAssertEqual(response.status, 201, response.text)
        return try XCTUnwrap(response.json["id"] as? Int, response.text)
    }

    /// The ids a search with the image of `seed` finds on `running`.
    private func found(_ running: RunningServer, seed: Int) throws -> [Int] {
        let response = try running.client.request("POST", "/v1/search?k=50", body: try TestImages.png(seed: UInt64(seed)))
        return (response.json["results"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
    }

    func testUploadOnOneIsFoundOnTheOtherAndADeleteLeavesBoth() throws {
        let url = try postgres().createDatabase()
        let first = try replica(url), second = try replica(url)
        XCTAssertEqual(first.server.service.currentModel.version, second.server.service.currentModel.version,
                       "the second replica found the first one's cold-start model instead of making its own")

        let id = try upload(first, seed: 1)
        XCTAssertTrue(try waitUntil(timeout: 2) { try found(second, seed: 1).contains(id) }, "an upload on one replica is found on the other within 2 s")
        let similar = try second.client.request("GET", "/v1/images/\(id)/similar?k=3")
        XCTAssertEqual(similar.status, 200, similar.text)
        let other = try upload(second, seed: 2)
        XCTAssertTrue(try waitUntil(timeout: 2) { try found(first, seed: 2).contains(other) })

        let deleted = try second.client.request("DELETE", "/v1/images/\(id)", headers: adminHeaders)
        XCTAssertEqual(deleted.status, 204, deleted.text)
        // A search leaves out hits whose rows are gone as soon as the delete commits, so it cannot show
        // that the follower removed the code; the index itself is what must lose it.
        XCTAssertTrue(try waitUntil(timeout: 2) { try !found(first, seed: 1).contains(id) && first.server.service.currentModel.code(for: Int64(id)) == nil },
                      "a delete on one replica leaves the other's index within 2 s")
        XCTAssertEqual(try first.client.request("GET", "/v1/images/\(id)").status, 404)
        XCTAssertEqual(first.server.service.currentModel.count, 1)
        XCTAssertEqual(second.server.service.currentModel.count, 1)
    }

    func testRetrainRequestedOnBothRunsOnceAndBothServeTheNewVersion() throws {
        let url = try postgres().createDatabase()
        var gates: [GatedTrainer] = []
        let makeTrainers: (Configuration) -> [ModelTrainer] = { _ in
            let gated = GatedTrainer(Trainers.all().first { $0.kind == .itq }!)
            gates.append(gated)
            return [gated]
        }
        let first = try replica(url, trainers: makeTrainers), second = try replica(url, trainers: makeTrainers)
        defer { for gate in gates { gate.gate.signal() } }
        let ids = try (0..<80).map { try upload($0 % 2 == 0 ? first : second, seed: 100 + $0) }

        // Both at once: one claim wins, the other gets 409 naming the winner's job.
        let responses = Locked<[TestClient.Response]>([])
        let group = DispatchGroup()
        for running in [first, second] {
            DispatchQueue.global().async(group: group) {
                if let response = try? running.client.request("POST", "/v1/admin/retrain", body: Array(#"{"kind":"itq","bits":32}"#.utf8),
                                                              headers: self.adminHeaders) {
                    responses.update { $0.append(response) }
                }
            }
        }
        group.wait()
        let statuses = responses.read { $0.map(\.status) }.sorted()
        XCTAssertEqual(statuses, [202, 409], responses.read { $0.map(\.text) }.joined(separator: "\n"))
        let jobID = try XCTUnwrap(responses.read { $0.first { $0.status == 202 }?.json["id"] as? Int })
        XCTAssertTrue(responses.read { $0.first { $0.status == 409 }?.text.contains("job \(jobID)") ?? false })
        XCTAssertEqual(try first.server.service.jobCounts().values.reduce(0, +), 1, "one job across both replicas")
        for gate in gates { gate.gate.signal() }

        XCTAssertTrue(try waitUntil(timeout: 120, interval: 0.2) { try second.server.service.job(id: Int64(jobID))?.status.isFinished ?? false })
        XCTAssertEqual(try second.server.service.job(id: Int64(jobID))?.status, .succeeded)
        XCTAssertTrue(waitUntil(timeout: 2) { first.server.service.currentModel.version == 2 && second.server.service.currentModel.version == 2 },
                      "both replicas serve the activated version within 2 s")
        for running in [first, second] {
            XCTAssertEqual(running.server.service.currentModel.count, ids.count)
            XCTAssertEqual(running.server.service.currentModel.bits, 32)
        }
        XCTAssertEqual(try found(first, seed: 105), try found(second, seed: 105), "both replicas answer alike")
        let later = try upload(second, seed: 999)
        XCTAssertTrue(try waitUntil(timeout: 2) { try found(first, seed: 999).contains(later) })
    }

    /// `/metrics` says how far a replica trails the others: change-log entries it has not applied yet,
    /// and seconds since it last applied the log or found it caught up.
    func testFollowerLagMetricsOverHTTP() throws {
        let url = try postgres().createDatabase()
        let first = try replica(url), second = try replica(url)
        // A service without a follower thread: its lag stays until it follows the log itself.
        var configuration = Configuration()
        configuration.database.url = url
        configuration.admin.token = ReplicaTests.token
        let idle = try ImageService(configuration: configuration, logger: Logger(sink: { _ in }))
        defer { idle.close() }
        let ids = try (0..<3).map { try upload(first, seed: 600 + $0) }
        XCTAssertEqual(try second.client.request("DELETE", "/v1/images/\(ids[0])", headers: adminHeaders).status, 204)
        XCTAssertEqual(try idle.changeFeedLag().entries, 4, "three uploads and a delete not applied yet")
        XCTAssertEqual(try idle.followChanges(), 4)
        let caughtUp = try idle.changeFeedLag()
        XCTAssertEqual(caughtUp.entries, 0)
        XCTAssertLessThan(caughtUp.secondsSinceApplied, 1)

        func gauge(_ running: RunningServer, _ name: String) throws -> Double? {
            let text = try running.client.request("GET", "/metrics").text
            XCTAssertTrue(text.contains("# HELP \(name) ") && text.contains("# TYPE \(name) gauge\n"), text)
            return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.dropFirst(name.count + 1)) }
        }
        for running in [first, second] {
            XCTAssertTrue(try waitUntil(timeout: 2) { try gauge(running, "dsch_change_feed_lag_entries") == 0 },
                          "a replica with a follower catches up within 2 s")
            let seconds = try XCTUnwrap(try gauge(running, "dsch_change_feed_last_applied_seconds"))
            XCTAssertGreaterThanOrEqual(seconds, 0)
            XCTAssertLessThan(seconds, 2.5, "the follower confirms it is caught up at least every poll (\(ChangeFollower.pollSeconds) s)")
        }
    }

    /// With the database down, a search whose hits were seen before is answered from memory; what
    /// needs the database gets 503 with a message saying so; after the restart everything works again.
    func testSearchesAnswerFromMemoryWhileTheDatabaseIsDown() throws {
        let server = try postgres()
        let url = try server.createDatabase()
        let first = try replica(url), second = try replica(url)
        let ids = try (0..<10).map { try upload(first, seed: 400 + $0) }
        XCTAssertTrue(try waitUntil(timeout: 2) { try found(second, seed: 403).count == ids.count })
        let before = try found(second, seed: 403)
        try server.stopServer()
        defer { try? server.startServer() }
        XCTAssertEqual(try found(second, seed: 403), before, "the search is answered from the in-memory index")
        let similar = try second.client.request("GET", "/v1/images/\(ids[3])/similar?k=20")
        XCTAssertEqual(similar.status, 200, similar.text)
        let refused = try first.client.request("POST", "/v1/images", body: try TestImages.png(seed: 500))
        XCTAssertEqual(refused.status, 503, refused.text)
        XCTAssertTrue(refused.text.contains("database is unavailable"), refused.text)
        XCTAssertEqual(try second.client.request("GET", "/v1/images/\(ids[0])").status, 503)
        try server.startServer()
        let after = try upload(first, seed: 500)
        XCTAssertTrue(try waitUntil(timeout: 5) { try found(second, seed: 500).contains(after) })
    }

    /// PostgreSQL stops for a few seconds while uploads and searches run against both replicas.
    func testDatabaseRestartUnderLoad() throws {
        let server = try postgres()
        let url = try server.createDatabase()
        let first = try replica(url), second = try replica(url)
        for seed in 0..<10 { _ = try upload(first, seed: seed) }

        let acknowledged = Locked<[(seed: Int, id: Int)]>([])
        let statuses = Locked<[Int: Int]>([:])
        let stop = Locked(false)
        let load = DispatchGroup()
        DispatchQueue.global().async(group: load) {
            var seed = 5_000
            while !stop.read({ $0 }) {
                guard let body = try? TestImages.png(seed: UInt64(seed)),
                      let response = try? first.client.request("POST", "/v1/images", body: body) else { continue }
                statuses.update { $0[response.status, default: 0] += 1 }
                if response.status == 201, let id = response.json["id"] as? Int { acknowledged.update { $0.append((seed, id)) } }
                seed += 1
                usleep(20_000)
            }
        }
        DispatchQueue.global().async(group: load) {
            while !stop.read({ $0 }) {
                if let response = try? second.client.request("POST", "/v1/search?k=5", body: try TestImages.png(seed: 3)) {
                    statuses.update { $0[response.status, default: 0] += 1 }
                }
                usleep(20_000)
            }
        }
        usleep(500_000)
        try server.stopServer()
        usleep(2_000_000)
        let whileDown = try first.client.request("POST", "/v1/images", body: try TestImages.png(seed: 77_777))
        XCTAssertEqual(whileDown.status, 503, whileDown.text)
        XCTAssertTrue(whileDown.text.contains("unavailable"), whileDown.text)
        XCTAssertNotNil(whileDown.headers["retry-after"])
        try server.startServer()
        usleep(1_000_000)
        stop.update { $0 = true }
        load.wait()

        let counts = statuses.read { $0 }
        XCTAssertEqual(Set(counts.keys).subtracting([200, 201, 503]), [], "only successes and 503s: \(counts)")
        XCTAssertGreaterThan(counts[503] ?? 0, 0, "requests needing the database got 503 while it was down: \(counts)")
        let after = try upload(first, seed: 88_888)
        XCTAssertTrue(try waitUntil(timeout: 5) { try found(second, seed: 88_888).contains(after) },
                      "the follower reconnected and caught up by itself")
        for (seed, id) in acknowledged.read({ $0 }) {
            XCTAssertEqual(try second.client.request("GET", "/v1/images/\(id)").status, 200, "acknowledged upload \(id) is stored")
            XCTAssertTrue(try found(second, seed: seed).contains(id), "acknowledged upload \(id) is found on the other replica")
        }
        XCTAssertEqual(first.server.service.currentModel.count, second.server.service.currentModel.count)
    }

    /// `kill -9` of a replica (the real executable) during uploads: every upload it acknowledged is
    /// stored and found on the other replica.
    func testKilledReplicaLosesNoAcknowledgedUpload() throws {
        let url = try postgres().createDatabase()
        let survivor = try replica(url)
        let victim = try ProcessTests.ServerProcess(database: url, environment: ["DSCH_ADMIN_TOKEN": ReplicaTests.token,
                                                                               "DSCH_RETRAIN_AUTOMATIC": "false"])
        let client = TestClient(port: victim.port)
        let acknowledged = Locked<[(seed: Int, id: Int)]>([])
        let stop = Locked(false)
        let uploaders = DispatchGroup()
        for worker in 0..<3 {
            DispatchQueue.global().async(group: uploaders) {
                for seed in stride(from: 20_000 + worker, to: 20_400, by: 3) {
                    if stop.read({ $0 }) { return }
                    guard let body = try? TestImages.png(seed: UInt64(seed)),
                          let response = try? client.request("POST", "/v1/images", body: body),
                          response.status == 201, let id = response.json["id"] as? Int else { continue }
                    acknowledged.update { $0.append((seed, id)) }
                }
            }
        }
        XCTAssertTrue(waitUntil(timeout: 30) { acknowledged.read { $0.count } >= 30 })
        victim.kill9()
        stop.update { $0 = true }
        uploaders.wait()
        let landed = acknowledged.read { $0 }
        XCTAssertGreaterThanOrEqual(landed.count, 30)
        XCTAssertTrue(waitUntil(timeout: 2) { landed.allSatisfy { survivor.server.service.currentModel.code(for: Int64($0.id)) != nil } },
                      "every acknowledged upload reached the surviving replica's index")
        for (seed, id) in landed {
            XCTAssertEqual(try survivor.client.request("GET", "/v1/images/\(id)").status, 200)
            XCTAssertTrue(try found(survivor, seed: seed).contains(id), "upload \(id) is found on the surviving replica")
        }
    }

    /// A replica killed while it trains leaves its job failed once the lease expires, noticed by the
    /// other replica, which can then retrain; the previous version keeps serving throughout.
    func testJobOfAKilledReplicaFailsWhenItsLeaseExpires() throws {
        let url = try postgres().createDatabase()
        let survivor = try RunningServer(configure: { configuration in
            configuration.database.url = url
            configuration.admin.token = ReplicaTests.token
            configuration.retrain.automatic = false
            configuration.retrain.checkSeconds = 0.5
            configuration.retrain.leaseSeconds = 2
        })
        addTeardownBlock { survivor.stop() }
        for seed in 0..<40 { _ = try upload(survivor, seed: 300 + seed) }
        let victim = try ProcessTests.ServerProcess(database: url, environment: ["DSCH_ADMIN_TOKEN": ReplicaTests.token,
                                                                               "DSCH_RETRAIN_AUTOMATIC": "false",
                                                                               "DSCH_RETRAIN_LEASE_SECONDS": "2"])
        let started = try TestClient(port: victim.port).request("POST", "/v1/admin/retrain", body: Array(#"{"kind":"dsch","epochs":500,"fineComponents":8,"coarseComponents":4}"#.utf8),
                                                                headers: adminHeaders)
        XCTAssertEqual(started.status, 202, started.text)
        let jobID = try XCTUnwrap(started.json["id"] as? Int)
        XCTAssertEqual(try survivor.client.request("POST", "/v1/admin/retrain", headers: adminHeaders).status, 409)
        usleep(500_000)
        victim.kill9()

        XCTAssertTrue(try waitUntil(timeout: 10, interval: 0.1) { try survivor.server.service.job(id: Int64(jobID))?.status == .failed },
                      "the surviving replica fails the job once its lease expires")
        let message = try survivor.server.service.job(id: Int64(jobID))?.message ?? ""
        XCTAssertTrue(message.contains("lease"), message)
        XCTAssertEqual(try survivor.server.service.activeModelVersion(), 1, "the previous version keeps serving")
        XCTAssertEqual(try survivor.server.service.models().map(\.version), [1], "the unfinished model was removed")
        let again = try survivor.client.request("POST", "/v1/admin/retrain", body: Array(#"{"kind":"itq","bits":32}"#.utf8), headers: adminHeaders)
        XCTAssertEqual(again.status, 202, again.text)
    }
}
