import Foundation
import HTTP
import HammingIndex
import Storage

/// Maps the HTTP API of the design onto `ImageService`.
public struct Routes {
    let service: ImageService
    let metrics: Metrics
    let worker: RetrainWorker
    /// Guards the routes that destroy data (`DELETE`), unless the configuration opens them.
    let deleteAuthorization: BearerAuthorization?

    /// Registers every public route on `router`.
    public func register(on router: Router) {
        // Routes that answer from memory alone skip the worker pool. Everything that reads the
        // database stays on it: it would stall the event loop's other connections, and measured at 64
        // connections, `similar` run on 64 connection threads contending for the store's few reader
        // connections had a p99 of 36 ms against 14 ms on the pool.
        let light = RouteExecution.eventLoop
        // `curl -T file URL` sends PUT; it is accepted wherever an image is uploaded.
        for method in ["POST", "PUT"] {
            router.add(method, "/v1/images") { try self.upload($0) }
            router.add(method, "/v1/search") { try self.searchUpload($0) }
        }
        router.add("GET", "/v1/images/{id}") { request in
            JSONBody.response(200, imageJSON(try self.service.image(id: imageID(request))))
        }
        router.add("GET", "/v1/images/{id}/content") { request in
            let content = try self.service.content(id: try imageID(request))
            return HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", content.contentType)]), body: content.bytes)
        }
        router.add("DELETE", "/v1/images/{id}") { request in
            try self.deleteAuthorization?.authorize(request)
            try self.service.delete(id: try imageID(request))
            return HTTPResponse(status: 204)
        }
        router.add("GET", "/v1/images") { try self.list($0) }
        router.add("GET", "/v1/images/{id}/thumbnail") { try self.thumbnail($0) }
        router.add("GET", "/v1/duplicates") { try self.duplicates($0) }
        router.add("GET", "/", execution: light) { _ in WebPage.htmlResponse() }
        router.add("GET", "/app.js", execution: light) { _ in WebPage.scriptResponse() }
        router.add("GET", "/openapi.json", execution: light) { _ in
            HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "application/json")]), body: APIDocument.bytes)
        }
        router.add("GET", "/v1/images/{id}/similar") { request in
            let id = try imageID(request)
            let (k, maxDistance) = try self.searchParameters(request)
            let result = try self.service.similar(to: id, k: k, maxDistance: maxDistance, filters: try metadataFilters(request))
            return JSONBody.response(200, .object([
                "query": .object(["id": .integer(id)]),
                "model_version": .int(result.model.version),
                "results": .array(result.hits.map(hitJSON)),
            ]))
        }
        let health = HealthResponse()
        router.add("GET", "/healthz", execution: light) { _ in
            let model = self.service.currentModel
            return health.response(version: model.version, indexed: model.count)
        }
        router.add("GET", "/metrics") { _ in
            let text = self.metrics.render(gauges: try self.gauges())
            return HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "text/plain; version=0.0.4")]), body: Array(text.utf8))
        }
    }

    private func gauges() throws -> [(name: String, help: String, value: Double)] {
        let model = service.currentModel
        return [
            ("dsch_images_indexed", "Images stored in the database.", Double(try service.imageCount())),
            ("dsch_index_size", "Codes in the in-memory index of the active model.", Double(model.count)),
            ("dsch_active_model_version", "Version of the model answering searches.", Double(model.version)),
            ("dsch_active_model_bits", "Code length of the active model.", Double(model.bits)),
        ] + (try jobGauges()) + searchMethodCounters() + (try followerGauges())
    }

    /// How far this replica trails the shared database's change log; zero on SQLite.
    private func followerGauges() throws -> [(name: String, help: String, value: Double)] {
        let lag = try service.changeFeedLag()
        return [
            ("dsch_change_feed_lag_entries", "Change-log entries other replicas wrote that this replica has not applied yet.", Double(lag.entries)),
            ("dsch_change_feed_last_applied_seconds", "Seconds since this replica last applied the change log or found it caught up.",
             lag.secondsSinceApplied),
        ]
    }

    /// Searches by the index method that served them, so operators see when multi-index hashing is used.
    private func searchMethodCounters() -> [(name: String, help: String, value: Double)] {
        let counts = service.searchMethodCounts()
        return [SearchMethod.flatScan, .multiIndexHashing].map { method in
            ("dsch_searches_total{method=\"\(method.rawValue)\"}", "Searches by index method.", Double(counts[method] ?? 0))
        }
    }

    /// Retrain jobs by status, one series per status so that dashboards see zeros too.
    private func jobGauges() throws -> [(name: String, help: String, value: Double)] {
        let counts = try service.jobCounts()
        return JobStatus.allCases.map { status in
            ("dsch_retrain_jobs{status=\"\(status.rawValue)\"}", "Retrain jobs by status.", Double(counts[status] ?? 0))
        }
    }

    private func searchUpload(_ request: HTTPRequest) throws -> HTTPResponse {
        let (k, maxDistance) = try searchParameters(request)
        let filters = try metadataFilters(request)
        let result = try service.search(bytes: try imageBytes(request).bytes, k: k, maxDistance: maxDistance, filters: filters)
        return JSONBody.response(200, .object([
            "query": .object(["code": .string(BinaryCode.hex(result.code, bits: result.model.bits))]),
            "model_version": .int(result.model.version),
            "results": .array(result.hits.map(hitJSON)),
        ]))
    }

    private func upload(_ request: HTTPRequest) throws -> HTTPResponse {
        let (bytes, partMeta) = try imageBytes(request)
        let result = try service.ingest(bytes: bytes, metadataJSON: partMeta ?? request.query["meta"])
        var fields = imageFields(result.record)
        fields["code"] = .string(result.code)
        fields["model_version"] = .int(result.modelVersion)
        fields["created"] = .bool(result.created)
        var response = JSONBody.response(result.created ? 201 : 200, .object(fields))
        response.headers.add("Location", "/v1/images/\(result.record.id)")
        return response
    }

    /// k in 1…maxK (default from the configuration) and an optional max_distance from 0 to the code length.
    private func searchParameters(_ request: HTTPRequest) throws -> (Int, Int?) {
        let search = service.configuration.search
        let k = try integerParameter(request, "k", in: 1...search.maxK) ?? search.defaultK
        let maxDistance = try integerParameter(request, "max_distance", in: 0...service.currentModel.bits)
        return (k, maxDistance)
    }

    /// `GET /v1/images`: one page of stored images by id, with metadata filters.
    private func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let limit = try integerParameter(request, "limit", in: 1...Routes.maxListLimit) ?? Routes.defaultListLimit
        let after = try integerParameter(request, "after", in: 0...Int(Int64.max),
                                         hint: "; pass the next_after of the previous page, or leave it out for the first page") ?? 0
        let page = try service.list(afterID: Int64(after), limit: limit, filters: try metadataFilters(request))
        return JSONBody.response(200, .object([
            "images": .array(page.images.map(imageJSON)),
            "next_after": page.nextAfter.map { .integer($0) } ?? .null,
        ]))
    }

    /// `GET /v1/images/{id}/thumbnail`: a JPEG preview with a strong ETag, 304 when the client has it.
    private func thumbnail(_ request: HTTPRequest) throws -> HTTPResponse {
        let record = try service.image(id: try imageID(request))
        let size = try integerParameter(request, "size", in: Routes.previewSizes) ?? Routes.defaultPreviewSize
        // The original never changes under an id, so its digest and the size name the preview exactly.
        let entityTag = "\"\(record.sha256)-\(size)\""
        let cacheHeaders = [("ETag", entityTag), ("Cache-Control", "public, max-age=86400")]
        if let condition = request.headers["If-None-Match"], Routes.matches(ifNoneMatch: condition, entityTag: entityTag) {
            return HTTPResponse(status: 304, headers: HTTPHeaders(cacheHeaders))
        }
        let bytes = try service.preview(of: record, size: size)
        return HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "image/jpeg")] + cacheHeaders), body: bytes)
    }

    /// Whether an `If-None-Match` value names `entityTag`: `*`, or a list with it, weak or strong
    /// (RFC 9110 §13.1.2 compares weakly here).
    static func matches(ifNoneMatch value: String, entityTag: String) -> Bool {
        let candidates = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return candidates.contains { $0 == "*" || $0 == entityTag || $0 == "W/" + entityTag }
    }

    /// `GET /v1/duplicates`: one page of the groups of near-identical images.
    private func duplicates(_ request: HTTPRequest) throws -> HTTPResponse {
        let bits = service.currentModel.bits
        let maxDistance = try integerParameter(request, "max_distance", in: 0...max(0, bits / 4),
                                               hint: " (a quarter of the \(bits)-bit code; larger radii join unrelated images)")
            ?? min(Routes.defaultDuplicateDistance, bits / 4)
        let limit = try integerParameter(request, "limit", in: 1...Routes.maxListLimit) ?? Routes.defaultDuplicateGroups
        let offset = try integerParameter(request, "offset", in: 0...Int(Int32.max)) ?? 0
        let result = try service.duplicateGroups(maxDistance: maxDistance)
        let page = result.groups.dropFirst(offset).prefix(limit)
        let records = try service.images(ids: page.flatMap { $0.members.map(\.id) })
        let groups: [JSONValue] = page.map { group in
            .object([
                "first_id": .integer(group.firstID),
                "size": .int(group.members.count),
                // An image deleted after the grouping is left out of the page.
                "images": .array(group.members.compactMap { member in
                    records[member.id].map { record in
                        var fields = imageFields(record)
                        fields["distance"] = .int(member.distanceToFirst)
                        return .object(fields)
                    }
                }),
            ])
        }
        return JSONBody.response(200, .object([
            "model_version": .int(result.model.version), "max_distance": .int(maxDistance),
            "total_groups": .int(result.groups.count), "offset": .int(offset), "limit": .int(limit),
            "groups": .array(groups),
        ]))
    }

    /// Page sizes of the listing (images) and of the duplicate groups.
    static let defaultListLimit = 50, maxListLimit = 1000, defaultDuplicateGroups = 20
    /// Radius of `/v1/duplicates` when the request names none.
    static let defaultDuplicateDistance = 2
    /// Longest side of a preview: the default, and the sizes a client may ask for.
    static let defaultPreviewSize = 128, previewSizes = 16...512
}

