/// Exact Hamming-distance search over packed binary codes.
///
/// Codes live in one contiguous row-major buffer of 64-bit words. A search picks the distance kernel
/// for the code width once, computes distances for a block of rows into a small stack buffer (a loop
/// the compiler can vectorise, free of branches), and only then looks at the few rows that beat the
/// current pruning threshold.

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
    public static func pack(signs values: [Float]) -> [UInt64] {
        var words = [UInt64](repeating: 0, count: wordCount(bits: values.count))
        for (index, value) in values.enumerated() where value > 0 {
            words[index >> 6] |= 1 << UInt64(index & 63)
        }
        return words
    }

    /// Little-endian bytes of the first `bits / 8` bytes of the code, for storage.
    public static func bytes(_ code: [UInt64], bits: Int) -> [UInt8] {
        let byteCount = min(bits / 8, code.count * 8)
        var result = [UInt8](repeating: 0, count: byteCount)
        for index in 0..<byteCount {
            result[index] = UInt8(truncatingIfNeeded: code[index >> 3] >> UInt64((index & 7) * 8))
        }
        return result
    }

    /// Inverse of `bytes(_:bits:)`; nil when the byte count does not match `bits`.
    public static func words(_ bytes: [UInt8], bits: Int) -> [UInt64]? {
        guard bits > 0, bits % 8 == 0, bytes.count == bits / 8 else { return nil }
        var words = [UInt64](repeating: 0, count: wordCount(bits: bits))
        for (index, byte) in bytes.enumerated() {
            words[index >> 3] |= UInt64(byte) << UInt64((index & 7) * 8)
        }
        return words
    }

    /// Lower-case hex of `bytes(_:bits:)`, for JSON responses.
    public static func hex(_ code: [UInt64], bits: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var characters: [UInt8] = []
        characters.reserveCapacity(bits / 4)
        for byte in bytes(code, bits: bits) {
            characters.append(digits[Int(byte >> 4)])
            characters.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: characters, as: UTF8.self)
    }

    /// Hamming distance of two codes of equal length.
    public static func distance(_ a: [UInt64], _ b: [UInt64]) -> Int {
        precondition(a.count == b.count, "codes of different lengths: \(a.count) and \(b.count) words")
        var total = 0
        for index in a.indices { total += (a[index] ^ b[index]).nonzeroBitCount }
        return total
    }
}

/// An in-memory index of (id, code) pairs. Not thread-safe: callers serialise access.
public final class HammingIndex {
    /// Code length in bits: a multiple of 8 in 8...1024.
    public let bits: Int
    /// Words per code (`bits` rounded up to whole 64-bit words).
    public let wordsPerCode: Int
    /// Keeps only the valid bits of the last word, so stray high bits never count.
    private let lastWordMask: UInt64
    /// Row-major codes: slot s occupies words s * wordsPerCode ..< (s + 1) * wordsPerCode.
    private var storage: [UInt64] = []
    /// The id stored in each slot.
    private var slotIDs: [Int64] = []
    /// Where each id lives, so add/replace/remove never scan.
    private var slotOfID: [Int64: Int] = [:]

    public init(bits: Int) throws {
        guard bits >= 8, bits <= 1024, bits % 8 == 0 else { throw HammingIndexError.unsupportedBitCount(bits) }
        self.bits = bits
        self.wordsPerCode = BinaryCode.wordCount(bits: bits)
        let tail = bits % 64
        self.lastWordMask = tail == 0 ? ~0 : (1 << UInt64(tail)) - 1
    }

    /// Number of stored codes.
    public var count: Int { slotIDs.count }

    /// Every stored id, in storage order (not sorted).
    public var ids: [Int64] { slotIDs }

    /// True when `id` is stored.
    public func contains(id: Int64) -> Bool { slotOfID[id] != nil }

    /// Reserves room for `capacity` codes, to avoid regrowth during a bulk load.
    public func reserveCapacity(_ capacity: Int) {
        storage.reserveCapacity(capacity * wordsPerCode)
        slotIDs.reserveCapacity(capacity)
        slotOfID.reserveCapacity(capacity)
    }

