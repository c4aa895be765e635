import Foundation

/// Multi-index hashing (Norouzi, Punjani & Fleet, "Fast Exact Search in Hamming Space with
/// Multi-Index Hashing", CVPR 2012 / TPAMI 2014) over the slots an index had when it was built.
///
/// The B-bit code is cut into m disjoint substrings of floor(B/m) or ceil(B/m) bits, and each
/// substring has a table from its value to the slots holding it. By the pigeonhole principle, a code
/// whose substring i differs from the query's in more than r_i bits for every i is at distance at
/// least sum(r_i + 1); so probing table i at every value within radius r_i of the query's substring
/// finds every code nearer than that bound. A search probes the tables in turn at growing radius,
/// verifies each code found with its full distance, and stops as soon as the bound passes the
/// current k-th distance (or the radius): nothing unseen can enter the result, ties included.
///
/// Each table is a direct-address array of bucket offsets (2^length + 1 entries) over one array of
/// member slots sorted by substring value, so a probe is two reads and the members of a bucket are
/// contiguous. Memory: 4 bytes per code per table for the members, plus 4 * 2^length bytes per
/// table for the offsets; with m = B / log2(N) the offsets also come to a few bytes per code.
final class MultiIndexTables {
    /// Where a substring lies in the code.
    struct SubstringRange {
        let start: Int
        let length: Int
    }

    /// Longer substrings would make the offset arrays too large (4 * 2^24 bytes = 64 MiB per table).
    static let maximumSubstringLength = 24

    let substrings: [SubstringRange]
    /// Slots 0..<indexedSlots are in the tables (removed ones were left out).
    let indexedSlots: Int
    /// Live codes in the tables.
    let indexedCodes: Int
    /// Per table: the slots with substring value v are members[offsets[v] ..< offsets[v + 1]].
    private let offsets: [[UInt32]]
    private let members: [[UInt32]]

    /// Bytes of offsets and members.
    var bytes: Int { offsets.reduce(0) { $0 + $1.count * 4 } + members.reduce(0) { $0 + $1.count * 4 } }

    /// m = round(B / log2 N), the paper's choice: substrings of about log2 N bits give buckets of about
    /// one code each, which balances the number of probes against the number of candidates.
    static func substringCount(bits: Int, count: Int) -> Int {
        let ideal = Int((Double(bits) / log2(Double(max(count, 2)))).rounded())
        let fewestAllowed = (bits + maximumSubstringLength - 1) / maximumSubstringLength
        return min(max(ideal, fewestAllowed, 1), bits)
    }

    /// The substring at `range` of a code, as an integer.
    @inline(__always)
    static func substring(_ code: UnsafePointer<UInt64>, _ range: SubstringRange) -> UInt32 {
        let word = range.start >> 6, shift = range.start & 63
        var value = code[word] >> UInt64(shift)
        if shift + range.length > 64 { value |= code[word + 1] << UInt64(64 - shift) }
        return UInt32(truncatingIfNeeded: value & ((1 << UInt64(range.length)) - 1))
    }

    /// Builds the tables by counting sort: one pass to size the buckets, one to fill them.
    init(context: SearchContext, slots: Int, bits: Int, substringCount: Int) {
        let shortLength = bits / substringCount
        let longCount = bits % substringCount
        var ranges: [SubstringRange] = []
        var start = 0
        for table in 0..<substringCount {
            // The longer substrings come first; lengths differ by at most one bit.
            let length = shortLength + (table < longCount ? 1 : 0)
            ranges.append(SubstringRange(start: start, length: length))
            start += length
        }
        substrings = ranges
        indexedSlots = slots
        var live = 0
        for slot in 0..<slots where !context.isDead(slot) { live += 1 }
        indexedCodes = live

        var allOffsets: [[UInt32]] = []
        var allMembers: [[UInt32]] = []
        for range in ranges {
            var offsets = [UInt32](repeating: 0, count: (1 << range.length) + 1)
            var members = [UInt32](repeating: 0, count: live)
            offsets.withUnsafeMutableBufferPointer { offsets in
                members.withUnsafeMutableBufferPointer { members in
                    for slot in 0..<slots where !context.isDead(slot) {
                        let value = Int(Self.substring(context.codes + slot * context.words, range))
                        offsets[value + 1] &+= 1
                    }
                    for value in 0..<(offsets.count - 1) { offsets[value + 1] &+= offsets[value] }
                    // offsets[v] now is the start of bucket v; it serves as the fill cursor and ends
                    // at the start of bucket v + 1, so the array is shifted back by one afterwards.
                    for slot in 0..<slots where !context.isDead(slot) {
                        let value = Int(Self.substring(context.codes + slot * context.words, range))
                        members[Int(offsets[value])] = UInt32(truncatingIfNeeded: slot)
                        offsets[value] &+= 1
                    }
                    var previous: UInt32 = 0
                    for value in 0..<(offsets.count - 1) {
                        let end = offsets[value]
                        offsets[value] = previous
                        previous = end
                    }
                    offsets[offsets.count - 1] = previous
                }
            }
            allOffsets.append(offsets)
            allMembers.append(members)
        }
        offsets = allOffsets
        members = allMembers
    }

