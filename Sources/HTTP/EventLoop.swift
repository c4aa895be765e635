import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One thread serving many connections without blocking: it reads and parses what the poller reports,
/// runs the light routes itself, hands the heavy ones to the worker pool (their answers come back through
/// its inbox), and writes responses as the sockets take them. A request's work is the same as on a thread
/// of its own, but one wake-up serves every connection that is ready, which is what a small request costs.
final class EventLoop: @unchecked Sendable {
    private let server: HTTPServer
    private let pool: WorkerPool
    private let poller = makePoller()
    /// A pipe other threads write a byte to after adding to `inbox`, so a waiting loop wakes.
    private let wakeReadEnd: Int32
    private let wakeWriteEnd: Int32
    private static let wakeToken: UInt64 = 0

    /// Work other threads hand to this loop (adopted connections, finished handlers), with whether a wake-up
    /// byte is already on its way, so a burst of hand-offs costs one write.
    private let inbox = Mutex<(work: [() -> Void], wakePending: Bool)>(([], false))
    /// Set by `stop`; the loop ends once its last connection has closed.
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    // Everything below belongs to the loop's thread.
    private var connections: [UInt64: LoopConnection] = [:]
    private var nextToken: UInt64 = 1
    /// One read buffer for all connections: reads happen one at a time on this thread.
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    /// Connections waiting for body budget; while any do, the loop wakes often to retry for them.
    private var budgetWaiters = 0
    private var lastSweep: UInt64 = 0

    /// How often idle connections are checked for timeouts and shutdown, and how often a connection waiting
    /// for body budget retries (another loop's release does not wake this one).
    private static let sweepNanoseconds: UInt64 = UInt64(HTTPServer.pollSliceMilliseconds) * 1_000_000
    private static let budgetRetryMilliseconds: Int32 = 5

