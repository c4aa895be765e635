import XCTest
import TestSupport
@testable import HTTP

/// Collects log lines and observations from the server's threads.
private final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var storedLines: [String] = []
    private var storedObservations: [(route: String, status: Int, method: String)] = []
    private var active = 0
    private var storedPeak = 0

    var lines: [String] { lock.withLock { storedLines } }
    var observations: [(route: String, status: Int, method: String)] { lock.withLock { storedObservations } }
    var peakConcurrency: Int { lock.withLock { storedPeak } }

    func log(_ line: String) { lock.withLock { storedLines.append(line) } }
    func observe(_ route: String, _ status: Int, _ method: String) { lock.withLock { storedObservations.append((route, status, method)) } }
    func enter() { lock.withLock { active += 1; storedPeak = max(storedPeak, active) } }
    func leave() { lock.withLock { active -= 1 } }
}

/// A large response body, built once for the tests that need a client not to keep up.
private let hugeBody = [UInt8](repeating: 0x62, count: 16 << 20)

/// Resident memory of this process in bytes, from /proc/self/status (nil where there is no /proc).
private func residentBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
    return kilobytes * 1024
}

/// Samples resident memory every 10 ms on its own thread and keeps the peak.
private final class ResidentMemorySampler: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    init() {
        Thread { [self] in
            while !lock.withLock({ stopped }) {
                let current = residentBytes() ?? 0
                lock.withLock { peak = max(peak, current) }
                Thread.sleep(forTimeInterval: 0.01)
            }
            finished.signal()
        }.start()
    }

    /// Ends sampling and returns the peak seen, in bytes.
    func stop() -> Int {
        lock.withLock { stopped = true }
        finished.wait()
        return lock.withLock { peak }
    }
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
        router.add("GET", "/light", execution: .eventLoop) { _ in HTTPResponse(status: 200, body: Array("light".utf8)) }
        router.add("GET", "/items/{id}") { request in HTTPResponse(status: 200, body: Array((request.pathParameters["id"] ?? "").utf8)) }
        router.add("GET", "/slow") { _ in
            recorder.enter()
            Thread.sleep(forTimeInterval: 0.4)
            recorder.leave()
            return HTTPResponse(status: 200, body: Array("slow done".utf8))
        }
        router.add("GET", "/big") { _ in HTTPResponse(status: 200, body: [UInt8](repeating: 0x61, count: 4 << 20)) }
        router.add("GET", "/huge") { _ in HTTPResponse(status: 200, body: hugeBody) }
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
                                observer: { request, route, status, _ in recorder.observe(route, status, request.methodLabel) })
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
        let client = try TestConnection(port: port)
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
        let client = try TestConnection(port: port)
        client.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /items/2 HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz")
        XCTAssertEqual(client.readResponse()?.text, "slow done")
        XCTAssertEqual(client.readResponse()?.text, "2")
        XCTAssertEqual(client.readResponse()?.text, "xyz")
    }

    func testHTTP10ClosesAfterResponse() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        client.send("GET /hello HTTP/1.0\r\n\r\n")
        XCTAssertEqual(client.readResponse()?.headers["connection"], "close")
        XCTAssertTrue(client.isClosedByServer())
    }

    func testChunkedUpload() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n")
        Thread.sleep(forTimeInterval: 0.05)
        client.send("6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "hello world")
    }

    func testExpectContinueFlow() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        client.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        XCTAssertEqual(String(decoding: client.readBytes(25), as: UTF8.self), "HTTP/1.1 100 Continue\r\n\r\n")
        client.send("data")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "data")
    }

    func testExpectContinueOverLimitGets413AtOnceWithoutContinue() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        client.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(response.headers["connection"], "close")
        XCTAssertTrue(response.text.contains("payload_too_large"))
        XCTAssertTrue(client.isClosedByServer())
    }

    func testBodyOverLimitIs413EvenWhileTheClientKeepsSending() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4000\r\n\r\n" + String(repeating: "z", count: 4000))
        XCTAssertEqual(client.readResponse()?.status, 413)

        let chunked = try TestConnection(port: port)
        chunked.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in 0..<3 { chunked.send("200\r\n" + String(repeating: "q", count: 512) + "\r\n") }
        XCTAssertEqual(chunked.readResponse()?.status, 413)
    }

    func testHeaderOverLimitIs431() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        client.send("GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "h", count: 2000))\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 431)
        XCTAssertEqual(response.headers["connection"], "close")
    }

    func testBadRequestLineIs400AndCloses() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        client.send("GET /hello HTTP/1.1 extra\r\nHost: t\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(response.headers["connection"], "close")
        XCTAssertNotNil(response.headers["x-request-id"])
        XCTAssertTrue(client.isClosedByServer())
        eventually { recorder.lines.contains { $0.contains("error=bad_request") } }
    }

    func testPostWithoutLengthHasAnEmptyBody() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body, [])
        XCTAssertEqual(response.headers["connection"], "keep-alive")
        XCTAssertEqual(client.sendAndRead("PUT /echo HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
    }

    // MARK: - Body budget

    func testUploadsBeyondTheBodyBudgetGet503AndTheBudgetReturnsToZero() throws {
        let port = try startServer {
            $0.maxBodyBytesInFlight = 1500
            $0.bodyBudgetWaitSeconds = 0.3
        }
        let server = try XCTUnwrap(self.server)
        // The first upload holds 1000 of the 1500 bytes while it is still sending.
        let holder = try TestConnection(port: port)
        holder.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + String(repeating: "a", count: 10))
        eventually { server.bodyBytesInFlight == 1000 }

        let refused = try TestConnection(port: port)
        let started = Date()
        refused.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
        let busy = try XCTUnwrap(refused.readResponse())
        XCTAssertEqual(busy.status, 503, "refused without a 100 Continue first")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.25, "the request waited for room first")
        XCTAssertEqual(busy.headers["retry-after"], "1")
        XCTAssertEqual(busy.headers["connection"], "close")
        let error = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(busy.body)) as? [String: Any])?["error"] as? [String: String])
        XCTAssertEqual(error["code"], "server_busy")
        XCTAssertNotNil(error["message"])
        XCTAssertTrue(refused.isClosedByServer())

        // A chunked upload reserves as its chunks arrive, and is refused the same way.
        let chunked = try TestConnection(port: port)
        chunked.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        XCTAssertEqual(chunked.readResponse()?.status, 503)

        // Small bodies still fit beside the holder.
        XCTAssertEqual(try TestConnection(port: port).sendAndRead("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 400\r\n\r\n" + String(repeating: "s", count: 400))?.status, 200)

        holder.send(String(repeating: "a", count: 990))
        XCTAssertEqual(holder.readResponse()?.body.count, 1000)
        let after = try TestConnection(port: port)
        XCTAssertEqual(after.sendAndRead("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + String(repeating: "c", count: 1000))?.status, 200)
        eventually { server.bodyBytesInFlight == 0 }
        eventually { recorder.lines.contains { $0.contains("error=server_busy") } }
    }

    func testSixtyFourLargeUploadsAtOnceKeepResidentMemoryWithinTheBudget() throws {
        guard residentBytes() != nil else { throw XCTSkip("needs /proc/self/status") }
        let budget = 256 << 20
        // Everything else this process holds: the test runner, threads, the shared 1 MiB payload, read
        // buffers, allocator slack. Without the budget, 64 bodies of 32 MiB would need 2 GiB.
        let overhead = 150 << 20
        let clients = 64
        let bodyBytes = 32 << 20
        let port = try startServer {
            $0.maxBodyBytes = bodyBytes
            $0.maxBodyBytesInFlight = budget
            // Long enough that every upload is eventually served rather than refused.
            $0.bodyBudgetWaitSeconds = 120
            $0.readTimeout = 180
            $0.maxConnectionsPerClient = clients
        }
        let server = try XCTUnwrap(self.server)
        let piece = [UInt8](repeating: 0x75, count: 1 << 20)
        // Earlier tests in the same process leave their own resident memory; only the growth counts.
        let baseline = try XCTUnwrap(residentBytes())
        let done = DispatchGroup()
        let results = Recorder()
        let sampler = ResidentMemorySampler()
        for _ in 0..<clients {
            done.enter()
            Thread {
                defer { done.leave() }
                guard let client = try? TestConnection(port: port, timeout: 170) else { return results.log("connect failed") }
                client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(bodyBytes)\r\n\r\n")
                for _ in 0..<(bodyBytes / piece.count) { client.send(piece) }
                let response = client.readResponse()
                results.log("\(response?.status ?? 0) \(response?.text ?? "")")
            }.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 180), .success)
        let measured = sampler.stop() - baseline
        print("peak resident growth during \(clients) uploads of \(bodyBytes >> 20) MiB: \(measured >> 20) MiB over a baseline of \(baseline >> 20) MiB (bound \((budget + overhead) >> 20) MiB)")
        XCTAssertEqual(results.lines.count, clients)
        XCTAssertEqual(results.lines.filter { $0 == "200 raw \(bodyBytes)" }.count, clients, Array(Set(results.lines)).description)
        XCTAssertLessThan(measured, budget + overhead)
        eventually { server.bodyBytesInFlight == 0 }
    }

    func testBodyShorterThanContentLengthThenCloseDoesNotReachTheHandler() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        client.finishSending()
        let response = client.readResponse()
        XCTAssertNotEqual(response?.status, 200, "a truncated body must never be handled")
        if let response { XCTAssertEqual(response.status, 400) }
        XCTAssertTrue(client.isClosedByServer())
        XCTAssertEqual(try TestConnection(port: port).sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
    }

    func testTruncatedChunkedBodyIsNotHandled() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
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
        let client = try TestConnection(port: port, timeout: 4)
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
        let client = try TestConnection(port: port, timeout: 3)
        XCTAssertEqual(client.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
        let started = Date()
        XCTAssertTrue(client.isClosedByServer())
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    func testConnectionsOverTheLimitGet503() throws {
        let port = try startServer { $0.maxConnections = 1 }
        let first = try TestConnection(port: port)
        XCTAssertEqual(first.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
        let second = try TestConnection(port: port)
        let rejected = try XCTUnwrap(second.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"))
        XCTAssertEqual(rejected.status, 503)
        XCTAssertEqual(rejected.headers["connection"], "close")
        XCTAssertTrue(second.isClosedByServer())
        // The admitted connection still works.
        XCTAssertEqual(first.sendAndRead("GET /items/9 HTTP/1.1\r\nHost: t\r\n\r\n")?.text, "9")
    }

    func testThrowingHandlerGives500WithoutInternals() throws {
        let port = try startServer()
        let response = try XCTUnwrap(try TestConnection(port: port).sendAndRead("GET /fail HTTP/1.1\r\nHost: t\r\n\r\n"))
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
        let client = try TestConnection(port: port)
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
                let response = try? TestConnection(port: port).sendAndRead("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
                XCTAssertEqual(response?.status, 200)
                group.leave()
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(recorder.peakConcurrency, 2)
    }

    func testLightRoutesAnswerWhileEveryWorkerIsBusy() throws {
        let port = try startServer { $0.workerCount = 1 }
        let slowDone = DispatchSemaphore(value: 0)
        Thread {
            let response = try? TestConnection(port: port).sendAndRead("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            XCTAssertEqual(response?.status, 200)
            slowDone.signal()
        }.start()
        eventually { recorder.peakConcurrency == 1 }
        // The only worker sleeps in /slow; a light route runs on its connection's thread meanwhile.
        let started = Date()
        let light = try XCTUnwrap(TestConnection(port: port).sendAndRead("GET /light HTTP/1.1\r\nHost: t\r\n\r\n"))
        XCTAssertEqual(light.status, 200)
        XCTAssertEqual(String(decoding: light.body, as: UTF8.self), "light")
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.3, "the light route did not wait for the busy worker")
        XCTAssertEqual(slowDone.wait(timeout: .now() + 5), .success)
    }

    func testClientVanishingMidResponseDoesNotKillTheServer() throws {
        let port = try startServer()
        for _ in 0..<3 {
            let client = try TestConnection(port: port)
            client.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            _ = client.readBytes(10)
            // Closing with most of 4 MB unread resets the connection; the server's next write would raise SIGPIPE.
        }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(try TestConnection(port: port).sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
    }

    func testGracefulShutdownLetsInFlightRequestFinish() throws {
        let port = try startServer()
        let idle = try TestConnection(port: port, timeout: 3)
        XCTAssertEqual(idle.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
        let busy = try TestConnection(port: port)
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
        XCTAssertThrowsError(try TestConnection(port: port), "the listening socket must be closed")
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

    // MARK: - Paths, logs and labels

    func testEncodedSlashStaysInOneSegmentOverTheWire() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        XCTAssertEqual(client.sendAndRead("GET /items/a%2Fb HTTP/1.1\r\nHost: t\r\n\r\n")?.text, "a/b")
        XCTAssertEqual(client.sendAndRead("GET /items/a/b HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 404)
    }

    func testClientStringsCannotForgeLogFieldsOrLines() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        let response = try XCTUnwrap(client.sendAndRead("GET /a%20b=c%22d%0Aevil HTTP/1.1\r\nHost: t\r\nX-Request-Id: x status=200 admin=\"yes\"\r\n\r\n"))
        XCTAssertEqual(response.status, 404)
        let requestID = try XCTUnwrap(response.headers["x-request-id"])
        XCTAssertEqual(requestID.count, 32, "an unsafe client id is replaced, not echoed")
        eventually { recorder.lines.contains { $0.hasPrefix("request_id=\(requestID) ") } }
        let line = try XCTUnwrap(recorder.lines.first { $0.hasPrefix("request_id=\(requestID) ") })
        XCTAssertEqual(line.components(separatedBy: " status=").first, #"request_id=\#(requestID) method=GET path="/a%20b=c\"d%0Aevil""#)
        XCTAssertFalse(line.contains("\n"))

        let tooLong = String(repeating: "r", count: 65)
        XCTAssertNotEqual(client.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\nX-Request-Id: \(tooLong)\r\n\r\n")?.headers["x-request-id"], tooLong)
        let longest = String(repeating: "r", count: 64)
        XCTAssertEqual(client.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\nX-Request-Id: \(longest)\r\n\r\n")?.headers["x-request-id"], longest)
    }

    func testObserverGetsRouteAndMethodLabelsFromFixedSets() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        XCTAssertEqual(client.sendAndRead("BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 405)
        XCTAssertEqual(client.sendAndRead("GET /items/\(UUID().uuidString) HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
        eventually { recorder.observations.count == 2 }
        XCTAssertEqual(recorder.observations.map(\.route), ["unmatched", "/items/{id}"])
        XCTAssertEqual(recorder.observations.map(\.method), ["other", "GET"])
    }

    // MARK: - Connection slots

    func testConnectionsFromOneClientAreCapped() throws {
        let port = try startServer { $0.maxConnectionsPerClient = 2 }
        let server = try XCTUnwrap(self.server)
        var first: TestConnection? = try TestConnection(port: port)
        let second = try TestConnection(port: port)
        XCTAssertEqual(first?.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
        XCTAssertEqual(second.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
        let third = try TestConnection(port: port)
        let refused = try XCTUnwrap(third.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"))
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(refused.headers["retry-after"], "1")
        XCTAssertTrue(refused.text.contains("too_many_connections"))
        XCTAssertTrue(third.isClosedByServer())
        first = nil
        eventually { server.openConnections == 1 }
        XCTAssertEqual(try TestConnection(port: port).sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200,
                       "a slot freed by a closed connection can be used again")
    }

    func testSlowReaderIsDroppedAtTheWholeResponseDeadline() throws {
        let port = try startServer { $0.writeTimeout = 1 }
        let server = try XCTUnwrap(self.server)
        let client = try TestConnection(port: port, timeout: 1, receiveBufferSize: 4096)
        client.send("GET /huge HTTP/1.1\r\nHost: t\r\n\r\n")
        // A few kilobytes every 20 ms: every send makes progress, but 16 MiB would take minutes.
        let started = Date()
        var received = 0
        while server.openConnections > 0 && Date().timeIntervalSince(started) < 6 {
            let count = client.receiveSome(4096)
            if count <= 0 { break }
            received += count
            Thread.sleep(forTimeInterval: 0.02)
        }
        eventually { server.openConnections == 0 }
        XCTAssertLessThan(Date().timeIntervalSince(started), 4, "the deadline covers the whole response, not each send")
        XCTAssertLessThan(received, hugeBody.count)
        eventually { recorder.lines.contains { $0.contains("error=response_not_sent") } }
    }

    func testClientThatNeverReadsHoldsNeitherAWorkerNorASlot() throws {
        let port = try startServer {
            $0.writeTimeout = 1
            $0.workerCount = 1
        }
        let server = try XCTUnwrap(self.server)
        let stuck = try TestConnection(port: port, receiveBufferSize: 4096)
        stuck.send("GET /huge HTTP/1.1\r\nHost: t\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.2)
        // The only worker already handed the huge response to the connection, so it serves others at once.
        let started = Date()
        let other = try TestConnection(port: port)
        XCTAssertEqual(other.sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?.status, 200)
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.5)
        eventually { server.openConnections == 0 }
        // The server reset the connection, dropping what it had queued: the client finds only what its
        // own small buffer held, then the reset, not megabytes more of the response.
        var received = 0
        var last = 0
        repeat {
            last = stuck.receiveSome(64 * 1024)
            received += max(0, last)
        } while last > 0 && received < hugeBody.count
        XCTAssertTrue(last < 0 && errno == ECONNRESET, "ended with \(last), errno \(errno)")
        XCTAssertLessThan(received, 1 << 20)
    }

    func testOneEventLoopServesManyConnectionsAtOnce() throws {
        let port = try startServer {
            $0.eventLoopCount = 1
            $0.maxConnections = 300
            $0.maxConnectionsPerClient = 300
        }
        let server = try XCTUnwrap(self.server)
        let clients = try (0..<200).map { _ in try TestConnection(port: port) }
        eventually { server.openConnections == 200 }
        // Every request is sent before any response is read: one thread must be serving them all.
        for round in 0..<2 {
            for (index, client) in clients.enumerated() {
                client.send(index.isMultiple(of: 2) ? "GET /items/\(index)-\(round) HTTP/1.1\r\nHost: t\r\n\r\n"
                                                    : "GET /light HTTP/1.1\r\nHost: t\r\n\r\n")
            }
            for (index, client) in clients.enumerated() {
                XCTAssertEqual(client.readResponse()?.text, index.isMultiple(of: 2) ? "\(index)-\(round)" : "light")
            }
        }
        for client in clients { client.finishSending() }
        eventually { server.openConnections == 0 }
    }

    func testThousandsOfPipelinedRequestsInOneWriteAreAnsweredInOrder() throws {
        let port = try startServer()
        let client = try TestConnection(port: port)
        let count = 5_000
        // Light and pool routes alternate, so the loop both answers at once and waits for workers, with
        // thousands of requests already buffered behind the one in progress.
        var batch = ""
        for index in 0..<count {
            batch += index.isMultiple(of: 2) ? "GET /items/\(index) HTTP/1.1\r\nHost: t\r\n\r\n" : "GET /light HTTP/1.1\r\nHost: t\r\n\r\n"
        }
        let requests = batch
        let sender = Thread { client.send(requests) }
        sender.start()
        for index in 0..<count {
            let text = client.readResponse()?.text
            XCTAssertEqual(text, index.isMultiple(of: 2) ? "\(index)" : "light")
            if text == nil { break }
        }
    }

    func testClientHangingUpWhileItsHandlerRunsFreesItsSlot() throws {
        let port = try startServer { $0.workerCount = 1 }
        let server = try XCTUnwrap(self.server)
        do {
            let client = try TestConnection(port: port)
            client.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            eventually { recorder.peakConcurrency == 1 }
        }
        // The handler finishes, its response has no one to go to, and the connection is closed.
        eventually { server.openConnections == 0 && recorder.lines.contains { $0.contains("path=/slow status=200") } }
        XCTAssertEqual(try TestConnection(port: port).sendAndRead("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")?.status, 200)
    }
}


extension TestConnection {
    /// Sends one request and reads its response.
    func sendAndRead(_ text: String) -> WireResponse? {
        send(text)
        return readResponse()
    }
}
