import Foundation
import XCTest
import Hashing
import Imaging
@testable import Service

/// The quality gate a retrain passes before activation: a held-out sample, altered copies, scores of
/// every candidate, and a choice that a broken model cannot win; the retrain on PostgreSQL too, in
/// `QualityGatePostgresTests`.
class QualityGateTests: ServiceTestCase {
    static let token = "gate-test-token"

    func testHeldOutImagesAreATenthSpreadOverTheCollectionAndNoneBelowTheMinimum() throws {
        XCTAssertEqual(QualitySample.heldOutIDs(from: (1...199).map(Int64.init), limit: 500), [], "19 would be too few to score on")
        let ids = (1...1000).map { Int64($0) * 3 }
        let held = QualitySample.heldOutIDs(from: ids, limit: 500)
        XCTAssertEqual(held.count, 100)
        XCTAssertEqual(Set(held).count, 100)
        XCTAssertTrue(Set(held).isSubset(of: Set(ids)))
        XCTAssertLessThan(held.first!, 60, "the sample starts near the oldest images")
        XCTAssertGreaterThan(held.last!, 2900, "and reaches the newest")
        XCTAssertEqual(QualitySample.heldOutIDs(from: ids, limit: 30).count, 30, "the configured limit caps it")
        XCTAssertEqual(QualitySample.heldOutIDs(from: ids, limit: 0), [], "0 turns the gate off")
    }

    func testAlteredCopiesAreThumbnailsCloseToTheOriginalButNotEqual() throws {
        let bytes = try TestImages.png(seed: 7)
        let original = try ImageDecoder.thumbnail(bytes, width: 32, height: 32).pixels
        let copies = try QualitySample.alterations(of: bytes, inputSize: 32, limits: DecodeLimits(), seed: 7)
        XCTAssertEqual(copies.count, 4)
        for copy in copies {
            XCTAssertEqual(copy.count, original.count)
            XCTAssertNotEqual(copy, original)
            let meanDifference = zip(copy, original).map { abs(Double($0) - Double($1)) }.reduce(0, +) / Double(copy.count)
            XCTAssertLessThan(meanDifference, 60, "a copy is still recognisably the image")
        }
        XCTAssertThrowsError(try QualitySample.alterations(of: Array(bytes.prefix(40)), inputSize: 32, limits: DecodeLimits(), seed: 7))
    }