    init(server: HTTPServer, pool: WorkerPool, index: Int) {
        self.server = server
        self.pool = pool
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0, "pipe failed: \(String(cString: strerror(errno)))")
        wakeReadEnd = ends[0]
        wakeWriteEnd = ends[1]
        for end in ends { _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK) }
        poller.watch(wakeReadEnd, token: EventLoop.wakeToken, interest: .readable)
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "http-loop-\(index)"
        thread.start()
    }

    /// Takes over an accepted, non-blocking socket; `peer` is handed back to the server when it closes.
    func adopt(_ descriptor: Int32, peer: String) {
        post { [self] in
            let token = nextToken
            nextToken += 1
            let connection = LoopConnection(token: token, descriptor: descriptor, peer: peer, configuration: server.configuration,
                                            now: EventLoop.now())
            connections[token] = connection
            drive(connection)
        }
    }

    /// Asks the loop to end once its connections have closed; with `wait`, returns when it has.
    func stop(wait: Bool) {
        stopRequested.store(true, ordering: .releasing)
        post {}
        if wait { finished.wait() }
    }

    /// Runs `work` on the loop's thread.
    private func post(_ work: @escaping () -> Void) {
        let wake = inbox.withLock { state -> Bool in
            state.work.append(work)
            defer { state.wakePending = true }
            return !state.wakePending
        }
        if wake {
            var byte: UInt8 = 1
            _ = write(wakeWriteEnd, &byte, 1)
        }
    }

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    deinit {
        close(wakeReadEnd)
        close(wakeWriteEnd)
    }

    private func run() {
        while !(stopRequested.load(ordering: .acquiring) && connections.isEmpty) {
            let timeout = budgetWaiters > 0 ? EventLoop.budgetRetryMilliseconds : HTTPServer.pollSliceMilliseconds
            for event in poller.wait(milliseconds: timeout) {
                if event.token == EventLoop.wakeToken {
                    runInbox()
                } else if let connection = connections[event.token] {
                    handle(event, on: connection)
                }
            }
            let now = EventLoop.now()
            if budgetWaiters > 0 || now >= lastSweep + EventLoop.sweepNanoseconds {
                lastSweep = now
                sweep(now: now)
            }
        }
    }

    private func runInbox() {
        while readBuffer.withUnsafeMutableBytes({ read(wakeReadEnd, $0.baseAddress, $0.count) }) > 0 {}
        var work: [() -> Void] = []
        inbox.withLock { state in
            state.wakePending = false
            swap(&work, &state.work)
        }
        for item in work { item() }
    }

    private func handle(_ event: PollEvent, on connection: LoopConnection) {
        switch connection.state {
        case .reading where event.readable:
            receive(on: connection)
        case .writing where event.writable:
            drive(connection)
        case .draining where event.readable:
            drain(connection)
        default:
            break
        }
    }

    /// Checks what only time changes: read and idle timeouts, shutdown, write deadlines, budget retries.
    private func sweep(now: UInt64) {
        for connection in Array(connections.values) {
            switch connection.state {
            case .reading:
                drive(connection)
            case .waitingForBudget(let bytes, let deadline):
                let reserved = server.bodyBudget.tryReserve(bytes)
                guard reserved || now >= deadline else { continue }
                budgetWaiters -= 1
                connection.state = .reading
                if reserved { connection.bodyReserved(bytes) } else { fail(connection, .serverBusy) }
                drive(connection)
            case .writing(let pending):
                if now >= pending.deadline { writeFailed(connection, pending.then) }
            case .draining(let deadline, _):
                if now >= deadline { finish(connection) }
            case .handling, .closed:
                break
            }
        }
    }

    /// Reads what one readiness report offers and feeds it to the connection's state machine.
    private func receive(on connection: LoopConnection) {
        let count = Socket.receive(connection.descriptor, into: &readBuffer)
        if count > 0 {
            connection.machine.received(readBuffer[0..<count], at: EventLoop.now())
            drive(connection)
            return
        }
        if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
        if case .fail(let error) = connection.machine.endOfStream() {
            fail(connection, error)
            drive(connection)
        } else {
            finish(connection)
        }
    }

    /// Carries out the connection's next steps until it must wait for the socket, a handler, or time.
    /// A loop rather than recursion: a client pipelining thousands of requests must not deepen the stack.
    private func drive(_ connection: LoopConnection) {
        while true {
            switch connection.state {
            case .writing(let pending):
                switch flush(connection, pending) {
                case .blocked:
                    watch(connection, .writable)
                    return
                case .failed:
                    writeFailed(connection, pending.then)
                    return
                case .done:
                    connection.state = .reading
                    switch pending.then {
                    case .resume:
                        continue
                    case .finishRequest(let request):
                        guard completed(request, on: connection, sent: true) else {
                            finish(connection)
                            return
                        }
                        continue
                    case .drain:
                        startDraining(connection)
                        return
                    }
                }
            case .reading:
                break
            case .waitingForBudget, .handling, .draining, .closed:
                return
            }

            switch connection.machine.nextAction(now: EventLoop.now(), stopping: server.isStopping) {
            case .sendContinue:
                connection.state = .writing(PendingWrite(bytes: ResponseEncoding.continueResponse, deadline: writeDeadline, then: .resume))
            case .reserveBody(let bytes):
                if server.bodyBudget.tryReserve(bytes) {
                    connection.bodyReserved(bytes)
                } else if bytes > server.bodyBudget.capacity {
                    fail(connection, .serverBusy)
                } else {
                    budgetWaiters += 1
                    connection.state = .waitingForBudget(bytes: bytes,
                                                         until: Socket.deadline(after: server.configuration.bodyBudgetWaitSeconds))
                    watch(connection, .none)
                    return
                }
            case .serve(let head, let body):
                guard serve(head, body: body, on: connection) else { return }
            case .fail(let error):
                fail(connection, error)
            case .close:
                finish(connection)
                return
            case .read:
                watch(connection, .readable)
                return
            }
        }
    }

    private var writeDeadline: UInt64 { Socket.deadline(after: server.configuration.writeTimeout) }

    private func watch(_ connection: LoopConnection, _ interest: PollInterest) {
        guard connection.interest != interest else { return }
        connection.interest = interest
        poller.watch(connection.descriptor, token: connection.token, interest: interest)
    }

    /// Routes one complete request. A light route runs here and its response is queued (true: keep driving);
    /// a heavy one goes to the worker pool and the connection waits for it (false). A worker is free again
    /// before the response is written, so a client that does not read cannot hold it.
    private func serve(_ head: RequestHead, body: [UInt8], on connection: LoopConnection) -> Bool {
        let started = connection.machine.requestStartTime ?? EventLoop.now()
        let requestID = RequestID.make(clientValue: head.headers["X-Request-Id"])
        let request = HTTPRequest(method: head.method, path: head.path, pathSegments: head.pathSegments, query: head.query,
                                  headers: head.headers, body: body, requestID: requestID)
        let resolved = server.routes.resolve(request)
        switch resolved.execution {
        case .eventLoop:
            respond(resolved.run(), to: request, head: head, started: started, on: connection)
            return true
        case .workerPool:
            connection.state = .handling
            watch(connection, .none)
            pool.submit { [self] in
                let routed = resolved.run()
                post { [self] in
                    respond(routed, to: request, head: head, started: started, on: connection)
                    drive(connection)
                }
            }
            return false
        }
    }

    /// Queues a handler's response for writing; what follows the write is logged in `completed`.
    private func respond(_ routed: RoutedResponse, to request: HTTPRequest, head: RequestHead, started: UInt64, on connection: LoopConnection) {
        if let unexpected = routed.unexpected {
            server.logError(requestID: request.requestID, kind: "handler_failed", message: String(describing: unexpected))
        }
        let keepAlive = head.keepAlive && !server.isStopping
        let bytes = ResponseEncoding.encode(routed.response, requestID: request.requestID, keepAlive: keepAlive, requestMethod: head.method)
        let finished = FinishedRequest(request: request, routeLabel: routed.routeLabel, status: routed.response.status,
                                       bodyBytes: routed.response.body.count, started: started, keepAlive: keepAlive)
        connection.state = .writing(PendingWrite(bytes: bytes, deadline: writeDeadline, then: .finishRequest(finished)))
    }

    /// Logs and observes a request whose response was written (or could not be); true when the connection
    /// stays open for the next request.
    private func completed(_ finished: FinishedRequest, on connection: LoopConnection, sent: Bool) -> Bool {
        let seconds = Double(EventLoop.now() - finished.started) / 1e9
        let request = finished.request
        if !sent {
            server.logError(requestID: request.requestID, kind: "response_not_sent",
                            message: "the client did not take the response within \(server.configuration.writeTimeout) seconds or went away")
        }
        server.logRequest(requestID: request.requestID, method: request.method, path: request.path, status: finished.status,
                          seconds: seconds, bytes: finished.bodyBytes)
        server.observer?(request, finished.routeLabel, finished.status, seconds)
        connection.releaseBody(to: server.bodyBudget)
        let keepAlive = sent && finished.keepAlive
        connection.machine.responseSent(keepAlive: keepAlive, at: EventLoop.now())
        return keepAlive
    }

    /// Queues the error answer to a request that cannot be served; the connection drains and closes after it.
    private func fail(_ connection: LoopConnection, _ error: ParseError) {
        let started = connection.machine.requestStartTime ?? EventLoop.now()
        let requestID = RequestID.make(clientValue: nil)
        let response = Router.response(for: error)
        let kind: String
        switch error.status {
        case 408: kind = "request_timeout"
        case 503: kind = "server_busy"
        default: kind = "bad_request"
        }
        server.logError(requestID: requestID, kind: kind, message: "\(error.status): \(error.message)")
        let seconds = Double(EventLoop.now() - started) / 1e9
        server.logRequest(requestID: requestID, method: "-", path: "-", status: error.status, seconds: seconds, bytes: response.body.count)
        server.observer?(HTTPRequest(method: "-", path: "-", requestID: requestID), MetricsLabel.unmatchedRoute, error.status, seconds)
        let bytes = ResponseEncoding.encode(response, requestID: requestID, keepAlive: false)
        connection.state = .writing(PendingWrite(bytes: bytes, deadline: writeDeadline, then: .drain))
    }

    private enum FlushOutcome { case done, blocked, failed }

    /// Writes as much of the pending response as the socket takes now.
    private func flush(_ connection: LoopConnection, _ pending: PendingWrite) -> FlushOutcome {
        var offset = pending.offset
        defer {
            if case .writing = connection.state {
                var updated = pending
                updated.offset = offset
                connection.state = .writing(updated)
            }
        }
        while offset < pending.bytes.count {
            let written = Socket.sendSome(connection.descriptor, pending.bytes, from: offset)
            if written >= 0 {
                offset += written
                continue
            }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK {
                return EventLoop.now() < pending.deadline ? .blocked : .failed
            }
            return .failed
        }
        return .done
    }

    /// The client went away or stopped reading before taking a whole response.
    private func writeFailed(_ connection: LoopConnection, _ then: AfterWrite) {
        connection.state = .reading
        if case .finishRequest(let request) = then {
            Socket.discardUnsentOnClose(connection.descriptor)
            _ = completed(request, on: connection, sent: false)
        }
        finish(connection)
    }

    /// Stops writing after a final error response and reads what the client is still sending for a moment,
    /// so closing with unread input does not reset the connection before the client reads the response.
    private func startDraining(_ connection: LoopConnection) {
        _ = shutdown(connection.descriptor, Int32(SHUT_WR))
        connection.state = .draining(until: Socket.deadline(after: Socket.drainSeconds), discarded: 0)
        watch(connection, .readable)
        drain(connection)
    }

    private func drain(_ connection: LoopConnection) {
        guard case .draining(let deadline, var discarded) = connection.state else { return }
        let count = Socket.receive(connection.descriptor, into: &readBuffer)
        if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
        discarded += max(0, count)
        if count <= 0 || discarded >= Socket.drainLimitBytes {
            finish(connection)
        } else {
            connection.state = .draining(until: deadline, discarded: discarded)
        }
    }

    /// Closes the connection and gives back what it held.
    private func finish(_ connection: LoopConnection) {
        if case .waitingForBudget = connection.state { budgetWaiters -= 1 }
        connection.state = .closed
        watch(connection, .none)
        connection.releaseBody(to: server.bodyBudget)
        connections[connection.token] = nil
        server.connectionClosed(connection.descriptor, peer: connection.peer)
    }
}

