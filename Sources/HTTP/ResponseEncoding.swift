import Foundation
import Synchronization
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
        // Written straight to bytes: building the head as one String cost more than the request itself.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(192 + response.body.count)
        func line(_ parts: String...) {
            for part in parts { bytes.append(contentsOf: part.utf8) }
            bytes.append(contentsOf: [0x0D, 0x0A])
        }
        line("HTTP/1.1 ", String(response.status), " ", reasonPhrase(response.status))
        for field in response.headers where !serverOwned.contains(field.name.lowercased()) {
            // CR or LF in a field would let a handler split the response: names must be tokens and
            // line breaks are dropped from values (byte by byte, since "\r\n" is one Character).
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(isTokenCharacter) else { continue }
            bytes.append(contentsOf: field.name.utf8)
            bytes.append(contentsOf: ": ".utf8)
            bytes.append(contentsOf: field.value.utf8.lazy.filter { $0 != 0x0D && $0 != 0x0A })
            bytes.append(contentsOf: [0x0D, 0x0A])
        }
        let noContent = response.status == 204 || response.status == 304
        if !noContent { line("Content-Length: ", String(response.body.count)) }
        line("Date: ", httpDate(date))
        line("Connection: ", keepAlive ? "keep-alive" : "close")
        line("X-Request-Id: ", requestID)
        bytes.append(contentsOf: [0x0D, 0x0A])
        if requestMethod != "HEAD" && !noContent { bytes.append(contentsOf: response.body) }
        return bytes
    }

    /// The interim response that invites the client to send its body.
    static let continueResponse = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// The last second formatted, shared by all threads: every response carries a `Date`, and formatting it
    /// anew cost 2 % of a small request.
    private static let lastDate = Mutex<(second: time_t, text: String)>((-1, ""))

    /// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    static func httpDate(_ date: Date) -> String {
        let second = time_t(date.timeIntervalSince1970)
        if let cached = lastDate.withLock({ $0.second == second ? $0.text : nil }) { return cached }
        let text = formatHTTPDate(second)
        lastDate.withLock { $0 = (second, text) }
        return text
    }

    private static func formatHTTPDate(_ second: time_t) -> String {
        var seconds = second
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

    /// Drawn once per process, so that ids from several processes (replicas, restarts) do not collide.
    private static let processPrefix = hex(UInt64.random(in: .min ... .max))
    /// Numbers the ids of this process; no two requests of one process share one.
    private static let sequence = Atomic<UInt64>(0)

    /// The client's `X-Request-Id` if it is 1 to 64 characters of `A-Z a-z 0-9 - _ . :`, otherwise 32 hex
    /// digits: a random number drawn when the process started and a sequence number (two reads of the
    /// system's random source per request cost more than the rest of a small request).
    static func make(clientValue: String?) -> String {
        if let value = clientValue, isAcceptable(value) { return value }
        let number = sequence.add(1, ordering: .relaxed).newValue
        return processPrefix + hex(number)
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