/// An optional integer query parameter within `range`; the error names the range, and `hint` adds why.
func integerParameter(_ request: HTTPRequest, _ name: String, in range: ClosedRange<Int>, hint: String = "") throws -> Int? {
    guard let text = request.query[name] else { return nil }
    guard let value = Int(text), range.contains(value) else {
        let bounds = range.upperBound >= Int(Int32.max) ? "a non-negative integer" : "an integer from \(range.lowerBound) to \(range.upperBound)"
        throw ServiceError.badRequest("\(name) must be \(bounds)\(hint); got '\(text.prefix(40))'")
    }
    return value
}

/// Largest number of `meta.KEY=VALUE` filters in one request.
let maxMetadataFilters = 16

/// The `meta.KEY=VALUE` query parameters as filters, by key (see `MetadataFilter` for the matching rule).
func metadataFilters(_ request: HTTPRequest) throws -> [MetadataFilter] {
    if request.query["meta"] != nil {
        throw ServiceError.badRequest("meta= sets metadata on upload (POST /v1/images); to filter, write meta.KEY=VALUE, for example meta.label=shoe")
    }
    var filters: [MetadataFilter] = []
    for (name, value) in request.query.sorted(by: { $0.key < $1.key }) where name.hasPrefix("meta.") {
        let key = String(name.dropFirst("meta.".count))
        guard let filter = MetadataFilter(key: key, value: value) else {
            throw ServiceError.badRequest(MetadataFilter.problem(key: key, value: value) ?? "invalid metadata filter \(name)")
        }
        filters.append(filter)
    }
    guard filters.count <= maxMetadataFilters else {
        throw ServiceError.badRequest("at most \(maxMetadataFilters) meta.KEY=VALUE filters may be combined; got \(filters.count)")
    }
    return filters
}

