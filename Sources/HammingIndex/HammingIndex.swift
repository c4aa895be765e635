/// Exact Hamming-distance search over packed binary codes.
///
/// Codes live in one contiguous row-major buffer of 64-bit words. A search either scans every code
/// (the distance kernel for the code width and instruction set is chosen once; it filters a block
/// of rows by the current threshold so that only the few rows that can still enter the result come
/// back) or, for large collections, uses multi-index hashing, which looks at a small fraction of the
/// codes and returns exactly the same neighbors, ties included.

import Foundation

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
    case unsupportedKernel(HammingKernel)
    public var description: String {
        switch self {
        case .unsupportedKernel(let kernel): return "this CPU cannot run the \(kernel) kernel"
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

/// How an index answers searches.
public enum SearchStrategy: String, Sendable, CaseIterable {
    /// Compare the query with every stored code.
    case flatScan
    /// Multi-index hashing (Norouzi, Punjani & Fleet): probe substring tables at growing radius.
    case multiIndexHashing
    /// Multi-index hashing for large collections and small k, the flat scan otherwise.
    case automatic
}

/// The algorithm that answered one search.
public enum SearchMethod: String, Sendable {
    case flatScan, multiIndexHashing
}

/// The neighbors of one search and how they were found, for metrics.
public struct SearchOutcome: Equatable, Sendable {
    public let neighbors: [Neighbor]
    public let method: SearchMethod
    /// Codes whose full distance was computed: every stored code for a flat scan.
    public let codesCompared: Int
}

/// Size and memory of the multi-index hashing tables, once built.
public struct MultiIndexLayout: Equatable, Sendable {
    /// Bits of each substring; their sum is the code length.
    public let substringLengths: [Int]
    /// Codes in the tables; later additions are scanned flat until the next rebuild.
    public let indexedCodes: Int
    /// Bytes of all tables (bucket offsets and member slots).
    public let bytes: Int
}

/// An in-memory index of (id, code) pairs.
///
/// Mutations (`add`, `remove`, `removeAll`, setting `strategy`) need exclusive access; searches may
/// run concurrently with each other. The multi-index tables are built by the first search that needs
/// them (or by `prepareForSearch()`), under an internal lock, so a bulk load never rebuilds them.
public final class HammingIndex {
    /// Code length in bits: a multiple of 8 in 8...1024.
    public let bits: Int
    /// Words per code (`bits` rounded up to whole 64-bit words).
    public let wordsPerCode: Int
    /// The instruction set of the distance kernels.
    public let kernel: HammingKernel
    /// How searches are answered; `.automatic` picks per search.
    public var strategy: SearchStrategy

    /// `.automatic` scans collections smaller than this flat (for k <= 10; a larger k needs
    /// proportionally more codes: 10^6 for k = 100). Measured with `dsch bench index --codes learned`
    /// (64-bit synthetic clustered codes, 500 queries, median of 5; load average 11-13 on 2 shared
    /// cores, so rough): multi-index hashing ran at 0.7x the flat scan at 10^4 codes for k = 10, 1.0x
    /// at 3 * 10^4, 1.8x at 10^5 (k = 100: 0.5x), 13x at 10^6 (k = 100: 5.9x), 29x at 10^7 (k = 100: 25x).
    public static let multiIndexMinimumCount = 100_000
    /// `.automatic` scans flat for a larger k: the k-th distance grows with k and the number of probes
    /// grows steeply with it; k = 1000 has not been measured.
    public static let multiIndexMaximumK = 100

    /// Keeps only the valid bits of the last word, so stray high bits never count.
    private let lastWordMask: UInt64
    private let blockKernel: BlockKernel
    /// Row-major codes: slot s occupies words s * wordsPerCode ..< (s + 1) * wordsPerCode.
    private var storage: [UInt64] = []
    /// The id stored in each slot (also in removed slots, which `deadBits` marks).
    private var slotIDs: [Int64] = []
    /// Where each live id lives, so add/replace/remove never scan.
    private var slotOfID: [Int64: Int] = [:]
    /// One bit per slot, set for removed slots. Removal marks instead of moving rows, so that the
    /// slots the multi-index tables refer to stay put; `compact()` reclaims them in bulk.
    private var deadBits: [UInt64] = [0]
    private var deadCount = 0
    /// Guards `tables`, which searches build lazily.
    private let tablesLock = NSLock()
    private var tables: MultiIndexTables?
    /// How recent multi-index attempts went, so `.automatic` stops paying for attempts that fall back.
    let multiIndexTrials = MultiIndexTrials()
    /// A multi-index search gives up (and scans flat) once its probes plus bucket members exceed this
    /// many per stored code. Each is a random memory read (about 20-100 ns), against about 0.3-1 ns
    /// per row for the sequential scan, so break-even is near 1/50; on uniformly random 64-bit codes
    /// at 10^6 (where the k-th distance is large) every search gives up, and with 1/16 those searches
    /// took 4x a flat scan. Tests set it to infinity so that the multi-index path runs at every size.
    var multiIndexWorkPerCode: Double = 1.0 / 48

    /// Creates an empty index; `kernel` defaults to the fastest this CPU supports.
    public init(bits: Int, strategy: SearchStrategy = .automatic, kernel: HammingKernel = .fastest) throws {
        guard bits >= 8, bits <= 1024, bits % 8 == 0 else { throw HammingIndexError.unsupportedBitCount(bits) }
        guard kernel.isSupported else { throw HammingIndexError.unsupportedKernel(kernel) }
        self.bits = bits
        self.wordsPerCode = BinaryCode.wordCount(bits: bits)
        self.kernel = kernel
        self.strategy = strategy
        self.blockKernel = BlockKernel(kernel, words: wordsPerCode)
        let tail = bits % 64
        self.lastWordMask = tail == 0 ? ~0 : (1 << UInt64(tail)) - 1
    }

    /// Number of stored codes.
    public var count: Int { slotOfID.count }

    /// Every stored id, in storage order (not sorted).
    public var ids: [Int64] {
        deadCount == 0 ? slotIDs : slotIDs.indices.filter { !isDead($0) }.map { slotIDs[$0] }
    }

    /// True when `id` is stored.
    public func contains(id: Int64) -> Bool { slotOfID[id] != nil }

    /// Reserves room for `capacity` codes, to avoid regrowth during a bulk load.
    public func reserveCapacity(_ capacity: Int) {
        storage.reserveCapacity(capacity * wordsPerCode)
        slotIDs.reserveCapacity(capacity)
        slotOfID.reserveCapacity(capacity)
        deadBits.reserveCapacity(capacity / 64 + 1)
    }

    /// Adds a code, or replaces the code stored for `id`.
    public func add(id: Int64, code: [UInt64]) throws {
        guard code.count == wordsPerCode else {
            throw HammingIndexError.codeLengthMismatch(expectedWords: wordsPerCode, got: code.count)
        }
        if let slot = slotOfID[id] {
            if slot >= indexedSlots {
                // Not in the multi-index tables: the row can change in place.
                let base = slot * wordsPerCode
                for word in 0..<wordsPerCode { storage[base + word] = code[word] }
                storage[base + wordsPerCode - 1] &= lastWordMask
                return
            }
            // The tables file this slot under its old substrings: retire it and append a new one.
            markDead(slot)
        }
        slotOfID[id] = slotIDs.count
        slotIDs.append(id)
        storage.append(contentsOf: code)
        storage[storage.count - 1] &= lastWordMask
        if slotIDs.count > deadBits.count * 64 { deadBits.append(0) }
    }

    /// Removes `id`; returns false when it was not stored. Constant time: the slot is marked, and
    /// once a quarter of the slots are marked they are reclaimed in one pass.
    @discardableResult public func remove(id: Int64) -> Bool {
        guard let slot = slotOfID.removeValue(forKey: id) else { return false }
        if slot == slotIDs.count - 1 && slot >= indexedSlots {
            slotIDs.removeLast()
            storage.removeLast(wordsPerCode)
            return true
        }
        markDead(slot)
        if deadCount > max(1024, slotIDs.count / 4) { compact() }
        return true
    }

    /// Removes every code.
    public func removeAll() {
        storage.removeAll(keepingCapacity: true)
        slotIDs.removeAll(keepingCapacity: true)
        slotOfID.removeAll(keepingCapacity: true)
        deadBits = [0]
        deadCount = 0
        setTables(nil)
    }

    /// The code stored for `id`, if any.
    public func code(for id: Int64) -> [UInt64]? {
        guard let slot = slotOfID[id] else { return nil }
        return Array(storage[(slot * wordsPerCode)..<((slot + 1) * wordsPerCode)])
    }

    /// The k nearest codes, ordered by distance then id ascending; `maxDistance` bounds the distance,
    /// `excluding` leaves one id out (a stored image's own entry).
    public func search(_ query: [UInt64], k: Int, maxDistance: Int? = nil, excluding: Int64? = nil) throws -> [Neighbor] {
        try searchDetailed(query, k: k, maxDistance: maxDistance, excluding: excluding).neighbors
    }

    /// Every code within `radius`, ordered by distance then id ascending.
    public func search(_ query: [UInt64], radius: Int) throws -> [Neighbor] {
        try searchDetailed(query, radius: radius).neighbors
    }

    /// `search(_:k:maxDistance:excluding:)`, also telling which method answered.
    public func searchDetailed(_ query: [UInt64], k: Int, maxDistance: Int? = nil, excluding: Int64? = nil) throws -> SearchOutcome {
        let query = try checkedQuery(query)
        let limit = min(maxDistance ?? bits, bits)
        guard k > 0, limit >= 0, count > 0 else { return SearchOutcome(neighbors: [], method: .flatScan, codesCompared: 0) }
        var collector = TopKCollector(k: min(k, count), limit: limit, excluding: excluding)
        let tables = tablesForSearch(k: k)
        let (method, compared) = withContext { context in
            query.withUnsafeBufferPointer { search($0.baseAddress!, context: context, tables: tables, collector: &collector) }
        }
        return SearchOutcome(neighbors: collector.sortedNeighbors(), method: method, codesCompared: compared)
    }

    /// `search(_:radius:)`, also telling which method answered.
    public func searchDetailed(_ query: [UInt64], radius: Int) throws -> SearchOutcome {
        let query = try checkedQuery(query)
        guard radius >= 0, count > 0 else { return SearchOutcome(neighbors: [], method: .flatScan, codesCompared: 0) }
        var collector = RadiusCollector(radius: min(radius, bits))
        let tables = tablesForSearch(k: nil)
        let (method, compared) = withContext { context in
            query.withUnsafeBufferPointer { search($0.baseAddress!, context: context, tables: tables, collector: &collector) }
        }
        return SearchOutcome(neighbors: collector.sortedNeighbors(), method: method, codesCompared: compared)
    }

    /// The k nearest codes for each of `queries`, as `search(_:k:maxDistance:)` would return them one by one,
    /// computed on `threads` threads (default: every core). A flat scan reads each block of stored codes
    /// once for a group of queries, while it is still in cache.
    public func search(batch queries: [[UInt64]], k: Int, maxDistance: Int? = nil, threads: Int? = nil) throws -> [[Neighbor]] {
        let checked = try queries.map(checkedQuery)
        let limit = min(maxDistance ?? bits, bits)
        guard k > 0, limit >= 0, count > 0, !queries.isEmpty else { return queries.map { _ in [] } }
        let tables = tablesForSearch(k: k)
        let flatQueries = checked.flatMap { $0 }
        let results = UnsafeMutableBufferPointer<[Neighbor]>.allocate(capacity: checked.count)
        results.initialize(repeating: [])
        defer { results.deinitialize(); results.deallocate() }
        let template = TopKCollector(k: min(k, count), limit: limit, excluding: nil)
        let groupSize = HammingIndex.batchQueryGroup
        let groups = (checked.count + groupSize - 1) / groupSize
        let workers = max(1, min(threads ?? ProcessInfo.processInfo.activeProcessorCount, groups))
        withContext { context in
            flatQueries.withUnsafeBufferPointer { flat in
                let flat = flat.baseAddress!
                let work = { (worker: Int) in
                    for group in stride(from: worker, to: groups, by: workers) {
                        let range = (group * groupSize)..<min((group + 1) * groupSize, checked.count)
                        if let tables {
                            for query in range {
                                var collector = template
                                _ = self.search(flat + query * self.wordsPerCode, context: context, tables: tables, collector: &collector)
                                results[query] = collector.sortedNeighbors()
                            }
                        } else {
                            var collectors = Array(repeating: template, count: range.count)
                            self.flatScan(queries: flat + range.lowerBound * self.wordsPerCode, context: context, collectors: &collectors)
                            for (offset, collector) in collectors.enumerated() { results[range.lowerBound + offset] = collector.sortedNeighbors() }
                        }
                    }
                }
                if workers == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: work) }
            }
        }
        return Array(results)
    }

    /// Builds the multi-index tables now if the strategy would use them, so that the first search
    /// after a bulk load does not pay for it.
    public func prepareForSearch() {
        _ = tablesForSearch(k: 1)
    }

    /// The multi-index tables' layout, or nil before they are built.
    public var multiIndexLayout: MultiIndexLayout? {
        tablesLock.lock()
        defer { tablesLock.unlock() }
        return tables.map { MultiIndexLayout(substringLengths: $0.substrings.map(\.length), indexedCodes: $0.indexedCodes, bytes: $0.bytes) }
    }

    // MARK: - Internals

    /// Queries that share each pass over the stored codes in a flat batch search.
    static let batchQueryGroup = 32
    /// Rows filtered per kernel call in a single-query scan: large enough to amortise the call,
    /// small enough that the first block (before the threshold has shrunk) hands back few rows.
    static let flatBlockRows = 1024
    /// Rows per pass in a batched scan: 4096 rows of up to 4 words stay in L1/L2 while every query of
    /// the group reads them.
    static let batchBlockRows = 4096

    private func isDead(_ slot: Int) -> Bool { (deadBits[slot >> 6] >> UInt64(slot & 63)) & 1 != 0 }

    private func markDead(_ slot: Int) {
        deadBits[slot >> 6] |= 1 << UInt64(slot & 63)
        deadCount += 1
    }

    /// Slots covered by the multi-index tables; rows below it must not change in place.
    private var indexedSlots: Int {
        tablesLock.lock()
        defer { tablesLock.unlock() }
        return tables?.indexedSlots ?? 0
    }

    private func setTables(_ newTables: MultiIndexTables?) {
        tablesLock.lock()
        tables = newTables
        tablesLock.unlock()
    }

    /// Moves live rows down over removed ones. Slots change, so the tables are dropped and rebuilt by
    /// the next search that needs them.
    private func compact() {
        var write = 0
        for read in 0..<slotIDs.count where !isDead(read) {
            if write != read {
                for word in 0..<wordsPerCode { storage[write * wordsPerCode + word] = storage[read * wordsPerCode + word] }
                slotIDs[write] = slotIDs[read]
                slotOfID[slotIDs[write]] = write
            }
            write += 1
        }
        slotIDs.removeLast(slotIDs.count - write)
        storage.removeLast(storage.count - write * wordsPerCode)
        deadBits = [UInt64](repeating: 0, count: write / 64 + 1)
        deadCount = 0
        setTables(nil)
    }

    /// Whether multi-index hashing should answer a search for `k` neighbors (nil: a radius search).
    private func usesMultiIndex(k: Int?) -> Bool {
        switch strategy {
        case .flatScan: return false
        case .multiIndexHashing: return true
        case .automatic:
            // A radius search counts as k = 10: its cost is bounded by the radius, and a search that
            // would cost more than a scan falls back to one.
            let k = k ?? 10
            return k <= Self.multiIndexMaximumK && count >= Self.multiIndexMinimumCount * max(1, k / 10)
                && multiIndexTrials.shouldTry()
        }
    }

    /// The tables to search with, built or rebuilt first when missing or when too many codes were
    /// added since (those are scanned flat, which must stay a small part of the work); nil when the
    /// strategy says flat.
    private func tablesForSearch(k: Int?) -> MultiIndexTables? {
        guard usesMultiIndex(k: k), count > 0 else { return nil }
        tablesLock.lock()
        defer { tablesLock.unlock() }
        if let tables, slotIDs.count - tables.indexedSlots <= max(4096, tables.indexedSlots / 64) { return tables }
        let substringCount = MultiIndexTables.substringCount(bits: bits, count: count)
        let built = withContext { context in
            MultiIndexTables(context: context, slots: slotIDs.count, bits: bits, substringCount: substringCount)
        }
        tables = built
        return built
    }

    /// Raw pointers to the rows, ids and removal marks, valid inside `body`.
    private func withContext<Result>(_ body: (SearchContext) throws -> Result) rethrows -> Result {
        try storage.withUnsafeBufferPointer { codes in
            try slotIDs.withUnsafeBufferPointer { ids in
                try deadBits.withUnsafeBufferPointer { dead in
                    // An empty array may have no base address; nothing is read through it then.
                    let codes = codes.baseAddress ?? UnsafePointer(bitPattern: 8)!
                    let ids = ids.baseAddress ?? UnsafePointer(bitPattern: 8)!
                    return try body(SearchContext(codes: codes, ids: ids, deadBits: dead.baseAddress!, anyDead: deadCount > 0,
                                                  words: wordsPerCode, slots: slotIDs.count))
                }
            }
        }
    }

    /// One query with multi-index hashing when `tables` is given (falling back to a flat scan when it
    /// would do more work than one), else a flat scan.
    private func search<Collector: NeighborCollector>(_ query: UnsafePointer<UInt64>, context: SearchContext, tables: MultiIndexTables?,
                                                      collector: inout Collector) -> (SearchMethod, Int) {
        if let tables {
            let initial = collector
            // Codes added since the tables were built are scanned first; their neighbors also
            // shrink the threshold before any probe.
            flatScan(query, context: context, range: tables.indexedSlots..<context.slots, collector: &collector)
            let workLimit = multiIndexWorkPerCode * Double(context.slots)
            if let compared = tables.search(query, context: context, collector: &collector, workLimit: workLimit) {
                multiIndexTrials.record(fellBack: false)
                return (.multiIndexHashing, compared + context.slots - tables.indexedSlots)
            }
            multiIndexTrials.record(fellBack: true)
            collector = initial
        }
        flatScan(query, context: context, range: 0..<context.slots, collector: &collector)
        return (.flatScan, context.slots)
    }

    /// Offers every live row of `range` within the collector's threshold, a block at a time.
    private func flatScan<Collector: NeighborCollector>(_ query: UnsafePointer<UInt64>, context: SearchContext, range: Range<Int>,
                                                        collector: inout Collector) {
        guard !range.isEmpty else { return }
        let blockRows = Self.flatBlockRows
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 2 * blockRows) { buffer in
            let foundRows = buffer.baseAddress!, foundDistances = foundRows + blockRows
            var start = range.lowerBound
            while start < range.upperBound {
                let rows = min(blockRows, range.upperBound - start)
                let found = blockKernel.filter(context.codes + start * wordsPerCode, rows: rows, query: query, threshold: collector.threshold,
                                               foundRows: foundRows, foundDistances: foundDistances)
                offer(found: found, start: start, foundRows: foundRows, foundDistances: foundDistances, context: context, collector: &collector)
                start += rows
            }
        }
    }

    /// Scans every row for a group of queries stored one after another at `queries`: each block of
    /// rows is filtered for every query before the next block is read.
    private func flatScan(queries: UnsafePointer<UInt64>, context: SearchContext, collectors: inout [TopKCollector]) {
        let blockRows = Self.batchBlockRows
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 2 * blockRows) { buffer in
            let foundRows = buffer.baseAddress!, foundDistances = foundRows + blockRows
            var start = 0
            while start < context.slots {
                let rows = min(blockRows, context.slots - start)
                for query in collectors.indices {
                    let found = blockKernel.filter(context.codes + start * wordsPerCode, rows: rows, query: queries + query * wordsPerCode,
                                                   threshold: collectors[query].threshold, foundRows: foundRows, foundDistances: foundDistances)
                    offer(found: found, start: start, foundRows: foundRows, foundDistances: foundDistances, context: context,
                          collector: &collectors[query])
                }
                start += rows
            }
        }
    }

    @inline(__always)
    private func offer<Collector: NeighborCollector>(found: Int, start: Int, foundRows: UnsafeMutablePointer<UInt32>,
                                                     foundDistances: UnsafeMutablePointer<UInt32>, context: SearchContext,
                                                     collector: inout Collector) {
        for index in 0..<found {
            let slot = start + Int(foundRows[index])
            let distance = foundDistances[index]
            // The threshold may have shrunk since the block was filtered.
            guard distance <= collector.threshold, !context.isDead(slot) else { continue }
            collector.offer(id: context.ids[slot], distance: distance)
        }
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
}

