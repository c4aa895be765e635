import Foundation
import Evaluation
import Hashing
import HammingIndex
import NeuralNet

/// Which codes `dsch bench index` searches.
private enum CodeKind: String {
    /// Uniformly random codes: the hardest case for multi-index hashing (every neighbor is far).
    case random
    /// Codes like a trained model's: from `--codes-file`, or synthetic clusters without one.
    case learned
}

/// Options of `dsch bench index`, with the defaults the report quotes.
private struct IndexBenchmarkOptions {
    var counts = [1_000_000]
    var bits = 64
    var queries = 200
    var ks = [10]
    var runs = 5
    var seed: UInt64 = 42
    var codes = CodeKind.random
    var codesFile: String?
    var faissScript = "bench/faiss_hamming.py"
    /// Bit flips faiss's IndexBinaryMultiHash probes per table (its recall/speed trade-off).
    var multiHashFlips = 2
    /// Distance kernel of our index (default: the fastest this CPU supports).
    var kernel = HammingKernel.fastest
    /// Skips faiss even when it is installed, for quick runs.
    var withoutFaiss = false
    /// Queries whose distances must agree with faiss.
    var checked = 20

    init(arguments: [String]) throws {
        var remaining = arguments[...]
        func value(for flag: String) throws -> String {
            guard let value = remaining.popFirst() else { throw IndexBenchmarkError.missingValue(flag) }
            return value
        }
        func integer(_ text: String, for flag: String) throws -> Int {
            guard let number = Int(text), number > 0 else { throw IndexBenchmarkError.badValue(flag, text) }
            return number
        }
        func integers(for flag: String) throws -> [Int] {
            try value(for: flag).split(separator: ",").map { try integer(String($0), for: flag) }
        }
        while let flag = remaining.popFirst() {
            switch flag {
            case "--count": counts = try integers(for: flag)
            case "--bits": bits = try integer(try value(for: flag), for: flag)
            case "--queries": queries = try integer(try value(for: flag), for: flag)
            case "--k": ks = try integers(for: flag)
            case "--runs": runs = try integer(try value(for: flag), for: flag)
            case "--seed":
                let text = try value(for: flag)
                guard let number = UInt64(text) else { throw IndexBenchmarkError.badValue(flag, text) }
                seed = number
            case "--codes":
                let text = try value(for: flag)
                guard let kind = CodeKind(rawValue: text) else { throw IndexBenchmarkError.badValue(flag, text) }
                codes = kind
            case "--codes-file": codesFile = try value(for: flag)
            case "--faiss-script": faissScript = try value(for: flag)
            case "--multihash-flips": multiHashFlips = try integer(try value(for: flag), for: flag)
            case "--kernel":
                let text = try value(for: flag)
                guard let choice = HammingKernel(rawValue: text), choice.isSupported else { throw IndexBenchmarkError.badValue(flag, text) }
                kernel = choice
            case "--no-faiss": withoutFaiss = true
            default: throw IndexBenchmarkError.unknownOption(flag)
            }
        }
        if codesFile != nil && codes == .random { throw IndexBenchmarkError.badValue("--codes-file", "needs --codes learned") }
    }
}

/// Why `dsch bench index` stopped.
enum IndexBenchmarkError: Error, CustomStringConvertible {
    case unknownOption(String)
    case missingValue(String)
    case badValue(String, String)
    case badCodesFile(String)
    case faissFailed(String)
    case resultsDiffer(query: Int, ours: [Int], faiss: [Int])

    var description: String {
        switch self {
        case .unknownOption(let flag):
            return "unknown option \(flag); options: --count N[,N...] --bits B --queries Q --k K[,K...] --runs R --seed S "
                + "--codes random|learned --codes-file PATH --multihash-flips F --kernel portable|popcnt|avx2|avx512 --no-faiss --faiss-script PATH"
        case .missingValue(let flag): return "\(flag) needs a value"
        case .badValue(let flag, let text): return "\(flag): unexpected value \(text)"
        case .badCodesFile(let reason): return "--codes-file: \(reason)"
        case .faissFailed(let reason): return "faiss comparison failed: \(reason)"
        case .resultsDiffer(let query, let ours, let faiss):
            return "query \(query): our distances \(ours) differ from faiss's \(faiss)"
        }
    }
}

