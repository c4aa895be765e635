import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns responses into wire bytes with the headers the server always owns.
enum ResponseEncoding {
    /// Headers the server decides; a handler's values for them are replaced.
    private static let serverOwned: Set<String> = ["content-length", "date", "connection", "x-request-id", "transfer-encoding"]

    /// The status line, headers and body of `response`, with Content-Length, Date, Connection and X-Request-Id set.
    /// A response to HEAD keeps its Content-Length but loses its body; 204 has neither (RFC 9110 §8.6).
    static func encode(_ response: HTTPResponse, requestID: String, keepAlive: Bool, requestMethod: String = "GET", date: Date = Date()) -> [UInt8] {
        var head = "HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n"
        for field in response.headers where !serverOwned.contains(field.name.lowercased()) {
            // CR or LF in a field would let a handler split the response: names must be tokens and
            // line breaks are dropped from values (scalar by scalar, since "\r\n" is one Character).
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(isTokenCharacter) else { continue }
            var value = String.UnicodeScalarView()
            value.append(contentsOf: field.value.unicodeScalars.filter { $0 != "\r" && $0 != "\n" })
            head += "\(field.name): \(String(value))\r\n"
        }
        let noContent = response.status == 204 || response.status == 304
        if !noContent { head += "Content-Length: \(response.body.count)\r\n" }
        head += "Date: \(httpDate(date))\r\n"
        head += "Connection: \(keepAlive ? "keep-alive" : "close")\r\n"
        head += "X-Request-Id: \(requestID)\r\n\r\n"
        var bytes = Array(head.utf8)
        if requestMethod != "HEAD" && !noContent { bytes.append(contentsOf: response.body) }
        return bytes
    }

    /// The interim response that invites the client to send its body.
    static let continueResponse = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    static func httpDate(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }
}

/// Request ids: the client's when it is safe to echo and log, a fresh random one otherwise.
enum RequestID {
    /// Longest client-supplied id kept; a UUID (36) or a W3C trace id (32) fits.
    static let maxClientLength = 64

    /// The client's `X-Request-Id` if it is 1 to 64 characters of `A-Z a-z 0-9 - _ . :`, otherwise 32 random hex digits.
    static func make(clientValue: String?) -> String {
        if let value = clientValue, isAcceptable(value) { return value }
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        return hex(high) + hex(low)
    }

    /// Letters, digits and `-_.:` only: nothing a log line or a response header could misread.
    static func isAcceptable(_ value: String) -> Bool {
        (1...maxClientLength).contains(value.utf8.count) && value.utf8.allSatisfy { byte in
            switch byte {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
            default: return byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
            }
        }
    }

    private static func hex(_ value: UInt64) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}

/// Keeps a logged path on one line: spaces, controls and non-ASCII are percent-encoded.
func loggablePath(_ path: String) -> String {
    var result = ""
    for byte in path.utf8 {
        if byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "%") {
            result.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            let text = String(byte, radix: 16, uppercase: true)
            result += "%" + (text.count == 1 ? "0" : "") + text
        }
    }
    return result.isEmpty ? "-" : result
}

/// A value for a `key=value` log line that stays one field whatever it holds: bare when it is printable
/// ASCII without space, `"`, `\` or `=`, otherwise quoted with `"` and `\` escaped and every other byte
/// outside printable ASCII written as `\xNN`, so a client cannot add fields, lines or quotes.
func logValue(_ value: String) -> String {
    let bare = !value.isEmpty && value.utf8.allSatisfy { byte in
        byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") && byte != UInt8(ascii: "=")
    }
    if bare { return value }
    var result = "\""
    for byte in value.utf8 {
        switch byte {
        case UInt8(ascii: "\""): result += "\\\""
        case UInt8(ascii: "\\"): result += "\\\\"
        case 0x20..<0x7F: result.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let text = String(byte, radix: 16, uppercase: true)
            result += "\\x" + (text.count == 1 ? "0" : "") + text
        }
    }
    return result + "\""
}
