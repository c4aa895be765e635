import Foundation
import XCTest
import HTTP
import Imaging
@_exported import TestSupport
@testable import Service

/// A real server on a loopback port over a temporary SQLite file.
final class RunningServer {
    let directory: URL
    let server: DschServer
    var client: TestClient { TestClient(port: server.port) }
    var databasePath: String { server.service.configuration.database.path }

    init(directory: URL? = nil, configure: (inout Configuration) -> Void = { _ in },
         trainers: ((Configuration) -> [ModelTrainer])? = nil) throws {
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("dsch-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.server.host = "127.0.0.1"
        configuration.server.port = 0
        configuration.database.path = self.directory.appendingPathComponent("dsch.sqlite").path
        configure(&configuration)
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