/// The image bytes of a request: the raw body, or the `image` field of a multipart form (with its
/// `meta` field if present).
func imageBytes(_ request: HTTPRequest) throws -> (bytes: [UInt8], meta: String?) {
    if let contentType = request.headers["Content-Type"], contentType.lowercased().hasPrefix("multipart/form-data") {
        guard let boundary = Multipart.boundary(contentType: contentType) else {
            throw ServiceError.badRequest("multipart/form-data needs a boundary parameter")
        }
        let parts = try Multipart.parse(request.body, boundary: boundary)
        guard let image = parts.first(where: { $0.name == "image" }) else {
            throw ServiceError.badRequest("the form has no 'image' field; send it with -F image=@file")
        }
        let meta = parts.first(where: { $0.name == "meta" }).map { String(decoding: $0.body, as: UTF8.self) }
        return (image.body, meta)
    }
    guard !request.body.isEmpty else {
        throw ServiceError.badRequest("the request has no body; send a JPEG or PNG (curl -T file or -F image=@file)")
    }
    return (request.body, nil)
}

/// The numeric `{id}` path parameter.
func imageID(_ request: HTTPRequest) throws -> Int64 {
    guard let text = request.pathParameters["id"], let id = Int64(text), id > 0 else {
        throw ServiceError.badRequest("the image id must be a positive integer, as returned by POST /v1/images")
    }
    return id
}

/// An image's metadata as JSON fields; stored metadata is spliced in as it was validated at ingest.
func imageFields(_ record: ImageRecord) -> [String: JSONValue] {
    var fields: [String: JSONValue] = [
        "id": .integer(record.id), "sha256": .string(record.sha256), "content_type": .string(record.contentType),
        "width": .int(record.width), "height": .int(record.height), "byte_size": .int(record.byteSize),
        "created_at": .string(record.createdAt),
    ]
    if let meta = record.metadataJSON { fields["meta"] = .raw(meta) }
    return fields
}

/// An image's metadata as a JSON object.
func imageJSON(_ record: ImageRecord) -> JSONValue { .object(imageFields(record)) }

func hitJSON(_ hit: SearchHit) -> JSONValue {
    var fields = imageFields(hit.record)
    fields["distance"] = .int(hit.neighbor.distance)
    return .object(fields)
}

/// The `/healthz` answer, rebuilt only when the model or its size changes: load balancers poll it
/// constantly, and building the JSON each time cost 5 % of the request.
private final class HealthResponse: @unchecked Sendable {
    private let lock = NSLock()
    private var last: (version: Int, indexed: Int, response: HTTPResponse)?

    func response(version: Int, indexed: Int) -> HTTPResponse {
        if let last = lock.withLock({ last }), last.version == version, last.indexed == indexed { return last.response }
        let response = JSONBody.response(200, .object(["status": .string("ok"), "model_version": .int(version), "indexed": .int(indexed)]))
        lock.withLock { last = (version, indexed, response) }
        return response
    }
}

/// JSON response bodies.
enum JSONBody {
    static func response(_ status: Int, _ value: JSONValue) -> HTTPResponse {
        HTTPResponse.json(status, value.bytes)
    }
}
