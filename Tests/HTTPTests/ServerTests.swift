import XCTest
@testable import HTTP

/// Collects log lines and observations from the server's threads.
private final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var storedLines: [String] = []
    private var storedObservations: [(route: String, status: Int)] = []
    private var active = 0
    private var storedPeak = 0

    var lines: [String] { lock.withLock { storedLines } }
    var observations: [(route: String, status: Int)] { lock.withLock { storedObservations } }
    var peakConcurrency: Int { lock.withLock { storedPeak } }

    func log(_ line: String) { lock.withLock { storedLines.append(line) } }
    func observe(_ route: String, _ status: Int) { lock.withLock { storedObservations.append((route, status)) } }
    func enter() { lock.withLock { active += 1; storedPeak = max(storedPeak, active) } }
    func leave() { lock.withLock { active -= 1 } }
}

/// An error whose description holds something a client must never see.
private struct SecretFailure: Error, CustomStringConvertible {
    var description: String { "connection string postgres://admin:hunter2@db" }
}

final class ServerTests: XCTestCase {
    private var server: HTTPServer?
    private let recorder = Recorder()

    override func tearDown() {
        server?.shutdown(timeout: 2)
        server = nil
        super.tearDown()
    }

    private func startServer(_ adjust: (inout ServerConfiguration) -> Void = { _ in }) throws -> Int {
        var configuration = ServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.maxBodyBytes = 1024
        configuration.maxHeaderBytes = 1024
        configuration.readTimeout = 5
        configuration.idleTimeout = 5
        adjust(&configuration)
        let recorder = self.recorder
        let router = Router()
        router.add("GET", "/hello") { request in
            HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "text/plain")]), body: Array("hello \(request.query["name"] ?? "world")".utf8))
        }
        router.add("POST", "/echo") { request in HTTPResponse(status: 200, body: request.body) }
        router.add("PUT", "/echo") { request in HTTPResponse(status: 200, body: request.body) }
        router.add("GET", "/items/{id}") { request in HTTPResponse(status: 200, body: Array((request.pathParameters["id"] ?? "").utf8)) }
        router.add("GET", "/slow") { _ in
            recorder.enter()
            Thread.sleep(forTimeInterval: 0.4)
            recorder.leave()
            return HTTPResponse(status: 200, body: Array("slow done".utf8))
        }
        router.add("GET", "/big") { _ in HTTPResponse(status: 200, body: [UInt8](repeating: 0x61, count: 4 << 20)) }
        router.add("GET", "/fail") { _ in throw SecretFailure() }
        router.add("POST", "/upload") { request in
            let type = request.headers["Content-Type"] ?? ""
            guard let boundary = Multipart.boundary(contentType: type) else {
                return HTTPResponse(status: 200, body: Array("raw \(request.body.count)".utf8))
            }
            let parts = try Multipart.parse(request.body, boundary: boundary)
            let summary = parts.map { "\($0.name):\($0.filename ?? "-"):\($0.body.count)" }.joined(separator: ",")
            return HTTPResponse(status: 200, body: Array(summary.utf8))
        }
        let server = HTTPServer(configuration: configuration, router: router, log: { recorder.log($0) },
                                observer: { _, route, status, _ in recorder.observe(route, status) })
        try server.start()
        self.server = server
        XCTAssertNotEqual(server.port, 0)
        return server.port
    }

    /// Log lines and observations are written just after the response, so a test that has read the
    /// response waits a moment for them.
    private func eventually(_ condition: () -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(2)
        while !condition() && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertTrue(condition(), "condition not met within 2 s", file: file, line: line)
    }

    func testKeepAliveServesTwoRequestsOnOneConnectionWithServerHeaders() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("GET /hello?name=a%20b HTTP/1.1\r\nHost: t\r\nX-Request-Id: trace-123\r\n\r\n")
        let first = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(first.status, 200)
        XCTAssertEqual(first.text, "hello a b")
        XCTAssertEqual(first.headers["content-length"], "9")
        XCTAssertEqual(first.headers["connection"], "keep-alive")
        XCTAssertEqual(first.headers["x-request-id"], "trace-123")
        XCTAssertEqual(first.headers["content-type"], "text/plain")
        XCTAssertTrue(first.headers["date"]?.hasSuffix(" GMT") ?? false)

        client.send("GET /items/42 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        let second = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(second.text, "42")
        XCTAssertEqual(second.headers["connection"], "close")
        let generated = try XCTUnwrap(second.headers["x-request-id"])
        XCTAssertEqual(generated.count, 32)
        XCTAssertTrue(client.isClosedByServer())

        let line = try XCTUnwrap(recorder.lines.first { $0.contains("request_id=trace-123") })
        XCTAssertTrue(line.hasPrefix("request_id=trace-123 method=GET path=/hello status=200 duration_ms="), line)
        XCTAssertTrue(line.hasSuffix(" bytes=9"), line)
        eventually { recorder.observations.count == 2 }
        XCTAssertEqual(recorder.observations.map(\.route), ["/hello", "/items/{id}"])
    }

    func testPipelinedRequestsAreAnsweredInOrder() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /items/2 HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz")
        XCTAssertEqual(client.readResponse()?.text, "slow done")
        XCTAssertEqual(client.readResponse()?.text, "2")
        XCTAssertEqual(client.readResponse()?.text, "xyz")
    }

    func testHTTP10ClosesAfterResponse() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("GET /hello HTTP/1.0\r\n\r\n")
        XCTAssertEqual(client.readResponse()?.headers["connection"], "close")
        XCTAssertTrue(client.isClosedByServer())
    }

    func testChunkedUpload() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n")
        Thread.sleep(forTimeInterval: 0.05)
        client.send("6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "hello world")
    }

    func testExpectContinueFlow() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        XCTAssertEqual(String(decoding: client.readBytes(25), as: UTF8.self), "HTTP/1.1 100 Continue\r\n\r\n")
        client.send("data")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "data")
    }

    func testExpectContinueOverLimitGets413AtOnceWithoutContinue() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(response.headers["connection"], "close")
        XCTAssertTrue(response.text.contains("payload_too_large"))
        XCTAssertTrue(client.isClosedByServer())
    }

    func testBodyOverLimitIs413EvenWhileTheClientKeepsSending() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4000\r\n\r\n" + String(repeating: "z", count: 4000))
        XCTAssertEqual(client.readResponse()?.status, 413)

        let chunked = try TestClient(port: port)
        chunked.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in 0..<3 { chunked.send("200\r\n" + String(repeating: "q", count: 512) + "\r\n") }
        XCTAssertEqual(chunked.readResponse()?.status, 413)
    }

    func testHeaderOverLimitIs431() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "h", count: 2000))\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 431)
        XCTAssertEqual(response.headers["connection"], "close")
    }

    func testBadRequestLineIs400AndCloses() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("GET /hello HTTP/1.1 extra\r\nHost: t\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(response.headers["connection"], "close")
        XCTAssertNotNil(response.headers["x-request-id"])
        XCTAssertTrue(client.isClosedByServer())
        eventually { recorder.lines.contains { $0.contains("error=bad_request") } }
    }

    func testMissingLengthOnPostIs411() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(client.readResponse()?.status, 411)
    }

    func testBodyShorterThanContentLengthThenCloseDoesNotReachTheHandler() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        client.finishSending()
        let response = client.readResponse()
        XCTAssertNotEqual(response?.status, 200, "a truncated body must never be handled")
        if let response { XCTAssertEqual(response.status, 400) }
        XCTAssertTrue(client.isClosedByServer())
        XCTAssertEqual(try TestClient(port: port).sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
    }

    func testTruncatedChunkedBodyIsNotHandled() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly-part")
        client.finishSending()
        let response = client.readResponse()
        XCTAssertNotEqual(response?.status, 200)
        XCTAssertTrue(client.isClosedByServer())
        eventually { recorder.observations.contains { $0.status == 400 } }
        XCTAssertFalse(recorder.observations.contains { $0.route == "/echo" })
    }

    func testSlowClientGets408WithinTheReadTimeout() throws {
        let port = try startServer { $0.readTimeout = 1 }
        let client = try TestClient(port: port, timeout: 4)
        let started = Date()
        let request = Array("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n".utf8)
        let sender = Thread {
            // One byte every 0.3 s would take 10 s for the whole request.
            for byte in request {
                client.send([byte])
                Thread.sleep(forTimeInterval: 0.3)
            }
        }
        sender.start()
        let response = client.readResponse()
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(response?.status, 408)
        XCTAssertLessThan(elapsed, 2.5, "the read timeout runs from the first byte, however slowly bytes arrive")
        XCTAssertGreaterThan(elapsed, 0.9)
    }

    func testIdleKeepAliveConnectionIsClosed() throws {
        let port = try startServer { $0.idleTimeout = 0.3 }
        let client = try TestClient(port: port, timeout: 3)
        XCTAssertEqual(client.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
        let started = Date()
        XCTAssertTrue(client.isClosedByServer())
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    func testConnectionsOverTheLimitGet503() throws {
        let port = try startServer { $0.maxConnections = 1 }
        let first = try TestClient(port: port)
        XCTAssertEqual(first.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
        let second = try TestClient(port: port)
        let rejected = try XCTUnwrap(second.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"))
        XCTAssertEqual(rejected.status, 503)
        XCTAssertEqual(rejected.headers["connection"], "close")
        XCTAssertTrue(second.isClosedByServer())
        // The admitted connection still works.
        XCTAssertEqual(first.sendAndRead("GET /items/9 HTTP/1.1\r\nHost: t\r\n\r\n")?.text, "9")
    }

    func testThrowingHandlerGives500WithoutInternals() throws {
        let port = try startServer()
        let response = try XCTUnwrap(try TestClient(port: port).sendAndRead("GET /fail HTTP/1.1\r\nHost: t\r\n\r\n"))
        XCTAssertEqual(response.status, 500)
        XCTAssertFalse(response.text.contains("hunter2"), response.text)
        XCTAssertTrue(response.text.contains("internal_error"))
        let requestID = try XCTUnwrap(response.headers["x-request-id"])
        eventually { recorder.lines.contains { $0.contains("error=handler_failed") } }
        let errorLine = try XCTUnwrap(recorder.lines.first { $0.contains("error=handler_failed") })
        XCTAssertTrue(errorLine.contains("request_id=\(requestID)"))
        XCTAssertTrue(errorLine.contains("hunter2"), "the log keeps the detail the client does not get")
    }

    func testMultipartAndNotFoundOverTheWire() throws {
        let port = try startServer()
        let client = try TestClient(port: port)
        let body = "--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n1234\r\n--b--\r\n"
        client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        XCTAssertEqual(client.readResponse()?.text, "image:x.png:4")
        client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 5\r\n\r\nbroke")
        XCTAssertEqual(client.readResponse()?.status, 400)
        client.send("GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(client.readResponse()?.status, 404)
        client.send("DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        let notAllowed = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(notAllowed.status, 405)
        XCTAssertEqual(notAllowed.headers["allow"], "GET")
        eventually { recorder.observations.count == 4 }
        XCTAssertEqual(recorder.observations.map(\.route), ["/upload", "/upload", "unmatched", "unmatched"])
    }

    func testHandlersRunOnABoundedPool() throws {
        let port = try startServer { $0.workerCount = 2 }
        let group = DispatchGroup()
        for _ in 0..<5 {
            group.enter()
            Thread {
                let response = try? TestClient(port: port).sendAndRead("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
                XCTAssertEqual(response?.status, 200)
                group.leave()
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(recorder.peakConcurrency, 2)
    }

    func testClientVanishingMidResponseDoesNotKillTheServer() throws {
        let port = try startServer()
        for _ in 0..<3 {
            let client = try TestClient(port: port)
            client.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            _ = client.readBytes(10)
            // Closing with most of 4 MB unread resets the connection; the server's next write would raise SIGPIPE.
        }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(try TestClient(port: port).sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
    }

    func testGracefulShutdownLetsInFlightRequestFinish() throws {
        let port = try startServer()
        let idle = try TestClient(port: port, timeout: 3)
        XCTAssertEqual(idle.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
        let busy = try TestClient(port: port)
        busy.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.1)
        let server = try XCTUnwrap(self.server)
        let stopped = DispatchSemaphore(value: 0)
        Thread {
            server.shutdown(timeout: 5)
            stopped.signal()
        }.start()
        let response = try XCTUnwrap(busy.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "slow done")
        XCTAssertEqual(response.headers["connection"], "close")
        XCTAssertEqual(stopped.wait(timeout: .now() + 5), .success)
        XCTAssertTrue(idle.isClosedByServer())
        XCTAssertThrowsError(try TestClient(port: port), "the listening socket must be closed")
    }

    func testBindingABusyPortThrowsAnExplainedError() throws {
        let port = try startServer()
        var configuration = ServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = port
        let second = HTTPServer(configuration: configuration, router: Router())
        XCTAssertThrowsError(try second.start()) { error in
            let description = String(describing: error)
            XCTAssertTrue(description.contains("binding 127.0.0.1:\(port)"), description)
            XCTAssertEqual((error as? SocketError)?.errnoCode, EADDRINUSE)
        }
    }

    func testCurlUploadsWhenCurlIsInstalled() throws {
        let curlPath = ["/usr/bin/curl", "/usr/local/bin/curl", "/opt/homebrew/bin/curl"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let curlPath else { throw XCTSkip("curl is not installed") }
        let port = try startServer { $0.maxBodyBytes = 4 << 20 }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("http-test-\(UUID().uuidString).bin")
        // Big enough for curl to send `Expect: 100-continue` with -T.
        let payload = (0..<(1_500_000)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(payload).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        func curl(_ arguments: [String]) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: curlPath)
            process.arguments = ["-s", "-S", "--max-time", "10"] + arguments
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "curl \(arguments)")
            return String(decoding: data, as: UTF8.self)
        }
        let base = "http://127.0.0.1:\(port)"
        XCTAssertEqual(try curl(["-T", file.path, "-X", "POST", "\(base)/upload"]), "raw \(payload.count)")
        XCTAssertEqual(try curl(["--data-binary", "@\(file.path)", "-H", "Content-Type: image/jpeg", "\(base)/upload"]), "raw \(payload.count)")
        XCTAssertEqual(try curl(["-F", "image=@\(file.path)", "-F", "meta={\"a\":1}", "\(base)/upload"]),
                       "image:\(file.lastPathComponent):\(payload.count),meta:-:7")
        XCTAssertEqual(try curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "@\(file.path)", "\(base)/upload"]), "raw \(payload.count)")
    }
}

extension TestClient {
    /// Sends one request and reads its response.
    func sendAndRead(_ text: String) -> WireResponse? {
        send(text)
        return readResponse()
    }
}
