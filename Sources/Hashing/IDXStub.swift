// Placeholder contract for the IDX reader (replaced by the Hashing work).
/// Images of an IDX file: `count` images of `rows`×`columns` bytes, concatenated.
public struct IDXImages { public var count: Int; public var rows: Int; public var columns: Int; public var pixels: [UInt8] }
/// Reads IDX files (plain or gzip).
public enum IDXReader {
    public static func readImages(path: String) throws -> IDXImages { fatalError("pending") }
    public static func readLabels(path: String) throws -> [UInt8] { fatalError("pending") }
}
