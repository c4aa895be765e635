import Foundation

/// Size limits the request parser enforces while bytes arrive.
struct ParserLimits: Sendable, Equatable {
    /// Bytes of the request line plus header section (also bounds a chunked body's trailer section).
    var maxHeaderBytes: Int = 16 * 1024
    /// Bytes of the decoded body, whether declared by Content-Length or streamed in chunks.
    var maxBodyBytes: Int = 32 * 1024 * 1024
    /// Header fields in one request (trailer fields are counted separately against the same bound).
    var maxHeaderCount: Int = 100
    /// The smallest allowance a chunked body asks for at a time, so tiny chunks do not each wait on the budget.
    var bodyAllowanceStep: Int = 1024 * 1024
}

extension ParserLimits {
    /// The limits a server enforces: the one place configuration becomes parser limits.
    init(_ configuration: ServerConfiguration) {
        self.init(maxHeaderBytes: configuration.maxHeaderBytes, maxBodyBytes: configuration.maxBodyBytes,
                  maxHeaderCount: configuration.maxHeaderCount)
    }
}

/// Why a request could not be parsed; each case knows the status the client gets.
struct ParseError: Error, Equatable, HTTPResponseError {
    var status: Int
    var code: String
    var message: String

    static func badRequest(_ message: String) -> ParseError {
        ParseError(status: 400, code: "bad_request", message: message)
    }
    static let headersTooLarge = ParseError(status: 431, code: "headers_too_large", message: "request header section exceeds the server limit")
    static let tooManyHeaders = ParseError(status: 431, code: "headers_too_large", message: "request has more header fields than the server allows")
    static let bodyTooLarge = ParseError(status: 413, code: "payload_too_large", message: "request body exceeds the server limit")
    /// The shared budget for request bodies had no room within the wait; the client may retry shortly.
    static let serverBusy = ParseError(status: 503, code: "server_busy", message: "the server is receiving too many request bodies; retry shortly")
    static let versionNotSupported = ParseError(status: 505, code: "http_version_not_supported", message: "only HTTP/1.0 and HTTP/1.1 are supported")
    static func notImplemented(_ message: String) -> ParseError {
        ParseError(status: 501, code: "not_implemented", message: message)
    }

    /// A 503 tells the client when to come back.
    var headers: [(String, String)] { status == 503 ? [("Retry-After", "1")] : [] }
}

/// How the body of a request is delimited on the wire.
enum BodyFraming: Equatable {
    case none
    case length(Int)
    case chunked
}

/// The request line and headers, available before the body arrives (for `Expect: 100-continue`).
struct RequestHead: Equatable {
    var method: String
    /// The raw request target as sent, still percent-encoded.
    var target: String
    var path: String
    /// The path split on `/` first, then each segment percent-decoded.
    var pathSegments: [String]
    var query: [String: String]
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    var minorVersion: Int
    var headers: HTTPHeaders
    var framing: BodyFraming
    /// Whether the connection may carry another request after this one.
    var keepAlive: Bool
    var expectsContinue: Bool
}

/// What the parser produced from the bytes fed so far.
enum ParserEvent: Equatable {
    /// The head is complete; the body (if any) follows.
    case head(RequestHead)
    /// The whole request, body included.
    case request(RequestHead, body: [UInt8])
    /// The body continues, but the parser may not hold more than it was allowed: call `allowBody` with at
    /// least this many more bytes before asking again. Asked before the first body byte is taken, so a
    /// server can reserve memory (and refuse) before inviting the body with `100 Continue`.
    case needsBodyAllowance(Int)
}

/// An incremental HTTP/1.x request parser: fed bytes in any split, it yields heads and requests.
/// It knows nothing of sockets; pipelined requests stay buffered until `next()` is called again.
/// Body bytes are only taken up to an allowance granted by the caller (see `ParserEvent.needsBodyAllowance`).
struct RequestParser {
    private enum State {
        case head
        case fixedBody(RequestHead, remaining: Int)
        case chunkSize(RequestHead)
        case chunkData(RequestHead, remaining: Int)
        case chunkDataEnd(RequestHead)
        case trailers(RequestHead, bytes: Int, count: Int)
    }

