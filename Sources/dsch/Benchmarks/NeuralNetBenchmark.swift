import Foundation
import Hashing
import NeuralNet

/// The encoders `dsch bench nn` can time; `bench/pytorch_nn.py` builds the same ones.
enum BenchmarkArchitecture: String, CaseIterable {
    /// The encoder `dsch eval` and the service train by default (`EncoderConfiguration()`): widths
    /// 16/32/64, the whole 8×8 last map in the head, a batch normalisation on the code.
    case dsch
    /// The encoder the benchmark was first measured with: widths 32/64/128, hidden 256, global average
    /// pooling, no code batch normalisation; kept so that older figures stay comparable.
    case globalPool = "global-pool"

    /// The configuration of this architecture at `bits`.
    func configuration(bits: Int) -> EncoderConfiguration {
        switch self {
        case .dsch: EncoderConfiguration(bits: bits)
        case .globalPool: EncoderConfiguration(bits: bits, widths: [32, 64, 128], hiddenWidth: 256, codeBatchNorm: false, headGrid: 1)
        }
    }
}

/// `dsch bench nn`: throughput of an encoder (training step, batched and single-image inference)
/// beside PyTorch running the same architecture, batch and thread count in the same run.
///
/// Options: `--architecture dsch|global-pool` (default dsch, the trained default), `--runs N` (timed repetitions, median reported; default 5), `--threads N` (default 2),
/// `--batch N` (images per view; a step sees two views; default 128), `--bits N` (the network's output
/// width; default that of DSCH's default settings, 128, which the codes are projected from),
/// `--single N` (images per single-image run; default 100), `--pytorch-script PATH`
/// (default `bench/pytorch_nn.py`), `--no-pytorch`.
func runNeuralNetBenchmark(arguments: [String]) throws {
    var options: [String: String] = [:]
    var flags: Set<String> = []
    var index = 0
    while index < arguments.count {
        let name = arguments[index]
        if name == "--no-pytorch" {
            flags.insert(name)
        } else if name.hasPrefix("--"), index + 1 < arguments.count {
            options[name] = arguments[index + 1]
            index += 1
        } else {
            throw BenchmarkUsageError(message: "unknown argument \(name); see the options of `dsch bench nn`")
        }
        index += 1
    }
    func integer(_ name: String, _ fallback: Int) throws -> Int {
        guard let text = options[name] else { return fallback }
        guard let value = Int(text), value > 0 else {
            throw BenchmarkUsageError(message: "\(name) needs a positive integer, got \(text)")
        }
        return value
    }
    let runs = try integer("--runs", 5), threads = try integer("--threads", 2)
    let batch = try integer("--batch", 128), bits = try integer("--bits", DSCHSettings().networkOutputWidth), single = try integer("--single", 100)
    let script = options["--pytorch-script"] ?? "bench/pytorch_nn.py"
    let architectureName = options["--architecture"] ?? BenchmarkArchitecture.dsch.rawValue
    guard let architecture = BenchmarkArchitecture(rawValue: architectureName) else {
        let known = BenchmarkArchitecture.allCases.map(\.rawValue).joined(separator: ", ")
        throw BenchmarkUsageError(message: "--architecture must be one of \(known), got \(architectureName)")
    }
    let configuration = architecture.configuration(bits: bits)

    ComputeThreads.set(threads)
    let stepBatch = 2 * batch
    let encoder = try Sequential.dschEncoder(configuration, seed: 0)
    var generator = SplitMix64(seed: 1)
    let images = try Tensor(shape: [stepBatch, 3, 32, 32], storage: (0..<stepBatch * 3 * 32 * 32).map { _ in Float(generator.nextGaussian()) })
    let gradient = try Tensor(shape: [stepBatch, bits], storage: (0..<stepBatch * bits).map { _ in Float(generator.nextGaussian()) })
    let optimizer = Adam(parameters: encoder.parameters, learningRate: 1e-3, weightDecay: 1e-4)

    func trainStep() throws {
        optimizer.zeroGradients()
        _ = try encoder.forward(images)
        try encoder.backward(outputGradient: gradient)
        optimizer.step()
    }

    let widths = configuration.widths.map(String.init).joined(separator: "/")
    print("dsch bench nn: \(architecture.rawValue) encoder (widths \(widths), head grid \(configuration.headGrid), "
        + "code batch norm \(configuration.codeBatchNorm ? "on" : "off"), \(bits) bits, 3×32×32), \(threads) threads, median of \(runs) runs")
    let kernelSource = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { "set by OPENBLAS_CORETYPE=\($0)" } ?? "OpenBLAS's own detection"
    print("OpenBLAS kernels: \(ComputeThreads.blasKernelName) (\(kernelSource))")
    encoder.mode = .training
    for _ in 0..<2 { try trainStep() }
    let train = try medianRate(images: stepBatch, runs: runs, trainStep)
    let peakMegabytes = peakResidentMegabytes()

    encoder.mode = .inference
    _ = try encoder.forward(images)
    let batched = try medianRate(images: stepBatch, runs: runs) { _ = try encoder.forward(images) }
    let singles = try (0..<min(single, stepBatch)).map { try Tensor(shape: [1, 3, 32, 32], storage: Array(images.storage[($0 * 3072)..<(($0 + 1) * 3072)])) }
    let singleRate = try medianRate(images: single, runs: runs) {
        for image in 0..<single { _ = try encoder.forward(singles[image % singles.count]) }
    }

    var reference: [String: Any]?
    if flags.contains("--no-pytorch") {
        print("PyTorch comparison skipped (--no-pytorch)")
    } else if !pythonHasTorch() {
        print("PyTorch comparison skipped: `python3 -c \"import torch\"` fails")
    } else {
        reference = try runPyTorch(script: script, arguments: [
            "--architecture", architecture.rawValue, "--threads", "\(threads)", "--batch", "\(batch)", "--bits", "\(bits)", "--runs", "\(runs)", "--single", "\(single)",
        ])
        if let version = reference?["torch"] { print("PyTorch \(version), torch.set_num_threads(\(threads))") }
    }

    func row(_ label: String, _ ours: Double, _ key: String) {
        var line = label.padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: "%10.1f img/s", ours)
        if let theirs = reference?[key] as? Double {
            line += String(format: "   PyTorch %10.1f img/s   ratio %.2f×", theirs, ours / theirs)
        }
        print(line)
    }
    row("training step (2×\(batch), Adam)", train, "train_images_per_second")
    row("inference, batch \(stepBatch)", batched, "batch_inference_images_per_second")
    row("inference, single image", singleRate, "single_inference_images_per_second")
    print(String(format: "peak resident memory after training steps: %.0f MB", peakMegabytes))
    if let load = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) {
        // Other work on the machine skews both columns; the load average says how much there was.
        print("load average (1, 5, 15 min): \(load.split(separator: " ").prefix(3).joined(separator: ", "))")
    }
}

/// A command-line mistake in the benchmark's options.
struct BenchmarkUsageError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Images per second of `work`, median over `runs` timed calls.
private func medianRate(images: Int, runs: Int, _ work: () throws -> Void) throws -> Double {
    var rates: [Double] = []
    for _ in 0..<runs {
        let start = DispatchTime.now().uptimeNanoseconds
        try work()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        rates.append(Double(images) / seconds)
    }
    rates.sort()
    return rates.count % 2 == 1 ? rates[rates.count / 2] : (rates[rates.count / 2 - 1] + rates[rates.count / 2]) / 2
}

private func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024  // Linux reports kilobytes.
}

private func pythonHasTorch() -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import torch"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    do {
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus == 0
    } catch {
        return false
    }
}

private func runPyTorch(script: String, arguments: [String]) throws -> [String: Any] {
    guard FileManager.default.fileExists(atPath: script) else {
        throw BenchmarkUsageError(message: "PyTorch script \(script) not found; run from the repository root or pass --pytorch-script")
    }
    let process = Process()
    let output = Pipe()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script] + arguments
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0,
          let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
          let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw BenchmarkUsageError(message: "the PyTorch script failed (exit status \(process.terminationStatus))")
    }
    return object
}
