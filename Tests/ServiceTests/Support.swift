import Foundation
import XCTest
import Imaging
@testable import Service

/// A minimal HTTP/1.1 client over a real socket, one request per connection.
struct TestClient {
    let port: Int

    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        /// The body parsed as a JSON object (empty when it is not one).
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }
    }

    func request(_ method: String, _ path: String, body: [UInt8] = [], headers: [(String, String)] = []) throws -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" || method == "PUT" { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return try Response(raw: exchange(Array(head.utf8) + body))
    }

    /// Sends raw bytes and reads until the server closes the connection.
    func exchange(_ bytes: [UInt8]) throws -> [UInt8] {
        let socket = try connect()
        defer { close(socket) }
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { break }
            sent += count
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return received
    }

    func connect() throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(socket)
            throw NSError(domain: "TestClient", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "connect failed: errno \(errno)"])
        }
        return socket
    }
}

extension TestClient.Response {
    init(raw: [UInt8]) throws {
        guard let split = raw.firstRange(of: [13, 10, 13, 10]) else {
            throw NSError(domain: "TestClient", code: 1, userInfo: [NSLocalizedDescriptionKey: "no complete response head in \(raw.count) bytes"])
        }
        let lines = String(decoding: raw[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        status = statusParts.count > 1 ? Int(statusParts[1]) ?? 0 : 0
        headers = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        body = Array(raw[split.upperBound...])
    }
}

/// A real server on a loopback port over a temporary SQLite file.
final class RunningServer {
    let directory: URL
    let server: DschServer
    var client: TestClient { TestClient(port: server.port) }
    var databasePath: String { server.service.configuration.database.path }

    init(directory: URL? = nil, configure: (inout Configuration) -> Void = { _ in },
         trainers: ((Configuration) -> [ModelTrainer])? = nil) throws {
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("dsch-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.server.host = "127.0.0.1"
        configuration.server.port = 0
        configuration.database.path = self.directory.appendingPathComponent("dsch.sqlite").path
        configure(&configuration)
        server = try DschServer(configuration: configuration, logger: Logger(sink: { _ in }), trainers: trainers?(configuration))
        try server.start()
    }

    func stop() {
        server.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Deterministic test images: smooth random colour fields, distinct per seed.
enum TestImages {
    static func rgb(seed: UInt64, width: Int = 24, height: Int = 24) -> RGBImage {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        func next() -> UInt8 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 24)
        }
        let corners = (0..<12).map { _ in Double(next()) }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let u = Double(x) / Double(width - 1), v = Double(y) / Double(height - 1)
                for channel in 0..<3 {
                    let value = corners[channel] * (1 - u) * (1 - v) + corners[3 + channel] * u * (1 - v)
                        + corners[6 + channel] * (1 - u) * v + corners[9 + channel] * u * v
                    pixels[(y * width + x) * 3 + channel] = UInt8(max(0, min(255, value + Double(next() % 32))))
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    static func png(seed: UInt64) throws -> [UInt8] { try ImageEncoder.png(rgb(seed: seed)) }

    /// A PNG signature and IHDR chunk declaring `width`×`height`, with a correct CRC, then nothing.
    static func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
        var chunk: [UInt8] = Array("IHDR".utf8)
        for value in [width, height] { chunk += withUnsafeBytes(of: value.bigEndian, Array.init) }
        chunk += [8, 2, 0, 0, 0]
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + chunk
        bytes += withUnsafeBytes(of: crc32(chunk).bigEndian, Array.init)
        return bytes
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return ~crc
    }
}

/// A value shared between test threads, guarded by a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func read<T>(_ body: (Value) -> T) -> T { lock.lock(); defer { lock.unlock() }; return body(value) }
    func update<T>(_ body: (inout Value) -> T) -> T { lock.lock(); defer { lock.unlock() }; return body(&value) }
}
