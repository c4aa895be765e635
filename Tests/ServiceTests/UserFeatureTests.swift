import Foundation
import XCTest
import HammingIndex
import Imaging
import Storage
@testable import Service

/// Listing, metadata filters, previews, duplicate groups, the API document, backups and error messages,
/// over a real server on a loopback port and a real SQLite file, and on PostgreSQL in
/// `UserFeaturePostgresTests`.
class UserFeatureTests: ServiceTestCase {
    var running: RunningServer!

    override func setUpWithError() throws { running = try startServer() }
    override func tearDown() { running?.stop() }

    /// A stored image as the test knows it: id, code (from the upload's answer) and metadata.
    struct Stored {
        var id: Int
        var code: [UInt8]
        var meta: [String: Any]?
    }

    /// Uploads the test image of `seed` with `meta` (a JSON object text) and returns what was stored.
    func upload(seed: UInt64, meta: String? = nil, bytes: [UInt8]? = nil) throws -> Stored {
        var path = "/v1/images"
        if let meta { path += "?meta=" + meta.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }
        let response = try running.client.request("POST", path, body: try bytes ?? TestImages.png(seed: seed))
        XCTAssertEqual(response.status, 201, response.text)
        let id = try XCTUnwrap(response.json["id"] as? Int)
        let code = try XCTUnwrap(hexBytes(try XCTUnwrap(response.json["code"] as? String)))
        return Stored(id: id, code: code, meta: response.json["meta"] as? [String: Any])
    }

