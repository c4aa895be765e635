/// `dsch train` (pending).
func runTrain(arguments: [String]) throws {
    throw UsageError(description: "dsch train is not built yet")
}
