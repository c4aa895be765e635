/// The release of the service, reported by `dsch --version`.
public enum ServiceVersion {
    public static let string = "0.1.0"
}
