/// One `meta.KEY=VALUE` condition on an image's metadata object, as listing and search apply it.
///
/// Matching rule (every `ServiceStore` must implement exactly this): the top-level key `key` exists and
/// - its value is a JSON string equal to `value` character for character (`meta.label=shoe` matches
///   `{"label":"shoe"}`), or
/// - its value is a number, `true`, `false` or `null` whose JSON text, as stored, equals `value`
///   (`meta.size=3` matches `{"size":3}`; `meta.done=true` matches `{"done":true}`).
/// Stored metadata is canonical (written by the service with sorted keys and no spaces), so "as stored"
/// is the shortest text JSON serialisation gives: `meta.size=3` does not match `{"size":3.5}`, and
/// `meta.n=3` matches both `{"n":3}` and `{"n":"3"}`. Objects and arrays never match; neither does an
/// image without metadata or without the key. Several filters must all match.
public struct MetadataFilter: Equatable, Hashable, Sendable {
    /// The top-level key; never contains `"` or `\` (the JSON path syntax cannot quote them).
    public let key: String
    /// The text the value must equal.
    public let value: String

    /// Longest key accepted, in UTF-8 bytes.
    public static let maxKeyBytes = 256
    /// Longest value accepted, in UTF-8 bytes.
    public static let maxValueBytes = 1024

    /// A filter, or nil when the key is empty, too long or holds a character the path syntax cannot
    /// express, or the value is too long (see `problem(key:value:)` for the reason in words).
    public init?(key: String, value: String) {
        guard MetadataFilter.problem(key: key, value: value) == nil else { return nil }
        self.key = key
        self.value = value
    }

    /// Why `key` and `value` cannot form a filter, in words a client can act on; nil when they can.
    public static func problem(key: String, value: String) -> String? {
        if key.isEmpty { return "a metadata filter needs a key: write meta.KEY=VALUE, for example meta.label=shoe" }
        if key.utf8.count > maxKeyBytes { return "metadata filter keys may be at most \(maxKeyBytes) bytes long" }
        if key.contains("\"") || key.contains("\\") || key.unicodeScalars.contains(where: { $0.value < 0x20 }) {
            return "metadata filter key '\(key)' holds a quote, backslash or control character; filter on keys without them"
        }
        if value.utf8.count > maxValueBytes { return "the value of meta.\(key) may be at most \(maxValueBytes) bytes long" }
        return nil
    }

    /// The SQLite JSON path of the key (`$."label"`): quoted, so dots and brackets in keys stay literal.
    public var jsonPath: String { "$.\"\(key)\"" }
}
