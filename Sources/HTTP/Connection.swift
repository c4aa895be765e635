import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One client connection: reads, parses, hands one request at a time to the worker pool, writes answers in order.
final class Connection: @unchecked Sendable {
    private let descriptor: Int32
    private unowned let server: HTTPServer
    private let pool: WorkerPool
    private var parser: RequestParser
    /// Monotonic nanoseconds at the first byte of the request being received, nil while idle.
    private var requestStarted: UInt64?
    /// Monotonic nanoseconds of the last completed response (or of the accept), for the idle timeout.
    private var idleSince: UInt64

    init(descriptor: Int32, server: HTTPServer, pool: WorkerPool) {
        self.descriptor = descriptor
        self.server = server
        self.pool = pool
        let configuration = server.configuration
        parser = RequestParser(limits: ParserLimits(maxHeaderBytes: configuration.maxHeaderBytes,
                                                    maxBodyBytes: configuration.maxBodyBytes,
                                                    maxHeaderCount: configuration.maxHeaderCount))
        idleSince = Connection.now()
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Serves requests until the connection closes; the caller closes the descriptor.
    func run() {
        var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
        let configuration = server.configuration
        while true {
            // Serve everything already buffered (pipelined requests) before reading more.
            do {
                while let event = try parser.next() {
                    switch event {
                    case .head(let head):
                        if head.expectsContinue { Socket.sendAll(descriptor, ResponseEncoding.continueResponse) }
                    case .request(let head, let body):
                        guard serve(head, body: body) else { return }
                    }
                }
            } catch let error as ParseError {
                failRequest(error, message: error.message)
                return
            } catch {
                return
            }

            let partial = parser.hasPartialRequest
            if !partial && server.isStopping { return }
            let now = Connection.now()
            let deadline: UInt64
            if let started = requestStarted {
                deadline = started + UInt64(configuration.readTimeout * 1e9)
            } else {
                deadline = idleSince + UInt64(configuration.idleTimeout * 1e9)
            }
            if now >= deadline {
                if partial {
                    let timeout = ParseError(status: 408, code: "request_timeout",
                                             message: "the request was not received within \(configuration.readTimeout) seconds")
                    failRequest(timeout, message: timeout.message)
                }
                return
            }
            let wait = min(Int64(HTTPServer.pollSliceMilliseconds), Int64((deadline - now) / 1_000_000) + 1)
            guard Socket.waitReadable(descriptor, milliseconds: Int32(wait)) else { continue }
            let count = Socket.receive(descriptor, into: &readBuffer)
            if count <= 0 {
                if partial {
                    // The client stopped sending mid-request (a body shorter than declared, a cut chunked body).
                    let truncated = ParseError.badRequest("the connection ended before the request was complete")
                    failRequest(truncated, message: truncated.message)
                }
                return
            }
            if requestStarted == nil { requestStarted = Connection.now() }
            parser.feed(readBuffer[0..<count])
        }
    }

    /// Runs one complete request through the router; false when the connection must close afterwards.
    private func serve(_ head: RequestHead, body: [UInt8]) -> Bool {
        let started = requestStarted ?? Connection.now()
        let requestID = RequestID.make(clientValue: head.headers["X-Request-Id"])
        let request = HTTPRequest(method: head.method, path: head.path, query: head.query, headers: head.headers,
                                  body: body, requestID: requestID)
        let router = server.router
        let outcome = OutcomeBox()
        let done = DispatchSemaphore(value: 0)
        pool.submit {
            outcome.value = router.respondReportingFailure(to: request)
            done.signal()
        }
        done.wait()
        guard let (response, unexpected) = outcome.value else { return false }
        if let unexpected {
            server.logError(requestID: requestID, kind: "handler_failed", message: String(describing: unexpected))
        }
        let keepAlive = head.keepAlive && !server.isStopping
        let sent = Socket.sendAll(descriptor, ResponseEncoding.encode(response, requestID: requestID, keepAlive: keepAlive))
        let seconds = Double(Connection.now() - started) / 1e9
        server.logRequest(requestID: requestID, method: head.method, path: head.path, status: response.status,
                          seconds: seconds, bytes: response.body.count)
        server.observer?(request, router.routeLabel(for: request), response.status, seconds)
        idleSince = Connection.now()
        requestStarted = parser.hasPartialRequest ? idleSince : nil
        return sent && keepAlive
    }

    /// Answers a request that cannot be served with its error status and closes the connection.
    private func failRequest(_ error: ParseError, message: String) {
        let started = requestStarted ?? Connection.now()
        let requestID = RequestID.make(clientValue: nil)
        let response = Router.response(for: error)
        server.logError(requestID: requestID, kind: "bad_request", message: "\(error.status): \(message)")
        let sent = Socket.sendAll(descriptor, ResponseEncoding.encode(response, requestID: requestID, keepAlive: false))
        let seconds = Double(Connection.now() - started) / 1e9
        server.logRequest(requestID: requestID, method: "-", path: "-", status: error.status, seconds: seconds, bytes: response.body.count)
        server.observer?(HTTPRequest(method: "-", path: "-", requestID: requestID), "unmatched", error.status, seconds)
        // Let the client read the error before the close, even if it is still sending a body we refused.
        if sent { Socket.drainBeforeClose(descriptor) }
    }
}

/// Carries a handler's outcome from the worker thread back to the connection thread.
private final class OutcomeBox: @unchecked Sendable {
    var value: (HTTPResponse, Error?)?
}
