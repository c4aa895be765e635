import Foundation
import HammingIndex
import NeuralNet

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

private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

private func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

/// `dsch bench index`: single-thread Hamming top-k throughput, compared with faiss when it is installed.
/// Our runs alternate with faiss's, so on a shared machine both medians see the same background load.
func runIndexBenchmark(arguments: [String]) throws {
    let options = try IndexBenchmarkOptions(arguments: arguments)
    let index = try HammingIndex(bits: options.bits)
    let words = BinaryCode.wordCount(bits: options.bits)
    var generator = SplitMix64(seed: options.seed)
    func randomCode() -> [UInt64] {
        var code = (0..<words).map { _ in generator.next() }
        if options.bits % 64 != 0 { code[words - 1] &= (1 << UInt64(options.bits % 64)) - 1 }
        return code
    }

    // Codes are kept only as the bytes faiss will read, so 10^7 codes fit in memory twice over.
    var codeBytes: [UInt8] = []
    codeBytes.reserveCapacity(options.count * options.bits / 8)
    index.reserveCapacity(options.count)
    for id in 0..<options.count {
        let code = randomCode()
        codeBytes.append(contentsOf: BinaryCode.bytes(code, bits: options.bits))
        try index.add(id: Int64(id), code: code)
    }
    let queries = (0..<options.queries).map { _ in randomCode() }
    print("dsch bench index: \(options.count) codes of \(options.bits) bits, \(options.queries) queries, k=\(options.k), \(options.runs) runs, seed \(options.seed)")

    var faiss: FaissServer?
    if faissIsAvailable() {
        faiss = try FaissServer(options: options, codeBytes: codeBytes, queries: queries)
        codeBytes = []
    } else {
        print("faiss: not importable by python3, comparison skipped")
    }
    defer { faiss?.stop() }

    var checksum = 0
    func timedSingle() throws -> Double {
        let start = DispatchTime.now()
        for query in queries {
            let result = try index.search(query, k: options.k)
            checksum &+= result.last?.distance ?? 0
        }
        return Double(queries.count) / seconds(since: start)
    }
    func timedBatch() throws -> Double {
        let start = DispatchTime.now()
        let results = try index.search(batch: queries, k: options.k)
        checksum &+= results.last?.last?.distance ?? 0
        return Double(queries.count) / seconds(since: start)
    }

    _ = try timedSingle() // warm-up; the faiss script warms up before it reports ready
    var oursSingle: [Double] = [], oursBatched: [Double] = [], faissSingle: [Double] = [], faissBatched: [Double] = []
    for _ in 0..<options.runs {
        oursSingle.append(try timedSingle())
        if let faiss { faissSingle.append(try faiss.time("single")) }
    }
    for _ in 0..<options.runs {
        oursBatched.append(try timedBatch())
        if let faiss { faissBatched.append(try faiss.time("batched")) }
    }
    print(String(format: "ours   single query: %12.0f queries/s (median of %d runs, 1 thread)", median(oursSingle), options.runs))
    print(String(format: "ours   batched:      %12.0f queries/s (all queries in one call, 1 thread)", median(oursBatched)))
    guard let faiss else { return }

    let expected = try faiss.distances()
    let checked = Array(queries.prefix(expected.count))
    let batchDistances = try index.search(batch: checked, k: options.k).map { $0.map(\.distance) }
    for (number, query) in checked.enumerated() {
        let single = try index.search(query, k: options.k).map(\.distance)
        for got in [single, batchDistances[number]] where got != expected[number] {
            throw IndexBenchmarkError.resultsDiffer(query: number, ours: got, faiss: expected[number])
        }
    }
    print("faiss \(faiss.version): distances agree with ours on the first \(expected.count) queries")
    print(String(format: "faiss  single query: %12.0f queries/s (IndexBinaryFlat, 1 thread)", median(faissSingle)))
    print(String(format: "faiss  batched:      %12.0f queries/s (all queries in one call, 1 thread)", median(faissBatched)))
    print(String(format: "ratio ours / faiss, single query: %.2f, batched: %.2f",
                 median(oursSingle) / median(faissSingle), median(oursBatched) / median(faissBatched)))
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
            "--bits", String(options.bits), "--k", String(options.k), "--check", String(min(options.checked, queries.count)),
        ]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        let ready = try readReply()
        guard ready["ready"] as? Bool == true else { throw IndexBenchmarkError.faissFailed("script did not start: \(ready)") }
        version = ready["faiss_version"] as? String ?? "?"
    }

    /// Queries/second of one timed run of `command` ("single" or "batched").
    func time(_ command: String) throws -> Double {
        let reply = try request(command)
        guard let qps = reply["qps"] as? Double else { throw IndexBenchmarkError.faissFailed("unexpected reply \(reply)") }
        return qps
    }

    /// faiss's top-k distances for the first queries.
    func distances() throws -> [[Int]] {
        let reply = try request("check")
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
