import Foundation

/// One line per event on standard error: `time level message key=value…`. Thread-safe.
public final class Logger: @unchecked Sendable {
    /// Severity of a line.
    public enum Level: String, Sendable { case debug, info, warning, error }

    private let lock = NSLock()
    private let sink: @Sendable (String) -> Void

    /// Writes to standard error unless another sink (tests) is given.
    public init(sink: (@Sendable (String) -> Void)? = nil) {
        // One write(2) per line: lines from several threads never interleave, and no Data is built.
        self.sink = sink ?? { line in
            var bytes = Array((line + "\n").utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
                if written <= 0 { break }
                offset += written
            }
        }
    }

    /// Logs `message` with fields; values with spaces or quotes are quoted.
    public func log(_ level: Level, _ message: String, _ fields: [(String, String)] = []) {
        var line = Logger.timestamp()
        line += " \(level.rawValue) \(message)"
        for (key, value) in fields { line += " \(key)=\(Logger.quoted(value))" }
        lock.lock()
        defer { lock.unlock() }
        sink(line)
    }

    /// Now as ISO 8601 UTC with milliseconds (`2026-12-02T13:04:05.123Z`), from `clock_gettime` and
    /// `gmtime_r`: a per-request log line cannot afford a date formatter.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2))T"
            + "\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2))."
            + "\(padded(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }

    public func info(_ message: String, _ fields: [(String, String)] = []) { log(.info, message, fields) }
    public func warning(_ message: String, _ fields: [(String, String)] = []) { log(.warning, message, fields) }
    public func error(_ message: String, _ fields: [(String, String)] = []) { log(.error, message, fields) }

    static func quoted(_ value: String) -> String {
        if !value.isEmpty && !value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }
}
