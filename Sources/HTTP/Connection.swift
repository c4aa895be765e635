import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One client connection: carries out the state machine's actions on the socket, one request at a time.
final class Connection: @unchecked Sendable {
    private let descriptor: Int32
    private unowned let server: HTTPServer
    private let pool: WorkerPool
    private var machine: ConnectionStateMachine

    init(descriptor: Int32, server: HTTPServer, pool: WorkerPool) {
        self.descriptor = descriptor
        self.server = server
        self.pool = pool
        let configuration = server.configuration
        machine = ConnectionStateMachine(
            limits: ParserLimits(maxHeaderBytes: configuration.maxHeaderBytes, maxBodyBytes: configuration.maxBodyBytes,
                                 maxHeaderCount: configuration.maxHeaderCount),
            readTimeout: configuration.readTimeout, idleTimeout: configuration.idleTimeout, now: Connection.now())
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Serves requests until the connection closes; the caller closes the descriptor.
    func run() {
        var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            switch machine.nextAction(now: Connection.now(), stopping: server.isStopping) {
            case .sendContinue:
                guard Socket.sendAll(descriptor, ResponseEncoding.continueResponse) else { return }
            case .serve(let head, let body):
                let keepAlive = serve(head, body: body)
                machine.responseSent(keepAlive: keepAlive, at: Connection.now())
            case .fail(let error):
                fail(error)
                return
            case .close:
                return
            case .read(let deadline):
                // Short slices so a shutdown is noticed promptly even on a connection waiting for bytes.
                let now = Connection.now()
                let remaining = deadline > now ? (deadline - now) / 1_000_000 + 1 : 0
                let wait = Int32(min(UInt64(HTTPServer.pollSliceMilliseconds), remaining))
                guard Socket.waitReadable(descriptor, milliseconds: wait) else { continue }
                let count = Socket.receive(descriptor, into: &readBuffer)
                if count <= 0 {
                    if case .fail(let error) = machine.endOfStream() { fail(error) }
                    return
                }
                machine.received(readBuffer[0..<count], at: Connection.now())
            }
        }
    }

    /// Runs one complete request through the router on the worker pool; true when the connection stays open.
    private func serve(_ head: RequestHead, body: [UInt8]) -> Bool {
        let started = machine.requestStartTime ?? Connection.now()
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
        let sent = Socket.sendAll(descriptor, ResponseEncoding.encode(response, requestID: requestID, keepAlive: keepAlive, requestMethod: head.method))
        let seconds = Double(Connection.now() - started) / 1e9
        server.logRequest(requestID: requestID, method: head.method, path: head.path, status: response.status,
                          seconds: seconds, bytes: response.body.count)
        server.observer?(request, router.routeLabel(for: request), response.status, seconds)
        return sent && keepAlive
    }

    /// Answers a request that cannot be served with its error status; the connection closes afterwards.
    private func fail(_ error: ParseError) {
        let started = machine.requestStartTime ?? Connection.now()
        let requestID = RequestID.make(clientValue: nil)
        let response = Router.response(for: error)
        server.logError(requestID: requestID, kind: error.status == 408 ? "request_timeout" : "bad_request",
                        message: "\(error.status): \(error.message)")
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
