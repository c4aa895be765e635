import CSQLite
import Foundation

/// A value bound to, or read from, an SQL statement.
public enum SQLValue: Equatable, Sendable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case null

    /// `.integer`, for the many `Int` columns.
    public static func int(_ value: Int) -> SQLValue { .integer(Int64(value)) }
    /// `.text`, or `.null` for nil.
    public static func optionalText(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
    /// `.integer`, or `.null` for nil.
    public static func optionalInt(_ value: Int?) -> SQLValue { value.map { .integer(Int64($0)) } ?? .null }
}

extension DatabaseError {
    /// The error SQLite reports for `connection` after a call returned `code`.
    init(code: Int32, connection: OpaquePointer?, sql: String?) {
        let message = connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            ?? String(cString: sqlite3_errstr(code))
        self.init(resultCode: code, message: message, sql: sql)
    }
}

/// One SQLite connection. Not thread-safe: the owner uses it from one thread (or queue) at a time.
public final class Database {
    /// The raw `sqlite3*` handle.
    let handle: OpaquePointer
    /// File name as opened (":memory:" for a private in-memory database).
    public let path: String
    /// Prepared statements for hot queries, reset before each reuse.
    private var statementCache: [String: Statement] = [:]
    private var isClosed = false

    /// Opens `path` read-write (creating it), then sets the pragmas every connection of the service needs:
    /// a busy timeout so a reader or writer waits instead of failing on a lock, foreign keys on,
    /// WAL so readers never block the writer, and `synchronous=FULL` so an acknowledged commit survives
    /// a power loss, not only a process crash.
    public init(path: String, busyTimeoutMilliseconds: Int32 = 5000, walMode: Bool = true) throws {
        var connection: OpaquePointer?
        // NOMUTEX: the owner serialises access, so SQLite's own per-call mutex would only cost time.
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI
        let code = sqlite3_open_v2(path, &connection, flags, nil)
        guard code == SQLITE_OK, let connection else {
            let error = DatabaseError(code: code, connection: connection, sql: nil)
            sqlite3_close_v2(connection)
            throw DatabaseError(resultCode: error.resultCode, message: "cannot open \(path): \(error.message)", sql: nil)
        }
        self.handle = connection
        self.path = path
        sqlite3_extended_result_codes(connection, 0)
        sqlite3_busy_timeout(connection, busyTimeoutMilliseconds)
        try execute("PRAGMA foreign_keys = ON")
        if walMode { _ = try queryScalarText("PRAGMA journal_mode = WAL") }
        try execute("PRAGMA synchronous = FULL")
    }

    deinit { close() }

