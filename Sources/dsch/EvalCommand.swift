import Evaluation
import Foundation
import Hashing
import Imaging
import Service

let evalUsage = """
    Usage: dsch eval [--bits 16,32,64] [--methods lsh,itq,dsch] [--ablations] [options]

    The retrieval evaluation of EVALUATION.md on Fashion-MNIST: 5,000 training images, 1,000 queries,
    69,000 database images, mAP@1000, precision@100, training wall time, the float kNN reference, and
    the 64-bit precision–recall curves. Writes eval.json, eval.md and pr-curves.png to --output-dir.
      --bits LIST             code lengths (default 16,32,64); a DSCH network whose outputs are projected
                              to the codes (outputWidth) is trained once and projected to each length
      --methods LIST          of lsh, itq, dsch, dsch-plain, dsch-cooccurrence, dsch-fine (default lsh,itq,dsch)
      --ablations             add dsch-plain (two-view contrastive), dsch-cooccurrence and dsch-fine
      --ablation-bits LIST    code lengths for the ablation variants (default: those of --bits)
      --output-dir DIR        default eval-results
      --save-models DIR       also write every trained DSCH model there
      --data-dir DIR          where the Fashion-MNIST IDX files are
      --epochs N, --settings FILE, --set KEY=VALUE   DSCH settings, as for `dsch train`
      --threads N             compute threads (default: the core count)
      --no-knn                skip the float kNN reference
      --gate                  also score every model as the retrain quality gate does (altered copies of
                              500 database images), to compare the label-free score with mAP
      --small-collection N    instead of the standard split, train on the first N train images and
                              search within them (every tenth a query), as a small collection would
    """

/// One method at one code length.
struct EvaluationRow: Codable {
    var method: String
    var bits: Int
    var meanAveragePrecisionAt1000: Double
    var precisionAt100: Double
    var trainingSeconds: Double
    var encodingSeconds: Double
    /// (radius, precision, recall) triples.
    var precisionRecall: [[Double]]
    /// The quality gate's score of the model (with `--gate`).
    var gate: QualityScore?
}

/// Everything `dsch eval` measured, as written to eval.json.
struct EvaluationReport: Codable {
    var protocolDescription = "Fashion-MNIST, 5,000 training images (first of the train split), 1,000 queries (first 100 test images per class), 69,000 database images, mAP@1000 by Hamming ranking, ties by database position"
    var cores: Int
    var threads: Int
    var loadAverageAtStart: String
    var loadAverageAtEnd: String
    var dschSettings: DSCHSettings
    var floatKNNMeanAveragePrecisionAt1000: Double?
    var rows: [EvaluationRow] = []
}

/// The method name of an ablation variant.
func methodName(_ ablation: DSCHSettings.Ablation) -> String {
    ablation == .full ? "dsch" : "dsch-" + ablation.rawValue
}

func loadAverage() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

