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
public final class Router: @unchecked Sendable {
    /// One segment of a route pattern.
    private enum Segment {
        case literal(String)
        case parameter(String)
    }

    private struct Route {
        var method: String
        var pattern: String
        var segments: [Segment]
        var handler: HTTPHandler
    }

    /// Routes are added at start-up and read by every worker afterwards.
    private var routes: [Route] = []
    private let lock = NSLock()

    public init() {}

    /// Registers `handler` for `method` on `pattern`, where `{name}` captures one path segment.
    public func add(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) {
        let segments = Router.split(pattern).map { part -> Segment in
            if part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2 {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .literal(String(part))
        }
        lock.lock()
        routes.append(Route(method: method.uppercased(), pattern: pattern, segments: segments, handler: handler))
        lock.unlock()
    }

    /// Dispatches a request (filling `pathParameters`); errors become JSON error responses.
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        respondReportingFailure(to: request).response
    }

    /// The route pattern that matched, for metrics labels ("unmatched" otherwise).
    public func routeLabel(for request: HTTPRequest) -> String {
        if case .matched(let route, _) = resolve(request) { return route.pattern }
        return "unmatched"
    }

    /// Like `respond(to:)`, but also hands back an unexpected error so the server can log it.
    func respondReportingFailure(to request: HTTPRequest) -> (response: HTTPResponse, unexpected: Error?) {
        switch resolve(request) {
        case .notFound:
            return (Router.response(for: RoutingError.notFound(request.path)), nil)
        case .methodNotAllowed(let allowed):
            return (Router.response(for: RoutingError.methodNotAllowed(request.method, allowed: allowed)), nil)
        case .matched(let route, let parameters):
            var routed = request
            routed.pathParameters = parameters
            do {
                return (try route.handler(routed), nil)
            } catch let error as HTTPResponseError {
                return (Router.response(for: error), nil)
            } catch {
                return (HTTPResponse.error(500, code: "internal_error", message: "the server failed to handle the request"), error)
            }
        }
    }

    /// The JSON error response an `HTTPResponseError` asks for.
    static func response(for error: HTTPResponseError) -> HTTPResponse {
        var response = HTTPResponse.error(error.status, code: error.code, message: error.message)
        for (name, value) in error.headers { response.headers.set(name, value) }
        return response
    }

    private enum Resolution {
        case matched(Route, [String: String])
        case methodNotAllowed([String])
        case notFound
    }

    private func resolve(_ request: HTTPRequest) -> Resolution {
        lock.lock()
        let snapshot = routes
        lock.unlock()
        let parts = Router.split(request.path)
        var best: (route: Route, parameters: [String: String])?
        var allowed: [String] = []
        for route in snapshot {
            guard let parameters = Router.match(route.segments, parts) else { continue }
            if route.method != request.method {
                if !allowed.contains(route.method) { allowed.append(route.method) }
                continue
            }
            if let current = best, !Router.isMoreSpecific(route.segments, than: current.route.segments) { continue }
            best = (route, parameters)
        }
        if let best { return .matched(best.route, best.parameters) }
        if !allowed.isEmpty { return .methodNotAllowed(allowed.sorted()) }
        return .notFound
    }

    /// A literal segment beats a parameter at the first position where two patterns differ,
    /// so `/v1/images/search` wins over `/v1/images/{id}` whatever the registration order.
    private static func isMoreSpecific(_ candidate: [Segment], than current: [Segment]) -> Bool {
        for (left, right) in zip(candidate, current) {
            switch (left, right) {
            case (.literal, .parameter): return true
            case (.parameter, .literal): return false
            default: continue
            }
        }
        return false
    }

    private static func match(_ segments: [Segment], _ parts: [Substring]) -> [String: String]? {
        guard segments.count == parts.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let text):
                if text != part { return nil }
            case .parameter(let name):
                if part.isEmpty { return nil }
                parameters[name] = String(part)
            }
        }
        return parameters
    }

    /// Path segments after the leading slash; a trailing slash yields an empty last segment.
    private static func split(_ path: String) -> [Substring] {
        let trimmed = path.hasPrefix("/") ? path.dropFirst() : Substring(path)
        return trimmed.split(separator: "/", omittingEmptySubsequences: false)
    }
}
