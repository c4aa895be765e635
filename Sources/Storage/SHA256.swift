/// SHA-256 (placeholder contract; implementation pending).
public enum SHA256 {
    public static func digest(_ bytes: [UInt8]) -> [UInt8] { fatalError("pending") }
    public static func hex(_ bytes: [UInt8]) -> String { fatalError("pending") }
}