    /// Adds a code, or replaces the code stored for `id`.
    public func add(id: Int64, code: [UInt64]) throws {
        guard code.count == wordsPerCode else {
            throw HammingIndexError.codeLengthMismatch(expectedWords: wordsPerCode, got: code.count)
        }
        if let slot = slotOfID[id] {
            let base = slot * wordsPerCode
            for word in 0..<wordsPerCode { storage[base + word] = code[word] }
            storage[base + wordsPerCode - 1] &= lastWordMask
        } else {
            slotOfID[id] = slotIDs.count
            slotIDs.append(id)
            storage.append(contentsOf: code)
            storage[storage.count - 1] &= lastWordMask
        }
    }

    /// Removes `id`; returns false when it was not stored.
    @discardableResult public func remove(id: Int64) -> Bool {
        guard let slot = slotOfID.removeValue(forKey: id) else { return false }
        let last = slotIDs.count - 1
        if slot != last {
            // Swap-with-last keeps the buffer dense without shifting every later row.
            let movedID = slotIDs[last]
            slotIDs[slot] = movedID
            slotOfID[movedID] = slot
            let from = last * wordsPerCode, to = slot * wordsPerCode
            for word in 0..<wordsPerCode { storage[to + word] = storage[from + word] }
        }
        slotIDs.removeLast()
        storage.removeLast(wordsPerCode)
        return true
    }

    /// Removes every code.
    public func removeAll() {
        storage.removeAll(keepingCapacity: true)
        slotIDs.removeAll(keepingCapacity: true)
        slotOfID.removeAll(keepingCapacity: true)
    }

    /// The code stored for `id`, if any.
    public func code(for id: Int64) -> [UInt64]? {
        guard let slot = slotOfID[id] else { return nil }
        return Array(storage[(slot * wordsPerCode)..<((slot + 1) * wordsPerCode)])
    }

    /// The k nearest codes, ordered by distance then id ascending; `maxDistance` bounds the distance,
    /// `excluding` leaves one id out (a stored image's own entry).
    public func search(_ query: [UInt64], k: Int, maxDistance: Int? = nil, excluding: Int64? = nil) throws -> [Neighbor] {
        let query = try checkedQuery(query)
        let limit = min(maxDistance ?? bits, bits)
        guard k > 0, limit >= 0, !slotIDs.isEmpty else { return [] }
        var collector = TopKCollector(k: min(k, slotIDs.count), limit: limit, excluding: excluding)
        scan(query, collector: &collector)
        return collector.sortedNeighbors()
    }

    /// Every code within `radius`, ordered by distance then id ascending.
    public func search(_ query: [UInt64], radius: Int) throws -> [Neighbor] {
        let query = try checkedQuery(query)
        guard radius >= 0, !slotIDs.isEmpty else { return [] }
        var collector = RadiusCollector(radius: min(radius, bits))
        scan(query, collector: &collector)
        return collector.neighbors.sorted { ($0.distance, $0.id) < ($1.distance, $1.id) }
    }

    /// The k nearest codes for each of `queries`, as `search(_:k:maxDistance:)` would return them one by one.
    /// Faster than separate calls for many queries: each block of stored codes is read from memory once
    /// and compared with every query while it is still in cache.
    public func search(batch queries: [[UInt64]], k: Int, maxDistance: Int? = nil) throws -> [[Neighbor]] {
        let checked = try queries.map(checkedQuery)
        let limit = min(maxDistance ?? bits, bits)
        guard k > 0, limit >= 0, !slotIDs.isEmpty, !queries.isEmpty else { return queries.map { _ in [] } }
        var collectors = checked.map { _ in TopKCollector(k: min(k, slotIDs.count), limit: limit, excluding: nil) }
        let flatQueries = checked.flatMap { $0 }
        storage.withUnsafeBufferPointer { codes in
            slotIDs.withUnsafeBufferPointer { ids in
                flatQueries.withUnsafeBufferPointer { flat in
                    let codes = codes.baseAddress!, ids = ids.baseAddress!, flat = flat.baseAddress!
                    let queryStarts = (0..<checked.count).map { flat + $0 * wordsPerCode }
                    switch wordsPerCode {
                    case 1: scanBlocks(queryStarts.map(OneWordKernel.init), codes: codes, ids: ids, count: slotIDs.count, collectors: &collectors)
                    case 2: scanBlocks(queryStarts.map(TwoWordKernel.init), codes: codes, ids: ids, count: slotIDs.count, collectors: &collectors)
                    case 4: scanBlocks(queryStarts.map(FourWordKernel.init), codes: codes, ids: ids, count: slotIDs.count, collectors: &collectors)
                    default:
                        let words = wordsPerCode
                        scanBlocks(queryStarts.map { AnyWidthKernel(query: $0, words: words) }, codes: codes, ids: ids,
                                   count: slotIDs.count, collectors: &collectors)
                    }
                }
            }
        }
        return collectors.map { $0.sortedNeighbors() }
    }