    /// Offers every code nearer than the collector's final threshold (every code within it, for a
    /// radius search) exactly once, in no particular order. Returns the number of full distances
    /// computed, or nil once probes plus bucket members pass `workLimit` (the caller then scans flat).
    func search<Collector: NeighborCollector>(_ query: UnsafePointer<UInt64>, context: SearchContext, collector: inout Collector,
                                              workLimit: Double) -> Int? {
        let tableCount = substrings.count
        let words = context.words
        var work = 0
        let workLimit = workLimit >= Double(Int.max) ? Int.max : Int(workLimit)
        var compared = 0
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * tableCount) { buffer -> Int? in
            let querySubstrings = buffer.baseAddress!
            // Radius up to which each table has been probed; -1 before its first probe.
            let probedRadius = querySubstrings + tableCount
            for table in 0..<tableCount {
                querySubstrings[table] = Int(Self.substring(query, substrings[table]))
                probedRadius[table] = -1
            }
            // Every code not yet offered is at least `bound` away: sum over tables of (probed radius + 1).
            var bound = 0
            var probe = 0
            while bound <= Int(collector.threshold) {
                let table = probe % tableCount, radius = probe / tableCount
                let length = substrings[table].length
                let querySubstring = UInt64(querySubstrings[table])
                let finished: Bool = offsets[table].withUnsafeBufferPointer { offsets in
                    members[table].withUnsafeBufferPointer { members in
                        // Every `length`-bit mask with `radius` bits set, in increasing order (Gosper's hack).
                        var mask: UInt64 = (1 << UInt64(radius)) - 1
                        let end: UInt64 = 1 << UInt64(length)
                        while mask < end {
                            let value = Int(querySubstring ^ mask)
                            let first = Int(offsets[value]), last = Int(offsets[value + 1])
                            work &+= 1 &+ (last &- first)
                            for position in first..<last {
                                let slot = Int(members[position])
                                let code = context.codes + slot * words
                                let distance = BlockKernel.distance(code, query, words: words)
                                compared &+= 1
                                guard distance <= collector.threshold, !context.isDead(slot),
                                      !foundEarlier(code, besides: table, querySubstrings: querySubstrings, probedRadius: probedRadius)
                                else { continue }
                                collector.offer(id: context.ids[slot], distance: distance)
                            }
                            if mask == 0 { break }
                            let lowest = mask & (~mask &+ 1)
                            let ripple = mask &+ lowest
                            mask = ripple | (((ripple ^ mask) >> 2) >> UInt64(lowest.trailingZeroBitCount))
                            if work > workLimit { return true }
                        }
                        return false
                    }
                }
                if finished { return nil }
                probedRadius[table] = radius
                bound += 1
                // A table probed at its full length has returned every code.
                if radius == length { break }
                probe += 1
            }
            return compared
        }
    }

    /// True when an earlier probe of another table already returned this code, i.e. its substring
    /// there is within the radius that table has been probed to. This replaces a per-search set of
    /// seen slots, which would cost an allocation or clearing proportional to the collection.
    @inline(__always)
    private func foundEarlier(_ code: UnsafePointer<UInt64>, besides table: Int, querySubstrings: UnsafeMutablePointer<Int>,
                              probedRadius: UnsafeMutablePointer<Int>) -> Bool {
        for other in 0..<substrings.count where other != table && probedRadius[other] >= 0 {
            let difference = (UInt64(Self.substring(code, substrings[other])) ^ UInt64(querySubstrings[other])).nonzeroBitCount
            if difference <= probedRadius[other] { return true }
        }
        return false
    }
}