private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

private func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

/// Produces the stored codes and the queries for one kind of data.
private struct CodeSource {
    let bits: Int
    let words: Int
    var generator: SplitMix64
    /// Real codes (from a file) or cluster centres (synthetic); empty for random codes.
    let bases: [[UInt64]]
    /// Bits flipped in a base to make one stored code or query.
    let flips: ClosedRange<Int>
    let description: String

    init(options: IndexBenchmarkOptions) throws {
        bits = options.bits
        words = BinaryCode.wordCount(bits: bits)
        generator = SplitMix64(seed: options.seed)
        switch (options.codes, options.codesFile) {
        case (.random, _):
            bases = []
            flips = 0...0
            description = "uniformly random codes"
        case (.learned, let path?):
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let rowBytes = bits / 8
            guard !data.isEmpty, data.count % rowBytes == 0 else {
                throw IndexBenchmarkError.badCodesFile("\(data.count) bytes is not a whole number of \(rowBytes)-byte codes")
            }
            let bytes = [UInt8](data), bits = options.bits
            bases = stride(from: 0, to: bytes.count, by: rowBytes).map { BinaryCode.words(Array(bytes[$0..<($0 + rowBytes)]), bits: bits)! }
            flips = 1...3
            description = "learned codes: \(bases.count) real codes from \(path), grown by flipping 1-3 random bits of randomly chosen real codes"
        case (.learned, nil):
            var generator = SplitMix64(seed: options.seed ^ 0x5EED)
            let bits = options.bits
            let mask: UInt64 = bits % 64 == 0 ? ~0 : (1 << UInt64(bits % 64)) - 1
            bases = (0..<2000).map { _ in
                var code = (0..<BinaryCode.wordCount(bits: bits)).map { _ in generator.next() }
                code[code.count - 1] &= mask
                return code
            }
            flips = 2...6
            description = "learned-like codes SYNTHESISED (no --codes-file): 2000 random centres, each code a centre with 2-6 random bits flipped"
        }
    }

    /// One more code: random, or a base with a few bits flipped.
    mutating func next() -> [UInt64] {
        if bases.isEmpty {
            var code = (0..<words).map { _ in generator.next() }
            if bits % 64 != 0 { code[words - 1] &= (1 << UInt64(bits % 64)) - 1 }
            return code
        }
        var code = bases[Int(generator.next() % UInt64(bases.count))]
        let flipCount = flips.lowerBound + Int(generator.next() % UInt64(flips.count))
        for _ in 0..<flipCount {
            let bit = Int(generator.next() % UInt64(bits))
            code[bit >> 6] ^= 1 << UInt64(bit & 63)
        }
        return code
    }
}

/// `dsch bench index`: Hamming top-k throughput of the flat scan and of multi-index hashing, compared
/// with faiss's IndexBinaryFlat and IndexBinaryMultiHash when faiss is installed. Our runs alternate
/// with faiss's, so on a shared machine both medians see the same background load.
func runIndexBenchmark(arguments: [String]) throws {
    let options = try IndexBenchmarkOptions(arguments: arguments)
    // Line-buffered even into a file, so a long run (10^7 codes take minutes) shows progress.
    setvbuf(stdout, nil, _IOLBF, 0)
    let threads = ProcessInfo.processInfo.activeProcessorCount
    print("dsch bench index: \(options.bits)-bit codes, \(options.queries) queries, k=\(options.ks.map(String.init).joined(separator: ",")), "
        + "median of \(options.runs) runs, seed \(options.seed), kernel \(options.kernel) (supported: \(HammingKernel.supported.map(\.rawValue).joined(separator: ", ")))")
    print("load average at start: \(loadAverage())")
    for count in options.counts {
        try benchmark(count: count, options: options, threads: threads)
    }
    print("load average at end: \(loadAverage())")
}

