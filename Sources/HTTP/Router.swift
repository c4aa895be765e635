import Foundation

/// The router's own errors: an unknown path or a method the path does not accept.
struct RoutingError: HTTPResponseError {
    var status: Int
    var code: String
    var message: String
    var headers: [(String, String)]

    static func notFound(_ path: String) -> RoutingError {
        RoutingError(status: 404, code: "not_found", message: "no route for \(path)", headers: [])
    }
    static func methodNotAllowed(_ method: String, allowed: [String]) -> RoutingError {
        RoutingError(status: 405, code: "method_not_allowed",
                     message: "method \(method) is not allowed here; use \(allowed.joined(separator: ", "))",
                     headers: [("Allow", allowed.joined(separator: ", "))])
    }
}

/// Routes `METHOD /path/{param}` patterns to handlers; unknown paths 404, known paths with other methods 405.
/// Routes are added at start-up; `freeze()` (which `HTTPServer` calls) then fixes the table so that every
/// request is resolved without taking a lock.
public final class Router: @unchecked Sendable {
    /// Guards `pending` and `frozen` while routes are being added; resolution never takes it once frozen.
    private let lock = NSLock()
    private var pending: [Route] = []
    private var frozen: RouteTable?

    public init() {}

    /// Registers `handler` for `method` on `pattern`, where `{name}` captures one path segment, run
    /// where `execution` says. Adding a route after `freeze()` is a programming error and stops the process.
    public func add(_ method: String, _ pattern: String, execution: RouteExecution = .workerPool, _ handler: @escaping HTTPHandler) {
        let segments = HTTPRequest.segments(of: pattern).map { part -> RouteSegment in
            if part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2 {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .literal(part)
        }
        lock.lock()
        defer { lock.unlock() }
        precondition(frozen == nil, "route \(method) \(pattern) added after the router was frozen")
        pending.append(Route(method: method.uppercased(), pattern: pattern, segments: segments, execution: execution, handler: handler))
    }

    /// Ends registration and returns the immutable table requests are resolved against; later calls
    /// return the same table.
    @discardableResult
    public func freeze() -> RouteTable {
        lock.lock()
        defer { lock.unlock() }
        if let frozen { return frozen }
        let table = RouteTable(routes: pending)
        frozen = table
        pending = []
        return table
    }

    /// Dispatches a request (filling `pathParameters`); errors become JSON error responses. Freezes the router.
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        freeze().route(request).response
    }

    /// The route pattern that would handle `request`, or `unmatched`. Freezes the router. The server does
    /// not call this: it takes the label from `RouteTable.route`, which resolves each request once.
    public func routeLabel(for request: HTTPRequest) -> String {
        freeze().route(request, runHandler: false).routeLabel
    }

    /// Like `respond(to:)`, but also hands back an unexpected error so the server can log it.
    func respondReportingFailure(to request: HTTPRequest) -> (response: HTTPResponse, unexpected: Error?) {
        let routed = freeze().route(request)
        return (routed.response, routed.unexpected)
    }

    /// The JSON error response an `HTTPResponseError` asks for.
    static func response(for error: HTTPResponseError) -> HTTPResponse {
        var response = HTTPResponse.error(error.status, code: error.code, message: error.message)
        for (name, value) in error.headers { response.headers.set(name, value) }
        return response
    }
}

/// Where a route's handler runs.
public enum RouteExecution: Sendable {
    /// On the server's fixed worker pool, so that at most `workerCount` such handlers run at once: for
    /// work whose memory or CPU grows with the request, such as decoding an uploaded image.
    case workerPool
    /// On the event loop that reads the connection, skipping the hand-off to the pool and back (two thread
    /// wake-ups per request): for handlers that answer briefly from memory. Anything that can wait (the
    /// database, a lock held for long) belongs on the pool: while it runs, the loop's other connections wait.
    case eventLoop
}

/// One segment of a route pattern.
private enum RouteSegment: Sendable {
    case literal(String)
    case parameter(String)
}

/// A class, not a struct: resolving a request walks the candidates, and copying five reference-counted
/// fields per candidate cost 9 % of a small request.
private final class Route: Sendable {
    let method: String
    let pattern: String
    let segments: [RouteSegment]
    let execution: RouteExecution
    let handler: HTTPHandler

    init(method: String, pattern: String, segments: [RouteSegment], execution: RouteExecution, handler: @escaping HTTPHandler) {
        self.method = method
        self.pattern = pattern
        self.segments = segments
        self.execution = execution
        self.handler = handler
    }
}

/// What routing one request produced: the response, the label for metrics, and an error to log.
public struct RoutedResponse: Sendable {
    public var response: HTTPResponse
    /// The matched route pattern, or `MetricsLabel.unmatchedRoute`: always from the fixed set of patterns.
    public var routeLabel: String
    /// An error the handler threw that was not an `HTTPResponseError`; the client got a generic 500.
    public var unexpected: Error?
}