/// `dsch eval`: the table of EVALUATION.md as text, JSON and Markdown, and the PR curves as PNG.
func runEval(arguments: [String]) throws {
    let (overrides, rest) = try extractSettingOverrides(arguments)
    let (options, positional) = try parseOptions(
        rest, known: ["bits", "methods", "ablation-bits", "output-dir", "save-models", "data-dir", "epochs", "settings", "threads",
                      "small-collection"],
        flags: ["help", "ablations", "no-knn", "gate"])
    if options["help"] != nil { print(evalUsage); return }
    guard positional.isEmpty else { throw UsageError(description: "eval takes no positional arguments\n\n" + evalUsage) }
    func integerList(_ text: String, _ name: String) throws -> [Int] {
        try text.split(separator: ",").map { try positiveInteger(String($0), name) }
    }
    let bitCounts = try integerList(options["bits"] ?? "16,32,64", "--bits")
    let ablationBits = try options["ablation-bits"].map { try integerList($0, "--ablation-bits") } ?? bitCounts
    var methods = (options["methods"] ?? "lsh,itq,dsch").split(separator: ",").map(String.init)
    if options["ablations"] != nil {
        for ablation in [DSCHSettings.Ablation.plain, .cooccurrence, .fine] where !methods.contains(methodName(ablation)) {
            methods.append(methodName(ablation))
        }
    }
    let ablations = Dictionary(uniqueKeysWithValues: DSCHSettings.Ablation.allCases.map { (methodName($0), $0) })
    for method in methods where method != "lsh" && method != "itq" && ablations[method] == nil {
        throw UsageError(description: "unknown method '\(method)'\n\n" + evalUsage)
    }
    // --bits sets the code lengths of the evaluation, so it is not a DSCH setting override here.
    var settingOptions = options
    settingOptions["bits"] = nil
    let baseSettings = try dschSettings(options: settingOptions, overrides: overrides)
    let threads = try applyThreads(options)
    let outputDirectory = options["output-dir"] ?? "eval-results"
    try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
    if let modelDirectory = options["save-models"] {
        try FileManager.default.createDirectory(atPath: modelDirectory, withIntermediateDirectories: true)
    }

    var split = try EvaluationProtocol.load(directory: options["data-dir"] ?? EvaluationProtocol.fashionMNISTDirectory)
    if let size = options["small-collection"] { split = split.smallCollection(size: try positiveInteger(size, "--small-collection")) }
    let inputSize = 32
    let gateSample = options["gate"] == nil ? nil : try qualityGateSample(split, inputSize: inputSize)
    let trainingThumbnails = split.thumbnails(split.trainingIndices, inputSize: inputSize)
    var report = EvaluationReport(
        cores: ProcessInfo.processInfo.activeProcessorCount, threads: threads, loadAverageAtStart: loadAverage(),
        loadAverageAtEnd: "", dschSettings: baseSettings)
    if let size = options["small-collection"] {
        report.protocolDescription = "Fashion-MNIST small collection: the first \(split.trainingIndices.count) images of the train split "
            + "(--small-collection \(size)) are the training set and the collection searched, every tenth of them a query "
            + "(\(split.queryIndices.count) queries, \(split.databaseIndices.count) database images), "
            + "mAP@1000 by Hamming ranking, ties by database position"
    }
    print("dsch eval: \(split.trainingIndices.count) training images, \(split.queryIndices.count) queries, "
          + "\(split.databaseIndices.count) database images; \(report.cores) cores, \(threads) threads, load \(report.loadAverageAtStart)")
    print("DSCH settings: \(settingsJSON(baseSettings))")

    func record(_ figures: BaselineFigures, _ encoder: HashEncoder) throws {
        let gate = gateSample.map { QualityScore.measure(encoder: encoder, originals: $0.originals, alteredCopies: $0.copies) }
        report.rows.append(EvaluationRow(
            method: figures.method, bits: figures.bits, meanAveragePrecisionAt1000: figures.meanAveragePrecisionAt1000,
            precisionAt100: figures.precisionAt100, trainingSeconds: figures.trainingSeconds,
            encodingSeconds: figures.encodingSeconds,
            precisionRecall: figures.precisionRecall.map { [Double($0.radius), $0.precision, $0.recall] }, gate: gate))
        print(String(format: "%-18@ %3d bits  mAP@1000 %.4f  P@100 %.4f  train %.1f s  encode %.1f s%@  (load %@)",
                     figures.method as NSString, figures.bits, figures.meanAveragePrecisionAt1000, figures.precisionAt100,
                     figures.trainingSeconds, figures.encodingSeconds,
                     (gate.map { String(format: "  gate %.3f (first %.3f, balance %.3f)", $0.score, $0.firstRankRate, $0.balance) } ?? "") as NSString,
                     loadAverage() as NSString))
        report.loadAverageAtEnd = loadAverage()
        try write(report, to: outputDirectory)
    }

    if options["no-knn"] == nil {
        func pixels(_ indices: [Int]) -> [Float] { indices.flatMap { split.images.image($0).map { Float($0) / 255 } } }
        report.floatKNNMeanAveragePrecisionAt1000 = RetrievalMetrics.floatKNNMeanAveragePrecision(
            queries: pixels(split.queryIndices), queryLabels: split.labels(of: split.queryIndices),
            database: pixels(split.databaseIndices), databaseLabels: split.labels(of: split.databaseIndices),
            dimension: split.images.rows * split.images.columns, k: EvaluationProtocol.rankingDepth)
        print(String(format: "float kNN (raw pixels, Euclidean) mAP@1000 %.4f", report.floatKNNMeanAveragePrecisionAt1000!))
    }

    var projectedNetworks: [String: (encoder: DSCHEncoder, seconds: Double)] = [:]
    for bits in bitCounts {
        for method in methods {
            let clock = ContinuousClock()
            switch method {
            case ModelKind.lsh.rawValue, ModelKind.itq.rawValue:
                // The baselines train through the encoder registry, as the service's retrains do.
                let start = clock.now
                let training = TrainingSettings(bits: bits, inputSize: inputSize, lshSeed: baseSettings.seed, dsch: baseSettings)
                let encoder = try EncoderRegistry.entry(ModelKind(rawValue: method)).train(trainingThumbnails, training) { _, _ in }.encoder
                try record(evaluateEncoder(encoder, on: split, method: method, trainingSeconds: (clock.now - start).inSeconds), encoder)
            default:
                let ablation = ablations[method]!
                if ablation != .full && !ablationBits.contains(bits) { continue }
                var settings = baseSettings.applying(ablation)
                settings.bits = bits
                let start = clock.now
                let encoder: DSCHEncoder, trainingSeconds: Double
                // A projected network does not depend on the code length (only its projection does), so each
                // variant's network is trained once and every length fits its own projection; the time
                // reported is what a training at this length takes: the network's, plus this projection's fit.
                let networkKey = "\(method) \(settings.networkOutputWidth)"
                if settings.projectsOutputs, let trained = projectedNetworks[networkKey] {
                    encoder = try trained.encoder.projected(toBits: bits, fittedOn: trainingThumbnails)
                    trainingSeconds = trained.seconds + (clock.now - start).inSeconds
                    print("  \(method) \(bits) bits: the network trained for \(trained.encoder.bits) bits, its outputs projected to \(bits)")
                } else {
                    encoder = try DSCHTrainer(settings: settings, inputSize: inputSize).train(thumbnails: trainingThumbnails) {
                        printEpoch($0, prefix: "  \(method) \(bits) bits: ")
                    }
                    trainingSeconds = (clock.now - start).inSeconds
                    if settings.projectsOutputs { projectedNetworks[networkKey] = (encoder, trainingSeconds) }
                }
                if let modelDirectory = options["save-models"] {
                    let path = "\(modelDirectory)/\(method)-\(bits).model"
                    _ = FileManager.default.createFile(atPath: path, contents: Data(try encoder.serialized()))
                }
                try record(evaluateEncoder(encoder, on: split, method: method, trainingSeconds: trainingSeconds), encoder)
            }
        }
    }
    report.loadAverageAtEnd = loadAverage()
    try write(report, to: outputDirectory)
    print("\n" + markdown(report))
    print("wrote \(outputDirectory)/eval.json, eval.md and pr-curves.png")
}

