import Evaluation
import Foundation
import Hashing
import Imaging
import NeuralNet

let trainUsage = """
    Usage: dsch train (--dataset fashion-mnist | --folder DIR) --output FILE [options]

    Trains a model on thumbnails and saves it (the bytes the service stores, loadable by the kind's loader).
      --dataset fashion-mnist  the evaluation protocol's training set (first 5,000 train images)
      --data-dir DIR           where the Fashion-MNIST IDX files are (default \(EvaluationProtocol.fashionMNISTDirectory))
      --folder DIR             every JPEG/PNG under DIR, resampled whole to inputSize²
      --output FILE            where to write the model
      --kind dsch|itq          model kind (default dsch)
      --bits N, --epochs N     shorthands for the settings of those names
      --settings FILE          a JSON object of DSCH settings over the defaults
      --set KEY=VALUE          one DSCH setting (VALUE in JSON: 0.2, true, [16,32,64]); repeatable
      --ablation plain|cooccurrence|fine|full   switch parts of DSCH off (default full)
      --input-size N           thumbnail side (default 32)
      --threads N              compute threads (default: the core count)

    DSCH settings and their defaults:
    \(defaultSettingsListing())
    """

/// Every DSCH setting with its default, one per line.
func defaultSettingsListing() -> String {
    let data = (try? JSONEncoder().encode(DSCHSettings())) ?? Data()
    let object = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    return DSCHSettings.CodingKeys.allCases.map { key in
        let value = object[key.stringValue].map { "\($0)" }?.replacingOccurrences(of: "\n", with: "")
            .replacingOccurrences(of: " ", with: "") ?? "?"
        return "  \(key.stringValue) = \(value)"
    }.joined(separator: "\n")
}

/// Pulls every `--set KEY=VALUE` out of `arguments` (the generic parser keeps one value per option).
func extractSettingOverrides(_ arguments: [String]) throws -> (overrides: [String: Any], rest: [String]) {
    var overrides: [String: Any] = [:]
    var rest: [String] = []
    var index = 0
    while index < arguments.count {
        var assignment: String?
        if arguments[index] == "--set" {
            guard index + 1 < arguments.count else { throw UsageError(description: "--set needs KEY=VALUE") }
            assignment = arguments[index + 1]
            index += 1
        } else if arguments[index].hasPrefix("--set=") {
            assignment = String(arguments[index].dropFirst(6))
        }
        if let assignment {
            guard let equals = assignment.firstIndex(of: "=") else { throw UsageError(description: "--set needs KEY=VALUE, got '\(assignment)'") }
            let key = String(assignment[..<equals]), text = String(assignment[assignment.index(after: equals)...])
            guard let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
                throw UsageError(description: "--set \(key): '\(text)' is not a JSON value (numbers, true/false, [arrays])")
            }
            overrides[key] = value
        } else {
            rest.append(arguments[index])
        }
        index += 1
    }
    return (overrides, rest)
}

/// DSCH settings from `--settings FILE`, then `--set` overrides, then `--bits`/`--epochs`.
func dschSettings(options: [String: String], overrides: [String: Any]) throws -> DSCHSettings {
    var settings = DSCHSettings()
    if let path = options["settings"] {
        guard let bytes = FileManager.default.contents(atPath: path) else { throw UsageError(description: "cannot read settings file \(path)") }
        settings = try DSCHSettings.decode(json: Array(bytes), base: settings)
    }
    var all = overrides
    if let bits = options["bits"] { all["bits"] = try positiveInteger(bits, "--bits") }
    if let epochs = options["epochs"] { all["epochs"] = try positiveInteger(epochs, "--epochs") }
    return try DSCHSettings.decode(overrides: all, base: settings)
}

func positiveInteger(_ text: String, _ name: String) throws -> Int {
    guard let value = Int(text), value > 0 else { throw UsageError(description: "\(name) needs a positive integer, got '\(text)'") }
    return value
}

/// Sets the compute threads from `--threads` (default: every core) and returns the count.
func applyThreads(_ options: [String: String]) throws -> Int {
    let threads = try options["threads"].map { try positiveInteger($0, "--threads") } ?? ProcessInfo.processInfo.activeProcessorCount
    ComputeThreads.set(threads)
    return threads
}