    /// Validates the length and clears bits past `bits`, so they cannot add to distances.
    private func checkedQuery(_ query: [UInt64]) throws -> [UInt64] {
        guard query.count == wordsPerCode else {
            throw HammingIndexError.codeLengthMismatch(expectedWords: wordsPerCode, got: query.count)
        }
        if query[wordsPerCode - 1] & ~lastWordMask == 0 { return query }
        var masked = query
        masked[wordsPerCode - 1] &= lastWordMask
        return masked
    }

    /// Picks the kernel for the code width once, then runs the blocked scan with it.
    private func scan<Collector: NeighborCollector>(_ query: [UInt64], collector: inout Collector) {
        storage.withUnsafeBufferPointer { codes in
            slotIDs.withUnsafeBufferPointer { ids in
                query.withUnsafeBufferPointer { query in
                    let codes = codes.baseAddress!, ids = ids.baseAddress!, query = query.baseAddress!
                    switch wordsPerCode {
                    case 1: scanBlocks(OneWordKernel(query: query), codes: codes, ids: ids, count: slotIDs.count, collector: &collector)
                    case 2: scanBlocks(TwoWordKernel(query: query), codes: codes, ids: ids, count: slotIDs.count, collector: &collector)
                    case 4: scanBlocks(FourWordKernel(query: query), codes: codes, ids: ids, count: slotIDs.count, collector: &collector)
                    default: scanBlocks(AnyWidthKernel(query: query, words: wordsPerCode), codes: codes, ids: ids, count: slotIDs.count, collector: &collector)
                    }
                }
            }
        }
    }
}

// MARK: - Scan machinery

/// Rows whose distances are computed together before any of them is compared with the threshold.
private let blockSize = 256

/// Writes the distances of `rows` consecutive codes to the query into `distances`.
private protocol DistanceKernel {
    var wordsPerCode: Int { get }
    /// Returns the smallest distance written, so a block with nothing near enough is skipped at once.
    func distances(_ codes: UnsafePointer<UInt64>, rows: Int, into distances: UnsafeMutablePointer<UInt32>) -> UInt32
}

/// 64-bit codes.
private struct OneWordKernel: DistanceKernel {
    let q0: UInt64
    init(query: UnsafePointer<UInt64>) { q0 = query[0] }
    var wordsPerCode: Int { 1 }
    @inline(__always)
    func distances(_ codes: UnsafePointer<UInt64>, rows: Int, into distances: UnsafeMutablePointer<UInt32>) -> UInt32 {
        var minimum = UInt32.max
        for row in 0..<rows {
            let distance = UInt32(truncatingIfNeeded: (codes[row] ^ q0).nonzeroBitCount)
            distances[row] = distance
            minimum = min(minimum, distance)
        }
        return minimum
    }
}

/// 65...128-bit codes.
private struct TwoWordKernel: DistanceKernel {
    let q0: UInt64, q1: UInt64
    init(query: UnsafePointer<UInt64>) { q0 = query[0]; q1 = query[1] }
    var wordsPerCode: Int { 2 }
    @inline(__always)
    func distances(_ codes: UnsafePointer<UInt64>, rows: Int, into distances: UnsafeMutablePointer<UInt32>) -> UInt32 {
        var minimum = UInt32.max
        for row in 0..<rows {
            let code = codes + 2 * row
            let distance = UInt32(truncatingIfNeeded: (code[0] ^ q0).nonzeroBitCount &+ (code[1] ^ q1).nonzeroBitCount)
            distances[row] = distance
            minimum = min(minimum, distance)
        }
        return minimum
    }
}

