import Foundation
import HTTP
import NeuralNet
import Service

/// The command-line interface: `dsch serve|import|train|eval|config|bench`, each with `--help`.
let usage = """
    dsch — image similarity search with learned binary hash codes

    Usage: dsch <command> [options]

    Commands:
      serve       run the HTTP service (default: port 8080, database data/dsch.sqlite)
      import      index folders of JPEG/PNG files or IDX image files into the database
      train       train a DSCH (or ITQ/LSH) model from a dataset or folder and save it to a file
      eval        the retrieval evaluation of EVALUATION.md: LSH, ITQ and DSCH with its ablations
      duplicates  list groups of near-identical stored images (or write them as CSV)
      backup      copy the database to a new file while the server runs
      config      print the effective configuration (defaults, --config FILE, DSCH_* variables) as JSON
      bench       measure speed: `dsch bench index` (Hamming search), `dsch bench nn` (encoder)

    Run `dsch <command> --help` for a command's options.
    """

let serveUsage = """
    Usage: dsch serve [--host H] [--port P] [--database FILE|postgresql://USER:PASSWORD@HOST:PORT/DB] [--config FILE]

    Runs the HTTP service. Settings come from Config/default.json's defaults, then --config FILE,
    then DSCH_* environment variables (e.g. DSCH_SERVER_PORT, DSCH_ADMIN_TOKEN), then these flags.
    A postgresql:// URI (or DSCH_DATABASE_URL) shares one PostgreSQL database between replicas;
    they then need the same DSCH_ADMIN_TOKEN.
    Stops gracefully on SIGINT or SIGTERM.
    """

let importUsage = """
    Usage: dsch import [--database FILE | --url http://HOST:PORT] [--config FILE] [--labels IDX_LABELS] [--limit N]
                       [--batch-size N] PATH...

    Indexes every JPEG/PNG under each folder PATH, image files, or IDX image files (plain or .gz, such as
    /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz). With --labels, each IDX image gets
    {"label": n} metadata. Identical images are stored once. With --url the images go through a running
    server's POST /v1/images; without it they are written to the database directly (stop the server
    first, or restart it afterwards so that its index sees the new images). Into a database, images are
    stored --batch-size at a time (default 500), each batch in one transaction: a killed import loses
    at most the batch in flight, and running it again stores the rest.
    """

let duplicatesUsage = """
    Usage: dsch duplicates [--database FILE] [--config FILE] [--max-distance D] [--csv FILE]

    Groups the stored images whose codes under the active model are within D (default 2) of each other:
    connected components, singletons left out, largest first, as GET /v1/duplicates returns them. Prints
    one line per group (id and distance to the group's first image); --csv FILE writes
    group,id,sha256,distance instead. Safe while the server runs.
    """

let backupUsage = """
    Usage: dsch backup [--database FILE] [--config FILE] OUTPUT

    Writes a consistent copy of the database to the new file OUTPUT while the server keeps running
    (SQLite VACUUM INTO). To restore, start the server on the copy: dsch serve --database OUTPUT.
    """

let benchUsage = """
    Usage: dsch bench index [--count N[,N...]] [--bits B] [--queries Q] [--k K[,K...]] [--runs R]
                            [--codes random|learned] [--codes-file PATH] [--multihash-flips F]
           dsch bench codes --model FILE [--kind dsch|itq|lsh] --output CODES   (real codes for --codes-file)
           dsch bench nn [options]

    Prints medians of several runs and, when Python with faiss-cpu (index) or torch (nn) is installed,
    the same measurement by that library in the same run with the ratio. Build with -c release first.
    """

/// A command-line failure with the text to show.
struct UsageError: Error, CustomStringConvertible {
    let description: String
}