    let limits: ParserLimits
    private var buffer: [UInt8] = []
    /// Start of the unconsumed bytes in `buffer`.
    private var start = 0
    /// Where the search for the end of the header section resumes, so byte-by-byte feeding stays linear.
    private var scanFrom = 0
    private var state: State = .head
    private var body: [UInt8] = []
    /// Body bytes the parser may still take for the current request.
    private var allowance = 0
    private var failed: ParseError?

    init(limits: ParserLimits) { self.limits = limits }

    /// True while part of a request has been received but not yet returned as a whole.
    var hasPartialRequest: Bool {
        if case .head = state { return start < buffer.count }
        return true
    }

    /// Lets the parser take `bytes` more body bytes of the current request.
    mutating func allowBody(_ bytes: Int) { allowance += max(0, bytes) }

    /// Appends received bytes.
    mutating func feed<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if start > 0 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            scanFrom = max(0, scanFrom - start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next event, or nil when more bytes are needed. After an error the parser stays failed.
    mutating func next() throws -> ParserEvent? {
        if let failed { throw failed }
        do {
            return try step()
        } catch let error as ParseError {
            failed = error
            throw error
        }
    }

    private mutating func step() throws -> ParserEvent? {
        while true {
            switch state {
            case .head:
                guard let head = try parseHead() else { return nil }
                switch head.framing {
                case .none:
                    return .request(head, body: [])
                case .length(let length):
                    if length == 0 { return .request(head, body: []) }
                    state = .fixedBody(head, remaining: length)
                case .chunked:
                    state = .chunkSize(head)
                }
                body = []
                allowance = 0
                return .head(head)

            case .fixedBody(let head, let remaining):
                // The whole declared length at once: it is known, and refusing early spares the upload.
                if allowance < remaining { return .needsBodyAllowance(remaining - allowance) }
                if body.isEmpty { body.reserveCapacity(remaining) }
                let available = min(remaining, buffer.count - start)
                if available == 0 { return nil }
                body.append(contentsOf: buffer[start..<(start + available)])
                start += available
                allowance -= available
                if remaining == available { return finish(head) }
                state = .fixedBody(head, remaining: remaining - available)
                return nil

            case .chunkSize(let head):
                guard let line = try takeLine(maxLength: 4096, what: "chunk size line") else { return nil }
                let size = try parseChunkSize(line)
                if size == 0 {
                    state = .trailers(head, bytes: 0, count: 0)
                } else {
                    if size > limits.maxBodyBytes - body.count { throw ParseError.bodyTooLarge }
                    state = .chunkData(head, remaining: size)
                }

            case .chunkData(let head, let remaining):
                if allowance < remaining {
                    // The size of the chunk or one step, whichever is larger, but never past the body limit
                    // (which the chunk itself was already checked against).
                    let room = limits.maxBodyBytes - body.count - allowance
                    return .needsBodyAllowance(min(max(remaining - allowance, limits.bodyAllowanceStep), room))
                }
                let available = min(remaining, buffer.count - start)
                if available == 0 { return nil }
                body.append(contentsOf: buffer[start..<(start + available)])
                start += available
                allowance -= available
                state = remaining == available ? .chunkDataEnd(head) : .chunkData(head, remaining: remaining - available)

            case .chunkDataEnd(let head):
                if buffer.count - start < 2 { return nil }
                guard buffer[start] == cr, buffer[start + 1] == lf else {
                    throw ParseError.badRequest("chunk data is not followed by CRLF")
                }
                start += 2
                state = .chunkSize(head)

            case .trailers(let head, let bytes, let count):
                guard let line = try takeLine(maxLength: max(0, limits.maxHeaderBytes - bytes), what: "trailer section") else { return nil }
                if line.isEmpty { return finish(head) }
                if count + 1 > limits.maxHeaderCount { throw ParseError.tooManyHeaders }
                // Trailer fields are validated and then dropped: merging them into the headers would let
                // a client change framing-related fields after the fact.
                _ = try parseHeaderLine(line)
                state = .trailers(head, bytes: bytes + line.count + 2, count: count + 1)
            }
        }
    }

    private mutating func finish(_ head: RequestHead) -> ParserEvent {
        let complete = body
        body = []
        allowance = 0
        state = .head
        scanFrom = start
        return .request(head, body: complete)
    }

    /// Takes one CRLF-terminated line from the buffer, without the CRLF.
    private mutating func takeLine(maxLength: Int, what: String) throws -> ArraySlice<UInt8>? {
        var index = start
        while index < buffer.count {
            if buffer[index] == lf {
                // Fed a byte at a time, a line longer than maxLength + 1 is refused before its LF
                // arrives; refusing it the same way here keeps the verdict independent of the split.
                if index - start > maxLength + 1 { throw lineTooLong(what) }
                guard index > start, buffer[index - 1] == cr else {
                    throw ParseError.badRequest("\(what) ends with a bare LF")
                }
                let line = buffer[start..<(index - 1)]
                if line.count > maxLength { throw lineTooLong(what) }
                start = index + 1
                return line
            }
            index += 1
        }
        // Without a LF yet, the line is too long only once even its CRLF could not fit, so the verdict
        // does not depend on how the bytes were split.
        if buffer.count - start > maxLength + 1 { throw lineTooLong(what) }
        return nil
    }

    private func lineTooLong(_ what: String) -> ParseError {
        what == "trailer section" ? ParseError.headersTooLarge : ParseError.badRequest("\(what) is too long")
    }


    private func parseChunkSize(_ line: ArraySlice<UInt8>) throws -> Int {
        var size = 0
        var digits = 0
        var index = line.startIndex
        while index < line.endIndex, let value = hexValue(line[index]) {
            if digits >= 15 { throw ParseError.bodyTooLarge }
            size = size * 16 + value
            digits += 1
            index += 1
        }
        if digits == 0 { throw ParseError.badRequest("chunk size is not a hexadecimal number") }
        // What follows the size may only be whitespace and `;name[=value]` chunk extensions, which are ignored.
        while index < line.endIndex, line[index] == sp || line[index] == tab { index += 1 }
        if index < line.endIndex {
            guard line[index] == UInt8(ascii: ";") else { throw ParseError.badRequest("invalid character after chunk size") }
            for byte in line[index...] where (byte < 0x20 && byte != tab) || byte == 0x7F {
                throw ParseError.badRequest("control character in chunk extension")
            }
        }
        return size
    }

    /// Parses the request line and headers once the whole header section is buffered.
    private mutating func parseHead() throws -> RequestHead? {
        // RFC 9112 §2.2: ignore empty lines before the request line (some clients send a CRLF after a body).
        while buffer.count - start >= 2, buffer[start] == cr, buffer[start + 1] == lf {
            start += 2
            scanFrom = max(scanFrom, start)
        }
        if start < buffer.count, buffer[start] == lf { throw ParseError.badRequest("request line ends with a bare LF") }
        guard let end = findHeaderEnd() else {
            // A section within the limit has its CRLFCRLF within limit + 4 bytes; deciding only past that
            // keeps whole and byte-by-byte feeding in agreement at the boundary.
            if buffer.count - start > limits.maxHeaderBytes + 3 { throw ParseError.headersTooLarge }
            return nil
        }
        if end - start > limits.maxHeaderBytes { throw ParseError.headersTooLarge }
        let section = buffer[start..<end]
        start = end + 4
        scanFrom = start

        var lines: [ArraySlice<UInt8>] = []
        var lineStart = section.startIndex
        var index = section.startIndex
        while index < section.endIndex {
            if section[index] == lf {
                guard index > lineStart, section[index - 1] == cr else { throw ParseError.badRequest("header line ends with a bare LF") }
                lines.append(section[lineStart..<(index - 1)])
                lineStart = index + 1
            }
            index += 1
        }
        lines.append(section[lineStart..<section.endIndex])
        if lines.count - 1 > limits.maxHeaderCount { throw ParseError.tooManyHeaders }

        let (method, target, minorVersion) = try parseRequestLine(lines[0])
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            let (name, value) = try parseHeaderLine(line)
            headers.add(name, value)
        }
        return try interpret(method: method, target: target, minorVersion: minorVersion, headers: headers)
    }

