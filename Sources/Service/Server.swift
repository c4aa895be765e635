import Foundation
import HTTP
import Storage

/// The running service: the image service behind the HTTP server, with logging and metrics.
public final class DschServer: @unchecked Sendable {
    public let service: ImageService
    public let metrics = Metrics()
    public let worker: RetrainWorker
    /// Every route the server answers, fixed at start-up (the OpenAPI document is checked against it).
    public let routes: RouteTable
    private let server: HTTPServer
    private let logger: Logger
    private let tokenFile: String?
    /// Applies other replicas' changes; nil when the database has no other writers (SQLite).
    private let follower: ChangeFollower?

    /// Opens the database, recovers interrupted retrains and prepares the routes; `start()` begins
    /// listening. `trainers` defaults to every kind the service can train.
    public init(configuration: Configuration, logger: Logger = Logger(), trainers: [ModelTrainer]? = nil) throws {
        self.logger = logger
        service = try ImageService(configuration: configuration, logger: logger)
        worker = RetrainWorker(service: service, trainers: trainers ?? Trainers.all(),
                               logger: logger, metrics: metrics)
        try worker.recoverInterruptedJobs()
        let service = self.service
        follower = service.store.changeFeed.map { ChangeFollower(service: service, feed: $0, logger: logger) }
        let admin = try AdminToken.resolve(configuration: configuration)
        tokenFile = admin.file
        let router = Router()
        let authorization = BearerAuthorization(token: admin.token)
        Routes(service: service, metrics: metrics, worker: worker,
               deleteAuthorization: configuration.admin.deleteRequiresToken ? authorization : nil).register(on: router)
        AdminRoutes(service: service, worker: worker, authorization: authorization).register(on: router)
        routes = router.freeze()
        var serverConfiguration = ServerConfiguration()
        serverConfiguration.host = configuration.server.host
        serverConfiguration.port = configuration.server.port
        serverConfiguration.maxHeaderBytes = configuration.server.maxHeaderBytes
        serverConfiguration.maxBodyBytes = configuration.server.maxBodyBytes
        serverConfiguration.readTimeout = configuration.server.readTimeoutSeconds
        serverConfiguration.idleTimeout = configuration.server.idleTimeoutSeconds
        serverConfiguration.maxConnections = configuration.server.maxConnections
        serverConfiguration.maxConnectionsPerClient = configuration.server.maxConnectionsPerClient
        serverConfiguration.maxBodyBytesInFlight = configuration.server.maxBodyBytesInFlight
        serverConfiguration.bodyBudgetWaitSeconds = configuration.server.bodyBudgetWaitSeconds
        serverConfiguration.writeTimeout = configuration.server.writeTimeoutSeconds
        serverConfiguration.workerCount = configuration.server.workers
        if configuration.server.eventLoops > 0 { serverConfiguration.eventLoopCount = configuration.server.eventLoops }
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
        let database = service.configuration.database
        logger.info("listening", [("host", service.configuration.server.host), ("port", "\(server.port)"),
                                  ("database", database.postgresURL.map(PostgresConnection.redacted) ?? database.path)])
        if let tokenFile { logger.info("admin token", [("file", tokenFile)]) }
        follower?.start()
        worker.startAutomaticChecks()
    }

    /// The bound port.
    public var port: Int { server.port }

    /// Finishes in-flight requests, then closes the database.
    public func shutdown() {
        logger.info("shutting down")
        server.shutdown(timeout: service.configuration.server.shutdownGraceSeconds)
        worker.cancelAndWait()
        follower?.stop()
        service.close()
        logger.info("stopped")
        logger.flush()
    }
}
