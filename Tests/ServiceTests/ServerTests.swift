import Foundation
import XCTest
import Imaging
import Storage
@testable import Service

/// The service end to end: a real server on a loopback port over a real SQLite file, and over a
/// PostgreSQL database in `ServerPostgresTests`.
class ServerTests: ServiceTestCase {
    var running: RunningServer!

    override func setUpWithError() throws { running = try startServer() }
    override func tearDown() { running?.stop() }

    func testIndexLookupSimilarSearchDelete() throws {
        let client = running.client
        let first = try TestImages.png(seed: 1)
        let created = try client.request("POST", "/v1/images?meta=%7B%22label%22%3A%22one%22%7D", body: first)
        XCTAssertEqual(created.status, 201, created.text)
        let id = try XCTUnwrap(created.json["id"] as? Int)
        XCTAssertEqual(created.json["model_version"] as? Int, 1)
        XCTAssertEqual((created.json["code"] as? String)?.count, 16)
        XCTAssertEqual(created.json["sha256"] as? String, SHA256.hexDigest(first), "the digest of the bytes, not the bytes")
        XCTAssertEqual(created.headers["location"], "/v1/images/\(id)")

        let again = try client.request("PUT", "/v1/images", body: first)
        XCTAssertEqual(again.status, 200)
        XCTAssertEqual(again.json["id"] as? Int, id)
        XCTAssertEqual(again.json["code"] as? String, created.json["code"] as? String)

        var ids = [id]
        for seed in 2...6 {
            let response = try client.request("POST", "/v1/images", body: try TestImages.png(seed: UInt64(seed)))
            XCTAssertEqual(response.status, 201)
            ids.append(try XCTUnwrap(response.json["id"] as? Int))
        }
        XCTAssertEqual(Set(ids).count, 6)

        let metadata = try client.request("GET", "/v1/images/\(id)")
        XCTAssertEqual(metadata.status, 200)
        XCTAssertEqual((metadata.json["meta"] as? [String: Any])?["label"] as? String, "one")
        XCTAssertEqual(metadata.json["width"] as? Int, 24)

        let content = try client.request("GET", "/v1/images/\(id)/content")
        XCTAssertEqual(content.status, 200)
        XCTAssertEqual(content.body, first)
        XCTAssertEqual(content.headers["content-type"], "image/png")

        let similar = try client.request("GET", "/v1/images/\(id)/similar?k=3")
        XCTAssertEqual(similar.status, 200, similar.text)
        let results = try XCTUnwrap(similar.json["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 3)
        XCTAssertFalse(results.contains { $0["id"] as? Int == id }, "the query image is left out")
        let distances = results.compactMap { $0["distance"] as? Int }
        XCTAssertEqual(distances, distances.sorted())

        let search = try client.request("POST", "/v1/search?k=2", body: first)
        XCTAssertEqual(search.status, 200)
        let top = try XCTUnwrap((search.json["results"] as? [[String: Any]])?.first)
        XCTAssertEqual(top["id"] as? Int, id)
        XCTAssertEqual(top["distance"] as? Int, 0)

        let admin = try running.adminHeaders()
        XCTAssertEqual(try client.request("DELETE", "/v1/images/\(id)", headers: admin).status, 204)
        XCTAssertEqual(try client.request("GET", "/v1/images/\(id)").status, 404)
        XCTAssertEqual(try client.request("DELETE", "/v1/images/\(id)", headers: admin).status, 404)
        let afterDelete = try client.request("POST", "/v1/search?k=10", body: first)
        XCTAssertFalse((afterDelete.json["results"] as? [[String: Any]] ?? []).contains { $0["id"] as? Int == id })

        let metrics = try client.request("GET", "/metrics")
        XCTAssertTrue(metrics.text.contains("dsch_images_indexed 5"), metrics.text)
        XCTAssertTrue(metrics.text.contains("dsch_index_size 5"))
        XCTAssertTrue(metrics.text.contains("dsch_active_model_version 1"))
        XCTAssertTrue(metrics.text.contains(#"dsch_searches_total{method="flatScan"} "#), "small collections use the flat scan: \(metrics.text)")
        XCTAssertTrue(metrics.text.contains("route=\"/v1/images/{id}/similar\",method=\"GET\",status=\"200\"} 1"), metrics.text)
        XCTAssertTrue(metrics.text.contains("dsch_http_request_duration_seconds_bucket{route=\"/v1/images\""))
        XCTAssertTrue(metrics.text.contains("# TYPE dsch_change_feed_lag_entries gauge"), metrics.text)
        XCTAssertTrue(metrics.text.contains("# TYPE dsch_change_feed_last_applied_seconds gauge"), metrics.text)
        if store == .sqlite {
            XCTAssertTrue(metrics.text.contains("dsch_change_feed_lag_entries 0\n"), "no other process writes to a SQLite file: \(metrics.text)")
        }
        let health = try client.request("GET", "/healthz")
        XCTAssertEqual(health.json["status"] as? String, "ok")
    }

    func testMultipartUploadWithMetadata() throws {
        let boundary = "----dschboundary"
        var body = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{\"label\":7}\r\n".utf8)
        body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
        body += try TestImages.png(seed: 42)
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        let response = try running.client.request("POST", "/v1/images", body: body,
                                                  headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")])
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual((response.json["meta"] as? [String: Any])?["label"] as? Int, 7)
    }

    /// Bad input gets the right 4xx with a JSON error and changes nothing.
    func testBadInputIsRefusedAndChangesNothing() throws {
        let client = running.client
        let valid = try TestImages.png(seed: 9)
        var badCRC = valid
        badCRC[30] ^= 0xFF
        let jpeg = try ImageEncoder.jpeg(TestImages.rgb(seed: 3), quality: 90)
        let cases: [(String, String, [UInt8], Int)] = [
            ("POST", "/v1/images", Array("hello, not an image".utf8), 415),
            ("POST", "/v1/images", Array(jpeg.prefix(jpeg.count / 2)), 422),
            ("POST", "/v1/images", badCRC, 422),
            ("POST", "/v1/images", TestImages.pngHeader(width: 100_000, height: 100_000), 413),
            ("POST", "/v1/images?meta=%5B1%5D", valid, 400),
            ("POST", "/v1/images?meta=nope", valid, 400),
            ("POST", "/v1/search", Array("GIF89a".utf8), 415),
            ("GET", "/v1/images/999", [], 404),
            ("GET", "/v1/images/abc", [], 400),
            ("GET", "/v1/images/999/similar", [], 404),
            ("GET", "/v1/nothing", [], 404),
            ("PATCH", "/v1/images", [], 405),
        ]
        for (method, path, body, status) in cases {
            let response = try client.request(method, path, body: body)
            XCTAssertEqual(response.status, status, "\(method) \(path): \(response.text)")
            let error = response.json["error"] as? [String: Any]
            XCTAssertNotNil(error?["code"] as? String, "\(method) \(path) gives a JSON error")
            XCTAssertFalse((error?["message"] as? String ?? "").isEmpty)
        }
        let id = try XCTUnwrap(try client.request("POST", "/v1/images", body: valid).json["id"] as? Int)
        for query in ["k=0", "k=abc", "k=100000", "max_distance=-1"] {
            XCTAssertEqual(try client.request("GET", "/v1/images/\(id)/similar?\(query)").status, 400, query)
        }
        XCTAssertEqual(try running.server.service.store.imageCount(), 1, "only the one valid upload is stored")
    }

    /// 16 clients upload 1,000 distinct images at once; every one gets its own id and is its own nearest
    /// neighbour at distance 0.
    func testConcurrentUploads() throws {
        let images = try (0..<1000).map { try TestImages.png(seed: UInt64(1000 + $0)) }
        let landed = Locked([Int?](repeating: nil, count: images.count))
        let client = running.client
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            for index in stride(from: worker, to: images.count, by: 16) {
                let response = try? client.request("POST", "/v1/images", body: images[index])
                landed.update { $0[index] = response?.status == 201 ? response?.json["id"] as? Int : nil }
            }
        }
        let ids = landed.read { $0 }
        XCTAssertEqual(ids.compactMap { $0 }.count, 1000)
        XCTAssertEqual(Set(ids.compactMap { $0 }).count, 1000)
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            for index in stride(from: worker, to: images.count, by: 16) {
                let response = try? client.request("POST", "/v1/search?k=5", body: images[index])
                let results = response?.json["results"] as? [[String: Any]] ?? []
                let exact = results.filter { $0["distance"] as? Int == 0 }.compactMap { $0["id"] as? Int }
                XCTAssertTrue(exact.contains(ids[index]!), "image \(index) is its own nearest neighbour")
            }
        }
    }
}

/// `ServerTests` on PostgreSQL.
final class ServerPostgresTests: ServerTests {
    override class var store: TestStore { .postgresql }
    override func testIndexLookupSimilarSearchDelete() throws { try super.testIndexLookupSimilarSearchDelete() }
    override func testMultipartUploadWithMetadata() throws { try super.testMultipartUploadWithMetadata() }
    override func testBadInputIsRefusedAndChangesNothing() throws { try super.testBadInputIsRefusedAndChangesNothing() }
    override func testConcurrentUploads() throws { try super.testConcurrentUploads() }
}