/// Splits `--name value` options from positional arguments; `--help` becomes name "help".
func parseOptions(_ arguments: [String], known: Set<String>, flags: Set<String> = ["help"]) throws -> (options: [String: String], positional: [String]) {
    var options: [String: String] = [:]
    var positional: [String] = []
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        if argument == "-h" || argument == "--help" {
            options["help"] = "true"
        } else if argument.hasPrefix("--") {
            var name = String(argument.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if flags.contains(name) {
                options[name] = "true"
            } else {
                guard known.contains(name) else { throw UsageError(description: "unknown option --\(name)") }
                if value == nil {
                    index += 1
                    guard index < arguments.count else { throw UsageError(description: "--\(name) needs a value") }
                    value = arguments[index]
                }
                options[name] = value
            }
        } else {
            positional.append(argument)
        }
        index += 1
    }
    return (options, positional)
}

/// The configuration for a command: defaults, --config, environment, then the given flag overrides.
func configuration(_ options: [String: String], flagKeys: [String: String]) throws -> Configuration {
    let overrides = flagKeys.compactMap { flag, key in options[flag].map { (key: key, value: $0) } }
    return try ConfigurationLoader.load(file: options["config"], overrides: overrides.sorted { $0.key < $1.key })
}

func serve(_ arguments: [String]) throws {
    let (options, positional) = try parseOptions(arguments, known: ["host", "port", "database", "config"])
    if options["help"] != nil { print(serveUsage); return }
    guard positional.isEmpty else { throw UsageError(description: "serve takes no positional arguments\n\n" + serveUsage) }
    let settings = try configuration(options, flagKeys: ["host": "server.host", "port": "server.port", "database": "database.path"])
    let server = try DschServer(configuration: settings)
    try server.start()
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    signal(SIGPIPE, SIG_IGN)
    var sources: [DispatchSourceSignal] = []
    for signalNumber in [SIGINT, SIGTERM] {
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler {
            server.shutdown()
            exit(0)
        }
        source.resume()
        sources.append(source)
    }
    withExtendedLifetime(sources) { dispatchMain() }
}