    /// The index of the CRLFCRLF that ends the header section, if buffered.
    private mutating func findHeaderEnd() -> Int? {
        var index = max(scanFrom, start)
        while index + 3 < buffer.count {
            if buffer[index] == cr, buffer[index + 1] == lf, buffer[index + 2] == cr, buffer[index + 3] == lf {
                return index
            }
            index += 1
        }
        scanFrom = max(start, buffer.count - 3)
        return nil
    }

    private func parseRequestLine(_ line: ArraySlice<UInt8>) throws -> (String, String, Int) {
        let parts = line.split(separator: sp, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw ParseError.badRequest("request line must be `METHOD target HTTP/1.1`") }
        let method = parts[0], target = parts[1], version = parts[2]
        guard !method.isEmpty, method.allSatisfy(isTokenCharacter) else { throw ParseError.badRequest("request method is not a valid token") }
        guard target.first == UInt8(ascii: "/") else { throw ParseError.badRequest("request target must be an absolute path (origin-form)") }
        guard target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw ParseError.badRequest("request target contains a space, control or non-ASCII byte") }
        let versionText = String(decoding: version, as: UTF8.self)
        let minor: Int
        switch versionText {
        case "HTTP/1.1": minor = 1
        case "HTTP/1.0": minor = 0
        default:
            let bytes = Array(version)
            let wellFormed = bytes.count == 8 && versionText.hasPrefix("HTTP/") && isDigit(bytes[5]) && bytes[6] == UInt8(ascii: ".") && isDigit(bytes[7])
            throw wellFormed ? ParseError.versionNotSupported : ParseError.badRequest("malformed HTTP version")
        }
        return (String(decoding: method, as: UTF8.self), String(decoding: target, as: UTF8.self), minor)
    }

    private func parseHeaderLine(_ line: ArraySlice<UInt8>) throws -> (String, String) {
        if let first = line.first, first == sp || first == tab {
            throw ParseError.badRequest("obsolete line folding in header section")
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw ParseError.badRequest("header line without a colon") }
        let name = line[line.startIndex..<colon]
        guard !name.isEmpty, name.allSatisfy(isTokenCharacter) else {
            throw ParseError.badRequest("header name is empty or not a valid token (whitespace before the colon is not allowed)")
        }
        var value = line[(colon + 1)...]
        while let first = value.first, first == sp || first == tab { value = value.dropFirst() }
        while let last = value.last, last == sp || last == tab { value = value.dropLast() }
        for byte in value where (byte < 0x20 && byte != tab) || byte == 0x7F {
            throw ParseError.badRequest("control character in header value")
        }
        return (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
    }

    /// Decides framing, persistence and expectations from the header fields.
    private func interpret(method: String, target: String, minorVersion: Int, headers: HTTPHeaders) throws -> RequestHead {
        var lengths: [String] = []
        var codings: [String] = []
        var hosts = 0
        var connectionTokens: [String] = []
        var expect: String?
        for field in headers {
            switch field.name.lowercased() {
            case "content-length":
                lengths += field.value.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            case "transfer-encoding":
                codings += field.value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
            case "host":
                hosts += 1
            case "connection":
                connectionTokens += field.value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            case "expect":
                expect = field.value.lowercased()
            default:
                break
            }
        }
        if minorVersion == 1 && hosts == 0 { throw ParseError.badRequest("HTTP/1.1 request without a Host header") }
        if hosts > 1 { throw ParseError.badRequest("more than one Host header") }

        var framing = BodyFraming.none
        let hasTransferEncoding = headers.contains { $0.name.lowercased() == "transfer-encoding" }
        if hasTransferEncoding {
            if !lengths.isEmpty { throw ParseError.badRequest("both Transfer-Encoding and Content-Length are present") }
            if minorVersion == 0 { throw ParseError.badRequest("Transfer-Encoding is not allowed in HTTP/1.0") }
            if let unknown = codings.first(where: { $0 != "chunked" }) {
                throw ParseError.notImplemented("transfer coding `\(unknown)` is not supported; use chunked or Content-Length")
            }
            guard codings == ["chunked"] else { throw ParseError.badRequest("Transfer-Encoding must be exactly `chunked`") }
            framing = .chunked
        } else if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }) else { throw ParseError.badRequest("conflicting Content-Length values") }
            guard !first.isEmpty, first.utf8.allSatisfy(isDigit) else { throw ParseError.badRequest("Content-Length is not a decimal number") }
            let significant = first.drop { $0 == "0" }
            guard significant.count <= 15, let length = Int(first) else { throw ParseError.bodyTooLarge }
            if length > limits.maxBodyBytes { throw ParseError.bodyTooLarge }
            framing = .length(length)
        }
        // RFC 9112 §6.3: with neither Content-Length nor Transfer-Encoding the body is empty, whatever the method.

        let keepAlive: Bool
        if connectionTokens.contains("close") {
            keepAlive = false
        } else {
            keepAlive = minorVersion == 1 || connectionTokens.contains("keep-alive")
        }
        let (path, pathSegments, query) = try splitTarget(target)
        return RequestHead(method: method, target: target, path: path, pathSegments: pathSegments, query: query, minorVersion: minorVersion,
                           headers: headers, framing: framing, keepAlive: keepAlive,
                           expectsContinue: minorVersion == 1 && expect == "100-continue")
    }
}

