import Foundation
import XCTest
import HTTP
import Imaging
@testable import Service

/// Requests to a server on a loopback port over a real socket, one connection per request.
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
        let client = HTTPClient(host: "127.0.0.1", port: port, timeout: 30)
        defer { client.disconnect() }
        let response = try client.send(method, path, headers: headers, body: body)
        var fields: [String: String] = [:]
        for (name, value) in response.headers { fields[name.lowercased()] = value }
        return Response(status: response.status, headers: fields, body: response.body)
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

    /// The admin token the server uses (generated beside the database unless configured).
    func adminToken() throws -> String { try AdminToken.resolve(configuration: server.service.configuration).token }

    /// `Authorization` for the admin token.
    func adminHeaders() throws -> [(String, String)] { [("Authorization", "Bearer \(try adminToken())")] }

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