func importImages(_ arguments: [String]) throws {
    let (options, positional) = try parseOptions(arguments, known: ["database", "config", "labels", "limit", "url", "batch-size"])
    if options["help"] != nil { print(importUsage); return }
    guard !positional.isEmpty else { throw UsageError(description: "import needs at least one PATH\n\n" + importUsage) }
    var limit: Int?
    if let text = options["limit"] {
        guard let value = Int(text), value > 0 else { throw UsageError(description: "--limit must be a positive integer") }
        limit = value
    }
    var batchSize = 500
    if let text = options["batch-size"] {
        guard let value = Int(text), (1...10_000).contains(value) else { throw UsageError(description: "--batch-size must be an integer from 1 to 10000") }
        batchSize = value
    }
    // A batch is encoded while the next one is decoded on every core: OpenBLAS's own thread pool would
    // only spin against that work, so encoders split their work themselves (see ComputeThreads).
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    let logger = Logger()
    var service: ImageService?
    defer { service?.close() }
    // Set again once the database is open, so that the rate counts importing only.
    var started = Date()
    let progress: (Int, Int) -> Void = { done, total in
        let seconds = max(Date().timeIntervalSince(started), 1e-9)
        let line = String(format: "\rimported %d/%d  %.0f images/s", done, total, Double(done) / seconds)
        FileHandle.standardError.write(Data(line.utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
    let importer: Importer
    if let url = options["url"] {
        importer = Importer(ingest: try remoteIngest(url: url), logger: logger, progress: progress)
    } else {
        let opened = try ImageService(configuration: try configuration(options, flagKeys: ["database": "database.path"]), logger: logger)
        service = opened
        importer = Importer(service: opened, logger: logger, batchSize: batchSize, progress: progress)
    }
    started = Date()
    let summary = try importer.run(paths: positional, labels: options["labels"], limit: limit)
    print("new \(summary.created), already stored \(summary.duplicates), failed \(summary.failed), " +
          String(format: "%.1f s", Date().timeIntervalSince(started)))
}

/// Uploads through `POST /v1/images` of the server at `url`, with metadata as a `meta` query parameter.
func remoteIngest(url text: String) throws -> Importer.Ingest {
    guard let url = URL(string: text), url.scheme == "http", let host = url.host else {
        throw UsageError(description: "--url must look like http://HOST:PORT")
    }
    let client = HTTPClient(host: host, port: url.port ?? 80)
    return { bytes, metadata in
        var target = "/v1/images"
        if let metadata, let encoded = metadata.addingPercentEncoding(withAllowedCharacters: .alphanumerics) { target += "?meta=" + encoded }
        let response = try client.send("POST", target, headers: [("Content-Type", "application/octet-stream")], body: bytes)
        guard response.status == 200 || response.status == 201 else {
            throw UsageError(description: "the server answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
        return response.status == 201
    }
}

func findDuplicates(_ arguments: [String]) throws {
    let (options, positional) = try parseOptions(arguments, known: ["database", "config", "max-distance", "csv"])
    if options["help"] != nil { print(duplicatesUsage); return }
    guard positional.isEmpty else { throw UsageError(description: "duplicates takes no positional arguments\n\n" + duplicatesUsage) }
    var maxDistance = 2
    if let text = options["max-distance"] {
        guard let value = Int(text), value >= 0 else { throw UsageError(description: "--max-distance must be a non-negative integer") }
        maxDistance = value
    }
    let settings = try configuration(options, flagKeys: ["database": "database.path"])
    let report = try Maintenance.duplicateReport(databasePath: settings.database.path, maxDistance: maxDistance)
    let grouped = report.groups.reduce(0) { $0 + $1.members.count }
    let summary = "\(report.groups.count) groups of \(grouped) images within distance \(maxDistance) (model version \(report.modelVersion))"
    if let path = options["csv"] {
        try report.csv.write(toFile: path, atomically: true, encoding: .utf8)
        print("\(summary); wrote \(path)")
        return
    }
    print(summary)
    for (number, group) in report.groups.enumerated() {
        print("group \(number + 1): " + group.members.map { "\($0.id) (\($0.distanceToFirst))" }.joined(separator: ", "))
    }
}

func backupDatabase(_ arguments: [String]) throws {
    let (options, positional) = try parseOptions(arguments, known: ["database", "config"])
    if options["help"] != nil { print(backupUsage); return }
    guard positional.count == 1 else { throw UsageError(description: "backup needs exactly one OUTPUT file\n\n" + backupUsage) }
    let settings = try configuration(options, flagKeys: ["database": "database.path"])
    let bytes = try Maintenance.backup(databasePath: settings.database.path, to: positional[0])
    print("wrote \(positional[0]) (\(bytes) bytes); restore with: dsch serve --database \(positional[0])")
}

func printConfiguration(_ arguments: [String]) throws {
    let (options, _) = try parseOptions(arguments, known: ["config"])
    if options["help"] != nil {
        print("Usage: dsch config [--config FILE]\n\nPrints every setting as the service would use it; with no file and no DSCH_* variables this is Config/default.json.")
        return
    }
    let tree = try ConfigurationLoader.tree(of: try configuration(options, flagKeys: [:]))
    let data = try JSONSerialization.data(withJSONObject: tree, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

func bench(_ arguments: [String]) throws {
    switch arguments.first {
    case "index": try runIndexBenchmark(arguments: Array(arguments.dropFirst()))
    case "codes": try runCodesExport(arguments: Array(arguments.dropFirst()))
    case "nn": try runNeuralNetBenchmark(arguments: Array(arguments.dropFirst()))
    case "--help", "-h", nil: print(benchUsage)
    default: throw UsageError(description: "unknown benchmark '\(arguments[0])'\n\n" + benchUsage)
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    let rest = Array(arguments.dropFirst())
    switch arguments.first {
    case "serve": try serve(rest)
    case "import": try importImages(rest)
    case "train": try runTrain(arguments: rest)
    case "eval": try runEval(arguments: rest)
    case "bench": try bench(rest)
    case "duplicates": try findDuplicates(rest)
    case "backup": try backupDatabase(rest)
    case "config": try printConfiguration(rest)
    case "--help", "-h", "help", nil: print(usage)
    case "--version": print("dsch \(ServiceVersion.string)")
    default: throw UsageError(description: "unknown command '\(arguments[0])'\n\n" + usage)
    }
} catch {
    FileHandle.standardError.write(Data("dsch: \(error)\n".utf8))
    exit(error is UsageError ? 64 : 1)
}
