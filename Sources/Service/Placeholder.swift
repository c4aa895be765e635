/// The application layer (pending).
public enum ServiceVersion { public static let string = "0.1.0" }