/// Splits an origin-form target into its decoded path, its decoded segments and query parameters.
/// Segments are split before decoding, so an encoded `/` (`%2F`) stays inside its segment.
func splitTarget(_ target: String) throws -> (path: String, segments: [String], query: [String: String]) {
    let bytes = Array(target.utf8)
    let questionMark = bytes.firstIndex(of: UInt8(ascii: "?"))
    let rawPath = bytes[..<(questionMark ?? bytes.count)]
    guard let path = percentDecode(rawPath, plusAsSpace: false) else {
        throw ParseError.badRequest("request path has an invalid percent-encoding or is not UTF-8")
    }
    var segments: [String] = []
    let afterSlash = rawPath.dropFirst()
    if !afterSlash.isEmpty {
        for rawSegment in afterSlash.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard let segment = percentDecode(rawSegment, plusAsSpace: false) else {
                throw ParseError.badRequest("request path has an invalid percent-encoding or is not UTF-8")
            }
            segments.append(segment)
        }
    }
    var query: [String: String] = [:]
    if let questionMark {
        for pair in bytes[(questionMark + 1)...].split(separator: UInt8(ascii: "&")) {
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            let rawName = pair[pair.startIndex..<(equals ?? pair.endIndex)]
            let rawValue = equals.map { pair[($0 + 1)...] } ?? []
            guard let name = percentDecode(rawName, plusAsSpace: true), let value = percentDecode(rawValue, plusAsSpace: true) else {
                throw ParseError.badRequest("query string has an invalid percent-encoding or is not UTF-8")
            }
            query[name] = value
        }
    }
    return (path, segments, query)
}

