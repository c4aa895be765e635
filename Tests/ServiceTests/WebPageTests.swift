import Foundation
import XCTest
@testable import Service

/// The web page in a real browser (Debian's headless chromium) against a real server.
final class WebPageTests: XCTestCase {
    var running: RunningServer!
    var ids: [Int] = []

    override func setUpWithError() throws {
        running = try RunningServer()
        ids = try (1...6).map { seed in
            let response = try running.client.request("POST", "/v1/images?meta=%7B%22seed%22%3A\(seed)%7D", body: try TestImages.png(seed: UInt64(seed)))
            XCTAssertEqual(response.status, 201, response.text)
            return try XCTUnwrap(response.json["id"] as? Int)
        }
    }

    override func tearDown() { running?.stop() }

    static let chromiumPath = "/usr/bin/chromium"

    /// Runs headless chromium on `url` with `arguments` and returns what it wrote to standard output.
    func chromium(_ url: String, _ arguments: [String]) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: Self.chromiumPath) else {
            throw XCTSkip("chromium is not installed at \(Self.chromiumPath) (apt-get install -y chromium); the web page tests need a real browser")
        }
        let directory = try makeTemporaryDirectory(self)
        let output = directory.appendingPathComponent("stdout")
        XCTAssertTrue(FileManager.default.createFile(atPath: output.path, contents: nil))
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.chromiumPath)
        // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        process.arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                             "--user-data-dir=" + directory.appendingPathComponent("profile").path] + arguments + [url]
        process.standardOutput = handle
        process.standardError = FileHandle.nullDevice
        try process.run()
        let finished = waitUntil(timeout: 120, interval: 0.1) { !process.isRunning }
        if !finished {
            process.terminate()
            process.waitUntilExit()
            XCTFail("chromium did not finish within 120 s on \(url)")
        }
        return String(decoding: try Data(contentsOf: output), as: UTF8.self)
    }

    /// The `data-id`s inside the element with `id="container"`, up to the end of its section.
    func dataIDs(in dom: String, container: String) -> [Int] {
        guard let start = dom.range(of: "id=\"\(container)\"") else { return [] }
        let rest = dom[start.upperBound...]
        let section = rest[..<(rest.range(of: "</section>")?.lowerBound ?? rest.endIndex)]
        let pattern = try! NSRegularExpression(pattern: "data-id=\"([0-9]+)\"")
        let text = String(section)
        return pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
            Range(match.range(at: 1), in: text).flatMap { Int(text[$0]) }
        }
    }

    /// Asserts the page at `path` shows `expected` ids in `container`; on failure, saves a screenshot
    /// into the test's temporary directory and names it.
    func assertPage(_ path: String, container: String, shows expected: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        let url = "http://127.0.0.1:\(running.server.port)\(path)"
        let dom = try chromium(url, ["--dump-dom"])
        let shown = dataIDs(in: dom, container: container)
        guard shown != expected else { return }
        // A directory of its own that outlives the test, so the screenshot can be looked at afterwards.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-web-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let screenshot = directory.appendingPathComponent("page.png").path
        _ = try chromium(url, ["--screenshot=" + screenshot, "--window-size=1200,900"])
        XCTFail("\(path) shows \(shown), expected \(expected); screenshot: \(screenshot); DOM starts \(dom.prefix(400))", file: file, line: line)
    }

    func testSimilarViewShowsTheNearestImagesOnLoad() throws {
        let answer = try running.client.request("GET", "/v1/images/\(ids[0])/similar?k=3")
        let expected = (answer.json["results"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
        XCTAssertEqual(expected.count, 3)
        try assertPage("/?similar=\(ids[0])&k=3", container: "results", shows: expected)
        let filtered = try running.client.request("GET", "/v1/images/\(ids[0])/similar?k=3&meta.seed=4")
        let filteredIDs = (filtered.json["results"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
        XCTAssertEqual(filteredIDs, [ids[3]])
        try assertPage("/?similar=\(ids[0])&k=3&meta.seed=4", container: "results", shows: filteredIDs)
    }

    func testListViewShowsOnePageOnLoad() throws {
        try assertPage("/?view=list&limit=4", container: "images", shows: Array(ids[0..<4]))
        try assertPage("/?view=list&limit=4&after=\(ids[3])", container: "images", shows: Array(ids[4...]))
    }

    func testPageAndScriptForbidInlineScripts() throws {
        let page = try running.client.request("GET", "/")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.headers["content-type"]?.hasPrefix("text/html") == true)
        XCTAssertTrue(page.headers["content-security-policy"]?.contains("script-src 'self'") == true)
        XCTAssertTrue(page.text.contains("<script src=\"/app.js\"></script>"))
        let script = try running.client.request("GET", "/app.js")
        XCTAssertEqual(script.status, 200)
        XCTAssertTrue(script.headers["content-type"]?.hasPrefix("text/javascript") == true)
        XCTAssertFalse(script.text.contains("localStorage") || script.text.contains("sessionStorage") || script.text.contains("document.cookie"),
                       "the admin token is kept only in the page's memory")
    }
}

/// `GET /openapi.json` against the routes the server registered.
final class APIDocumentTests: XCTestCase {
    var running: RunningServer!

    override func setUpWithError() throws { running = try RunningServer() }
    override func tearDown() { running?.stop() }

    /// `{name}` segments of a path template.
    func pathParameters(_ path: String) -> Set<String> {
        Set(path.split(separator: "/").filter { $0.hasPrefix("{") && $0.hasSuffix("}") }.map { String($0.dropFirst().dropLast()) })
    }

    func testDocumentDescribesExactlyTheRegisteredRoutes() throws {
        let response = try running.client.request("GET", "/openapi.json")
        XCTAssertEqual(response.status, 200)
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any], "valid JSON")
        XCTAssertEqual(document["openapi"] as? String, "3.1.0")
        let paths = try XCTUnwrap(document["paths"] as? [String: [String: Any]])

        let registered = running.server.routes.registeredRoutes
        XCTAssertFalse(registered.isEmpty)
        for route in registered {
            let operation = paths[route.pattern]?[route.method.lowercased()] as? [String: Any]
            XCTAssertNotNil(operation, "\(route.method) \(route.pattern) is registered but not documented")
            let documented = Set(((operation?["parameters"] as? [[String: Any]]) ?? []).filter { $0["in"] as? String == "path" }
                .compactMap { $0["name"] as? String })
            XCTAssertEqual(documented, pathParameters(route.pattern), "path parameters of \(route.method) \(route.pattern)")
            let responses = operation?["responses"] as? [String: Any] ?? [:]
            XCTAssertFalse(responses.isEmpty, "\(route.method) \(route.pattern) lists its statuses")
        }
        let registeredKeys = Set(registered.map { "\($0.method) \($0.pattern)" })
        for (path, operations) in paths {
            for method in operations.keys {
                XCTAssertTrue(registeredKeys.contains("\(method.uppercased()) \(path)"), "\(method.uppercased()) \(path) is documented but not registered")
            }
        }

        // Every reference points at a schema that exists.
        let schemas = try XCTUnwrap((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        var references: [String] = []
        func collect(_ value: Any) {
            if let object = value as? [String: Any] {
                if let reference = object["$ref"] as? String { references.append(reference) }
                object.values.forEach(collect)
            } else if let array = value as? [Any] {
                array.forEach(collect)
            }
        }
        collect(document)
        XCTAssertFalse(references.isEmpty)
        for reference in references {
            let name = reference.replacingOccurrences(of: "#/components/schemas/", with: "")
            XCTAssertNotNil(schemas[name], "\(reference) resolves")
        }
        XCTAssertNotNil(schemas["Error"], "the error body is described")
    }
}
