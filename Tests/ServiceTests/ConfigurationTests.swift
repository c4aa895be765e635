import Foundation
import XCTest
@testable import Service

final class ConfigurationTests: XCTestCase {
    /// Config/default.json documents the defaults; it must say exactly what the code does.
    func testDefaultFileMatchesBuiltInDefaults() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Config/default.json")
        let fromFile = try ConfigurationLoader.load(file: file.path, environment: [:])
        XCTAssertEqual(fromFile, Configuration())
        let fileTree = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
        XCTAssertEqual(ConfigurationLoader.leafKeys(fileTree), ConfigurationLoader.leafKeys(try ConfigurationLoader.defaultTree()))
    }

    func testLayersApplyInOrder() throws {
        let file = try temporaryFile("{\"server\":{\"port\":9000,\"workers\":2},\"database\":{\"path\":\"a.sqlite\"}}")
        let configuration = try ConfigurationLoader.load(
            file: file, environment: ["DSCH_SERVER_PORT": "9100", "DSCH_ADMIN_TOKEN": "secret", "HOME": "/x"],
            overrides: [(key: "server.port", value: "9200")])
        XCTAssertEqual(configuration.server.port, 9200)
        XCTAssertEqual(configuration.server.workers, 2)
        XCTAssertEqual(configuration.database.path, "a.sqlite")
        XCTAssertEqual(configuration.admin.token, "secret")
    }

    /// `database.url` wins over `database.path`; a `postgresql://` URI in `path` (what `--database`
    /// sets) selects PostgreSQL too; replicas must share a configured admin token.
    func testDatabaseURLAndPathSelectTheStore() throws {
        XCTAssertNil(try ConfigurationLoader.load(environment: [:]).database.postgresURL, "SQLite by default")
        let uri = "postgresql://dsch:secret@db.example:5432/dsch"
        let fromEnvironment = try ConfigurationLoader.load(environment: ["DSCH_DATABASE_URL": uri, "DSCH_ADMIN_TOKEN": "t"],
                                                           overrides: [(key: "database.path", value: "ignored.sqlite")])
        XCTAssertEqual(fromEnvironment.database.postgresURL, uri)
        let fromFlag = try ConfigurationLoader.load(environment: ["DSCH_ADMIN_TOKEN": "t"], overrides: [(key: "database.path", value: uri)])
        XCTAssertEqual(fromFlag.database.postgresURL, uri)
        XCTAssertThrowsError(try ConfigurationLoader.load(environment: ["DSCH_DATABASE_URL": uri])) { error in
            XCTAssertTrue("\(error)".contains("admin.token"), "\(error)")
        }
        XCTAssertThrowsError(try ConfigurationLoader.load(environment: ["DSCH_DATABASE_URL": "data/x.sqlite", "DSCH_ADMIN_TOKEN": "t"])) { error in
            XCTAssertTrue("\(error)".contains("database.url must be a postgresql:// URI"), "\(error)")
        }
    }

    func testUnknownKeysAreNamed() throws {
        let file = try temporaryFile("{\"server\":{\"prot\":9000}}")
        XCTAssertThrowsError(try ConfigurationLoader.load(file: file, environment: [:])) { error in
            XCTAssertEqual(error as? ConfigurationError, .unknownKey("server.prot", source: file))
        }
        XCTAssertThrowsError(try ConfigurationLoader.load(environment: ["DSCH_SERVER_PROT": "1"])) { error in
            XCTAssertEqual(error as? ConfigurationError, .unknownKey("DSCH_SERVER_PROT", source: "the environment"))
        }
    }

    func testWrongTypesAndRangesAreRefused() throws {
        let file = try temporaryFile("{\"server\":{\"port\":\"eighty\"}}")
        XCTAssertThrowsError(try ConfigurationLoader.load(file: file, environment: [:])) { error in
            XCTAssertEqual(error as? ConfigurationError, .wrongType(key: "server.port", expected: "a number", source: file))
        }
        XCTAssertThrowsError(try ConfigurationLoader.load(environment: ["DSCH_MODEL_BITS": "12"]))
        XCTAssertThrowsError(try ConfigurationLoader.load(environment: ["DSCH_SERVER_PORT": "x"]))
    }

    func testEnvironmentNames() {
        XCTAssertEqual(ConfigurationLoader.environmentName(for: "server.maxBodyBytes"), "DSCH_SERVER_MAX_BODY_BYTES")
        XCTAssertEqual(ConfigurationLoader.environmentName(for: "admin.token"), "DSCH_ADMIN_TOKEN")
    }

    private func temporaryFile(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dsch-config-\(UUID().uuidString).json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }
}