/// Raw views of an index's rows for the duration of one search.
struct SearchContext {
    let codes: UnsafePointer<UInt64>
    let ids: UnsafePointer<Int64>
    let deadBits: UnsafePointer<UInt64>
    let anyDead: Bool
    let words: Int
    /// Rows in `codes`, removed ones included.
    let slots: Int

    @inline(__always) func isDead(_ slot: Int) -> Bool {
        anyDead && (deadBits[slot >> 6] >> UInt64(slot & 63)) & 1 != 0
    }
}

/// Recent outcomes of multi-index attempts. On codes spread like random ones nearly every attempt
/// exceeds its work limit and falls back, costing about five flat scans (measured at 10⁶ random 64-bit
/// codes: 341 against 1,888 queries/s); once the last attempts mostly fell back, `.automatic` scans flat
/// and tries multi-index hashing again only every `retryEvery` searches, so it recovers when the codes
/// change (a trained model replacing the cold-start LSH).
final class MultiIndexTrials: @unchecked Sendable {
    private let lock = NSLock()
    /// Up one per fallback, down two per success, within 0...`giveUpScore`.
    private var score = 0
    private var skipped = 0
    /// The score at which attempts stop.
    static let giveUpScore = 8
    /// Searches scanned flat between two attempts once attempts have stopped.
    static let retryEvery = 64

    /// Whether the next eligible search should try multi-index hashing.
    func shouldTry() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard score >= Self.giveUpScore else { return true }
        skipped += 1
        guard skipped >= Self.retryEvery else { return false }
        skipped = 0
        return true
    }

    /// Records how an attempt ended.
    func record(fellBack: Bool) {
        lock.lock()
        score = fellBack ? min(score + 1, Self.giveUpScore) : max(score - 2, 0)
        lock.unlock()
    }

    /// Whether attempts have stopped for now.
    var isScanningFlat: Bool {
        lock.lock()
        defer { lock.unlock() }
        return score >= Self.giveUpScore
    }
}