/// What happens once a pending write has gone out.
enum AfterWrite {
    /// `100 Continue` went out: read the body.
    case resume
    /// A response went out: log it, then serve the next request or close.
    case finishRequest(FinishedRequest)
    /// A final error response went out: drain, then close.
    case drain
}

/// A response on its way to the client.
struct PendingWrite {
    var bytes: [UInt8]
    var offset = 0
    /// When the client must have taken all of it (monotonic nanoseconds).
    var deadline: UInt64
    var then: AfterWrite
}

/// What the request log line and the metrics need once a response is written.
struct FinishedRequest {
    var request: HTTPRequest
    var routeLabel: String
    var status: Int
    var bodyBytes: Int
    var started: UInt64
    var keepAlive: Bool
}

/// One client connection as its event loop sees it; touched only on that loop's thread (and, while a
/// handler runs, not at all).
final class LoopConnection: @unchecked Sendable {
    enum State {
        /// Waiting for bytes, or for the state machine's deadline (checked by the loop's sweep).
        case reading
        /// Waiting for body budget that other connections hold, until the deadline.
        case waitingForBudget(bytes: Int, until: UInt64)
        /// A worker runs the handler; the socket is not watched until the response comes back.
        case handling
        case writing(PendingWrite)
        /// Reading and discarding after a final error response, until the deadline or end of input.
        case draining(until: UInt64, discarded: Int)
        case closed
    }

    let token: UInt64
    let descriptor: Int32
    let peer: String
    var machine: ConnectionStateMachine
    var state = State.reading
    var interest = PollInterest.none
    /// Bytes this connection holds from the server's body budget for the request in progress.
    private var reservedBodyBytes = 0

    init(token: UInt64, descriptor: Int32, peer: String, configuration: ServerConfiguration, now: UInt64) {
        self.token = token
        self.descriptor = descriptor
        self.peer = peer
        machine = ConnectionStateMachine(limits: ParserLimits(configuration), readTimeout: configuration.readTimeout,
                                         idleTimeout: configuration.idleTimeout, now: now)
    }

    /// `bytes` of the body budget are now held for this request: the parser may take that many more body bytes.
    func bodyReserved(_ bytes: Int) {
        reservedBodyBytes += bytes
        machine.bodyReserved(bytes)
    }

    /// Gives the body budget back once the request it was reserved for is done (or the connection is).
    func releaseBody(to budget: BodyBudget) {
        budget.release(reservedBodyBytes)
        reservedBodyBytes = 0
    }
}
