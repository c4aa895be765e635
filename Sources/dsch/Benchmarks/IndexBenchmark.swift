import Foundation
import HammingIndex

/// Options of `dsch bench index`, with the defaults the report quotes.
private struct IndexBenchmarkOptions {
    var count = 1_000_000
    var bits = 64
    var queries = 1000
    var k = 10
    var runs = 5
    var seed: UInt64 = 42
    var faissScript = "bench/faiss_hamming.py"
    /// Queries whose distances must agree with faiss.
    var checked = 20

    init(arguments: [String]) throws {
        var remaining = arguments[...]
        func value(for flag: String) throws -> String {
            guard let value = remaining.popFirst() else { throw IndexBenchmarkError.missingValue(flag) }
            return value
        }
        func integer(for flag: String) throws -> Int {
            let text = try value(for: flag)
            guard let number = Int(text), number > 0 else { throw IndexBenchmarkError.badValue(flag, text) }
            return number
        }
        while let flag = remaining.popFirst() {
            switch flag {
            case "--count": count = try integer(for: flag)
            case "--bits": bits = try integer(for: flag)
            case "--queries": queries = try integer(for: flag)
            case "--k": k = try integer(for: flag)
            case "--runs": runs = try integer(for: flag)
            case "--seed":
                let text = try value(for: flag)
                guard let number = UInt64(text) else { throw IndexBenchmarkError.badValue(flag, text) }
                seed = number
            case "--faiss-script": faissScript = try value(for: flag)
            default: throw IndexBenchmarkError.unknownOption(flag)
            }
        }
    }
}

/// Why `dsch bench index` stopped.
enum IndexBenchmarkError: Error, CustomStringConvertible {
    case unknownOption(String)
    case missingValue(String)
    case badValue(String, String)
    case faissFailed(String)
    case resultsDiffer(query: Int, ours: [Int], faiss: [Int])

    var description: String {
        switch self {
        case .unknownOption(let flag):
            return "unknown option \(flag); options: --count N --bits B --queries Q --k K --runs R --seed S --faiss-script PATH"
        case .missingValue(let flag): return "\(flag) needs a value"
        case .badValue(let flag, let text): return "\(flag) expects a positive integer, got \(text)"
        case .faissFailed(let reason): return "faiss comparison failed: \(reason)"
        case .resultsDiffer(let query, let ours, let faiss):
            return "query \(query): our distances \(ours) differ from faiss's \(faiss)"
        }
    }
}

/// SplitMix64: small, fast and seedable, so runs with the same seed see the same codes.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
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

