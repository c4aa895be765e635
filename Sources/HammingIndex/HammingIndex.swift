/// Exact Hamming-distance search over packed binary codes (API contract; implementation pending).

/// One search result: a stored id and its Hamming distance to the query.
public struct Neighbor: Equatable, Hashable, Sendable {
    public let id: Int64
    public let distance: Int
    public init(id: Int64, distance: Int) { self.id = id; self.distance = distance }
}

/// Why an index operation was refused.
public enum HammingIndexError: Error, Equatable, CustomStringConvertible {
    case unsupportedBitCount(Int)
    case codeLengthMismatch(expectedWords: Int, got: Int)
    public var description: String {
        switch self {
        case .unsupportedBitCount(let bits): return "bit count \(bits) is not a multiple of 8 in 8...1024"
        case .codeLengthMismatch(let expected, let got): return "code has \(got) words, index expects \(expected)"
        }
    }
}

/// Packs, unpacks and formats binary codes: bit i of a code is bit (i % 64) of word i / 64.
public enum BinaryCode {
    /// Number of 64-bit words holding `bits` bits.
    public static func wordCount(bits: Int) -> Int { (bits + 63) / 64 }
    /// Bit i is set when `values[i] > 0` (the sign of a real-valued hash output).
    public static func pack(signs values: [Float]) -> [UInt64] { fatalError("pending") }
    /// Little-endian bytes of the first `bits / 8` bytes of the code, for storage.
    public static func bytes(_ code: [UInt64], bits: Int) -> [UInt8] { fatalError("pending") }
    /// Inverse of `bytes(_:bits:)`; nil when the byte count does not match `bits`.
    public static func words(_ bytes: [UInt8], bits: Int) -> [UInt64]? { fatalError("pending") }
    /// Lower-case hex of `bytes(_:bits:)`, for JSON responses.
    public static func hex(_ code: [UInt64], bits: Int) -> String { fatalError("pending") }
    /// Hamming distance of two codes of equal length.
    public static func distance(_ a: [UInt64], _ b: [UInt64]) -> Int { fatalError("pending") }
}

/// An in-memory index of (id, code) pairs. Not thread-safe: callers serialise access.
public final class HammingIndex {
    public let bits: Int
    public init(bits: Int) throws { fatalError("pending") }
    /// Number of stored codes.
    public var count: Int { fatalError("pending") }
    /// Adds a code, or replaces the code stored for `id`.
    public func add(id: Int64, code: [UInt64]) throws { fatalError("pending") }
    /// Removes `id`; returns false when it was not stored.
    @discardableResult public func remove(id: Int64) -> Bool { fatalError("pending") }
    /// The code stored for `id`, if any.
    public func code(for id: Int64) -> [UInt64]? { fatalError("pending") }
    /// The k nearest codes, ordered by distance then id ascending; `maxDistance` bounds the distance,
    /// `excluding` leaves one id out (a stored image's own entry).
    public func search(_ query: [UInt64], k: Int, maxDistance: Int? = nil, excluding: Int64? = nil) throws -> [Neighbor] { fatalError("pending") }
    /// Every code within `radius`, ordered by distance then id ascending.
    public func search(_ query: [UInt64], radius: Int) throws -> [Neighbor] { fatalError("pending") }
}