private func benchmark(count: Int, options: IndexBenchmarkOptions, threads: Int) throws {
    var source = try CodeSource(options: options)
    let index = try HammingIndex(bits: options.bits, strategy: .flatScan, kernel: options.kernel)
    // Codes are kept only as the bytes faiss will read, so 10^7 codes fit in memory several times over.
    var codeBytes: [UInt8] = []
    codeBytes.reserveCapacity(count * options.bits / 8)
    index.reserveCapacity(count)
    let loadStart = DispatchTime.now()
    for id in 0..<count {
        let code = source.next()
        codeBytes.append(contentsOf: BinaryCode.bytes(code, bits: options.bits))
        try index.add(id: Int64(id), code: code)
    }
    let queries = (0..<options.queries).map { _ in source.next() }
    print("")
    print(String(format: "== %d codes (%@), loaded in %.1f s ==", count, source.description, seconds(since: loadStart)))

    var faiss: FaissServer?
    if !options.withoutFaiss && faissIsAvailable() {
        faiss = try FaissServer(options: options, codeBytes: codeBytes, queries: queries)
        codeBytes = []
    } else {
        print(options.withoutFaiss ? "faiss: skipped (--no-faiss)" : "faiss: not importable by python3, comparison skipped")
    }
    defer { faiss?.stop() }

    index.strategy = .multiIndexHashing
    let buildStart = DispatchTime.now()
    index.prepareForSearch()
    let buildSeconds = seconds(since: buildStart)
    let layout = index.multiIndexLayout!
    print(String(format: "multi-index hashing tables: %d substrings of %@ bits, %.1f MiB (%.1f bytes per code), built in %.2f s",
                 layout.substringLengths.count, layout.substringLengths.map(String.init).joined(separator: "/"),
                 Double(layout.bytes) / 1_048_576, Double(layout.bytes) / Double(count), buildSeconds))
    if let faiss {
        let bitsPerHash = min(layout.substringLengths.min()!, 63)
        let seconds = try faiss.buildMultiHash(tables: layout.substringLengths.count, bitsPerHash: bitsPerHash, flips: options.multiHashFlips)
        print(String(format: "faiss IndexBinaryMultiHash: %d tables of %d bits, nflip %d, built in %.2f s",
                     layout.substringLengths.count, bitsPerHash, options.multiHashFlips, seconds))
    }

    var checksum = 0
    func timedFlatSingle(_ k: Int) throws -> Double {
        index.strategy = .flatScan
        let start = DispatchTime.now()
        for query in queries { checksum &+= try index.search(query, k: k).last?.distance ?? 0 }
        return Double(queries.count) / seconds(since: start)
    }
    func timedFlatBatch(_ k: Int, threads: Int) throws -> Double {
        index.strategy = .flatScan
        let start = DispatchTime.now()
        checksum &+= try index.search(batch: queries, k: k, threads: threads).last?.last?.distance ?? 0
        return Double(queries.count) / seconds(since: start)
    }
    var fellBack = 0
    func timedMultiIndex(_ k: Int) throws -> Double {
        index.strategy = .multiIndexHashing
        fellBack = 0
        let start = DispatchTime.now()
        for query in queries {
            let outcome = try index.searchDetailed(query, k: k)
            checksum &+= outcome.neighbors.last?.distance ?? 0
            if outcome.method == .flatScan { fellBack += 1 }
        }
        return Double(queries.count) / seconds(since: start)
    }

    for k in options.ks {
        print("-- \(count) codes, k=\(k)")
        _ = try timedFlatSingle(k) // warm-up; the faiss script warms up before it reports ready
        var flatSingle: [Double] = [], flatBatched: [Double] = [], flatAllThreads: [Double] = [], multiIndex: [Double] = []
        var faissSingle: [Double] = [], faissBatched: [Double] = [], faissMultiHash: [Double] = []
        for _ in 0..<options.runs {
            flatSingle.append(try timedFlatSingle(k))
            if let faiss { faissSingle.append(try faiss.time("single", k: k)) }
        }
        for _ in 0..<options.runs {
            flatBatched.append(try timedFlatBatch(k, threads: 1))
            if let faiss { faissBatched.append(try faiss.time("batched", k: k)) }
            flatAllThreads.append(try timedFlatBatch(k, threads: threads))
        }
        _ = try timedMultiIndex(k)
        for _ in 0..<options.runs {
            multiIndex.append(try timedMultiIndex(k))
            if let faiss { faissMultiHash.append(try faiss.time("multihash", k: k)) }
        }
        print(String(format: "ours   flat single query: %12.0f queries/s (1 thread)", median(flatSingle)))
        print(String(format: "ours   flat batched:      %12.0f queries/s (all queries in one call, 1 thread)", median(flatBatched)))
        print(String(format: "ours   flat batched:      %12.0f queries/s (all queries in one call, %d threads)", median(flatAllThreads), threads))

        // Multi-index hashing must return exactly what the flat scan returns, ties included.
        index.strategy = .flatScan
        let flatResults = try queries.map { try index.search($0, k: k) }
        index.strategy = .multiIndexHashing
        let multiIndexResults = try queries.map { try index.search($0, k: k) }
        let identical = flatResults == multiIndexResults
        print(String(format: "multi-index hashing, %d codes, k=%d: %.0f queries/s, %.1f× our flat scan, results identical: %@",
                     count, k, median(multiIndex), median(multiIndex) / median(flatSingle), identical ? "yes" : "no"))
        if fellBack > 0 { print("  (\(fellBack) of \(queries.count) searches exceeded the work limit and were answered by the flat scan)") }

        guard let faiss else { continue }
        let expected = try faiss.distances(k: k)
        let batchDistances = try index.search(batch: Array(queries.prefix(expected.count)), k: k, threads: 1).map { $0.map(\.distance) }
        for number in expected.indices {
            for got in [flatResults[number].map(\.distance), batchDistances[number]] where got != expected[number] {
                throw IndexBenchmarkError.resultsDiffer(query: number, ours: got, faiss: expected[number])
            }
        }
        print("faiss \(faiss.version): distances agree with ours on the first \(expected.count) queries")
        print(String(format: "faiss  IndexBinaryFlat single query: %12.0f queries/s (1 thread)", median(faissSingle)))
        print(String(format: "faiss  IndexBinaryFlat batched:      %12.0f queries/s (all queries in one call, 1 thread)", median(faissBatched)))
        print(String(format: "ratio ours / faiss, single query: %.2f, batched: %.2f",
                     median(flatSingle) / median(faissSingle), median(flatBatched) / median(faissBatched)))
        let recall = try faiss.multiHashRecall(k: k)
        print(String(format: "faiss  IndexBinaryMultiHash:         %12.0f queries/s (1 thread), recall %.3f of exact top-%d distances; our MIH %.1f× it",
                     median(faissMultiHash), recall, k, median(multiIndex) / median(faissMultiHash)))
    }
    if checksum == -1 { print("") } // keeps the timed searches from being optimised away
}