/// A frozen set of routes: immutable, so any number of threads resolve against it without locking.
public final class RouteTable: Sendable {
    private let routes: [Route]
    /// The routes by segment count, each list in registration order: only those can match a path.
    private let routesBySegmentCount: [Int: [Route]]

    fileprivate init(routes: [Route]) {
        self.routes = routes
        routesBySegmentCount = Dictionary(grouping: routes, by: { $0.segments.count })
    }

    /// Every registered (method, pattern) pair in registration order, for documentation and its tests.
    public var registeredRoutes: [(method: String, pattern: String)] { routes.map { (method: $0.method, pattern: $0.pattern) } }

    /// Resolves `request` once and, unless `runHandler` is false, runs the matched handler.
    public func route(_ request: HTTPRequest, runHandler: Bool = true) -> RoutedResponse {
        let resolved = resolve(request)
        return runHandler ? resolved.run() : resolved.label()
    }

    /// Resolves `request` without running anything, so the caller can choose where the handler runs.
    public func resolve(_ request: HTTPRequest) -> ResolvedRoute {
        ResolvedRoute(request: request, resolution: resolution(of: request))
    }

    fileprivate enum Resolution {
        case matched(Route, [String: String])
        case methodNotAllowed([String])
        case notFound
    }

    private func resolution(of request: HTTPRequest) -> Resolution {
        let parts = request.pathSegments
        var best: (route: Route, parameters: [String: String])?
        var allowed: [String] = []
        for route in routesBySegmentCount[parts.count] ?? [] {
            guard let parameters = RouteTable.match(route.segments, parts) else { continue }
            if route.method != request.method {
                if !allowed.contains(route.method) { allowed.append(route.method) }
                continue
            }
            if let current = best, !RouteTable.isMoreSpecific(route.segments, than: current.route.segments) { continue }
            best = (route, parameters)
        }
        if let best { return .matched(best.route, best.parameters) }
        if !allowed.isEmpty { return .methodNotAllowed(allowed.sorted()) }
        return .notFound
    }

    /// A literal segment beats a parameter at the first position where two patterns differ,
    /// so `/v1/images/search` wins over `/v1/images/{id}` whatever the registration order.
    private static func isMoreSpecific(_ candidate: [RouteSegment], than current: [RouteSegment]) -> Bool {
        for (left, right) in zip(candidate, current) {
            switch (left, right) {
            case (.literal, .parameter): return true
            case (.parameter, .literal): return false
            default: continue
            }
        }
        return false
    }

    /// Matches decoded segments, so a parameter may hold a `/` that arrived encoded as `%2F`.
    private static func match(_ segments: [RouteSegment], _ parts: [String]) -> [String: String]? {
        guard segments.count == parts.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let text):
                if text != part { return nil }
            case .parameter(let name):
                if part.isEmpty { return nil }
                parameters[name] = part
            }
        }
        return parameters
    }
}

/// A request matched against the route table, its handler not yet run: the server asks where it runs.
public struct ResolvedRoute: Sendable {
    fileprivate let request: HTTPRequest
    fileprivate let resolution: RouteTable.Resolution

    /// Where the handler runs; answers to unknown paths and methods are built on the event loop.
    public var execution: RouteExecution {
        if case .matched(let route, _) = resolution { return route.execution }
        return .eventLoop
    }

    /// Runs the matched handler; errors become JSON error responses.
    public func run() -> RoutedResponse {
        switch resolution {
        case .notFound:
            return RoutedResponse(response: Router.response(for: RoutingError.notFound(request.path)),
                                  routeLabel: MetricsLabel.unmatchedRoute)
        case .methodNotAllowed(let allowed):
            return RoutedResponse(response: Router.response(for: RoutingError.methodNotAllowed(request.method, allowed: allowed)),
                                  routeLabel: MetricsLabel.unmatchedRoute)
        case .matched(let route, let parameters):
            var routed = request
            routed.pathParameters = parameters
            do {
                return RoutedResponse(response: try route.handler(routed), routeLabel: route.pattern)
            } catch let error as HTTPResponseError {
                return RoutedResponse(response: Router.response(for: error), routeLabel: route.pattern)
            } catch {
                return RoutedResponse(response: HTTPResponse.error(500, code: "internal_error", message: "the server failed to handle the request"),
                                      routeLabel: route.pattern, unexpected: error)
            }
        }
    }

    /// The metrics label alone, without running the handler.
    func label() -> RoutedResponse {
        if case .matched(let route, _) = resolution { return RoutedResponse(response: HTTPResponse(status: 200), routeLabel: route.pattern) }
        return run()
    }
}
