import Foundation
import Service

// Temporary dispatcher; the full CLI replaces it.
let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch (arguments.first, arguments.dropFirst().first) {
    case ("bench", "index"): try runIndexBenchmark(arguments: Array(arguments.dropFirst(2)))
    case ("bench", "nn"): try runNeuralNetBenchmark(arguments: Array(arguments.dropFirst(2)))
    default: print("dsch \(ServiceVersion.string)")
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
