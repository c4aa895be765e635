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
    /// Bytes this connection holds from the server's body budget for the request in progress.
    private var reservedBodyBytes = 0

    init(descriptor: Int32, server: HTTPServer, pool: WorkerPool) {
        self.descriptor = descriptor
        self.server = server
        self.pool = pool
        let configuration = server.configuration
        machine = ConnectionStateMachine(limits: ParserLimits(configuration), readTimeout: configuration.readTimeout,
                                         idleTimeout: configuration.idleTimeout, now: Connection.now())
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// The deadline for writing one response that starts now.
    private var writeDeadline: UInt64 { Socket.deadline(after: server.configuration.writeTimeout) }

    /// Serves requests until the connection closes; the caller closes the descriptor.
    func run() {
        // Whatever ends the connection, its share of the body budget goes back.
        defer { releaseBody() }
        var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            switch machine.nextAction(now: Connection.now(), stopping: server.isStopping) {
            case .sendContinue:
                guard Socket.sendAll(descriptor, ResponseEncoding.continueResponse, deadline: writeDeadline) else { return }
            case .reserveBody(let bytes):
                guard server.bodyBudget.reserve(bytes, timeout: server.configuration.bodyBudgetWaitSeconds) else {
                    fail(.serverBusy)
                    return
                }
                reservedBodyBytes += bytes
                machine.bodyReserved(bytes)
            case .serve(let head, let body):
                let keepAlive = serve(head, body: body)
                releaseBody()
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

    /// Gives the body budget back once the request it was reserved for is done.
    private func releaseBody() {
        server.bodyBudget.release(reservedBodyBytes)
        reservedBodyBytes = 0
    }

    /// Runs one complete request through the router, on the worker pool or on this thread as the route
    /// asks; true when the connection stays open. A worker is free again before the response is written,
    /// so a client that does not read cannot hold it.
    private func serve(_ head: RequestHead, body: [UInt8]) -> Bool {
        let started = machine.requestStartTime ?? Connection.now()
        let requestID = RequestID.make(clientValue: head.headers["X-Request-Id"])
        let request = HTTPRequest(method: head.method, path: head.path, pathSegments: head.pathSegments, query: head.query,
                                  headers: head.headers, body: body, requestID: requestID)
        let resolved = server.routes.resolve(request)
        let routed: RoutedResponse
        switch resolved.execution {
        case .connectionThread:
            routed = resolved.run()
        case .workerPool:
            let outcome = OutcomeBox()
            let done = DispatchSemaphore(value: 0)
            pool.submit {
                outcome.value = resolved.run()
                done.signal()
            }
            done.wait()
            guard let value = outcome.value else { return false }
            routed = value
        }
        let response = routed.response
        if let unexpected = routed.unexpected {
            server.logError(requestID: requestID, kind: "handler_failed", message: String(describing: unexpected))
        }
        let keepAlive = head.keepAlive && !server.isStopping
        let bytes = ResponseEncoding.encode(response, requestID: requestID, keepAlive: keepAlive, requestMethod: head.method)
        let sent = Socket.sendAll(descriptor, bytes, deadline: writeDeadline)
        let seconds = Double(Connection.now() - started) / 1e9
        if !sent {
            Socket.discardUnsentOnClose(descriptor)
            server.logError(requestID: requestID, kind: "response_not_sent",
                            message: "the client did not take the response within \(server.configuration.writeTimeout) seconds or went away")
        }
        server.logRequest(requestID: requestID, method: head.method, path: head.path, status: response.status,
                          seconds: seconds, bytes: response.body.count)
        server.observer?(request, routed.routeLabel, response.status, seconds)
        return sent && keepAlive
    }

    /// Answers a request that cannot be served with its error status; the connection closes afterwards.
    private func fail(_ error: ParseError) {
        let started = machine.requestStartTime ?? Connection.now()
        let requestID = RequestID.make(clientValue: nil)
        let response = Router.response(for: error)
        let kind: String
        switch error.status {
        case 408: kind = "request_timeout"
        case 503: kind = "server_busy"
        default: kind = "bad_request"
        }
        server.logError(requestID: requestID, kind: kind, message: "\(error.status): \(error.message)")
        let sent = Socket.sendAll(descriptor, ResponseEncoding.encode(response, requestID: requestID, keepAlive: false), deadline: writeDeadline)
        let seconds = Double(Connection.now() - started) / 1e9
        server.logRequest(requestID: requestID, method: "-", path: "-", status: error.status, seconds: seconds, bytes: response.body.count)
        server.observer?(HTTPRequest(method: "-", path: "-", requestID: requestID), MetricsLabel.unmatchedRoute, error.status, seconds)
        // Let the client read the error before the close, even if it is still sending a body we refused.
        if sent { Socket.drainBeforeClose(descriptor) }
    }
}

/// Carries a handler's outcome from the worker thread back to the connection thread.
private final class OutcomeBox: @unchecked Sendable {
    var value: RoutedResponse?
}
