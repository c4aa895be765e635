import Foundation

/// A JSON response body, written straight to bytes with object keys sorted so output is stable for
/// scripts and tests. `raw` splices JSON text the service validated when it stored it (image
/// metadata, model settings), so a search hit's metadata is never parsed again on the way out.
indirect enum JSONValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])
    /// JSON text already known to be valid.
    case raw(String)

    static func int(_ value: Int) -> JSONValue { .integer(Int64(value)) }

    /// Whether `text` parses as JSON: stored text is spliced only when it does, so a damaged row
    /// drops one field instead of breaking the whole response.
    static func isValid(_ text: String) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
    }

    /// The value's JSON text as UTF-8.
    var bytes: [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        write(to: &output)
        return output
    }

    private func write(to output: inout [UInt8]) {
        switch self {
        case .string(let text): JSONValue.writeString(text, to: &output)
        case .integer(let value): JSONValue.writeInteger(value, to: &output)
        case .number(let value):
            // JSON has no NaN or infinity; training figures that overflowed are written as null.
            if value.isFinite {
                let integral = value.rounded() == value && abs(value) < 1e15
                output.append(contentsOf: (integral ? String(Int64(value)) : "\(value)").utf8)
            } else {
                output.append(contentsOf: "null".utf8)
            }
        case .bool(let value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case .null: output.append(contentsOf: "null".utf8)
        case .raw(let text): output.append(contentsOf: text.utf8)
        case .array(let values):
            output.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                value.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let fields):
            output.append(UInt8(ascii: "{"))
            // Sorting the pairs, not the keys, spares a second hash lookup per field.
            for (index, field) in fields.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                JSONValue.writeString(field.key, to: &output)
                output.append(UInt8(ascii: ":"))
                field.value.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Decimal digits of `value`, without building a String (search results write several per hit).
    private static func writeInteger(_ value: Int64, to output: inout [UInt8]) {
        if value < 0 { output.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            output.append(contentsOf: buffer[start...])
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped, `/` and non-ASCII as they are.
    private static func writeString(_ text: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        // Most strings (keys, hashes, dates) need no escape: copy them whole.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            output.append(contentsOf: text.utf8)
            output.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): output.append(contentsOf: #"\\"#.utf8)
            case 0x0A: output.append(contentsOf: #"\n"#.utf8)
            case 0x0D: output.append(contentsOf: #"\r"#.utf8)
            case 0x09: output.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                output.append(contentsOf: #"\u00"#.utf8)
                output.append(contentsOf: String(format: "%02x", byte).utf8)
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

/// Limits on client metadata, and its canonical stored form.
struct MetadataPolicy {
    /// Largest accepted metadata text, in UTF-8 bytes.
    var maxBytes: Int
    /// Deepest accepted nesting of objects and arrays (the top-level object is depth 1).
    var maxDepth: Int

    /// The canonical text to store (keys sorted, no insignificant space), or nil for no metadata.
    /// Size and depth are checked on the raw bytes before any parsing, so a hostile value costs
    /// no more than one pass over at most `maxBytes` bytes.
    func canonical(_ text: String?) throws -> String? {
        guard let text, !text.isEmpty else { return nil }
        let bytes = Array(text.utf8)
        guard bytes.count <= maxBytes else {
            throw ServiceError.payloadTooLarge("meta is \(bytes.count) bytes; it must be a JSON object of at most \(maxBytes) bytes")
        }
        let depth = MetadataPolicy.nestingDepth(bytes)
        guard depth <= maxDepth else {
            throw ServiceError.badRequest("meta nests \(depth) levels deep; at most \(maxDepth) levels of objects and arrays are allowed")
        }
        // Foundation's parse and write were 11 % of a bulk import, whose metadata is already canonical.
        if MetadataPolicy.isCanonicalFlatObject(bytes) { return text }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw ServiceError.badRequest("meta must be a JSON object of at most \(maxBytes) bytes, for example {\"label\":\"shoe\"}")
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// Whether `bytes` is a flat object that Foundation would write back byte for byte: no space, keys of
    /// lowercase letters in strictly ascending order, string values of printable ASCII without `"` or `\`,
    /// numbers that are integers of at most 15 digits (no `-0`, no leading zero). Anything else takes the
    /// full path.
    static func isCanonicalFlatObject(_ bytes: [UInt8]) -> Bool {
        var index = 0
        func next() -> UInt8? { index < bytes.count ? bytes[index] : nil }
        /// A plain string's contents, with `index` past its closing quote. Keys must be lowercase letters
        /// only: Foundation does not sort keys by their bytes (`_` before `/` before `9`, and digits by value).
        func plainString(key: Bool) -> ArraySlice<UInt8>? {
            guard next() == UInt8(ascii: "\"") else { return nil }
            index += 1
            let start = index
            while let byte = next(), byte != UInt8(ascii: "\"") {
                let allowed = key ? (0x61...0x7A).contains(byte) : (0x20...0x7E).contains(byte) && byte != UInt8(ascii: "\\")
                guard allowed else { return nil }
                index += 1
            }
            guard next() == UInt8(ascii: "\"") else { return nil }
            index += 1
            return bytes[start..<(index - 1)]
        }
        func plainInteger() -> Bool {
            if next() == UInt8(ascii: "-") { index += 1 }
            let start = index
            while let byte = next(), (0x30...0x39).contains(byte) { index += 1 }
            let digits = index - start
            guard (1...15).contains(digits) else { return false }
            // A lone 0 is canonical, -0 and leading zeros are not.
            if bytes[start] == 0x30 { return digits == 1 && (start == 0 || bytes[start - 1] != UInt8(ascii: "-")) }
            return true
        }
        guard next() == UInt8(ascii: "{") else { return false }
        index += 1
        if next() == UInt8(ascii: "}") { return index + 1 == bytes.count }
        var previousKey: ArraySlice<UInt8>?
        while true {
            guard let key = plainString(key: true) else { return false }
            if let previousKey, !previousKey.lexicographicallyPrecedes(key) { return false }
            previousKey = key
            guard next() == UInt8(ascii: ":") else { return false }
            index += 1
            if next() == UInt8(ascii: "\"") {
                guard plainString(key: false) != nil else { return false }
            } else if !plainInteger() {
                return false
            }
            switch next() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): return index + 1 == bytes.count
            default: return false
            }
        }
    }

    /// The deepest nesting of `{`/`[` outside string literals.
    static func nestingDepth(_ bytes: [UInt8]) -> Int {
        var depth = 0, deepest = 0
        var inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            default: break
            }
        }
        return deepest
    }
}