/// What the quality gate would hold out: 500 database images spread evenly (each stored as the PNG an
/// import makes), with their altered copies.
func qualityGateSample(_ split: EvaluationProtocol, inputSize: Int) throws -> (originals: [[UInt8]], copies: [[[UInt8]]]) {
    let count = min(500, split.databaseIndices.count)
    let indices = (0..<count).map { split.databaseIndices[$0 * split.databaseIndices.count / count] }
    let side = split.images.columns
    var originals: [[UInt8]] = [], copies: [[[UInt8]]] = []
    for index in indices {
        let png = try ImageEncoder.png(RGBImage(gray: Array(split.images.image(index)), width: side, height: split.images.rows))
        originals.append(try ImageDecoder.thumbnail(png, width: inputSize, height: inputSize).pixels)
        copies.append(try QualitySample.alterations(of: png, inputSize: inputSize, limits: DecodeLimits(), seed: UInt64(index)))
    }
    return (originals, copies)
}

/// Writes eval.json, eval.md and (when some method has curves) pr-curves.png.
func write(_ report: EvaluationReport, to directory: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(report).write(to: URL(fileURLWithPath: directory + "/eval.json"))
    let plot = curvePlot(report)
    var text = markdown(report)
    if let plot {
        try Data(try plot.plot.png()).write(to: URL(fileURLWithPath: directory + "/pr-curves.png"))
        text += "\n![precision–recall at \(plot.bits) bits](pr-curves.png)\n\nLegend, top to bottom: "
            + zip(plot.plot.curves, plot.plot.colourNames).map { "\($0.method) (\($1))" }.joined(separator: ", ") + ".\n"
    }
    try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/eval.md"))
}

