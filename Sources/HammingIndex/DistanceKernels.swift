import CHammingKernels

/// An instruction set for the distance kernels; `portable` is plain Swift and runs on any CPU.
public enum HammingKernel: String, CaseIterable, Sendable, CustomStringConvertible {
    case portable, popcnt, avx2, avx512

    public var description: String { rawValue }

    /// True when this CPU can run the kernel.
    public var isSupported: Bool {
        switch self {
        case .portable: return true
        case .popcnt: return dsch_hamming_isa_supported(DSCH_HAMMING_ISA_POPCNT) != 0
        case .avx2: return dsch_hamming_isa_supported(DSCH_HAMMING_ISA_AVX2) != 0
        case .avx512: return dsch_hamming_isa_supported(DSCH_HAMMING_ISA_AVX512) != 0
        }
    }

    /// The kernels this CPU can run, in `allCases` order (each later one is wider).
    public static let supported: [HammingKernel] = allCases.filter(\.isSupported)

    /// The widest kernel this CPU supports, detected once per process.
    public static let fastest: HammingKernel = supported.last ?? .portable

    fileprivate var instructionSet: Int32? {
        switch self {
        case .portable: return nil
        case .popcnt: return DSCH_HAMMING_ISA_POPCNT
        case .avx2: return DSCH_HAMMING_ISA_AVX2
        case .avx512: return DSCH_HAMMING_ISA_AVX512
        }
    }
}

/// Distances for a block of consecutive rows, with the implementation chosen once for a kernel and
/// code width: either a C function pointer or the portable Swift loop.
struct BlockKernel {
    let words: Int
    private let distancesFunction: dsch_hamming_distances_function?
    private let filterFunction: dsch_hamming_filter_function?

    init(_ kernel: HammingKernel, words: Int) {
        precondition(kernel.isSupported, "kernel \(kernel) is not supported by this CPU")
        self.words = words
        if let instructionSet = kernel.instructionSet {
            let functions = dsch_hamming_kernel_for(instructionSet, words)
            distancesFunction = functions.distances
            filterFunction = functions.filter
        } else {
            distancesFunction = nil
            filterFunction = nil
        }
    }

    /// Writes the distance of each of `rows` codes to the query.
    @inline(__always)
    func distances(_ codes: UnsafePointer<UInt64>, rows: Int, query: UnsafePointer<UInt64>, into distances: UnsafeMutablePointer<UInt32>) {
        if let distancesFunction {
            distancesFunction(codes, rows, words, query, distances)
        } else {
            PortableKernel.distances(codes, rows: rows, words: words, query: query, into: distances)
        }
    }

    /// Writes the rows (numbered from 0 at `codes`) within `threshold` and their distances; returns how many.
    @inline(__always)
    func filter(_ codes: UnsafePointer<UInt64>, rows: Int, query: UnsafePointer<UInt64>, threshold: UInt32,
                foundRows: UnsafeMutablePointer<UInt32>, foundDistances: UnsafeMutablePointer<UInt32>) -> Int {
        if let filterFunction {
            return filterFunction(codes, rows, words, query, threshold, foundRows, foundDistances)
        }
        return PortableKernel.filter(codes, rows: rows, words: words, query: query, threshold: threshold,
                                     foundRows: foundRows, foundDistances: foundDistances)
    }

    /// Distance of one row, for candidates found by multi-index hashing.
    @inline(__always)
    static func distance(_ code: UnsafePointer<UInt64>, _ query: UnsafePointer<UInt64>, words: Int) -> UInt32 {
        var total = 0
        for word in 0..<words { total &+= (code[word] ^ query[word]).nonzeroBitCount }
        return UInt32(truncatingIfNeeded: total)
    }
}

/// The fallback kernels in Swift: the width is switched on once per block, never per row.
enum PortableKernel {
    static func distances(_ codes: UnsafePointer<UInt64>, rows: Int, words: Int, query: UnsafePointer<UInt64>,
                          into distances: UnsafeMutablePointer<UInt32>) {
        switch words {
        case 1: distancesLoop(OneWord(query), codes, rows: rows, into: distances)
        case 2: distancesLoop(TwoWords(query), codes, rows: rows, into: distances)
        case 4: distancesLoop(FourWords(query), codes, rows: rows, into: distances)
        default: distancesLoop(AnyWords(query, words: words), codes, rows: rows, into: distances)
        }
    }