    func hexBytes(_ hex: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    func distance(_ left: [UInt8], _ right: [UInt8]) -> Int { zip(left, right).reduce(0) { $0 + ($1.0 ^ $1.1).nonzeroBitCount } }

    /// The filter rule of `MetadataFilter` for the strings and integers these tests store, written
    /// independently: strings by value, integers by their decimal text.
    func matches(_ meta: [String: Any]?, _ filters: [(String, String)]) -> Bool {
        guard let meta else { return false }
        return filters.allSatisfy { key, value in
            switch meta[key] {
            case let text as String: return text == value
            case let number as Int: return String(number) == value
            default: return false
            }
        }
    }

    func results(_ response: WireResponse) -> [(id: Int, distance: Int)] {
        ((response.json["results"] as? [[String: Any]]) ?? []).map { ($0["id"] as? Int ?? -1, $0["distance"] as? Int ?? -1) }
    }

    // MARK: Listing

    func testListingPagesByIDAndStaysStableUnderInsertsAndDeletes() throws {
        var ids = try (1...7).map { try upload(seed: UInt64($0)).id }
        let first = try running.client.request("GET", "/v1/images?limit=3")
        XCTAssertEqual(first.status, 200, first.text)
        XCTAssertEqual((first.json["images"] as? [[String: Any]])?.compactMap { $0["id"] as? Int }, Array(ids[0..<3]))
        let cursor = try XCTUnwrap(first.json["next_after"] as? Int)
        XCTAssertEqual(cursor, ids[2])

        // Between pages: delete an image on the next page and one already seen, insert a new one.
        let admin = try running.adminHeaders()
        XCTAssertEqual(try running.client.request("DELETE", "/v1/images/\(ids[3])", headers: admin).status, 204)
        XCTAssertEqual(try running.client.request("DELETE", "/v1/images/\(ids[0])", headers: admin).status, 204)
        ids.append(try upload(seed: 8).id)

        var seen: [Int] = []
        var after = cursor
        while true {
            let page = try running.client.request("GET", "/v1/images?limit=3&after=\(after)")
            XCTAssertEqual(page.status, 200, page.text)
            seen += (page.json["images"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
            guard let next = page.json["next_after"] as? Int else {
                XCTAssertTrue(page.json["next_after"] is NSNull, "the last page says next_after: null")
                break
            }
            after = next
        }
        XCTAssertEqual(seen, [ids[4], ids[5], ids[6], ids[7]], "no image skipped or repeated; the deleted one is gone, the new one is last")

        let whole = try running.client.request("GET", "/v1/images?limit=1000")
        XCTAssertEqual((whole.json["images"] as? [[String: Any]])?.count, 6)
        XCTAssertTrue(whole.json["next_after"] is NSNull)
        let bad = try running.client.request("GET", "/v1/images?limit=1001")
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual((bad.json["error"] as? [String: Any])?["message"] as? String, "limit must be an integer from 1 to 1000; got '1001'")
        let badCursor = try running.client.request("GET", "/v1/images?after=-1")
        XCTAssertEqual(badCursor.status, 400)
        XCTAssertTrue(badCursor.text.contains("next_after of the previous page"), badCursor.text)
    }

    /// Strings match by value, numbers and booleans by JSON text, objects never, missing keys never.
    func testMetadataFilterRule() throws {
        let metas = [#"{"n":3}"#, #"{"n":"3"}"#, #"{"n":3.5}"#, #"{"n":{"x":3}}"#, #"{"m":3}"#, #"{"flag":true,"n":3}"#,
                     #"{"flag":"True"}"#, #"{"a.b":"dot"}"#, #"{"gap":null}"#]
        var ids: [Int] = []
        for (offset, meta) in metas.enumerated() { ids.append(try upload(seed: UInt64(100 + offset), meta: meta).id) }
        _ = try upload(seed: 200)
        func listed(_ query: String) throws -> [Int] {
            let response = try running.client.request("GET", "/v1/images?" + query)
            XCTAssertEqual(response.status, 200, response.text)
            return (response.json["images"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
        }
        XCTAssertEqual(try listed("meta.n=3"), [ids[0], ids[1], ids[5]])
        XCTAssertEqual(try listed("meta.n=3.5"), [ids[2]])
        XCTAssertEqual(try listed("meta.flag=true"), [ids[5]])
        XCTAssertEqual(try listed("meta.flag=True"), [ids[6]])
        XCTAssertEqual(try listed("meta.flag=true&meta.n=3"), [ids[5]], "several filters must all match")
        XCTAssertEqual(try listed("meta.a.b=dot"), [ids[7]], "a key with a dot is one top-level key")
        XCTAssertEqual(try listed("meta.gap=null"), [ids[8]])
        XCTAssertEqual(try listed("meta.n=%7B%22x%22%3A3%7D"), [], "objects never match")
        XCTAssertEqual(try listed("meta.missing=3"), [])

        let quote = try running.client.request("GET", "/v1/images?meta.a%22b=1")
        XCTAssertEqual(quote.status, 400)
        XCTAssertTrue(quote.text.contains("filter on keys without them"), quote.text)
        let upload = try running.client.request("GET", "/v1/images?meta=%7B%7D")
        XCTAssertEqual(upload.status, 400)
        XCTAssertTrue(upload.text.contains("write meta.KEY=VALUE"), upload.text)
    }

    /// Filtered `similar` and `search` equal "filter every image, then the top k by (distance, id)",
    /// including when few images match and the search has to widen past its first request.
    func testFilteredSearchEqualsBruteForce() throws {
        var stored: [Stored] = []
        for seed in 1...150 {
            let label = seed % 30 == 0 ? "rare" : (seed % 2 == 0 ? "even" : "odd")
            stored.append(try upload(seed: UInt64(seed), meta: "{\"label\":\"\(label)\",\"n\":\(seed % 3)}"))
        }
        func bruteForce(_ code: [UInt8], excluding: Int?, filters: [(String, String)], k: Int, maxDistance: Int?) -> [(id: Int, distance: Int)] {
            stored.filter { $0.id != excluding && matches($0.meta, filters) }
                .map { (id: $0.id, distance: distance(code, $0.code)) }
                .filter { maxDistance == nil || $0.distance <= maxDistance! }
                .sorted { ($0.distance, $0.id) < ($1.distance, $1.id) }
                .prefix(k).map { $0 }
        }
        let cases: [(query: String, filters: [(String, String)], k: Int, maxDistance: Int?)] = [
            ("meta.label=rare", [("label", "rare")], 5, nil),
            ("meta.label=rare", [("label", "rare")], 3, nil),
            ("meta.label=even&meta.n=1", [("label", "even"), ("n", "1")], 7, nil),
            ("meta.label=odd", [("label", "odd")], 10, 20),
            ("meta.label=none", [("label", "none")], 4, nil),
        ]
        for query in [stored[0], stored[77], stored[149]] {
            for test in cases {
                var path = "/v1/images/\(query.id)/similar?k=\(test.k)&" + test.query
                if let maxDistance = test.maxDistance { path += "&max_distance=\(maxDistance)" }
                let response = try running.client.request("GET", path)
                XCTAssertEqual(response.status, 200, response.text)
                let expected = bruteForce(query.code, excluding: query.id, filters: test.filters, k: test.k, maxDistance: test.maxDistance)
                XCTAssertEqual(results(response).map(\.id), expected.map(\.id), path)
                XCTAssertEqual(results(response).map(\.distance), expected.map(\.distance), path)
            }
        }
        let probe = try TestImages.png(seed: 9_999)
        let search = try running.client.request("POST", "/v1/search?k=4&meta.label=rare", body: probe)
        XCTAssertEqual(search.status, 200, search.text)
        let code = try XCTUnwrap(hexBytes(try XCTUnwrap((search.json["query"] as? [String: Any])?["code"] as? String)))
        XCTAssertEqual(results(search).map(\.id), bruteForce(code, excluding: nil, filters: [("label", "rare")], k: 4, maxDistance: nil).map(\.id))
    }

    // MARK: Previews

    func testThumbnailKeepsAspectAndAnswersNotModified() throws {
        let wide = try ImageEncoder.png(TestImages.rgb(seed: 5, width: 300, height: 150))
        let id = try upload(seed: 0, bytes: wide).id
        let small = try upload(seed: 6).id
        let response = try running.client.request("GET", "/v1/images/\(id)/thumbnail")
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(response.headers["content-type"], "image/jpeg")
        let info = try ImageDecoder.info(response.body)
        XCTAssertEqual([info.width, info.height], [128, 64], "longest side 128, aspect kept")
        let entityTag = try XCTUnwrap(response.headers["etag"])
        XCTAssertTrue(entityTag.hasPrefix("\"") && entityTag.hasSuffix("\""), "a strong ETag")
        XCTAssertNotNil(response.headers["cache-control"])

        let notModified = try running.client.request("GET", "/v1/images/\(id)/thumbnail", headers: [("If-None-Match", "\"other\", \(entityTag)")])
        XCTAssertEqual(notModified.status, 304)
        XCTAssertTrue(notModified.body.isEmpty)
        XCTAssertEqual(notModified.headers["etag"], entityTag)
        XCTAssertEqual(try running.client.request("GET", "/v1/images/\(id)/thumbnail", headers: [("If-None-Match", "\"other\"")]).status, 200)

        let sized = try running.client.request("GET", "/v1/images/\(id)/thumbnail?size=40", headers: [("If-None-Match", entityTag)])
        XCTAssertEqual(sized.status, 200, "another size is another entity")
        XCTAssertNotEqual(sized.headers["etag"], entityTag)
        XCTAssertEqual(try ImageDecoder.info(sized.body).width, 40)
        let notEnlarged = try running.client.request("GET", "/v1/images/\(small)/thumbnail")
        XCTAssertEqual(try ImageDecoder.info(notEnlarged.body).width, 24, "a preview never enlarges")

        let tooLarge = try running.client.request("GET", "/v1/images/\(id)/thumbnail?size=2000")
        XCTAssertEqual(tooLarge.status, 400)
        XCTAssertTrue(tooLarge.text.contains("size must be an integer from 16 to 512"), tooLarge.text)
        XCTAssertEqual(try running.client.request("GET", "/v1/images/987654/thumbnail").status, 404)
    }

    // MARK: Duplicates

    /// Connected components of "distance ≤ D", computed from every pair.
    static func bruteForceGroups(_ codes: [(id: Int64, code: [UInt64])], maxDistance: Int) -> [[Int64]] {
        var label = Dictionary(uniqueKeysWithValues: codes.map { ($0.id, $0.id) })
        func find(_ id: Int64) -> Int64 { label[id] == id ? id : find(label[id]!) }
        for left in codes {
            for right in codes where left.id < right.id && BinaryCode.distance(left.code, right.code) <= maxDistance {
                let (a, b) = (find(left.id), find(right.id))
                if a != b { label[max(a, b)] = min(a, b) }
            }
        }
        let groups = Dictionary(grouping: codes.map(\.id), by: find).values.map { $0.sorted() }.filter { $0.count > 1 }
        return groups.sorted { ($0.count, $1[0]) > ($1.count, $0[0]) }
    }

    func testDuplicateGroupsEqualBruteForceComponents() throws {
        var generator = TestRandom(seed: 7)
        let index = try HammingIndex(bits: 16)
        var codes: [(id: Int64, code: [UInt64])] = []
        for id in 1...400 {
            // Codes drawn near a few centres, so chains and large components exist.
            let centre = UInt64([0x0F0F, 0x3C3C, 0xAAAA, 0x1234][Int(generator.next() % 4)])
            var code = generator.next() % 3 == 0 ? generator.next() & 0xFFFF : centre
            for _ in 0..<Int(generator.next() % 3) { code ^= 1 << (generator.next() % 16) }
            codes.append((Int64(id * 3), [code]))
            try index.add(id: Int64(id * 3), code: [code])
        }
        for maxDistance in [0, 1, 2] {
            let groups = try DuplicateGroups.find(in: index, maxDistance: maxDistance)
            XCTAssertEqual(groups.map { $0.members.map(\.id) }, Self.bruteForceGroups(codes, maxDistance: maxDistance), "D = \(maxDistance)")
            for group in groups {
                let first = codes.first { $0.id == group.firstID }!.code
                for member in group.members {
                    XCTAssertEqual(member.distanceToFirst, BinaryCode.distance(first, codes.first { $0.id == member.id }!.code))
                }
            }
        }
    }

    func testDuplicatesRouteAndCommandAgreeWithTheCodes() throws {
        var stored: [Stored] = []
        for seed in 1...12 {
            stored.append(try upload(seed: UInt64(seed)))
            // A near copy: the same picture with one pixel changed.
            var image = TestImages.rgb(seed: UInt64(seed))
            image.pixels[0] ^= 0x40
            if seed % 3 == 0 { stored.append(try upload(seed: 0, bytes: try ImageEncoder.png(image))) }
        }
        let codes = stored.map { (id: Int64($0.id), code: BinaryCode.words($0.code, bits: 64)!) }
        let expected = Self.bruteForceGroups(codes, maxDistance: 3)
        XCTAssertFalse(expected.isEmpty, "near copies have near codes")

        let whole = try running.client.request("GET", "/v1/duplicates?max_distance=3&limit=1000")
        XCTAssertEqual(whole.status, 200, whole.text)
        XCTAssertEqual(whole.json["total_groups"] as? Int, expected.count)
        let groups = try XCTUnwrap(whole.json["groups"] as? [[String: Any]])
        XCTAssertEqual(groups.map { ($0["images"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? Int).map(Int64.init) } }, expected)
        let paged = try running.client.request("GET", "/v1/duplicates?max_distance=3&limit=1&offset=1")
        XCTAssertEqual((paged.json["groups"] as? [[String: Any]])?.count, min(1, max(0, expected.count - 1)))
        XCTAssertEqual(paged.json["total_groups"] as? Int, expected.count)
        let tooFar = try running.client.request("GET", "/v1/duplicates?max_distance=17")
        XCTAssertEqual(tooFar.status, 400)
        XCTAssertTrue(tooFar.text.contains("max_distance must be an integer from 0 to 16"), tooFar.text)

        let report = try Maintenance.duplicateReport(databasePath: running.database, maxDistance: 3)
        XCTAssertEqual(report.groups.map { $0.members.map(\.id) }, expected, "the command groups as the route does")
        let lines = report.csv.split(separator: "\n")
        XCTAssertEqual(lines.first, "group,id,sha256,distance")
        XCTAssertEqual(lines.count, 1 + expected.reduce(0) { $0 + $1.count })
        XCTAssertTrue(lines.dropFirst().allSatisfy { $0.split(separator: ",")[2].count == 64 }, "each row has the image's sha256")
    }

    // MARK: Backup

    func testBackupWhileRunningRestoresIntoASecondServer() throws {
        let stored = try (1...5).map { try upload(seed: UInt64($0), meta: "{\"n\":\($0)}") }
        let directory = try makeTemporaryDirectory(self)
        let copy = directory.appendingPathComponent("backup.sqlite").path
        XCTAssertGreaterThan(try Maintenance.backup(databasePath: running.database, to: copy), 0)
        XCTAssertThrowsError(try Maintenance.backup(databasePath: running.database, to: copy), "never overwrites") { error in
            XCTAssertTrue("\(error)".contains("choose another name"), "\(error)")
        }
        // The original keeps serving and changing after the copy.
        _ = try upload(seed: 50)

        let restored = try RunningServer(directory: directory.appendingPathComponent("restored")) { $0.database.path = copy }
        defer { restored.stop() }
        let search = try restored.client.request("POST", "/v1/search?k=1", body: try TestImages.png(seed: 3))
        XCTAssertEqual(search.status, 200, search.text)
        XCTAssertEqual(results(search).first?.id, stored[2].id)
        XCTAssertEqual(results(search).first?.distance, 0)
        let listing = try restored.client.request("GET", "/v1/images?meta.n=4")
        XCTAssertEqual((listing.json["images"] as? [[String: Any]])?.compactMap { $0["id"] as? Int }, [stored[3].id])
        let everything = try restored.client.request("GET", "/v1/images?limit=1000").json["images"] as? [Any]
        XCTAssertEqual(everything?.count, 5, "the copy holds what was stored before the backup, not after")
    }

    /// Runs the `dsch` executable with `arguments`; returns its exit status and standard output.
    func dsch(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let executable = ProcessTests.productsDirectory.appendingPathComponent("dsch")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw XCTSkip("the dsch executable is not built next to the tests (run `swift build` first)")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("DSCH_") }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// `dsch backup` beside a running server, then `dsch duplicates --csv` on the copy.
    func testBackupAndDuplicatesCommands() throws {
        let original = try upload(seed: 1)
        var image = TestImages.rgb(seed: 1)
        image.pixels[3] ^= 0x20
        let nearCopy = try upload(seed: 0, bytes: try ImageEncoder.png(image))
        _ = try upload(seed: 2)
        let directory = try makeTemporaryDirectory(self)
        let copy = directory.appendingPathComponent("copy.sqlite").path
        let backup = try dsch(["backup", "--database", running.database, copy])
        XCTAssertEqual(backup.status, 0, backup.output)
        XCTAssertTrue(backup.output.contains("dsch serve --database \(copy)"), backup.output)
        let again = try dsch(["backup", "--database", running.database, copy])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.output.contains("choose another name"), again.output)
        let missing = try dsch(["backup", "--database", directory.appendingPathComponent("nope.sqlite").path, copy + "2"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.output.contains("no database at"), missing.output)

        let csv = directory.appendingPathComponent("groups.csv").path
        let distance = self.distance(original.code, nearCopy.code)
        let duplicates = try dsch(["duplicates", "--database", copy, "--max-distance", "\(distance)", "--csv", csv])
        XCTAssertEqual(duplicates.status, 0, duplicates.output)
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        XCTAssertEqual(rows.first, ["group", "id", "sha256", "distance"])
        XCTAssertTrue(rows.contains { $0[1] == "\(original.id)" && $0[3] == "0" }, "\(rows)")
        XCTAssertTrue(rows.contains { $0[1] == "\(nearCopy.id)" && $0[3] == "\(distance)" }, "\(rows)")
    }

    // MARK: Errors

    func testClientErrorsSayWhatToChange() throws {
        let id = try upload(seed: 1).id
        func message(_ method: String, _ path: String, body: [UInt8] = []) throws -> (Int, String) {
            let response = try running.client.request(method, path, body: body)
            return (response.status, (response.json["error"] as? [String: Any])?["message"] as? String ?? response.text)
        }
        XCTAssertEqual(try message("GET", "/v1/images/\(id)/similar?k=0").1, "k must be an integer from 1 to 1000; got '0'")
        XCTAssertEqual(try message("GET", "/v1/images/\(id)/similar?max_distance=65").1, "max_distance must be an integer from 0 to 64; got '65'")
        // Metadata over the limit, in a form (a query string that long would exceed the header limit first).
        let boundary = "dsch-test-boundary"
        var form = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n".utf8)
        form += try TestImages.png(seed: 2)
        form += Array("\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{\"x\":\"".utf8)
        form += Array(repeating: UInt8(ascii: "a"), count: 17_000) + Array("\"}\r\n--\(boundary)--\r\n".utf8)
        let tooMuch = try running.client.request("POST", "/v1/images", body: form,
                                                 headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")])
        XCTAssertEqual(tooMuch.status, 413)
        XCTAssertTrue(tooMuch.text.contains("must be a JSON object of at most 16384 bytes"), tooMuch.text)
        XCTAssertEqual(try message("GET", "/v1/images/abc").1, "the image id must be a positive integer, as returned by POST /v1/images")
        let unknown = try message("GET", "/v1/secret-admin-thing")
        XCTAssertEqual(unknown.0, 404)
        XCTAssertFalse(unknown.1.contains("/v1/admin"), "an unknown route lists no routes")
        let jobs = try running.client.request("GET", "/v1/admin/jobs?limit=0", headers: try running.adminHeaders())
        XCTAssertEqual(jobs.status, 400)
        XCTAssertTrue(jobs.text.contains("limit must be an integer from 1 to 200"), jobs.text)
        XCTAssertEqual(try running.client.request("GET", "/v1/admin/jobs").status, 401)
        let listed = try running.client.request("GET", "/v1/admin/jobs", headers: try running.adminHeaders())
        XCTAssertEqual(listed.status, 200, listed.text)
        XCTAssertNotNil(listed.json["jobs"] as? [Any])
    }
}

/// `UserFeatureTests` on PostgreSQL.
final class UserFeaturePostgresTests: UserFeatureTests {
    override class var store: TestStore { .postgresql }
    /// SQLite only: `dsch backup` copies a SQLite file (`VACUUM INTO`) and refuses a PostgreSQL URI,
    /// whose databases are backed up with `pg_dump`; the grouping test never reaches a store.
    override func testBackupWhileRunningRestoresIntoASecondServer() throws { throw sqliteOnly("dsch backup copies SQLite files only") }
    override func testBackupAndDuplicatesCommands() throws { throw sqliteOnly("dsch backup copies SQLite files only") }
    override func testDuplicateGroupsEqualBruteForceComponents() throws { throw sqliteOnly("groups an in-memory index, never a store") }
    override func testListingPagesByIDAndStaysStableUnderInsertsAndDeletes() throws { try super.testListingPagesByIDAndStaysStableUnderInsertsAndDeletes() }
    override func testMetadataFilterRule() throws { try super.testMetadataFilterRule() }
    override func testFilteredSearchEqualsBruteForce() throws { try super.testFilteredSearchEqualsBruteForce() }
    override func testThumbnailKeepsAspectAndAnswersNotModified() throws { try super.testThumbnailKeepsAspectAndAnswersNotModified() }
    override func testDuplicatesRouteAndCommandAgreeWithTheCodes() throws { try super.testDuplicatesRouteAndCommandAgreeWithTheCodes() }
    override func testClientErrorsSayWhatToChange() throws { try super.testClientErrorsSayWhatToChange() }
}
