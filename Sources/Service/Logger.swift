import Foundation

/// One line per event on standard error: `time level message key=value…`. Thread-safe.
public final class Logger: @unchecked Sendable {
    /// Severity of a line.
    public enum Level: String, Sendable { case debug, info, warning, error }

    private let lock = NSLock()
    private let sink: @Sendable (String) -> Void
    private let formatter: ISO8601DateFormatter

    /// Writes to standard error unless another sink (tests) is given.
    public init(sink: (@Sendable (String) -> Void)? = nil) {
        self.sink = sink ?? { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    }

    /// Logs `message` with fields; values with spaces or quotes are quoted.
    public func log(_ level: Level, _ message: String, _ fields: [(String, String)] = []) {
        var line = ""
        lock.lock()
        line = formatter.string(from: Date())
        lock.unlock()
        line += " \(level.rawValue) \(message)"
        for (key, value) in fields { line += " \(key)=\(Logger.quoted(value))" }
        lock.lock()
        defer { lock.unlock() }
        sink(line)
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
