import Foundation
import XCTest
import Imaging

/// The one pseudo-random generator of the tests (xorshift64): deterministic per seed, fast, no state
/// shared between tests.
public struct TestRandom: RandomNumberGenerator {
    private var state: UInt64
    /// A generator whose sequence depends only on `seed`.
    public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1 }
    public mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

/// CRC-32 as PNG and zlib use it (reflected polynomial 0xEDB88320), a byte at a time from a table.
public enum CRC32 {
    public static func checksum<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// The CRC of each byte value, computed bit by bit.
    private static let table: [UInt32] = (0..<256).map { value in
        var crc = UInt32(value)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        return crc
    }
}

/// Deterministic test images: smooth random colour fields, distinct per seed.
public enum TestImages {
    public static func rgb(seed: UInt64, width: Int = 24, height: Int = 24) -> RGBImage {
        var generator = TestRandom(seed: seed)
        func next() -> UInt8 { UInt8(truncatingIfNeeded: generator.next() >> 24) }
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

    public static func png(seed: UInt64) throws -> [UInt8] { try ImageEncoder.png(rgb(seed: seed)) }

    /// A PNG signature and IHDR chunk declaring `width`×`height`, with a correct CRC, then nothing.
    public static func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
        var chunk: [UInt8] = Array("IHDR".utf8)
        for value in [width, height] { chunk += withUnsafeBytes(of: value.bigEndian, Array.init) }
        chunk += [8, 2, 0, 0, 0]
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + chunk
        bytes += withUnsafeBytes(of: CRC32.checksum(chunk).bigEndian, Array.init)
        return bytes
    }
}

/// A value shared between test threads, guarded by a lock.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    public init(_ value: Value) { self.value = value }
    public func read<T>(_ body: (Value) -> T) -> T { lock.lock(); defer { lock.unlock() }; return body(value) }
    public func update<T>(_ body: (inout Value) -> T) -> T { lock.lock(); defer { lock.unlock() }; return body(&value) }
}

/// A fresh temporary directory, removed when `testCase` ends.
public func makeTemporaryDirectory(_ testCase: XCTestCase) throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
    return directory
}

/// Polls `condition` every `interval` seconds until it holds or `timeout` passes; false on timeout.
public func waitUntil(timeout: Double, interval: Double = 0.05, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: interval)
    }
    return try condition()
}
