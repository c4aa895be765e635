import Foundation
import HammingIndex
import Storage

/// One group of near-identical images: ids ascending, each with its distance to the first (smallest) id.
public struct DuplicateGroup: Equatable, Sendable {
    /// Every image of the group by id ascending, with the Hamming distance of its code to the first one's.
    public var members: [(id: Int64, distanceToFirst: Int)]
    /// The smallest id, which the group is named by and measured from.
    public var firstID: Int64 { members[0].id }

    public static func == (left: DuplicateGroup, right: DuplicateGroup) -> Bool {
        left.members.map(\.id) == right.members.map(\.id) && left.members.map(\.distanceToFirst) == right.members.map(\.distanceToFirst)
    }
}

/// Groups of stored images whose codes lie within a distance of each other: the connected components of
/// the graph "code distance ≤ D", singletons left out, largest first, ties by smallest id. The service's
/// `/v1/duplicates` and `dsch duplicates` both call `find`.
public enum DuplicateGroups {
    /// The groups of `index`. One radius search per code plus union–find: the index's radius search does
    /// the work (a multi-index search where the index has one), never a comparison of all pairs here.
    public static func find(in index: HammingIndex, maxDistance: Int) throws -> [DuplicateGroup] {
        let ids = index.ids.sorted()
        var position: [Int64: Int] = [:]
        position.reserveCapacity(ids.count)
        for (offset, id) in ids.enumerated() { position[id] = offset }
        var components = UnionFind(count: ids.count)
        for (offset, id) in ids.enumerated() {
            guard let code = index.code(for: id) else { continue }
            for neighbor in try index.search(code, radius: maxDistance) where neighbor.id > id {
                if let other = position[neighbor.id] { components.union(offset, other) }
            }
        }
        var membersByRoot: [Int: [Int]] = [:]
        for offset in ids.indices where components.size(of: offset) > 1 {
            membersByRoot[components.root(of: offset), default: []].append(offset)
        }
        var groups: [DuplicateGroup] = []
        groups.reserveCapacity(membersByRoot.count)
        for offsets in membersByRoot.values {
            // Offsets were appended in ascending order, and ids are sorted, so the first is the smallest id.
            let firstCode = index.code(for: ids[offsets[0]]) ?? []
            groups.append(DuplicateGroup(members: offsets.map { offset in
                let id = ids[offset]
                return (id: id, distanceToFirst: index.code(for: id).map { BinaryCode.distance($0, firstCode) } ?? 0)
            }))
        }
        return groups.sorted { ($0.members.count, $1.firstID) > ($1.members.count, $0.firstID) }
    }

    /// An index of every code stored for the active model version of `store`: what the service would
    /// serve, read without starting the service (for `dsch duplicates` on a file).
    public static func activeIndex(store: ServiceStore) throws -> (version: Int, index: HammingIndex) {
        guard let version = try store.activeModelVersion(), let model = try store.model(version: version) else {
            throw Maintenance.Failure(description: "the database has no active model yet; start the service once or import images first")
        }
        let index = try HammingIndex(bits: model.bits)
        for (imageID, bytes) in try store.codes(modelVersion: version) {
            if let code = BinaryCode.words(bytes, bits: model.bits) { try index.add(id: imageID, code: code) }
        }
        return (version, index)
    }
}

/// Disjoint sets over 0..<count with path halving and union by size.
struct UnionFind {
    private var parent: [Int]
    private var sizes: [Int]

    init(count: Int) {
        parent = Array(0..<count)
        sizes = Array(repeating: 1, count: count)
    }

    /// The representative of the set holding `element`.
    mutating func root(of element: Int) -> Int {
        var current = element
        while parent[current] != current {
            parent[current] = parent[parent[current]]
            current = parent[current]
        }
        return current
    }

    /// Number of elements in the set holding `element`.
    mutating func size(of element: Int) -> Int { sizes[root(of: element)] }

    /// Joins the sets of `first` and `second`.
    mutating func union(_ first: Int, _ second: Int) {
        var left = root(of: first), right = root(of: second)
        guard left != right else { return }
        if sizes[left] < sizes[right] { swap(&left, &right) }
        parent[right] = left
        sizes[left] += sizes[right]
    }
}