/// True when `python3 -c "import faiss"` succeeds.
private func faissIsAvailable() -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import faiss"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}

/// The faiss script in `--serve` mode: loaded once, then asked for one timed run at a time.
private final class FaissServer {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered = Data()
    private let directory: URL
    private(set) var version = "?"

    /// Writes codes and queries as raw little-endian bytes to a temp directory and starts the script on them.
    init(options: IndexBenchmarkOptions, codeBytes: [UInt8], queries: [[UInt64]]) throws {
        guard FileManager.default.fileExists(atPath: options.faissScript) else {
            throw IndexBenchmarkError.faissFailed("script \(options.faissScript) not found; run from the package root or pass --faiss-script")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-bench-index-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func write(_ bytes: [UInt8], to name: String) throws -> String {
            let url = directory.appendingPathComponent(name)
            try Data(bytes).write(to: url)
            return url.path
        }
        let codesPath = try write(codeBytes, to: "codes.bin")
        let queriesPath = try write(queries.flatMap { BinaryCode.bytes($0, bits: options.bits) }, to: "queries.bin")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", options.faissScript, "--serve", "--codes", codesPath, "--queries", queriesPath,
            "--bits", String(options.bits), "--k", String(options.ks[0]), "--check", String(min(options.checked, queries.count)),
        ]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        let ready = try readReply()
        guard ready["ready"] as? Bool == true else { throw IndexBenchmarkError.faissFailed("script did not start: \(ready)") }
        version = ready["faiss_version"] as? String ?? "?"
    }

