import Foundation

/// A malformed multipart/form-data body; answered with 400.
struct MultipartError: HTTPResponseError {
    var status: Int { 400 }
    var code: String { "malformed_multipart" }
    var message: String
}

/// Parses multipart/form-data bodies (RFC 7578 over the RFC 2046 multipart syntax).
public enum Multipart {
    /// The boundary parameter of a `multipart/form-data` Content-Type, or nil.
    public static func boundary(contentType: String) -> String? {
        let pieces = splitParameters(contentType)
        guard let mediaType = pieces.first?.trimmingCharacters(in: .whitespaces).lowercased(),
              mediaType == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() {
            guard let (name, value) = parameter(piece), name == "boundary" else { continue }
            // RFC 2046: 1 to 70 characters.
            guard (1...70).contains(value.utf8.count) else { return nil }
            return value
        }
        return nil
    }

    /// Splits a body into parts; throws an `HTTPResponseError` (400) when malformed.
    public static func parse(_ body: [UInt8], boundary: String) throws -> [MultipartPart] {
        guard !boundary.isEmpty else { throw MultipartError(message: "multipart boundary is empty") }
        let delimiter = Array("--\(boundary)".utf8)
        // The first delimiter may open the body or follow a preamble that ends with CRLF.
        var position: Int
        if body.starts(with: delimiter) {
            position = delimiter.count
        } else if let found = find(Array("\r\n".utf8) + delimiter, in: body, from: 0) {
            position = found + 2 + delimiter.count
        } else {
            throw MultipartError(message: "multipart body does not contain the boundary `\(boundary)`")
        }
        let nextDelimiter = Array("\r\n".utf8) + delimiter
        var parts: [MultipartPart] = []
        while true {
            if body.count - position >= 2, body[position] == UInt8(ascii: "-"), body[position + 1] == UInt8(ascii: "-") {
                // Close delimiter; anything after it is an epilogue and ignored.
                guard !parts.isEmpty else { throw MultipartError(message: "multipart body has no parts") }
                return parts
            }
            // Transport padding (spaces and tabs) may follow a delimiter before its CRLF.
            while position < body.count, body[position] == sp || body[position] == tab { position += 1 }
            guard body.count - position >= 2, body[position] == cr, body[position + 1] == lf else {
                throw MultipartError(message: "multipart delimiter is not followed by CRLF or `--`")
            }
            position += 2
            guard let contentEnd = find(nextDelimiter, in: body, from: position) else {
                throw MultipartError(message: "multipart body ends before its closing boundary")
            }
            parts.append(try parsePart(body[position..<contentEnd]))
            position = contentEnd + nextDelimiter.count
        }
    }

    /// Parses one part: header lines, an empty line, then the content.
    private static func parsePart(_ part: ArraySlice<UInt8>) throws -> MultipartPart {
        let headerEnd: Int
        let contentStart: Int
        if part.starts(with: [cr, lf]) {
            headerEnd = part.startIndex
            contentStart = part.startIndex + 2
        } else if let found = find(Array("\r\n\r\n".utf8), in: part, from: part.startIndex) {
            headerEnd = found
            contentStart = found + 4
        } else {
            throw MultipartError(message: "multipart part has no blank line after its headers")
        }
        var name: String?
        var filename: String?
        var contentType: String?
        let headerText = String(decoding: part[part.startIndex..<headerEnd], as: UTF8.self)
        for line in headerText.components(separatedBy: "\r\n") where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else {
                throw MultipartError(message: "multipart part header line without a colon")
            }
            let field = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch field {
            case "content-disposition":
                let pieces = splitParameters(value)
                guard pieces.first?.trimmingCharacters(in: .whitespaces).lowercased() == "form-data" else {
                    throw MultipartError(message: "multipart part Content-Disposition is not form-data")
                }
                for piece in pieces.dropFirst() {
                    guard let (key, text) = parameter(piece) else { continue }
                    if key == "name" { name = text }
                    if key == "filename" { filename = text }
                }
            case "content-type":
                contentType = value
            default:
                break
            }
        }
        guard let name else { throw MultipartError(message: "multipart part has no Content-Disposition name") }
        return MultipartPart(name: name, filename: filename, contentType: contentType, body: Array(part[contentStart...]))
    }

    /// Splits `type; a=b; c="d;e"` at semicolons outside quoted strings.
    private static func splitParameters(_ text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in text {
            if escaped {
                escaped = false
            } else if quoted && character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if character == ";" && !quoted {
                pieces.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        pieces.append(current)
        return pieces
    }

    /// `name=value` or `name="quoted \"value\""`, with the name lowercased and the quoting removed.
    private static func parameter(_ piece: String) -> (String, String)? {
        guard let equals = piece.firstIndex(of: "=") else { return nil }
        let name = piece[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
        let raw = piece[piece.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard raw.hasPrefix("\"") else { return (name, raw) }
        var value = ""
        var escaped = false
        for character in raw.dropFirst() {
            if escaped {
                value.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                return (name, value)
            } else {
                value.append(character)
            }
        }
        return nil
    }

    /// The index of the first occurrence of `needle` in `haystack` at or after `from`.
    static func find<Haystack: RandomAccessCollection>(_ needle: [UInt8], in haystack: Haystack, from: Int) -> Int?
    where Haystack.Element == UInt8, Haystack.Index == Int {
        guard let first = needle.first, haystack.endIndex - from >= needle.count else { return nil }
        var index = from
        let last = haystack.endIndex - needle.count
        while index <= last {
            if haystack[index] == first {
                var offset = 1
                while offset < needle.count && haystack[index + offset] == needle[offset] { offset += 1 }
                if offset == needle.count { return index }
            }
            index += 1
        }
        return nil
    }
}