/// Thumbnails of every JPEG/PNG under `folder`, in path order; files that do not decode are skipped with a note.
func folderThumbnails(_ folder: String, inputSize: Int) throws -> [[UInt8]] {
    guard let enumerator = FileManager.default.enumerator(atPath: folder) else {
        throw UsageError(description: "cannot read folder \(folder)")
    }
    var paths: [String] = []
    while let relative = enumerator.nextObject() as? String {
        let lowered = relative.lowercased()
        if lowered.hasSuffix(".jpg") || lowered.hasSuffix(".jpeg") || lowered.hasSuffix(".png") { paths.append(folder + "/" + relative) }
    }
    var thumbnails: [[UInt8]] = []
    for path in paths.sorted() {
        do {
            guard let bytes = FileManager.default.contents(atPath: path) else { continue }
            thumbnails.append(try ImageDecoder.thumbnail(Array(bytes), width: inputSize, height: inputSize).pixels)
        } catch {
            FileHandle.standardError.write(Data("skipping \(path): \(error)\n".utf8))
        }
    }
    return thumbnails
}

/// Prints an epoch report to standard error.
func printEpoch(_ report: DSCHEpochReport, prefix: String = "") {
    FileHandle.standardError.write(Data((prefix + report.summary + "\n").utf8))
}

/// `dsch train`: a dataset or folder → a saved model.
func runTrain(arguments: [String]) throws {
    let (overrides, rest) = try extractSettingOverrides(arguments)
    let (options, positional) = try parseOptions(
        rest, known: ["dataset", "data-dir", "folder", "output", "kind", "bits", "epochs", "settings", "ablation", "input-size", "threads"])
    if options["help"] != nil { print(trainUsage); return }
    guard positional.isEmpty else { throw UsageError(description: "train takes no positional arguments\n\n" + trainUsage) }
    guard let output = options["output"] else { throw UsageError(description: "train needs --output FILE\n\n" + trainUsage) }
    let inputSize = try options["input-size"].map { try positiveInteger($0, "--input-size") } ?? 32
    var settings = try dschSettings(options: options, overrides: overrides)
    if let name = options["ablation"] {
        guard let ablation = DSCHSettings.Ablation(rawValue: name) else {
            throw UsageError(description: "--ablation must be one of \(DSCHSettings.Ablation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        settings = settings.applying(ablation)
    }
    let threads = try applyThreads(options)

    let thumbnails: [[UInt8]]
    switch (options["dataset"], options["folder"]) {
    case ("fashion-mnist"?, nil):
        let split = try EvaluationProtocol.load(directory: options["data-dir"] ?? EvaluationProtocol.fashionMNISTDirectory)
        thumbnails = split.thumbnails(split.trainingIndices, inputSize: inputSize)
    case (nil, let folder?):
        thumbnails = try folderThumbnails(folder, inputSize: inputSize)
    case (let dataset?, nil):
        throw UsageError(description: "unknown dataset '\(dataset)'; the one built in is fashion-mnist")
    default:
        throw UsageError(description: "train needs exactly one of --dataset fashion-mnist or --folder DIR")
    }

    let kind = ModelKind(rawValue: options["kind"] ?? ModelKind.dsch.rawValue)
    guard let entry = try? EncoderRegistry.entry(kind) else {
        throw UsageError(description: "--kind must be one of \(EncoderRegistry.kinds.map(\.rawValue).joined(separator: ", ")), got '\(kind)'")
    }
    if kind == .dsch { print("training DSCH on \(thumbnails.count) images, \(threads) threads, settings \(settingsJSON(settings))") }
    let started = Date()
    // The CLI's one seed drives every kind, as it always has.
    let training = TrainingSettings(bits: settings.bits, inputSize: inputSize, lshSeed: settings.seed, itqSeed: settings.seed, dsch: settings)
    let encoder = try entry.train(thumbnails, training) { _, message in
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }.encoder
    let seconds = Date().timeIntervalSince(started)
    let bytes = try encoder.serialized()
    guard FileManager.default.createFile(atPath: output, contents: Data(bytes)) else {
        throw UsageError(description: "cannot write \(output)")
    }
    print(String(format: "trained %@ (%d bits) on %d images in %.1f s; wrote %d bytes to %@",
                 kind.rawValue, encoder.bits, thumbnails.count, seconds, bytes.count, output))
}

/// Settings as one line of sorted JSON.
func settingsJSON(_ settings: DSCHSettings) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return (try? encoder.encode(settings)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
}