    /// Queries/second of one timed run of `command` ("single", "batched" or "multihash").
    func time(_ command: String, k: Int) throws -> Double {
        try number("qps", of: "\(command) \(k)")
    }

    /// Builds faiss's multi-index hashing index; returns the seconds it took.
    func buildMultiHash(tables: Int, bitsPerHash: Int, flips: Int) throws -> Double {
        try number("seconds", of: "multihash_build \(tables) \(bitsPerHash) \(flips)")
    }

    /// Fraction of (query, rank) pairs where IndexBinaryMultiHash's distance is the exact one.
    func multiHashRecall(k: Int) throws -> Double {
        try number("recall", of: "multihash_recall \(k)")
    }

    /// faiss's top-k distances for the first queries.
    func distances(k: Int) throws -> [[Int]] {
        let reply = try request("check \(k)")
        guard let distances = reply["distances"] as? [[Int]] else { throw IndexBenchmarkError.faissFailed("unexpected reply \(reply)") }
        return distances
    }

    func stop() {
        if process.isRunning {
            input.fileHandleForWriting.write(Data("quit\n".utf8))
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    private func number(_ key: String, of command: String) throws -> Double {
        let reply = try request(command)
        guard let value = reply[key] as? Double else { throw IndexBenchmarkError.faissFailed("unexpected reply \(reply) to \(command)") }
        return value
    }

    private func request(_ command: String) throws -> [String: Any] {
        input.fileHandleForWriting.write(Data("\(command)\n".utf8))
        return try readReply()
    }

    /// Reads one line of JSON from the script.
    private func readReply() throws -> [String: Any] {
        while !buffered.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw IndexBenchmarkError.faissFailed("script exited early") }
            buffered.append(chunk)
        }
        let newline = buffered.firstIndex(of: UInt8(ascii: "\n"))!
        let line = buffered[buffered.startIndex..<newline]
        buffered = Data(buffered[buffered.index(after: newline)...])
        guard let reply = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            throw IndexBenchmarkError.faissFailed("unexpected output: \(String(decoding: line, as: UTF8.self).prefix(200))")
        }
        return reply
    }
}

/// `dsch bench codes`: the codes a saved model gives the 70,000 Fashion-MNIST images, written in the
/// `--codes-file` layout (`BinaryCode.bytes` rows), so that `bench index --codes learned` searches real
/// model codes grown to N.
func runCodesExport(arguments: [String]) throws {
    let (options, positional) = try parseOptions(arguments, known: ["model", "kind", "output", "data-dir"])
    guard positional.isEmpty, let modelPath = options["model"], let output = options["output"] else {
        throw UsageError(description: "Usage: dsch bench codes --model FILE [--kind dsch|itq|lsh] --output CODES [--data-dir DIR]")
    }
    guard let data = FileManager.default.contents(atPath: modelPath) else { throw UsageError(description: "cannot read \(modelPath)") }
    let encoder = try EncoderRegistry.load(kind: ModelKind(rawValue: options["kind"] ?? ModelKind.dsch.rawValue), data: [UInt8](data))
    let split = try EvaluationProtocol.load(directory: options["data-dir"] ?? EvaluationProtocol.fashionMNISTDirectory)
    var bytes: [UInt8] = []
    let pageSize = 4096
    for start in stride(from: 0, to: split.images.count, by: pageSize) {
        let indices = Array(start..<min(start + pageSize, split.images.count))
        for outputs in encoder.encode(thumbnails: split.thumbnails(indices, inputSize: encoder.inputSize)) {
            bytes += BinaryCode.bytes(BinaryCode.pack(signs: outputs), bits: encoder.bits)
        }
        FileHandle.standardError.write(Data("\rencoded \(indices.last! + 1) of \(split.images.count) images".utf8))
    }
    FileHandle.standardError.write(Data("\n".utf8))
    guard FileManager.default.createFile(atPath: output, contents: Data(bytes)) else { throw UsageError(description: "cannot write \(output)") }
    print("wrote \(split.images.count) codes of \(encoder.bits) bits (\(encoder.kind)) to \(output)")
}
