/// `dsch bench nn`: encoder training and inference throughput against PyTorch (pending).
func runNeuralNetBenchmark(arguments: [String]) throws {
    print("dsch bench nn: not built yet")
}
