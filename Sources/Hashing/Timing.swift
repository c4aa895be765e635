extension Duration {
    /// The duration in seconds, for reports and progress lines.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