/// The precision–recall curves of every method at 64 bits (or the longest code length evaluated).
func curvePlot(_ report: EvaluationReport) -> (plot: PrecisionRecallPlot, bits: Int)? {
    guard let bits = report.rows.contains(where: { $0.bits == 64 }) ? 64 : report.rows.map(\.bits).max() else { return nil }
    let curves = report.rows.filter { $0.bits == bits }.map { row in
        PrecisionRecallPlot.Curve(method: row.method, points: row.precisionRecall.map {
            PrecisionRecallPoint(radius: Int($0[0]), precision: $0[1], recall: $0[2])
        })
    }
    return (PrecisionRecallPlot(curves: curves), bits)
}

/// The table of EVALUATION.md: one line per method, mAP@1000 and P@100 per code length, training time.
func markdown(_ report: EvaluationReport) -> String {
    let bitCounts = Array(Set(report.rows.map(\.bits))).sorted()
    var methods: [String] = []
    for row in report.rows where !methods.contains(row.method) { methods.append(row.method) }
    func cell(_ method: String, _ bits: Int, _ value: (EvaluationRow) -> String) -> String {
        report.rows.first { $0.method == method && $0.bits == bits }.map(value) ?? "–"
    }
    let hasGate = report.rows.contains { $0.gate != nil }
    let header = ["method"] + bitCounts.map { "mAP@1000 \($0) bits" } + bitCounts.map { "P@100 \($0) bits" }
        + bitCounts.map { "train s \($0) bits" } + (hasGate ? bitCounts.map { "gate \($0) bits" } : [])
    var lines = [
        "# Retrieval evaluation", "",
        report.protocolDescription + ".", "",
        "| " + header.joined(separator: " | ") + " |",
        "|" + header.map { _ in "---" }.joined(separator: "|") + "|",
    ]
    for method in methods {
        let cells = bitCounts.map { bits in cell(method, bits) { String(format: "%.4f", $0.meanAveragePrecisionAt1000) } }
            + bitCounts.map { bits in cell(method, bits) { String(format: "%.4f", $0.precisionAt100) } }
            + bitCounts.map { bits in cell(method, bits) { String(format: "%.1f", $0.trainingSeconds) } }
            + (hasGate ? bitCounts.map { bits in cell(method, bits) { $0.gate.map { String(format: "%.3f", $0.score) } ?? "–" } } : [])
        lines.append("| " + ([method] + cells).joined(separator: " | ") + " |")
    }
    lines.append("")
    if let knn = report.floatKNNMeanAveragePrecisionAt1000 {
        lines.append(String(format: "Float kNN on raw pixels (Euclidean): mAP@1000 %.4f.", knn))
    }
    lines.append("Machine: \(report.cores) cores, \(report.threads) compute threads; load average \(report.loadAverageAtStart) at start, \(report.loadAverageAtEnd) at end.")
    lines.append("")
    lines.append("DSCH settings: `\(settingsJSON(report.dschSettings))`")
    return lines.joined(separator: "\n") + "\n"
}