/// Decodes `%XX` escapes (and `+` when asked); nil for a broken escape, invalid UTF-8 or a decoded NUL.
func percentDecode(_ bytes: ArraySlice<UInt8>, plusAsSpace: Bool) -> String? {
    // Most paths and parameters have nothing to decode: validate them in place, without a copy.
    if !bytes.contains(where: { $0 == UInt8(ascii: "%") || (plusAsSpace && $0 == UInt8(ascii: "+")) }) {
        return String(validating: bytes, as: UTF8.self)
    }
    var decoded: [UInt8] = []
    decoded.reserveCapacity(bytes.count)
    var index = bytes.startIndex
    while index < bytes.endIndex {
        let byte = bytes[index]
        if byte == UInt8(ascii: "%") {
            guard index + 2 < bytes.endIndex,
                  let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else { return nil }
            let value = UInt8(high * 16 + low)
            if value == 0 { return nil }
            decoded.append(value)
            index += 3
        } else {
            decoded.append(plusAsSpace && byte == UInt8(ascii: "+") ? sp : byte)
            index += 1
        }
    }
    return String(validating: decoded, as: UTF8.self)
}

let cr = UInt8(ascii: "\r")
let lf = UInt8(ascii: "\n")
let sp = UInt8(ascii: " ")
let tab = UInt8(ascii: "\t")

func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

func hexValue(_ byte: UInt8) -> Int? {
    switch byte {
    case 0x30...0x39: return Int(byte - 0x30)
    case 0x41...0x46: return Int(byte - 0x41 + 10)
    case 0x61...0x66: return Int(byte - 0x61 + 10)
    default: return nil
    }
}

/// RFC 9110 `tchar`.
func isTokenCharacter(_ byte: UInt8) -> Bool {
    switch byte {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    default: return "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}
