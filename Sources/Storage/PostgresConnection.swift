import CPostgres
import Foundation

/// The database cannot be reached (refused, timed out, restarting, connection lost). Requests that need
/// it fail with this; the service answers 503 and reconnects by itself, so retrying later is the remedy.
public struct StorageUnavailableError: Error, CustomStringConvertible, Sendable {
    /// What failed, in words a person can act on.
    public let reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { "the database is unavailable: \(reason); retry shortly" }
}

/// A statement PostgreSQL refused, with its SQLSTATE code (for example 23505, unique violation).
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    public let sqlState: String
    public let message: String
    public let sql: String?
    public var description: String {
        "PostgreSQL error \(sqlState): \(message)" + (sql.map { " in `\($0.prefix(200))`" } ?? "")
    }
}

/// One row of a result, copied out of libpq in text format (bytea as `\x` hex, decoded on access).
public struct PostgresRow: Sendable {
    fileprivate let fields: [[UInt8]?]

    // Accessors by column index; a NULL reads as the type's empty value unless asked for as optional.
    public func isNull(_ column: Int) -> Bool { fields[column] == nil }
    public func optionalString(_ column: Int) -> String? { fields[column].map { String(decoding: $0, as: UTF8.self) } }
    public func string(_ column: Int) -> String { optionalString(column) ?? "" }
    public func optionalInt64(_ column: Int) -> Int64? { optionalString(column).flatMap { Int64($0) } }
    public func int64(_ column: Int) -> Int64 { optionalInt64(column) ?? 0 }
    public func int(_ column: Int) -> Int { Int(int64(column)) }
    public func optionalInt(_ column: Int) -> Int? { optionalInt64(column).map { Int($0) } }
    public func double(_ column: Int) -> Double { optionalString(column).flatMap { Double($0) } ?? 0 }
    public func bool(_ column: Int) -> Bool { fields[column] == [UInt8(ascii: "t")] }

    /// A bytea column: PostgreSQL's text output is `\x` followed by two hex digits a byte.
    public func bytes(_ column: Int) -> [UInt8] {
        guard let text = fields[column], text.count >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x") else { return [] }
        var result = [UInt8](repeating: 0, count: (text.count - 2) / 2)
        for index in result.indices {
            result[index] = PostgresRow.nibble(text[2 + 2 * index]) << 4 | PostgresRow.nibble(text[3 + 2 * index])
        }
        return result
    }

    private static func nibble(_ character: UInt8) -> UInt8 {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return character - UInt8(ascii: "A") + 10
        default: return 0
        }
    }
}

/// One libpq connection. Not thread-safe: the owner uses it from one thread at a time.
/// Parameters are sent as text, except byte arrays, which go in binary so blobs are never escaped.
public final class PostgresConnection {
    private var handle: OpaquePointer?
    /// Names of the statements prepared on this session, by SQL text; they live as long as the session.
    private var preparedNames: [String: String] = [:]