/// `dsch bench index`: single-thread Hamming top-k throughput, compared with faiss when it is installed.
func runIndexBenchmark(arguments: [String]) throws {
    let options = try IndexBenchmarkOptions(arguments: arguments)
    let index = try HammingIndex(bits: options.bits)
    let words = BinaryCode.wordCount(bits: options.bits)
    var generator = SplitMix64(state: options.seed)
    func randomCode() -> [UInt64] {
        var code = (0..<words).map { _ in generator.next() }
        if options.bits % 64 != 0 { code[words - 1] &= (1 << UInt64(options.bits % 64)) - 1 }
        return code
    }

    var codes: [[UInt64]] = []
    codes.reserveCapacity(options.count)
    index.reserveCapacity(options.count)
    for id in 0..<options.count {
        let code = randomCode()
        codes.append(code)
        try index.add(id: Int64(id), code: code)
    }
    let queries = (0..<options.queries).map { _ in randomCode() }
    print("dsch bench index: \(options.count) codes of \(options.bits) bits, \(options.queries) queries, k=\(options.k), \(options.runs) runs, seed \(options.seed)")

    var checksum = 0
    func timedRun() throws -> Double {
        let start = DispatchTime.now()
        for query in queries {
            let result = try index.search(query, k: options.k)
            checksum &+= result.last?.distance ?? 0
        }
        return Double(queries.count) / seconds(since: start)
    }
    _ = try timedRun() // warm-up
    let ours = median(try (0..<options.runs).map { _ in try timedRun() })
    print(String(format: "ours   single query: %12.0f queries/s (median of %d runs, 1 thread)", ours, options.runs))
    func timedBatch() throws -> Double {
        let start = DispatchTime.now()
        let results = try index.search(batch: queries, k: options.k)
        checksum &+= results.last?.last?.distance ?? 0
        return Double(queries.count) / seconds(since: start)
    }
    let oursBatched = median(try (0..<options.runs).map { _ in try timedBatch() })
    print(String(format: "ours   batched:      %12.0f queries/s (all queries in one call, 1 thread)", oursBatched))

    guard faissIsAvailable() else {
        print("faiss: not importable by python3, comparison skipped")
        return
    }
    let faiss = try runFaiss(options: options, codes: codes, queries: queries)
    for (number, expected) in faiss.distances.enumerated() {
        let got = try index.search(queries[number], k: options.k).map(\.distance)
        guard got == expected else { throw IndexBenchmarkError.resultsDiffer(query: number, ours: got, faiss: expected) }
    }
    let batchDistances = try index.search(batch: Array(queries.prefix(faiss.distances.count)), k: options.k).map { $0.map(\.distance) }
    if let number = batchDistances.indices.first(where: { batchDistances[$0] != faiss.distances[$0] }) {
        throw IndexBenchmarkError.resultsDiffer(query: number, ours: batchDistances[number], faiss: faiss.distances[number])
    }
    print("faiss \(faiss.version): distances agree with ours on the first \(faiss.distances.count) queries")
    print(String(format: "faiss  single query: %12.0f queries/s (IndexBinaryFlat, 1 thread)", faiss.singleQPS))
    print(String(format: "faiss  batched:      %12.0f queries/s (all queries in one call, 1 thread)", faiss.batchedQPS))
    print(String(format: "ratio ours / faiss, single query: %.2f, batched: %.2f", ours / faiss.singleQPS, oursBatched / faiss.batchedQPS))
    if checksum == -1 { print("") } // keeps the timed searches from being optimised away
}

/// True when `python3 -c "import faiss"` succeeds.
private func faissIsAvailable() -> Bool {
    guard let process = try? launchPython(["-c", "import faiss"], output: nil) else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}

private func launchPython(_ arguments: [String], output: Pipe?) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    process.standardOutput = output ?? FileHandle.nullDevice
    process.standardError = output == nil ? FileHandle.nullDevice : FileHandle.standardError
    try process.run()
    return process
}

/// What the faiss script measured.
private struct FaissFigures {
    var version: String
    var singleQPS: Double
    var batchedQPS: Double
    var distances: [[Int]]
}

/// Writes codes and queries as raw little-endian bytes to a temp directory and runs the faiss script on them.
private func runFaiss(options: IndexBenchmarkOptions, codes: [[UInt64]], queries: [[UInt64]]) throws -> FaissFigures {
    guard FileManager.default.fileExists(atPath: options.faissScript) else {
        throw IndexBenchmarkError.faissFailed("script \(options.faissScript) not found; run from the package root or pass --faiss-script")
    }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-bench-index-\(getpid())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    func write(_ rows: [[UInt64]], to name: String) throws -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(rows.count * options.bits / 8)
        for row in rows { bytes.append(contentsOf: BinaryCode.bytes(row, bits: options.bits)) }
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }
    let codesPath = try write(codes, to: "codes.bin")
    let queriesPath = try write(queries, to: "queries.bin")

    let pipe = Pipe()
    let process = try launchPython([
        options.faissScript, "--codes", codesPath, "--queries", queriesPath, "--bits", String(options.bits),
        "--k", String(options.k), "--runs", String(options.runs), "--check", String(min(options.checked, queries.count)),
    ], output: pipe)
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw IndexBenchmarkError.faissFailed("script exited with status \(process.terminationStatus)") }
    guard let json = try JSONSerialization.jsonObject(with: output) as? [String: Any],
          let single = json["single_qps"] as? Double, let batched = json["batched_qps"] as? Double,
          let distances = json["distances"] as? [[Int]] else {
        throw IndexBenchmarkError.faissFailed("unexpected output: \(String(decoding: output, as: UTF8.self).prefix(200))")
    }
    return FaissFigures(version: json["faiss_version"] as? String ?? "?", singleQPS: single, batchedQPS: batched, distances: distances)
}
