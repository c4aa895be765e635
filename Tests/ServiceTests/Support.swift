import Foundation
import XCTest
import HTTP
import Imaging
import Storage
@_exported import TestSupport
@testable import Service

/// The store a service test runs against. Every test class that touches storage runs on SQLite and, in
/// its `…PostgresTests` subclass, on a fresh database of one throwaway PostgreSQL server per process.
enum TestStore: String, Sendable {
    case sqlite, postgresql

    /// The admin token of PostgreSQL tests that configure none: with a shared database every replica
    /// must be given the same token, so the service generates none there.
    static let postgresToken = "postgres-test-token-0123456789"

    /// The throwaway PostgreSQL server of this test process, started on first use (a fresh database per
    /// test keeps the tests apart; a server per test would cost seconds each) and removed at exit.
    static let postgres: SharedTemporaryPostgres = {
        let shared = SharedTemporaryPostgres()
        atexit { TestStore.postgres.destroy() }
        return shared
    }()

    /// A new, empty database for one test, as `--database` takes it: a SQLite file in `directory`, or a
    /// database created on the shared server (an `XCTSkip` saying why when PostgreSQL is not installed).
    func freshDatabase(in directory: URL) throws -> String {
        switch self {
        case .sqlite: return directory.appendingPathComponent("dsch.sqlite").path
        case .postgresql: return try TestStore.postgres.get().createDatabase()
        }
    }

    /// Points `configuration` at `database` (from `freshDatabase`). For PostgreSQL `database.path` stays
    /// a file in `directory`, so nothing the service writes beside its database lands elsewhere.
    func use(_ database: String, in directory: URL, _ configuration: inout Configuration) {
        switch self {
        case .sqlite:
            configuration.database.path = database
        case .postgresql:
            configuration.database.url = database
            configuration.database.path = directory.appendingPathComponent("dsch.sqlite").path
        }
    }

    /// What this store requires beyond the test's own settings, applied after them: PostgreSQL refuses
    /// to start without a configured admin token.
    func complete(_ configuration: inout Configuration) {
        if self == .postgresql, configuration.admin.token.isEmpty { configuration.admin.token = TestStore.postgresToken }
    }

    /// Environment for a `dsch serve` child process on this store (the token PostgreSQL requires).
    var processEnvironment: [String: String] {
        self == .postgresql ? ["DSCH_ADMIN_TOKEN": TestStore.postgresToken] : [:]
    }

    /// Runs one statement on `database` behind the service's back, to damage it on purpose; `$1`, `$2`…
    /// number the values on both stores.
    func run(_ sql: String, _ values: [SQLValue], on database: String) throws {
        switch self {
        case .sqlite:
            let connection = try Database(path: database)
            defer { connection.close() }
            _ = try connection.run(sql, values)
        case .postgresql:
            let connection = try PostgresConnection(url: database)
            defer { connection.close() }
            _ = try connection.update(sql, values)
        }
    }

    /// Opens `database` directly, as a maintenance command would, to check what a test left behind.
    func open(_ database: String) throws -> ServiceStore {
        switch self {
        case .sqlite: return try Store(path: database)
        case .postgresql: return try PostgresStore(url: database)
        }
    }
}

/// The base of the service test classes that touch storage: `store` is SQLite here and PostgreSQL in
/// each class's `…PostgresTests` subclass, so one test body runs on both stores.
///
/// Test discovery on Linux reads the sources: it lists a subclass only if the subclass declares a test
/// itself (then with every inherited one). So a PostgreSQL subclass names every inherited test again,
/// running it (`override func testX() throws { try super.testX() }`) or skipping it with `sqliteOnly`
/// and a reason; `StoreCoverageTests` fails when one is forgotten.
class ServiceTestCase: XCTestCase {
    /// The store this class's tests run on.
    class var store: TestStore { .sqlite }

    /// The store this test runs on.
    var store: TestStore { Self.store }

    /// What a PostgreSQL subclass throws from a test that runs on SQLite only, saying why.
    func sqliteOnly(_ reason: String) -> XCTSkip { XCTSkip("runs on SQLite only: \(reason)") }

    /// A real server over a fresh database of this class's store, or over `database` (to restart on
    /// the same data).
    func startServer(directory: URL? = nil, database: String? = nil, configure: (inout Configuration) -> Void = { _ in },
                     trainers: ((Configuration) -> [ModelTrainer])? = nil) throws -> RunningServer {
        try RunningServer(store: store, directory: directory, database: database, configure: configure, trainers: trainers)
    }
}

/// A real server on a loopback port over a temporary SQLite file or PostgreSQL database.
final class RunningServer {
    let directory: URL
    let server: DschServer
    let store: TestStore
    /// The database as `--database` takes it: a SQLite file path or a PostgreSQL URI.
    let database: String
    var client: TestClient { TestClient(port: server.port) }

    init(store: TestStore = .sqlite, directory: URL? = nil, database: String? = nil, configure: (inout Configuration) -> Void = { _ in },
         trainers: ((Configuration) -> [ModelTrainer])? = nil) throws {
        self.store = store
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("dsch-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.database = try database ?? store.freshDatabase(in: self.directory)
        var configuration = Configuration()
        configuration.server.host = "127.0.0.1"
        configuration.server.port = 0
        store.use(self.database, in: self.directory, &configuration)
        configure(&configuration)
        store.complete(&configuration)
        server = try DschServer(configuration: configuration, logger: Logger(sink: { _ in }), trainers: trainers?(configuration))
        try server.start()
    }

    /// The admin token the server uses (generated beside the database unless configured).
    func adminToken() throws -> String { try AdminToken.resolve(configuration: server.service.configuration).token }

    /// `Authorization` for the admin token.
    func adminHeaders() throws -> [(String, String)] { [("Authorization", "Bearer \(try adminToken())")] }

    func stop() {
        server.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }
}
