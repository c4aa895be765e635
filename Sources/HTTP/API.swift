import Foundation

/// HTTP/1.1 server, requests, responses and routing: the value types shared by every part of the target.

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

extension HTTPHeaders: Equatable {
    /// Equal when the same fields appear in the same order (names compared case-insensitively).
    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.count == rhs.fields.count && zip(lhs.fields, rhs.fields).allSatisfy {
            $0.name.lowercased() == $1.name.lowercased() && $0.value == $1.value
        }
    }
}

/// A parsed request with its whole body.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path without the query, percent-decoded; for display and logs, since a decoded `%2F` looks
    /// like a separator here. Routing uses `pathSegments`.
    public var path: String
    /// The path split on `/` before percent-decoding, then each segment decoded, so `/a%2Fb` is the one
    /// segment `a/b`. Empty for `/`; a trailing slash gives an empty last segment.
    public var pathSegments: [String]
    /// Query parameters, percent-decoded; later duplicates win.
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Parameters captured by the route pattern (`{id}`).
    public var pathParameters: [String: String]
    /// Unique per request; also sent back as `X-Request-Id` and written in every log line.
    public var requestID: String
    /// `pathSegments` defaults to `path` split on `/`, which is right whenever no segment contains an encoded slash.
    public init(method: String, path: String, pathSegments: [String]? = nil, query: [String: String] = [:], headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], pathParameters: [String: String] = [:], requestID: String = "") {
        self.method = method; self.path = path; self.query = query; self.headers = headers; self.body = body
        self.pathParameters = pathParameters; self.requestID = requestID
        self.pathSegments = pathSegments ?? HTTPRequest.segments(of: path)
    }

    /// `method` folded into the fixed set of metrics labels (see `MetricsLabel.method`).
    public var methodLabel: String { MetricsLabel.method(method) }

    /// Segments after the leading slash; a trailing slash yields an empty last segment.
    static func segments(of path: String) -> [String] {
        let trimmed = path.hasPrefix("/") ? path.dropFirst() : Substring(path)
        if trimmed.isEmpty { return [] }
        return trimmed.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    }
}

/// Label values for metrics, drawn from fixed sets so a client cannot create unbounded time series.
public enum MetricsLabel {
    /// The route label of a request that matched no route (404, 405, or refused before routing).
    public static let unmatchedRoute = "unmatched"
    /// The method label for any method outside `knownMethods`.
    public static let otherMethod = "other"
    /// Methods reported as themselves.
    public static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    /// `method` itself when it is a known method, `other` otherwise (methods are case-sensitive).
    public static func method(_ method: String) -> String {
        knownMethods.contains(method) ? method : otherMethod
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
    public static func error(_ status: Int, code: String, message: String) -> HTTPResponse {
        let object: [String: Any] = ["error": ["code": code, "message": message]]
        // Serialising two strings cannot fail; the literal fallback only keeps the signature non-throwing.
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data(#"{"error":{"code":"internal","message":"error"}}"#.utf8)
        return .json(status, [UInt8](data))
    }
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

/// Server limits and timeouts.
public struct ServerConfiguration: Sendable {
    public var host: String = "0.0.0.0"
    /// 0 picks a free port (tests); see `HTTPServer.port`.
    public var port: Int = 8080
    public var maxHeaderBytes: Int = 16 * 1024
    /// Header fields allowed in one request.
    public var maxHeaderCount: Int = 100
    /// Bytes of one request body.
    public var maxBodyBytes: Int = 32 * 1024 * 1024
    /// Bytes of request bodies all connections together may hold at once; a connection reserves its
    /// body's share before buffering any of it, so memory stays bounded however many clients upload.
    public var maxBodyBytesInFlight: Int = 256 * 1024 * 1024
    /// Seconds a request waits for its share of `maxBodyBytesInFlight` before it gets 503 with `Retry-After`.
    public var bodyBudgetWaitSeconds: Double = 2
    /// Seconds a client may take to send a whole request once it started.
    public var readTimeout: Double = 30
    /// Seconds the server spends writing one whole response; a client reading too slowly is dropped.
    public var writeTimeout: Double = 60
    /// Seconds an idle keep-alive connection stays open.
    public var idleTimeout: Double = 60
    /// Open connections in total; more get 503 and are closed.
    public var maxConnections: Int = 256
    /// Open connections from one peer IP address; more get 503 and are closed.
    public var maxConnectionsPerClient: Int = 64
    /// Handlers running at once (the routes that run on the worker pool).
    public var workerCount: Int = 4
    /// Threads doing socket I/O and the light routes, each serving many connections; one per core.
    public var eventLoopCount: Int = ProcessInfo.processInfo.activeProcessorCount
    public init() {}
}

/// One line per event; the server passes the request id in the message.
public typealias LogHandler = @Sendable (String) -> Void

/// Observes each finished request (for metrics): request, route label, status, seconds.
/// The route label is a registered route pattern or `MetricsLabel.unmatchedRoute`; for the method use
/// `request.methodLabel`, so every label comes from a fixed set.
public typealias RequestObserver = @Sendable (HTTPRequest, String, Int, Double) -> Void

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

