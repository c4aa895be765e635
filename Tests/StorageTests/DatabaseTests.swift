import XCTest
import TestSupport
@testable import Storage

/// A fresh directory under the system temp directory, removed by the test's teardown.
private struct Deliberate: Error {}

final class DatabaseTests: XCTestCase {
    func testValuesRoundTripThroughBindAndColumns() throws {
        let database = try Database(path: ":memory:")
        try database.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)")
        try database.run("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                         [.integer(Int64.min), .real(-2.5), .text("héllo ✓ \u{0}x"), .blob([0, 1, 255]), .null])
        try database.run("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [.int(7), .real(0), .text(""), .blob([]), .optionalText(nil)])
        let rows = try database.query("SELECT i, r, s, b, n, typeof(b) FROM t ORDER BY rowid") { row in
            (row.int64(0), row.double(1), row.string(2), row.blob(3), row.optionalString(4), row.string(5))
        }
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0].0, Int64.min)
        XCTAssertEqual(rows[0].1, -2.5)
        XCTAssertEqual(rows[0].2, "héllo ✓ \u{0}x")
        XCTAssertEqual(rows[0].3, [0, 1, 255])
        XCTAssertNil(rows[0].4)
        XCTAssertEqual(rows[1].3, [])
        XCTAssertEqual(rows[1].5, "blob", "an empty byte array is stored as a blob, not NULL")
    }

    func testTransactionRollsBackWhenBodyThrows() throws {
        let database = try Database(path: ":memory:")
        try database.execute("CREATE TABLE t (x INTEGER)")
        XCTAssertThrowsError(try database.transaction {
            try database.run("INSERT INTO t VALUES (1)")
            XCTAssertTrue(database.isInTransaction)
            throw Deliberate()
        }) { XCTAssertTrue($0 is Deliberate) }
        XCTAssertFalse(database.isInTransaction)
        XCTAssertEqual(try database.queryScalarInt("SELECT count(*) FROM t"), 0)
        try database.transaction { try database.run("INSERT INTO t VALUES (2)") }
        XCTAssertEqual(try database.queryScalarInt("SELECT sum(x) FROM t"), 2)
    }

    func testErrorsCarryCodeMessageAndSQL() throws {
        let database = try Database(path: ":memory:")
        try database.execute("CREATE TABLE t (x INTEGER NOT NULL UNIQUE)")
        try database.run("INSERT INTO t VALUES (1)")
        XCTAssertThrowsError(try database.run("INSERT INTO t VALUES (?)", [.int(1)])) { error in
            let error = error as! DatabaseError
            XCTAssertEqual(error.resultCode, 19) // SQLITE_CONSTRAINT
            XCTAssertTrue(error.message.contains("UNIQUE"), error.message)
            XCTAssertEqual(error.sql, "INSERT INTO t VALUES (?)")
            XCTAssertTrue(error.description.contains("INSERT INTO t"))
        }
        XCTAssertThrowsError(try database.prepare("SELEC 1")) { error in
            XCTAssertEqual((error as! DatabaseError).resultCode, 1) // SQLITE_ERROR
        }
        // The cached statement is usable again after a failed step.
        try database.run("INSERT INTO t VALUES (?)", [.int(2)])
        XCTAssertEqual(try database.queryScalarInt("SELECT count(*) FROM t"), 2)
        database.close()
        XCTAssertThrowsError(try database.run("SELECT 1"))
    }

    func testFileConnectionUsesWALForeignKeysAndFullSync() throws {
        let directory = try makeTemporaryDirectory(self)
        let database = try Database(path: directory.appendingPathComponent("db.sqlite").path)
        XCTAssertEqual(try database.queryScalarText("PRAGMA journal_mode"), "wal")
        XCTAssertEqual(try database.queryScalarInt("PRAGMA foreign_keys"), 1)
        XCTAssertEqual(try database.queryScalarInt("PRAGMA synchronous"), 2) // FULL
        XCTAssertThrowsError(try Database(path: directory.appendingPathComponent("missing/dir/db.sqlite").path)) { error in
            XCTAssertTrue(String(describing: error).contains("cannot open"))
        }
    }
}
