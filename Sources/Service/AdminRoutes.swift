import Foundation
import HTTP
import Storage

/// The bearer token that guards `/v1/admin`: from the configuration, or generated once and kept in a
/// 0600 file beside the database so that it survives restarts.
public enum AdminToken {
    /// The token, and the file it was read from or written to (nil when configured).
    public static func resolve(configuration: Configuration) throws -> (token: String, file: String?) {
        if !configuration.admin.token.isEmpty { return (configuration.admin.token, nil) }
        let directory = URL(fileURLWithPath: configuration.database.path).deletingLastPathComponent()
        let file = directory.appendingPathComponent("admin-token").path
        if let existing = try? String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !existing.isEmpty {
            return (existing, file)
        }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        guard FileManager.default.createFile(atPath: file, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ServiceError.unavailable("cannot write the admin token file \(file)")
        }
        return (token, file)
    }

    /// Compares in time that depends only on the expected token's length, not on where they differ.
    public static func matches(_ presented: String, _ expected: String) -> Bool {
        let given = Array(presented.utf8), wanted = Array(expected.utf8)
        var difference = UInt8(given.count == wanted.count ? 0 : 1)
        for index in 0..<wanted.count {
            difference |= wanted[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }
}

/// Checks `Authorization: Bearer <token>` against one token: 401 without it, 403 with a wrong one.
struct BearerAuthorization: Sendable {
    let token: String

    func authorize(_ request: HTTPRequest) throws {
        guard let header = request.headers["Authorization"] else { throw ServiceError.unauthorized }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw ServiceError.unauthorized }
        guard AdminToken.matches(String(parts[1]).trimmingCharacters(in: .whitespaces), token) else { throw ServiceError.forbidden }
    }
}

/// The admin API: retrain, jobs and model versions, behind the bearer token.
struct AdminRoutes {
    let service: ImageService
    let worker: RetrainWorker
    let authorization: BearerAuthorization

    func register(on router: Router) {
        router.add("POST", "/v1/admin/retrain") { request in
            try self.authorization.authorize(request)
            return try self.retrain(request)
        }
        router.add("GET", "/v1/admin/jobs") { request in
            try self.authorization.authorize(request)
            let limit = try integerParameter(request, "limit", in: 1...AdminRoutes.maxJobs) ?? AdminRoutes.defaultJobs
            return JSONBody.response(200, .object(["jobs": .array(try self.service.jobs(limit: limit).map(jobJSON))]))
        }
        router.add("GET", "/v1/admin/jobs/{id}") { request in
            try self.authorization.authorize(request)
            guard let text = request.pathParameters["id"], let id = Int64(text), id > 0 else {
                throw ServiceError.badRequest("the job id must be a positive integer, as in the Location of POST /v1/admin/retrain")
            }
            guard let job = try self.service.job(id: id) else { throw ServiceError.notFound("no job with id \(id)") }
            return JSONBody.response(200, jobJSON(job))
        }
        router.add("GET", "/v1/admin/models") { request in
            try self.authorization.authorize(request)
            let active = try self.service.activeModelVersion()
            let models = try self.service.models().map { model -> JSONValue in
                var fields = modelFields(model)
                fields["active"] = .bool(model.version == active)
                return .object(fields)
            }
            return JSONBody.response(200, .object(["active_version": .int(active ?? 0), "models": .array(models)]))
        }
        router.add("POST", "/v1/admin/models/{version}/activate") { request in
            try self.authorization.authorize(request)
            guard let text = request.pathParameters["version"], let version = Int(text), version > 0 else {
                throw ServiceError.badRequest("the model version must be a positive integer; GET /v1/admin/models lists them")
            }
            if self.worker.currentJobID != nil {
                throw ServiceError.conflict("a retrain is running; activate a version after it ends")
            }
            let record = try self.service.activate(version: version)
            var fields = modelFields(record)
            fields["active"] = .bool(true)
            return JSONBody.response(200, .object(fields))
        }
    }

    /// Jobs listed by `GET /v1/admin/jobs` unless `limit` says otherwise, and the most it may ask for.
    static let defaultJobs = 20, maxJobs = 200

    private func retrain(_ request: HTTPRequest) throws -> HTTPResponse {
        let result: (jobID: Int64, started: Bool)
        do {
            let retrain = try RetrainRequest(body: request.body, configuration: service.configuration)
            result = try worker.start(retrain, reason: "admin request \(request.requestID)")
        } catch let error as RetrainError {
            throw ServiceError.badRequest(error.description)
        }
        guard result.started else {
            throw RetrainConflict(jobID: result.jobID)
        }
        guard let job = try service.job(id: result.jobID) else { throw ServiceError.unavailable("the job row vanished") }
        var response = JSONBody.response(202, jobJSON(job))
        response.headers.add("Location", "/v1/admin/jobs/\(result.jobID)")
        return response
    }
}

/// 409 for a retrain requested while one runs; names the running job so the client can follow it.
struct RetrainConflict: HTTPResponseError {
    let jobID: Int64
    var status: Int { 409 }
    var code: String { "retrain_running" }
    var message: String { "retrain job \(jobID) is already running; follow it at /v1/admin/jobs/\(jobID)" }
    var headers: [(String, String)] { [("Location", "/v1/admin/jobs/\(jobID)")] }
}

func jobJSON(_ job: JobRecord) -> JSONValue {
    var fields: [String: JSONValue] = ["id": .integer(job.id), "kind": .string(job.kind), "status": .string(job.status.rawValue),
                                       "progress": .number(job.progress), "created_at": .string(job.createdAt)]
    if let message = job.message { fields["message"] = .string(message) }
    if let version = job.modelVersion { fields["model_version"] = .int(version) }
    if let started = job.startedAt { fields["started_at"] = .string(started) }
    if let finished = job.finishedAt { fields["finished_at"] = .string(finished) }
    if let config = job.configJSON, JSONValue.isValid(config) { fields["settings"] = .raw(config) }
    if let result = job.resultJSON, JSONValue.isValid(result) { fields["result"] = .raw(result) }
    return .object(fields)
}

/// A model row's fields; its settings and metrics are JSON the service wrote itself.
func modelFields(_ model: ModelRecord) -> [String: JSONValue] {
    var fields: [String: JSONValue] = ["version": .int(model.version), "kind": .string(model.kind), "bits": .int(model.bits),
                                       "status": .string(model.status.rawValue), "created_at": .string(model.createdAt)]
    if JSONValue.isValid(model.configJSON) { fields["config"] = .raw(model.configJSON) }
    if let metrics = model.metricsJSON, JSONValue.isValid(metrics) { fields["metrics"] = .raw(metrics) }
    return fields
}