    func testTheBestScoreWinsTiesGoToTheNewModelAndForceOverrides() throws {
        let encoder = LSHEncoder(bits: 16, inputSize: 8, seed: 1)
        func candidate(_ name: String, _ score: Double?, trained: Bool = true) -> GateCandidate {
            GateCandidate(name: name, encoder: encoder,
                          trained: trained ? TrainedEncoder(encoder: encoder, settingsJSON: "{}", metricsJSON: nil) : nil,
                          score: score.map { QualityScore(firstRankRate: $0, balance: 1, constantBits: 0) })
        }
        let candidates = [candidate("new dsch", 0.4), candidate("new itq", 0.7), candidate("active model 1", 0.5, trained: false)]
        let (best, decision) = GateDecision.choose(candidates, heldOutImages: 50, force: false)
        XCTAssertEqual(best, 1)
        XCTAssertEqual(decision.chosen, "new itq")
        XCTAssertTrue(decision.reason.contains("0.700") && decision.reason.contains("new dsch 0.400"), decision.reason)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(decision.json.utf8)) as? [String: Any])
        let gate = try XCTUnwrap(json["gate"] as? [String: Any])
        XCTAssertEqual((gate["candidates"] as? [[String: Any]])?.count, 3)
        XCTAssertEqual(gate["held_out_images"] as? Int, 50)

        let tied = [candidate("new dsch", 0.5), candidate("new itq", 0.5), candidate("active model 1", 0.5, trained: false)]
        XCTAssertEqual(GateDecision.choose(tied, heldOutImages: 50, force: false).index, 0)
        let forced = GateDecision.choose(candidates, heldOutImages: 50, force: true)
        XCTAssertEqual(forced.index, 0)
        XCTAssertTrue(forced.decision.reason.hasPrefix("forced"))
        XCTAssertEqual(GateDecision.choose([candidate("new dsch", nil)], heldOutImages: 0, force: false).index, 0)
    }

    /// One epoch at an absurd learning rate wrecks the network: the gate must keep it out of service,
    /// and `force` must still put it in.
    func testACollapsedModelIsNotActivatedUnlessForced() throws {
        let running = try startServer(configure: { configuration in
            configuration.retrain.automatic = false
            configuration.admin.token = QualityGateTests.token
        })
        defer { running.stop() }
        let client = running.client
        let headers = [("Authorization", "Bearer \(QualityGateTests.token)")]
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for seed in stride(from: worker, to: 240, by: 4) {
                _ = try? client.request("POST", "/v1/images", body: try TestImages.png(seed: UInt64(seed)))
            }
        }
        XCTAssertEqual(try client.request("GET", "/healthz").json["indexed"] as? Int, 240)
        var broken = DSCHRetrainTests.smallDSCH
        broken["epochs"] = 1
        broken["warmupEpochs"] = 1
        broken["learningRate"] = 1e4
        broken["learningRateWarmupEpochs"] = 0
        // The active cold-start model's length, so that it is a candidate too.
        broken["bits"] = 64

        func retrain(_ body: [String: Any]) throws -> (job: [String: Any], gate: [String: Any]) {
            let started = try client.request("POST", "/v1/admin/retrain", body: Array(try JSONSerialization.data(withJSONObject: body)),
                                              headers: headers)
            XCTAssertEqual(started.status, 202, started.text)
            let id = try XCTUnwrap(started.json["id"] as? Int)
            var job: [String: Any] = [:]
            XCTAssertTrue(try waitUntil(timeout: 240, interval: 0.1) {
                job = try client.request("GET", "/v1/admin/jobs/\(id)", headers: headers).json
                return ["succeeded", "failed"].contains(job["status"] as? String ?? "")
            }, "the job ended: \(job)")
            XCTAssertEqual(job["status"] as? String, "succeeded", "\(job)")
            return (job, try XCTUnwrap((job["result"] as? [String: Any])?["gate"] as? [String: Any], "\(job)"))
        }

        let (_, gate) = try retrain(broken)
        let candidates = try XCTUnwrap(gate["candidates"] as? [[String: Any]])
        XCTAssertEqual(candidates.map { $0["name"] as? String }, ["new dsch", "new itq", "active model 1"])
        XCTAssertEqual(gate["held_out_images"] as? Int, 24)
        func score(_ name: String) -> Double { (candidates.first { $0["name"] as? String == name }?["quality"] as? [String: Any])?["score"] as? Double ?? -1 }
        XCTAssertNotEqual(gate["chosen"] as? String, "new dsch", "the broken model was activated: \(gate)")
        XCTAssertLessThan(score("new dsch"), score(gate["chosen"] as? String ?? ""), "\(gate)")
        let models = try client.request("GET", "/v1/admin/models", headers: headers).json
        let activeVersion = try XCTUnwrap(models["active_version"] as? Int)
        let active = (models["models"] as? [[String: Any]])?.first { $0["version"] as? Int == activeVersion }
        XCTAssertNotEqual(active?["kind"] as? String, "dsch")

        var forced = broken
        forced["force"] = true
        let (forcedJob, forcedGate) = try retrain(forced)
        XCTAssertEqual(forcedGate["chosen"] as? String, "new dsch")
        XCTAssertTrue((forcedGate["reason"] as? String ?? "").hasPrefix("forced"), "\(forcedGate)")
        let forcedVersion = try XCTUnwrap(forcedJob["model_version"] as? Int)
        XCTAssertEqual(try client.request("GET", "/v1/admin/models", headers: headers).json["active_version"] as? Int, forcedVersion)

        let wrongType = try client.request("POST", "/v1/admin/retrain", body: Array(#"{"force": 1}"#.utf8), headers: headers)
        XCTAssertEqual(wrongType.status, 400, wrongType.text)
    }
}

/// `QualityGateTests` on PostgreSQL.
final class QualityGatePostgresTests: QualityGateTests {
    override class var store: TestStore { .postgresql }
    /// Tests of the sample and the choice alone, which never reach a store.
    override func testHeldOutImagesAreATenthSpreadOverTheCollectionAndNoneBelowTheMinimum() throws { throw sqliteOnly("picks ids from a list") }
    override func testAlteredCopiesAreThumbnailsCloseToTheOriginalButNotEqual() throws { throw sqliteOnly("alters image bytes in memory") }
    override func testTheBestScoreWinsTiesGoToTheNewModelAndForceOverrides() throws { throw sqliteOnly("chooses among scores in memory") }
    override func testACollapsedModelIsNotActivatedUnlessForced() throws { try super.testACollapsedModelIsNotActivatedUnlessForced() }
}
