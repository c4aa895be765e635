import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A response read by `HTTPClient`.
public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
}

/// Why a client request failed.
public enum HTTPClientError: Error, CustomStringConvertible {
    case connectFailed(host: String, port: Int, reason: String)
    case connectionClosed
    case malformedResponse(String)

    public var description: String {
        switch self {
        case .connectFailed(let host, let port, let reason): return "cannot connect to \(host):\(port): \(reason)"
        case .connectionClosed: return "the server closed the connection before answering"
        case .malformedResponse(let why): return "the server's response is malformed: \(why)"
        }
    }
}

/// A small blocking HTTP/1.1 client with keep-alive, for dsch's own tools (importing over the API,
/// tests). It reads bodies framed by Content-Length or by the server closing; not chunked responses.
/// One request at a time: not thread-safe.
public final class HTTPClient {
    public let host: String
    public let port: Int
    /// Seconds a send or receive may block.
    public var timeout: Int
    private var descriptor: Int32 = -1
    private var pending: [UInt8] = []

    public init(host: String, port: Int, timeout: Int = 60) {
        self.host = host
        self.port = port
        self.timeout = timeout
    }

    deinit { disconnect() }

    /// Sends one request and reads its response; reconnects once if a kept-alive connection was closed.
    public func send(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8] = []) throws -> HTTPClientResponse {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" || method == "PUT" { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        let request = Array(head.utf8) + body
        let reused = descriptor >= 0
        do {
            return try exchange(request)
        } catch HTTPClientError.connectionClosed where reused {
            disconnect()
            return try exchange(request)
        }
    }

    /// Closes the connection.
    public func disconnect() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        pending = []
    }

    private func exchange(_ request: [UInt8]) throws -> HTTPClientResponse {
        if descriptor < 0 { try connect() }
        try write(request)
        let response = try readResponse()
        if response.headers["Connection"]?.lowercased() == "close" { disconnect() }
        return response
    }

    private func connect() throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw HTTPClientError.connectFailed(host: host, port: port, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        let socket = Glibc.socket(first.pointee.ai_family, hints.ai_socktype, 0)
        guard socket >= 0 else { throw HTTPClientError.connectFailed(host: host, port: port, reason: String(cString: strerror(errno))) }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        guard Glibc.connect(socket, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let reason = String(cString: strerror(errno))
            close(socket)
            throw HTTPClientError.connectFailed(host: host, port: port, reason: reason)
        }
        descriptor = socket
    }

    private func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw HTTPClientError.connectionClosed }
            sent += count
        }
    }

    /// Reads more bytes into `pending`; false at end of stream.
    private func fill() throws -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count <= 0 { return false }
        pending += buffer[0..<count]
        return true
    }

    private func readResponse() throws -> HTTPClientResponse {
        var headEnd: Range<Int>?
        while true {
            headEnd = pending.firstRange(of: [13, 10, 13, 10])
            if headEnd != nil { break }
            guard try fill() else { throw HTTPClientError.connectionClosed }
        }
        let head = String(decoding: pending[..<headEnd!.lowerBound], as: UTF8.self)
        pending.removeFirst(headEnd!.upperBound)
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw HTTPClientError.malformedResponse("status line '\(lines[0])'")
        }
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw HTTPClientError.malformedResponse("header line '\(line)'") }
            headers.add(String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        if status == 100 { return try readResponse() }
        if let lengthText = headers["Content-Length"] {
            guard let length = Int(lengthText), length >= 0 else { throw HTTPClientError.malformedResponse("Content-Length '\(lengthText)'") }
            while pending.count < length {
                guard try fill() else { throw HTTPClientError.connectionClosed }
            }
            let body = Array(pending[..<length])
            pending.removeFirst(length)
            return HTTPClientResponse(status: status, headers: headers, body: body)
        }
        if status == 204 || status == 304 { return HTTPClientResponse(status: status, headers: headers, body: []) }
        while try fill() {}
        let body = pending
        disconnect()
        return HTTPClientResponse(status: status, headers: headers, body: body)
    }
}
