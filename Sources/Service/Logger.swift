import Foundation
import Synchronization

/// One line per event on standard error: `time level message key=value…`. Thread-safe.
public final class Logger: @unchecked Sendable {
    /// Severity of a line.
    public enum Level: String, Sendable { case debug, info, warning, error }

    private let lock = NSLock()
    /// A custom destination (tests); nil writes to standard error through `StandardErrorBuffer`.
    private let sink: (@Sendable (String) -> Void)?

    /// Writes to standard error unless another sink (tests) is given.
    public init(sink: (@Sendable (String) -> Void)? = nil) {
        self.sink = sink
    }

    /// Logs `message` with fields; values with spaces or quotes are quoted.
    public func log(_ level: Level, _ message: String, _ fields: [(String, String)] = []) {
        var line = Logger.timestamp()
        line += " \(level.rawValue) \(message)"
        for (key, value) in fields { line += " \(key)=\(Logger.quoted(value))" }
        guard let sink else {
            StandardErrorBuffer.shared.append(line, urgent: level == .warning || level == .error)
            return
        }
        lock.lock()
        defer { lock.unlock() }
        sink(line)
    }

    /// Writes out every line still buffered for standard error; call before the process exits.
    public func flush() {
        if sink == nil { StandardErrorBuffer.shared.flush() }
    }

    /// Now as ISO 8601 UTC with milliseconds (`2026-12-02T13:04:05.123Z`), from `clock_gettime` and
    /// `gmtime_r`: a per-request log line cannot afford a date formatter. The part up to the seconds is
    /// formatted once per second.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let second = now.tv_sec
        let prefix = lastSecond.withLock { $0.second == second ? $0.prefix : nil } ?? {
            let text = secondPrefix(second)
            lastSecond.withLock { $0 = (second, text) }
            return text
        }()
        let milliseconds = Int(now.tv_nsec / 1_000_000)
        let digits = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return prefix + digits + "Z"
    }

    private static let lastSecond = Mutex<(second: Int, prefix: String)>((-1, ""))

    /// `2026-12-02T13:04:05.` for the second `second` since the epoch.
    private static func secondPrefix(_ second: Int) -> String {
        var seconds = time_t(second)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2))T"
            + "\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2))."
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

/// Standard error with a short buffer. Info lines gather and go out together within 100 ms (or once 32 KB
/// have gathered), because a write(2) per request line cost 8 % of a small request; warnings and errors go
/// out at once, after whatever waited before them. A process killed outright loses at most those 100 ms of
/// info lines. One per process, as standard error is.
final class StandardErrorBuffer: @unchecked Sendable {
    static let shared = StandardErrorBuffer()

    private let lock = NSLock()
    /// Held while writing, so that two flushes cannot put their lines out of order.
    private let writeLock = NSLock()
    private var pending: [UInt8] = []
    private var flusherStarted = false
    private static let flushBytes = 32 * 1024
    private static let flushInterval = 0.1

    /// Adds one line; `urgent` writes it (and all before it) now.
    func append(_ line: String, urgent: Bool) {
        let full = lock.withLock { () -> Bool in
            pending.append(contentsOf: line.utf8)
            pending.append(0x0A)
            if !flusherStarted {
                flusherStarted = true
                startFlusher()
                // A process that exits normally (the end of main, `exit`) writes what is left.
                atexit { StandardErrorBuffer.shared.flush() }
            }
            return pending.count >= StandardErrorBuffer.flushBytes
        }
        if urgent || full { flush() }
    }

    /// Writes everything buffered so far.
    func flush() {
        writeLock.lock()
        defer { writeLock.unlock() }
        var bytes: [UInt8] = []
        lock.withLock { swap(&bytes, &pending) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { break }
            offset += written
        }
    }

    private func startFlusher() {
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: StandardErrorBuffer.flushInterval)
                flush()
            }
        }
        thread.name = "log-flush"
        thread.start()
    }
}