/// 193...256-bit codes.
private struct FourWordKernel: DistanceKernel {
    let q0: UInt64, q1: UInt64, q2: UInt64, q3: UInt64
    init(query: UnsafePointer<UInt64>) { q0 = query[0]; q1 = query[1]; q2 = query[2]; q3 = query[3] }
    var wordsPerCode: Int { 4 }
    @inline(__always)
    func distances(_ codes: UnsafePointer<UInt64>, rows: Int, into distances: UnsafeMutablePointer<UInt32>) -> UInt32 {
        var minimum = UInt32.max
        for row in 0..<rows {
            let code = codes + 4 * row
            let low = (code[0] ^ q0).nonzeroBitCount &+ (code[1] ^ q1).nonzeroBitCount
            let high = (code[2] ^ q2).nonzeroBitCount &+ (code[3] ^ q3).nonzeroBitCount
            let distance = UInt32(truncatingIfNeeded: low &+ high)
            distances[row] = distance
            minimum = min(minimum, distance)
        }
        return minimum
    }
}

/// Any other width: a loop over the words of each row.
private struct AnyWidthKernel: DistanceKernel {
    let query: UnsafePointer<UInt64>
    let words: Int
    init(query: UnsafePointer<UInt64>, words: Int) { self.query = query; self.words = words }
    var wordsPerCode: Int { words }
    @inline(__always)
    func distances(_ codes: UnsafePointer<UInt64>, rows: Int, into distances: UnsafeMutablePointer<UInt32>) -> UInt32 {
        var minimum = UInt32.max
        for row in 0..<rows {
            let code = codes + words * row
            var total = 0
            for word in 0..<words { total &+= (code[word] ^ query[word]).nonzeroBitCount }
            let distance = UInt32(truncatingIfNeeded: total)
            distances[row] = distance
            minimum = min(minimum, distance)
        }
        return minimum
    }
}

/// Receives candidate rows whose distance is within `threshold`; the threshold may shrink as it fills.
private protocol NeighborCollector {
    var threshold: UInt32 { get }
    mutating func offer(id: Int64, distance: UInt32)
}

/// Computes one block's distances and hands the rows within the threshold to the collector.
@inline(__always)
private func scanBlock<Kernel: DistanceKernel, Collector: NeighborCollector>(
    _ kernel: Kernel, codes: UnsafePointer<UInt64>, ids: UnsafePointer<Int64>, start: Int, rows: Int,
    distances: UnsafeMutablePointer<UInt32>, collector: inout Collector
) {
    let minimum = kernel.distances(codes + start * kernel.wordsPerCode, rows: rows, into: distances)
    var threshold = collector.threshold
    if minimum > threshold { return }
    for row in 0..<rows where distances[row] <= threshold {
        collector.offer(id: ids[start + row], distance: distances[row])
        threshold = collector.threshold
    }
}

/// Scans every stored code for one query, block by block.
@inline(__always)
private func scanBlocks<Kernel: DistanceKernel, Collector: NeighborCollector>(
    _ kernel: Kernel, codes: UnsafePointer<UInt64>, ids: UnsafePointer<Int64>, count: Int, collector: inout Collector
) {
    withUnsafeTemporaryAllocation(of: UInt32.self, capacity: blockSize) { buffer in
        var start = 0
        while start < count {
            let rows = min(blockSize, count - start)
            scanBlock(kernel, codes: codes, ids: ids, start: start, rows: rows, distances: buffer.baseAddress!, collector: &collector)
            start += rows
        }
    }
}

/// Scans every stored code for many queries: each block is compared with all queries before the next is read.
private func scanBlocks<Kernel: DistanceKernel, Collector: NeighborCollector>(
    _ kernels: [Kernel], codes: UnsafePointer<UInt64>, ids: UnsafePointer<Int64>, count: Int, collectors: inout [Collector]
) {
    withUnsafeTemporaryAllocation(of: UInt32.self, capacity: blockSize) { buffer in
        var start = 0
        while start < count {
            let rows = min(blockSize, count - start)
            for query in kernels.indices {
                scanBlock(kernels[query], codes: codes, ids: ids, start: start, rows: rows, distances: buffer.baseAddress!,
                          collector: &collectors[query])
            }
            start += rows
        }
    }
}

/// Keeps the k best (distance, id) pairs in a max-heap whose root is the worst kept pair.
private struct TopKCollector: NeighborCollector {
    let k: Int
    let excluding: Int64?
    /// Max-heap by (distance, id).
    var heap: [(distance: UInt32, id: Int64)] = []
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
private struct RadiusCollector: NeighborCollector {
    let threshold: UInt32
    var neighbors: [Neighbor] = []
    init(radius: Int) { threshold = UInt32(radius) }
    mutating func offer(id: Int64, distance: UInt32) {
        neighbors.append(Neighbor(id: id, distance: Int(distance)))
    }
}
