import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The socket server: one accept thread hands connections round-robin to a few event loops (one per core by
/// default), which do all socket I/O and run the light handlers; the heavy handlers run on a worker pool
/// (see `RouteExecution`).
public final class HTTPServer: @unchecked Sendable {
    private enum Phase { case created, running, stopping, stopped }

    let configuration: ServerConfiguration
    /// The router's frozen table: every request is resolved against it once, without a lock.
    let routes: RouteTable
    /// Request bodies held by all connections together.
    let bodyBudget: BodyBudget
    let log: LogHandler
    let observer: RequestObserver?

    private let lock = NSCondition()
    private var phase = Phase.created
    /// Mirrors `phase != .running` for the per-request checks, which must not take `lock`: every
    /// connection asks on every request, and contending for one lock costs more than the request.
    private let stopping = Atomic<Bool>(true)
    private var listenDescriptor: Int32 = -1
    private var boundPort = 0
    /// Open connections by descriptor, so shutdown can close what outlives its deadline.
    private var connections: Set<Int32> = []
    /// Open connections per peer IP address, for `maxConnectionsPerClient`.
    private var connectionsPerClient: [String: Int] = [:]
    private var pool: WorkerPool?
    private var loops: [EventLoop] = []
    /// The loop the next accepted connection goes to.
    private var nextLoop = 0
    private let acceptFinished = DispatchSemaphore(value: 0)

    /// How long the accept thread and the event loops wait at most before they recheck timeouts and shutdown.
    static let pollSliceMilliseconds: Int32 = 50

    /// Freezes `router`: add every route before creating the server.
    public init(configuration: ServerConfiguration, router: Router, log: @escaping LogHandler = { _ in }, observer: RequestObserver? = nil) {
        self.configuration = configuration
        routes = router.freeze()
        bodyBudget = BodyBudget(capacity: configuration.maxBodyBytesInFlight)
        self.log = log
        self.observer = observer
    }

    /// Binds and starts accepting; returns once listening.
    public func start() throws {
        lock.lock()
        defer { lock.unlock() }
        guard phase == .created else { return }
        let descriptor = try Socket.listen(host: configuration.host, port: configuration.port)
        // Non-blocking so a connection that vanishes between poll and accept cannot stall the loop.
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        listenDescriptor = descriptor
        boundPort = Socket.localPort(descriptor)
        let workers = WorkerPool(count: configuration.workerCount, name: "http-worker")
        pool = workers
        loops = (0..<max(1, configuration.eventLoopCount)).map { EventLoop(server: self, pool: workers, index: $0) }
        phase = .running
        stopping.store(false, ordering: .releasing)
        let thread = Thread { [self] in
            acceptLoop()
            acceptFinished.signal()
        }
        thread.name = "http-accept"
        thread.start()
        log("http server listening on \(configuration.host):\(boundPort)")
    }

    /// The bound port (useful when configured with 0).
    public var port: Int {
        lock.lock()
        defer { lock.unlock() }
        return boundPort
    }

    /// Bytes of request bodies reserved by connections right now (for metrics); 0 when no upload is in progress.
    public var bodyBytesInFlight: Int { bodyBudget.used }

    /// Connections open right now (for metrics).
    public var openConnections: Int {
        lock.lock()
        defer { lock.unlock() }
        return connections.count
    }

    /// Stops accepting, lets in-flight requests finish (up to `timeout` seconds), closes connections.
    public func shutdown(timeout: Double = 10) {
        lock.lock()
        guard phase == .running else {
            lock.unlock()
            return
        }
        phase = .stopping
        stopping.store(true, ordering: .releasing)
        lock.unlock()
        acceptFinished.wait()

        // Idle connections notice the phase within one sweep of their loop and close; busy ones finish their request.
        let deadline = Date().addingTimeInterval(max(0, timeout))
        lock.lock()
        while !connections.isEmpty && lock.wait(until: deadline) {}
        let stragglers = connections
        for descriptor in stragglers { shutDownSocket(descriptor) }
        // Connections whose sockets were just shut down exit promptly unless a handler is still running.
        let grace = Date().addingTimeInterval(1)
        while !connections.isEmpty && lock.wait(until: grace) {}
        phase = .stopped
        let remaining = connections.count
        let workers = pool
        let stoppedLoops = loops
        // The loops hold the server; letting go of them here breaks the cycle once their threads end.
        loops = []
        lock.unlock()
        for loop in stoppedLoops { loop.stop(wait: remaining == 0) }
        workers?.stop(wait: remaining == 0)
        log("http server stopped" + (stragglers.isEmpty ? "" : "; \(stragglers.count) connection(s) closed at the shutdown deadline"))
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    private func acceptLoop() {
        while !isStopping {
            guard Socket.waitReadable(listenDescriptor, milliseconds: HTTPServer.pollSliceMilliseconds) else { continue }
            let (descriptor, peer) = Socket.accept(listenDescriptor)
            if descriptor < 0 {
                if errno == EMFILE || errno == ENFILE {
                    log("error=accept_failed message=\"\(SocketError(operation: "accept", errnoCode: errno))\"")
                    usleep(100_000)
                }
                continue
            }
            // Event loops never wait on a socket: reads and writes return at once and the poller says when to retry.
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            Socket.configureConnection(descriptor)

            lock.lock()
            let fromClient = connectionsPerClient[peer, default: 0]
            let refusal: HTTPResponse?
            var loop: EventLoop?
            if connections.count >= configuration.maxConnections {
                refusal = HTTPResponse.error(503, code: "too_many_connections", message: "the server has too many open connections; retry later")
            } else if fromClient >= configuration.maxConnectionsPerClient {
                refusal = HTTPResponse.error(503, code: "too_many_connections",
                                             message: "this client has too many open connections; close some or retry later")
            } else {
                refusal = nil
                connections.insert(descriptor)
                connectionsPerClient[peer] = fromClient + 1
                loop = loops[nextLoop % loops.count]
                nextLoop += 1
            }
            lock.unlock()
            if var refusal {
                refusal.headers.set("Retry-After", "1")
                reject(descriptor, with: refusal)
                continue
            }
            loop?.adopt(descriptor, peer: peer)
        }
        close(listenDescriptor)
    }

    /// Forgets a connection an event loop has finished with, then closes its socket (in that order, so an
    /// accept reusing the descriptor number cannot be forgotten in its place).
    func connectionClosed(_ descriptor: Int32, peer: String) {
        lock.lock()
        connections.remove(descriptor)
        let remaining = (connectionsPerClient[peer] ?? 1) - 1
        connectionsPerClient[peer] = remaining > 0 ? remaining : nil
        lock.broadcast()
        lock.unlock()
        close(descriptor)
    }

    /// Answers a connection over a connection limit, off the accept thread so accepting never waits.
    private func reject(_ descriptor: Int32, with response: HTTPResponse) {
        let requestID = RequestID.make(clientValue: nil)
        logRequest(requestID: requestID, method: "-", path: "-", status: response.status, seconds: 0, bytes: response.body.count)
        let bytes = ResponseEncoding.encode(response, requestID: requestID, keepAlive: false)
        let deadline = Socket.deadline(after: min(configuration.writeTimeout, 1))
        DispatchQueue.global().async {
            Socket.sendAll(descriptor, bytes, deadline: deadline)
            Socket.drainBeforeClose(descriptor, milliseconds: 200)
            close(descriptor)
        }
    }

    /// The one log line every request gets. Values from the client go through `logValue`, so they cannot
    /// add fields or lines.
    func logRequest(requestID: String, method: String, path: String, status: Int, seconds: Double, bytes: Int) {
        // Tenths of a millisecond by integer arithmetic: `String(format:)` cost 7 % of a small request.
        let tenths = Int((max(0, seconds) * 10_000).rounded())
        let milliseconds = "\(tenths / 10).\(tenths % 10)"
        log("request_id=\(logValue(requestID)) method=\(logValue(method)) path=\(logValue(loggablePath(path))) status=\(status) duration_ms=\(milliseconds) bytes=\(bytes)")
    }

    /// One line for an error, with the message always quoted so it stays one field.
    func logError(requestID: String, kind: String, message: String) {
        let quoted = logValue(message)
        log("request_id=\(logValue(requestID)) error=\(logValue(kind)) message=\(quoted.hasPrefix("\"") ? quoted : "\"\(quoted)\"")")
    }
}

/// `shutdown` is shadowed inside `HTTPServer` by its own method.
private func shutDownSocket(_ descriptor: Int32) {
    #if canImport(Glibc)
    _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
    #else
    _ = Darwin.shutdown(descriptor, SHUT_RDWR)
    #endif
}
