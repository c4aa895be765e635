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

    /// Counts changes to the index, so a result computed over all of it (duplicate groups) can be
    /// reused until an image is added or removed.
    private var changes: UInt64 = 0

    public func add(id: Int64, code: [UInt64]) throws {
        try lock.writing {
            try index.add(id: id, code: code)
            changes &+= 1
        }
    }

    @discardableResult public func remove(id: Int64) -> Bool {
        lock.writing {
            let removed = index.remove(id: id)
            if removed { changes &+= 1 }
            return removed
        }
    }

    /// How many times an image was added or removed so far.
    public var changeCount: UInt64 { lock.reading { changes } }

    /// A copy of the index and the change count it reflects: long computations over every code run on
    /// the copy, so they never hold the lock that uploads and deletes wait for.
    public func snapshot() throws -> (index: HammingIndex, changes: UInt64) {
        try lock.reading {
            let copy = try HammingIndex(bits: index.bits)
            copy.reserveCapacity(index.count)
            for id in index.ids {
                if let code = index.code(for: id) { try copy.add(id: id, code: code) }
            }
            return (copy, changes)
        }
    }

    public func code(for id: Int64) -> [UInt64]? { lock.reading { index.code(for: id) } }

    /// The nearest codes, and which method (flat scan or multi-index hashing) the index used.
    public func search(_ query: [UInt64], k: Int, maxDistance: Int?, excluding: Int64?) throws -> SearchOutcome {
        try lock.reading { try index.searchDetailed(query, k: k, maxDistance: maxDistance, excluding: excluding) }
    }
}
