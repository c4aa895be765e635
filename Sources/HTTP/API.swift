import Foundation

/// HTTP/1.1 server, requests, responses and routing (API contract; implementation pending).

/// Header fields in arrival order, looked up case-insensitively.
public struct HTTPHeaders: Sendable, Sequence {
    public private(set) var fields: [(name: String, value: String)] = []
    public init(_ fields: [(String, String)] = []) { self.fields = fields.map { (name: $0.0, value: $0.1) } }
    /// First value for `name`, case-insensitive.
    public subscript(name: String) -> String? {
        let lower = name.lowercased()
        return fields.first { $0.name.lowercased() == lower }?.value
    }
    public mutating func add(_ name: String, _ value: String) { fields.append((name: name, value: value)) }
    /// Replaces every field called `name` with one.
    public mutating func set(_ name: String, _ value: String) {
        let lower = name.lowercased()
        fields.removeAll { $0.name.lowercased() == lower }
        fields.append((name: name, value: value))
    }
    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }
}

/// A parsed request with its whole body.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path without the query, percent-decoded.
    public var path: String
    /// Query parameters, percent-decoded; later duplicates win.
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Parameters captured by the route pattern (`{id}`).
    public var pathParameters: [String: String]
    /// Unique per request; also sent back as `X-Request-Id` and written in every log line.
    public var requestID: String
    public init(method: String, path: String, query: [String: String] = [:], headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], pathParameters: [String: String] = [:], requestID: String = "") {
        self.method = method; self.path = path; self.query = query; self.headers = headers; self.body = body
        self.pathParameters = pathParameters; self.requestID = requestID
    }
}

/// A response; the server adds Content-Length, Date, Connection and X-Request-Id.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status; self.headers = headers; self.body = body
    }
    /// A JSON response from an encoded body.
    public static func json(_ status: Int, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, headers: HTTPHeaders([("Content-Type", "application/json")]), body: body)
    }
    /// The JSON error body `{"error":{"code":…,"message":…}}`.
    public static func error(_ status: Int, code: String, message: String) -> HTTPResponse { fatalError("pending") }
}

/// An error that decides its own response; any other error thrown by a handler becomes a logged 500.
public protocol HTTPResponseError: Error {
    var status: Int { get }
    var code: String { get }
    var message: String { get }
    /// Extra headers, such as `Allow` for 405.
    var headers: [(String, String)] { get }
}

extension HTTPResponseError {
    public var headers: [(String, String)] { [] }
}

/// A route handler. Runs on a worker queue, never on the accept or I/O path.
public typealias HTTPHandler = @Sendable (HTTPRequest) throws -> HTTPResponse

/// Routes `METHOD /path/{param}` patterns to handlers; unknown paths 404, known paths with other methods 405.
public final class Router: @unchecked Sendable {
    public init() {}
    public func add(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) { fatalError("pending") }
    /// Dispatches a request (filling `pathParameters`); errors become JSON error responses.
    public func respond(to request: HTTPRequest) -> HTTPResponse { fatalError("pending") }
    /// The route pattern that matched, for metrics labels ("unmatched" otherwise).
    public func routeLabel(for request: HTTPRequest) -> String { fatalError("pending") }
}

/// Server limits and timeouts.
public struct ServerConfiguration: Sendable {
    public var host: String = "0.0.0.0"
    /// 0 picks a free port (tests); see `HTTPServer.port`.
    public var port: Int = 8080
    public var maxHeaderBytes: Int = 16 * 1024
    public var maxBodyBytes: Int = 32 * 1024 * 1024
    /// Seconds a client may take to send a whole request once it started.
    public var readTimeout: Double = 30
    /// Seconds an idle keep-alive connection stays open.
    public var idleTimeout: Double = 60
    public var maxConnections: Int = 256
    /// Handlers running at once.
    public var workerCount: Int = 4
    public init() {}
}

/// One line per event; the server passes the request id in the message.
public typealias LogHandler = @Sendable (String) -> Void

/// Observes each finished request (for metrics): request, route label, status, seconds.
public typealias RequestObserver = @Sendable (HTTPRequest, String, Int, Double) -> Void

/// The socket server.
public final class HTTPServer: @unchecked Sendable {
    public init(configuration: ServerConfiguration, router: Router, log: @escaping LogHandler = { _ in }, observer: RequestObserver? = nil) { fatalError("pending") }
    /// Binds and starts accepting; returns once listening.
    public func start() throws { fatalError("pending") }
    /// The bound port (useful when configured with 0).
    public var port: Int { fatalError("pending") }
    /// Stops accepting, lets in-flight requests finish (up to `timeout` seconds), closes connections.
    public func shutdown(timeout: Double = 10) { fatalError("pending") }
}

/// One part of a multipart/form-data body.
public struct MultipartPart: Sendable {
    public var name: String
    public var filename: String?
    public var contentType: String?
    public var body: [UInt8]
    public init(name: String, filename: String?, contentType: String?, body: [UInt8]) {
        self.name = name; self.filename = filename; self.contentType = contentType; self.body = body
    }
}

/// Parses multipart/form-data bodies.
public enum Multipart {
    /// The boundary parameter of a `multipart/form-data` Content-Type, or nil.
    public static func boundary(contentType: String) -> String? { fatalError("pending") }
    /// Splits a body into parts; throws an `HTTPResponseError` (400) when malformed.
    public static func parse(_ body: [UInt8], boundary: String) throws -> [MultipartPart] { fatalError("pending") }
}
