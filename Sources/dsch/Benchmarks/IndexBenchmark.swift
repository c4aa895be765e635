/// `dsch bench index`: Hamming top-k throughput against faiss (pending).
func runIndexBenchmark(arguments: [String]) throws {
    print("dsch bench index: not built yet")
}