    /// Finalises cached statements and closes the connection; later calls fail with SQLITE_MISUSE.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        statementCache.removeAll()
        // close_v2 defers the close until statements still held elsewhere are finalised.
        sqlite3_close_v2(handle)
    }

    private func checkOpen(_ sql: String?) throws {
        if isClosed { throw DatabaseError(resultCode: SQLITE_MISUSE, message: "the database connection is closed", sql: sql) }
    }

    /// Prepares a fresh statement (finalised when the returned object goes away).
    public func prepare(_ sql: String) throws -> Statement {
        try checkOpen(sql)
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard code == SQLITE_OK, let statement else { throw DatabaseError(code: code, connection: handle, sql: sql) }
        return Statement(handle: statement, sql: sql, connection: handle)
    }

    /// A cached prepared statement for `sql`, reset and with bindings cleared.
    public func cachedStatement(_ sql: String) throws -> Statement {
        try checkOpen(sql)
        if let statement = statementCache[sql] {
            statement.reset()
            return statement
        }
        let statement = try prepare(sql)
        statementCache[sql] = statement
        return statement
    }

    /// Runs one or more statements without bindings or results (schema scripts, pragmas).
    public func execute(_ sql: String) throws {
        try checkOpen(sql)
        var errorMessage: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if code != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_free(errorMessage)
            throw DatabaseError(resultCode: code, message: message, sql: sql)
        }
    }

    /// Runs one statement with `values` bound, ignoring any rows; returns the number of rows changed.
    @discardableResult
    public func run(_ sql: String, _ values: [SQLValue] = []) throws -> Int {
        let statement = try cachedStatement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        while try statement.step() {}
        return Int(sqlite3_changes(handle))
    }

    /// Every row of a query, each turned into a value by `row`.
    public func query<Row>(_ sql: String, _ values: [SQLValue] = [], row: (Statement) throws -> Row) throws -> [Row] {
        let statement = try cachedStatement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        var rows: [Row] = []
        while try statement.step() { rows.append(try row(statement)) }
        return rows
    }

    /// The first row of a query, if any.
    public func queryFirst<Row>(_ sql: String, _ values: [SQLValue] = [], row: (Statement) throws -> Row) throws -> Row? {
        let statement = try cachedStatement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        return try statement.step() ? try row(statement) : nil
    }

    /// The first column of the first row as text (nil when there is no row or it is NULL).
    public func queryScalarText(_ sql: String, _ values: [SQLValue] = []) throws -> String? {
        try queryFirst(sql, values) { $0.optionalString(0) } ?? nil
    }

    /// The first column of the first row as an integer (nil when there is no row or it is NULL).
    public func queryScalarInt(_ sql: String, _ values: [SQLValue] = []) throws -> Int64? {
        try queryFirst(sql, values) { $0.isNull(0) ? nil : $0.int64(0) } ?? nil
    }

    /// Row id of the last successful insert on this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// True between BEGIN and COMMIT/ROLLBACK.
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back when it throws.
    /// IMMEDIATE takes the write lock up front, so the transaction cannot fail half-way with SQLITE_BUSY
    /// when it first writes.
    @discardableResult
    public func transaction<Result>(_ body: () throws -> Result) throws -> Result {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if isInTransaction { try? execute("ROLLBACK") }
            throw error
        }
    }
}

/// A prepared statement of one connection, finalised when released.
public final class Statement {
    let handle: OpaquePointer
    /// The SQL text, reported in errors.
    public let sql: String
    private let connection: OpaquePointer

    init(handle: OpaquePointer, sql: String, connection: OpaquePointer) {
        self.handle = handle; self.sql = sql; self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    /// Makes the statement ready to run again and clears its bindings.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Binds `values` to parameters 1, 2, … in order.
    public func bind(_ values: [SQLValue]) throws {
        for (offset, value) in values.enumerated() { try bind(value, at: Int32(offset + 1)) }
    }

    /// Binds one value to the parameter at `index` (1-based).
    public func bind(_ value: SQLValue, at index: Int32) throws {
        let code: Int32
        switch value {
        case .integer(let number): code = sqlite3_bind_int64(handle, index, number)
        case .real(let number): code = sqlite3_bind_double(handle, index, number)
        case .text(let text):
            code = dsch_sqlite3_bind_text_transient(handle, index, text, Int32(text.utf8.count))
        case .blob(let bytes):
            // A zero-length blob must still be a blob, not NULL: SQLite wants a non-nil pointer for that.
            code = bytes.isEmpty
                ? sqlite3_bind_zeroblob(handle, index, 0)
                : bytes.withUnsafeBytes { dsch_sqlite3_bind_blob_transient(handle, index, $0.baseAddress, Int32($0.count)) }
        case .null: code = sqlite3_bind_null(handle, index)
        }
        guard code == SQLITE_OK else { throw DatabaseError(code: code, connection: connection, sql: sql) }
    }

    /// Advances to the next row: true when a row is ready, false when done.
    public func step() throws -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = DatabaseError(code: code, connection: connection, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// True when the column of the current row is NULL.
    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    public func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }
    public func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }
    /// Text of the column ("" for NULL).
    public func string(_ column: Int32) -> String { optionalString(column) ?? "" }
    public func optionalString(_ column: Int32) -> String? {
        guard let text = sqlite3_column_text(handle, column) else { return nil }
        let length = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: length), as: UTF8.self)
    }
    public func optionalInt(_ column: Int32) -> Int? { isNull(column) ? nil : int(column) }
    /// Bytes of the column (empty for NULL or an empty blob).
    public func blob(_ column: Int32) -> [UInt8] {
        guard let bytes = sqlite3_column_blob(handle, column) else { return [] }
        let length = Int(sqlite3_column_bytes(handle, column))
        return [UInt8](UnsafeRawBufferPointer(start: bytes, count: length))
    }
}
