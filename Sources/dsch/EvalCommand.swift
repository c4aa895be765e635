/// `dsch eval` (pending).
func runEval(arguments: [String]) throws {
    throw UsageError(description: "dsch eval is not built yet")
}