    /// Connects to a `postgresql://` URI (or a `key=value` string). Unless the URI says otherwise,
    /// connecting gives up after `connectTimeoutSeconds` and TCP keepalives notice a vanished server
    /// within seconds, so a dead database turns into `StorageUnavailableError`, never a hang.
    public init(url: String, connectTimeoutSeconds: Int = 5) throws {
        var keys = ["dbname"]
        var values = [url]
        let defaults: [(String, String)] = [("connect_timeout", String(connectTimeoutSeconds)), ("keepalives_idle", "5"),
                                            ("keepalives_interval", "2"), ("keepalives_count", "3"),
                                            ("application_name", "dsch")]
        for (key, value) in defaults where !url.contains(key + "=") {
            keys.append(key)
            values.append(value)
        }
        // With expand_dbname, the first "dbname" is parsed as the URI; later keys fill what it leaves unset.
        let connection = PostgresConnection.withCStrings(keys) { keyPointers in
            PostgresConnection.withCStrings(values) { valuePointers in
                PQconnectdbParams(keyPointers, valuePointers, 1)
            }
        }
        handle = connection
        guard let connection, PQstatus(connection) == CONNECTION_OK else {
            let message = connection.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            close()
            throw StorageUnavailableError(reason: "cannot connect to PostgreSQL at \(PostgresConnection.redacted(url)): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        // Every statement of the store is short; one that waits this long is stuck behind a lock or a dead peer.
        try execute("SET statement_timeout = '60s'; SET lock_timeout = '30s'")
    }

    deinit { close() }

    /// The URI without its password, for logs and error messages.
    public static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url.range(of: "@", range: scheme.upperBound..<url.endIndex) else { return url }
        let credentials = url[scheme.upperBound..<at.lowerBound]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return url.replacingCharacters(in: colon..<at.lowerBound, with: ":***")
    }

    /// False once the connection broke (server restarted, network gone); the owner then drops it.
    public var isHealthy: Bool { handle.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// Whether a connection that sat idle still works: a server that restarted closed the socket, which
    /// shows as readable; reading it lets libpq notice. Costs a `poll` or two, no round trip.
    public func checkAlive() -> Bool {
        guard let handle, PQstatus(handle) == CONNECTION_OK else { return false }
        return consumeAvailableInput(handle)
    }

    /// Reads whatever the server sent without blocking (notifications, a shutdown notice, end of file);
    /// false once the connection is found broken. A server shutting down sends its notice and then
    /// closes, so reading goes on until nothing more is ready.
    private func consumeAvailableInput(_ handle: OpaquePointer) -> Bool {
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        for _ in 0..<16 {
            guard poll(&descriptor, 1, 0) > 0 else { break }
            if PQconsumeInput(handle) == 0 { return false }
            if PQstatus(handle) != CONNECTION_OK { return false }
        }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// Closes the connection; later calls fail as unavailable.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
        preparedNames = [:]
    }

    /// Runs one or more statements without parameters (migrations, `SET`, `LISTEN`).
    public func execute(_ sql: String) throws {
        let result = try checked(PQexec(try open(), sql), sql: sql)
        PQclear(result)
    }

    /// Runs a statement and returns its rows. With `prepared`, the statement is parsed and planned once
    /// per session and reused, which pays off for the large statements a batch repeats.
    @discardableResult
    public func query(_ sql: String, _ values: [SQLValue] = [], prepared: Bool = false) throws -> [PostgresRow] {
        let result = try run(sql, values, prepared: prepared)
        defer { PQclear(result) }
        let rowCount = PQntuples(result), columnCount = PQnfields(result)
        var rows: [PostgresRow] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            var fields: [[UInt8]?] = []
            fields.reserveCapacity(Int(columnCount))
            for column in 0..<columnCount {
                if PQgetisnull(result, row, column) != 0 {
                    fields.append(nil)
                } else {
                    let length = Int(PQgetlength(result, row, column))
                    let start = UnsafeRawPointer(PQgetvalue(result, row, column)!).assumingMemoryBound(to: UInt8.self)
                    fields.append(Array(UnsafeBufferPointer(start: start, count: length)))
                }
            }
            rows.append(PostgresRow(fields: fields))
        }
        return rows
    }

    /// The first row, nil when there is none.
    public func queryFirst(_ sql: String, _ values: [SQLValue] = []) throws -> PostgresRow? {
        try query(sql, values).first
    }

    /// Runs a statement (prepared once per session with `prepared`); returns the number of rows it changed.
    @discardableResult
    public func update(_ sql: String, _ values: [SQLValue] = [], prepared: Bool = false) throws -> Int {
        let result = try run(sql, values, prepared: prepared)
        defer { PQclear(result) }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// Runs `body` between `BEGIN` and `COMMIT` (read committed); rolls back when it throws. The commit
    /// either succeeds before this returns or throws, so callers acknowledge only durable writes.
    public func transaction<Result>(_ body: () throws -> Result) throws -> Result {
        try execute("BEGIN")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if isHealthy { try? execute("ROLLBACK") }
            throw error
        }
    }

    // MARK: Notifications

    /// Waits up to `timeout` for a notification on a channel this connection listens to; returns
    /// whether one arrived (all pending ones are consumed). Throws unavailable when the connection broke.
    public func waitForNotification(timeout: TimeInterval) throws -> Bool {
        let connection = try open()
        if drainNotifications() { return true }
        var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
        guard descriptor.fd >= 0 else { throw StorageUnavailableError(reason: "the PostgreSQL connection has no socket") }
        _ = poll(&descriptor, 1, Int32(max(0, timeout) * 1000))
        guard consumeAvailableInput(connection) else {
            throw StorageUnavailableError(reason: "lost the PostgreSQL connection: \(lastErrorMessage)")
        }
        return drainNotifications()
    }

    private func drainNotifications() -> Bool {
        guard let handle else { return false }
        var any = false
        while let notification = PQnotifies(handle) {
            any = true
            PQfreemem(notification)
        }
        return any
    }

    // MARK: Internals

    private var lastErrorMessage: String {
        handle.map { String(cString: PQerrorMessage($0)).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "closed"
    }

    private func open() throws -> OpaquePointer {
        guard let handle else { throw StorageUnavailableError(reason: "the PostgreSQL connection is closed") }
        return handle
    }

    private func run(_ sql: String, _ values: [SQLValue], prepared: Bool = false) throws -> OpaquePointer {
        let connection = try open()
        var preparedName: String?
        if prepared {
            if let name = preparedNames[sql] {
                preparedName = name
            } else {
                let name = "dsch_\(preparedNames.count + 1)"
                PQclear(try checked(PQprepare(connection, name, sql, Int32(values.count), nil), sql: sql))
                preparedNames[sql] = name
                preparedName = name
            }
        }
        // Each parameter becomes a malloc'd buffer that lives until the call returns.
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        defer { for buffer in buffers { free(buffer) } }
        for value in values {
            switch value {
            case .null:
                buffers.append(nil); lengths.append(0); formats.append(0)
            case .integer(let number):
                buffers.append(strdup(String(number))); lengths.append(0); formats.append(0)
            case .real(let number):
                buffers.append(strdup(String(number))); lengths.append(0); formats.append(0)
            case .text(let text):
                buffers.append(strdup(text)); lengths.append(0); formats.append(0)
            case .blob(let bytes):
                let copy = malloc(max(bytes.count, 1))!.assumingMemoryBound(to: CChar.self)
                bytes.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { UnsafeMutableRawPointer(copy).copyMemory(from: base, byteCount: bytes.count) }
                }
                buffers.append(copy); lengths.append(Int32(bytes.count)); formats.append(1)
            }
        }
        let result = buffers.map { UnsafePointer($0) }.withUnsafeBufferPointer { valuePointers in
            if let preparedName {
                return PQexecPrepared(connection, preparedName, Int32(values.count), valuePointers.baseAddress, lengths, formats, 0)
            }
            return PQexecParams(connection, sql, Int32(values.count), nil, valuePointers.baseAddress, lengths, formats, 0)
        }
        return try checked(result, sql: sql)
    }

    /// The result when the statement succeeded; otherwise it is freed and the error thrown, typed as
    /// unavailable when the connection itself is the problem.
    private func checked(_ result: OpaquePointer?, sql: String) throws -> OpaquePointer {
        guard let result else {
            throw StorageUnavailableError(reason: "PostgreSQL did not answer: \(lastErrorMessage)")
        }
        let status = PQresultStatus(result)
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK { return result }
        let sqlState = dsch_pq_sqlstate(result).map { String(cString: $0) } ?? ""
        let message = String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
        PQclear(result)
        // Class 08: connection exceptions; 57P0x: the server is shutting down or starting; 53300: too many connections.
        if !isHealthy || sqlState.hasPrefix("08") || sqlState.hasPrefix("57P") || sqlState == "53300" || sqlState.isEmpty {
            throw StorageUnavailableError(reason: "PostgreSQL: \(message.isEmpty ? lastErrorMessage : message)")
        }
        throw PostgresError(sqlState: sqlState, message: message, sql: sql)
    }

    /// Calls `body` with a C array of C strings that lives for the call.
    private static func withCStrings<Result>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> Result) -> Result {
        let copies = strings.map { UnsafePointer(strdup($0)) } + [nil]
        defer { for copy in copies { free(UnsafeMutablePointer(mutating: copy)) } }
        return copies.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

extension PostgresConnection: MigrationTarget {
    public func createMigrationTableIfMissing() throws {
        try execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                checksum TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """)
    }

    public func appliedMigrations() throws -> [(id: Int, checksum: String)] {
        try query("SELECT id, checksum FROM schema_migrations ORDER BY id").map { (id: $0.int(0), checksum: $0.string(1)) }
    }

    /// The SQL and its record in one transaction (PostgreSQL's DDL is transactional).
    public func apply(_ migration: Migration) throws {
        try transaction {
            try execute(migration.sql)
            try update("INSERT INTO schema_migrations (id, name, checksum) VALUES ($1, $2, $3)",
                       [.int(migration.id), .text(migration.name), .text(migration.checksum)])
        }
    }

    /// PostgreSQL enforces foreign keys in every statement; nothing is left to check.
    public func verifyAfterMigrating() throws {}
}
