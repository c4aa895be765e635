/// Receives candidate rows within `threshold`; the threshold may shrink as it fills.
protocol NeighborCollector {
    var threshold: UInt32 { get }
    mutating func offer(id: Int64, distance: UInt32)
}

/// Keeps the k best (distance, id) pairs in a max-heap whose root is the worst kept pair.
///
/// A bounded heap rather than counting buckets: after the first blocks almost no row reaches the
/// collector (the kernels filter by `threshold`), so selection costs nothing measurable at k = 10.
struct TopKCollector: NeighborCollector {
    let k: Int
    let excluding: Int64?
    /// Max-heap by (distance, id).
    private var heap: [(distance: UInt32, id: Int64)] = []
    private(set) var threshold: UInt32

    init(k: Int, limit: Int, excluding: Int64?) {
        self.k = k
        self.excluding = excluding
        self.threshold = UInt32(limit)
        heap.reserveCapacity(k)
    }

    @inline(__always)
    private static func worse(_ a: (distance: UInt32, id: Int64), _ b: (distance: UInt32, id: Int64)) -> Bool {
        a.distance != b.distance ? a.distance > b.distance : a.id > b.id
    }

    mutating func offer(id: Int64, distance: UInt32) {
        if id == excluding { return }
        let candidate = (distance: distance, id: id)
        if heap.count < k {
            heap.append(candidate)
            siftUp(heap.count - 1)
            if heap.count == k { threshold = heap[0].distance }
            return
        }
        // Equal distance reaches here too: it wins only with a smaller id.
        guard Self.worse(heap[0], candidate) else { return }
        heap[0] = candidate
        siftDown(0)
        threshold = heap[0].distance
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.worse(heap[child], heap[parent]) else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var worst = parent
            if left < heap.count && Self.worse(heap[left], heap[worst]) { worst = left }
            if right < heap.count && Self.worse(heap[right], heap[worst]) { worst = right }
            if worst == parent { return }
            heap.swapAt(parent, worst)
            parent = worst
        }
    }

    func sortedNeighbors() -> [Neighbor] {
        heap.sorted { ($0.distance, $0.id) < ($1.distance, $1.id) }
            .map { Neighbor(id: $0.id, distance: Int($0.distance)) }
    }
}

/// Keeps every pair within a fixed radius.
struct RadiusCollector: NeighborCollector {
    let threshold: UInt32
    private(set) var neighbors: [Neighbor] = []
    init(radius: Int) { threshold = UInt32(radius) }
    mutating func offer(id: Int64, distance: UInt32) {
        neighbors.append(Neighbor(id: id, distance: Int(distance)))
    }
    func sortedNeighbors() -> [Neighbor] {
        neighbors.sorted { ($0.distance, $0.id) < ($1.distance, $1.id) }
    }
}
