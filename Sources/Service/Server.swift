import Foundation
import HTTP

/// The running service: the image service behind the HTTP server, with logging and metrics.
public final class DschServer: @unchecked Sendable {
    public let service: ImageService
    public let metrics = Metrics()
    private let server: HTTPServer
    private let logger: Logger

    /// Opens the database and prepares the routes; `start()` begins listening.
    public init(configuration: Configuration, logger: Logger = Logger()) throws {
        self.logger = logger
        service = try ImageService(configuration: configuration, logger: logger)
        let router = Router()
        Routes(service: service, metrics: metrics).register(on: router)
        var serverConfiguration = ServerConfiguration()
        serverConfiguration.host = configuration.server.host
        serverConfiguration.port = configuration.server.port
        serverConfiguration.maxHeaderBytes = configuration.server.maxHeaderBytes
        serverConfiguration.maxBodyBytes = configuration.server.maxBodyBytes
        serverConfiguration.readTimeout = configuration.server.readTimeoutSeconds
        serverConfiguration.idleTimeout = configuration.server.idleTimeoutSeconds
        serverConfiguration.maxConnections = configuration.server.maxConnections
        serverConfiguration.workerCount = configuration.server.workers
        let metrics = self.metrics
        server = HTTPServer(configuration: serverConfiguration, router: router,
                            log: { line in logger.info(line) },
                            observer: { request, route, status, seconds in
                                metrics.observeRequest(route: route, method: request.method, status: status, seconds: seconds)
                            })
    }

    /// Starts listening; returns once the socket is bound.
    public func start() throws {
        try server.start()
        logger.info("listening", [("host", service.configuration.server.host), ("port", "\(server.port)"),
                                  ("database", service.configuration.database.path)])
    }

    /// The bound port.
    public var port: Int { server.port }

    /// Finishes in-flight requests, then closes the database.
    public func shutdown() {
        logger.info("shutting down")
        server.shutdown(timeout: service.configuration.server.shutdownGraceSeconds)
        service.close()
        logger.info("stopped")
    }
}
