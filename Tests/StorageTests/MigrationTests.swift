import XCTest
import TestSupport
@testable import Storage

final class MigrationTests: XCTestCase {
    private let first = Migration(id: 1, name: "create_a", sql: "CREATE TABLE a (x INTEGER);")
    private let second = Migration(id: 2, name: "create_b", sql: "CREATE TABLE b (y INTEGER);")

    func testAppliesInOrderOnceAndRecordsChecksums() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory.appendingPathComponent("m.sqlite").path
        do {
            let database = try Database(path: path)
            XCTAssertEqual(try MigrationRunner.migrate(database, migrations: [second, first]), [1, 2])
            let rows = try database.query("SELECT id, name, checksum FROM schema_migrations ORDER BY id") { ($0.int(0), $0.string(1), $0.string(2)) }
            XCTAssertEqual(rows.map(\.0), [1, 2])
            XCTAssertEqual(rows.map(\.1), ["create_a", "create_b"])
            XCTAssertEqual(rows[0].2, SHA256.hexDigest(Array(first.sql.utf8)))
        }
        let reopened = try Database(path: path)
        XCTAssertEqual(try MigrationRunner.migrate(reopened, migrations: [first, second]), [])
        let third = Migration(id: 3, name: "create_c", sql: "CREATE TABLE c (z INTEGER);")
        XCTAssertEqual(try MigrationRunner.migrate(reopened, migrations: [first, second, third]), [3])
    }

    func testEditedMigrationIsRefusedByName() throws {
        let database = try Database(path: ":memory:")
        try MigrationRunner.migrate(database, migrations: [first, second])
        let edited = Migration(id: 2, name: "create_b", sql: "CREATE TABLE b (y INTEGER, extra TEXT);")
        XCTAssertThrowsError(try MigrationRunner.migrate(database, migrations: [first, edited])) { error in
            guard case MigrationError.editedAfterApply(let id, let name) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(id, 2)
            XCTAssertEqual(name, "create_b")
            XCTAssertTrue(String(describing: error).contains("create_b"))
        }
    }

    func testUnknownAppliedMigrationIsRefused() throws {
        let database = try Database(path: ":memory:")
        try MigrationRunner.migrate(database, migrations: [first, second])
        XCTAssertThrowsError(try MigrationRunner.migrate(database, migrations: [first])) { error in
            guard case MigrationError.unknownAppliedMigration(let id) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(id, 2)
        }
    }

    func testFailingMigrationIsRolledBackAndNotRecorded() throws {
        let database = try Database(path: ":memory:")
        let broken = Migration(id: 2, name: "broken", sql: "CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);")
        XCTAssertThrowsError(try MigrationRunner.migrate(database, migrations: [first, broken])) { error in
            guard case MigrationError.failed(let id, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(id, 2)
        }
        XCTAssertEqual(try database.queryScalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'half'"), 0)
        XCTAssertEqual(try database.query("SELECT id FROM schema_migrations") { $0.int(0) }, [1])
    }

    func testFileNamesAndDuplicates() throws {
        let parsed = try Migration(fileName: "0012_add_index.sql", sql: "SELECT 1;")
        XCTAssertEqual(parsed.id, 12)
        XCTAssertEqual(parsed.name, "add_index")
        for bad in ["12.sql", "abc_name.sql", "0001_name.txt", "0001_.sql", "0000_zero.sql"] {
            XCTAssertThrowsError(try Migration(fileName: bad, sql: "")) { error in
                guard case MigrationError.badFileName(let name) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(name, bad)
            }
        }
        XCTAssertThrowsError(try MigrationRunner.migrate(try Database(path: ":memory:"), migrations: [first, Migration(id: 1, name: "again", sql: "")])) { error in
            guard case MigrationError.duplicateID(1) = error else { return XCTFail("\(error)") }
        }
    }

    func testBundledMigrationsLoadAndApply() throws {
        let bundled = try MigrationRunner.bundledMigrations()
        XCTAssertEqual(bundled.first?.id, 1)
        XCTAssertEqual(bundled.first?.name, "initial")
        XCTAssertEqual(bundled.map(\.id), bundled.map(\.id).sorted())
        let database = try Database(path: ":memory:")
        try MigrationRunner.migrate(database, migrations: bundled)
        let tables = Set(try database.query("SELECT name FROM sqlite_master WHERE type = 'table'") { $0.string(0) })
        XCTAssertTrue(tables.isSuperset(of: ["images", "models", "codes", "jobs", "settings", "schema_migrations"]), "\(tables)")
    }

    func testOriginalsMoveToTheirOwnTableWithEveryByteKept() throws {
        let bundled = try MigrationRunner.bundledMigrations()
        let database = try Database(path: ":memory:")
        try MigrationRunner.migrate(database, migrations: bundled.filter { $0.id < 4 })
        let original = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try database.run("""
            INSERT INTO images (sha256, content_type, width, height, byte_size, original, thumbnail, metadata)
            VALUES ('abc', 'image/png', 2, 3, ?, ?, ?, '{"label":4}')
            """, [.int(original.count), .blob(original), .blob([1, 2, 3])])
        let id = database.lastInsertRowID
        XCTAssertEqual(try MigrationRunner.migrate(database, migrations: bundled).first, 4)

        let columns = try database.query("SELECT name FROM pragma_table_info('images')") { $0.string(0) }
        XCTAssertFalse(columns.contains("original"), "\(columns)")
        XCTAssertTrue(columns.contains("metadata") && columns.contains("thumbnail"), "\(columns)")
        XCTAssertEqual(try database.queryFirst("SELECT original FROM image_originals WHERE image_id = ?", [.integer(id)]) { $0.blob(0) }, original)
        XCTAssertEqual(try database.queryFirst("SELECT metadata FROM images WHERE id = ?", [.integer(id)]) { $0.string(0) }, #"{"label":4}"#)
        try database.run("DELETE FROM images WHERE id = ?", [.integer(id)])
        XCTAssertEqual(try database.queryScalarInt("SELECT count(*) FROM image_originals"), 0, "a deleted image takes its original along")
    }
}
