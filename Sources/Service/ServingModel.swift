import Foundation
import Hashing
import HammingIndex

/// A model version ready to serve: its encoder and the in-memory index of every image's code under it.
/// Searches take the read side of a lock and run in parallel; adds and removes take the write side.
public final class ServingModel: @unchecked Sendable {
    public let version: Int
    public let encoder: HashEncoder
    private let index: HammingIndex
    private let lock = ReadWriteLock()

    public init(version: Int, encoder: HashEncoder) throws {
        self.version = version
        self.encoder = encoder
        index = try HammingIndex(bits: encoder.bits)
    }

    public var bits: Int { encoder.bits }

    /// Number of codes held.
    public var count: Int { lock.reading { index.count } }

    /// Codes for thumbnails, packed for the index.
    public func codes(for thumbnails: [[UInt8]]) -> [[UInt64]] {
        encoder.encode(thumbnails: thumbnails).map { BinaryCode.pack(signs: $0) }
    }

    public func add(id: Int64, code: [UInt64]) throws { try lock.writing { try index.add(id: id, code: code) } }

    @discardableResult public func remove(id: Int64) -> Bool { lock.writing { index.remove(id: id) } }

    public func code(for id: Int64) -> [UInt64]? { lock.reading { index.code(for: id) } }

    /// The nearest codes, and which method (flat scan or multi-index hashing) the index used.
    public func search(_ query: [UInt64], k: Int, maxDistance: Int?, excluding: Int64?) throws -> SearchOutcome {
        try lock.reading { try index.searchDetailed(query, k: k, maxDistance: maxDistance, excluding: excluding) }
    }
}
