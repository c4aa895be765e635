import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A response as read off the wire by the test client.
public struct WireResponse {
    public var status: Int
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
    /// The body parsed as a JSON object (empty when it is not one).
    public var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }
}

/// A deliberately dumb blocking HTTP connection over a raw socket, so tests control every byte sent.
public final class TestConnection {
    public let descriptor: Int32
    private var pending: [UInt8] = []

    /// Connects to 127.0.0.1:`port`; reads give up after `timeout` seconds. A `receiveBufferSize` set
    /// before connecting keeps the kernel from buffering much of a response the test does not read.
    public init(port: Int, timeout: Double = 5, receiveBufferSize: Int32? = nil) throws {
        #if canImport(Glibc)
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        if var size = receiveBufferSize {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(descriptor)
            throw NSError(domain: "TestConnection", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "connect failed"])
        }
        var limit = timeval()
        limit.tv_sec = .init(timeout)
        limit.tv_usec = .init(timeout.truncatingRemainder(dividingBy: 1) * 1_000_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    public func send(_ text: String) { send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            #if canImport(Glibc)
            let written = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            #else
            let written = bytes.withUnsafeBytes { Darwin.send(descriptor, $0.baseAddress! + offset, $0.count - offset, 0) }
            #endif
            if written <= 0 { return }
            offset += written
        }
    }

    /// Stops sending, as a client that has finished its (possibly truncated) request would.
    public func finishSending() { shutdown(descriptor, Int32(SHUT_WR)) }

    /// Reads more bytes; false on end of stream, error or timeout.
    private func fill() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count <= 0 { return false }
        pending += buffer[0..<count]
        return true
    }

    /// Reads at most `count` bytes that have arrived (waiting for some); 0 at end of stream, negative on error.
    public func receiveSome(_ count: Int) -> Int {
        var buffer = [UInt8](repeating: 0, count: count)
        return buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
    }

    /// Reads exactly `count` bytes (or fewer if the stream ends).
    public func readBytes(_ count: Int) -> [UInt8] {
        while pending.count < count && fill() {}
        let taken = Array(pending.prefix(count))
        pending.removeFirst(taken.count)
        return taken
    }

    /// Reads one response framed by Content-Length; nil when the connection ends first.
    public func readResponse() -> WireResponse? {
        let terminator = Array("\r\n\r\n".utf8)
        var end: Int?
        while true {
            if pending.count >= 4, let found = (0...(pending.count - 4)).first(where: { Array(pending[$0..<($0 + 4)]) == terminator }) {
                end = found
                break
            }
            if !fill() { return nil }
        }
        guard let end else { return nil }
        let head = String(decoding: pending[0..<end], as: UTF8.self)
        pending.removeFirst(end + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        let body = readBytes(length)
        return WireResponse(status: status, headers: headers, body: body)
    }

    /// True when the server has closed the connection (end of stream or reset, not a read timeout)
    /// and nothing was left unread.
    public func isClosedByServer() -> Bool {
        guard pending.isEmpty else { return false }
        var byte: UInt8 = 0
        let count = recv(descriptor, &byte, 1, 0)
        return count == 0 || (count < 0 && errno == ECONNRESET)
    }
}

/// Requests to a server on a loopback port, one connection per request, as a plain HTTP/1.1 client
/// sends them (with Content-Length; the server always frames its answers with Content-Length).
public struct TestClient: Sendable {
    public typealias Response = WireResponse
    public let port: Int
    public init(port: Int) { self.port = port }

    /// Sends one request and reads its response.
    public func request(_ method: String, _ path: String, body: [UInt8] = [], headers: [(String, String)] = [],
                        timeout: Double = 30) throws -> WireResponse {
        let connection = try TestConnection(port: port, timeout: timeout)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        connection.send(Array((head + "\r\n").utf8) + body)
        guard let response = connection.readResponse() else {
            throw NSError(domain: "TestClient", code: 1, userInfo: [NSLocalizedDescriptionKey: "no response to \(method) \(path)"])
        }
        return response
    }
}