    static func filter(_ codes: UnsafePointer<UInt64>, rows: Int, words: Int, query: UnsafePointer<UInt64>, threshold: UInt32,
                       foundRows: UnsafeMutablePointer<UInt32>, foundDistances: UnsafeMutablePointer<UInt32>) -> Int {
        switch words {
        case 1: return filterLoop(OneWord(query), codes, rows: rows, threshold: threshold, foundRows: foundRows, foundDistances: foundDistances)
        case 2: return filterLoop(TwoWords(query), codes, rows: rows, threshold: threshold, foundRows: foundRows, foundDistances: foundDistances)
        case 4: return filterLoop(FourWords(query), codes, rows: rows, threshold: threshold, foundRows: foundRows, foundDistances: foundDistances)
        default:
            return filterLoop(AnyWords(query, words: words), codes, rows: rows, threshold: threshold,
                              foundRows: foundRows, foundDistances: foundDistances)
        }
    }

    @inline(__always)
    private static func distancesLoop<Row: RowDistance>(_ row: Row, _ codes: UnsafePointer<UInt64>, rows: Int,
                                                          into distances: UnsafeMutablePointer<UInt32>) {
        for index in 0..<rows { distances[index] = row.distance(codes + index * row.words) }
    }

    @inline(__always)
    private static func filterLoop<Row: RowDistance>(_ row: Row, _ codes: UnsafePointer<UInt64>, rows: Int, threshold: UInt32,
                                                       foundRows: UnsafeMutablePointer<UInt32>,
                                                       foundDistances: UnsafeMutablePointer<UInt32>) -> Int {
        var found = 0
        for index in 0..<rows {
            let distance = row.distance(codes + index * row.words)
            // Written unconditionally and kept only by advancing `found`: no branch to mispredict.
            foundRows[found] = UInt32(truncatingIfNeeded: index)
            foundDistances[found] = distance
            found &+= distance <= threshold ? 1 : 0
        }
        return found
    }
}

/// Distance of one row to a query held in registers.
private protocol RowDistance {
    var words: Int { get }
    func distance(_ code: UnsafePointer<UInt64>) -> UInt32
}

private struct OneWord: RowDistance {
    let q0: UInt64
    init(_ query: UnsafePointer<UInt64>) { q0 = query[0] }
    var words: Int { 1 }
    @inline(__always) func distance(_ code: UnsafePointer<UInt64>) -> UInt32 {
        UInt32(truncatingIfNeeded: (code[0] ^ q0).nonzeroBitCount)
    }
}

private struct TwoWords: RowDistance {
    let q0: UInt64, q1: UInt64
    init(_ query: UnsafePointer<UInt64>) { q0 = query[0]; q1 = query[1] }
    var words: Int { 2 }
    @inline(__always) func distance(_ code: UnsafePointer<UInt64>) -> UInt32 {
        UInt32(truncatingIfNeeded: (code[0] ^ q0).nonzeroBitCount &+ (code[1] ^ q1).nonzeroBitCount)
    }
}

private struct FourWords: RowDistance {
    let q0: UInt64, q1: UInt64, q2: UInt64, q3: UInt64
    init(_ query: UnsafePointer<UInt64>) { q0 = query[0]; q1 = query[1]; q2 = query[2]; q3 = query[3] }
    var words: Int { 4 }
    @inline(__always) func distance(_ code: UnsafePointer<UInt64>) -> UInt32 {
        let low = (code[0] ^ q0).nonzeroBitCount &+ (code[1] ^ q1).nonzeroBitCount
        let high = (code[2] ^ q2).nonzeroBitCount &+ (code[3] ^ q3).nonzeroBitCount
        return UInt32(truncatingIfNeeded: low &+ high)
    }
}

private struct AnyWords: RowDistance {
    let query: UnsafePointer<UInt64>
    let words: Int
    init(_ query: UnsafePointer<UInt64>, words: Int) { self.query = query; self.words = words }
    @inline(__always) func distance(_ code: UnsafePointer<UInt64>) -> UInt32 {
        var total = 0
        for word in 0..<words { total &+= (code[word] ^ query[word]).nonzeroBitCount }
        return UInt32(truncatingIfNeeded: total)
    }
}
