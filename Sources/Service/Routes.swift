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
        router.add("GET", "/v1/images/{id}/similar") { request in
            let id = try imageID(request)
            let (k, maxDistance) = try self.searchParameters(request)
            let result = try self.service.similar(to: id, k: k, maxDistance: maxDistance)
            return JSONBody.response(200, .object([
                "query": .object(["id": .integer(id)]),
                "model_version": .int(result.model.version),
                "results": .array(result.hits.map(hitJSON)),
            ]))
        }
        router.add("GET", "/healthz") { _ in
            let model = self.service.currentModel
            return JSONBody.response(200, .object(["status": .string("ok"), "model_version": .int(model.version), "indexed": .int(model.count)]))
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
        ] + (try jobGauges()) + searchMethodCounters()
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
        let result = try service.search(bytes: try imageBytes(request).bytes, k: k, maxDistance: maxDistance)
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

    /// k in 1…maxK (default from the configuration) and an optional max_distance ≥ 0.
    private func searchParameters(_ request: HTTPRequest) throws -> (Int, Int?) {
        let search = service.configuration.search
        var k = search.defaultK
        if let text = request.query["k"] {
            guard let value = Int(text), value >= 1, value <= search.maxK else {
                throw ServiceError.badRequest("k must be an integer from 1 to \(search.maxK)")
            }
            k = value
        }
        var maxDistance: Int?
        if let text = request.query["max_distance"] {
            guard let value = Int(text), value >= 0 else { throw ServiceError.badRequest("max_distance must be a non-negative integer") }
            maxDistance = value
        }
        return (k, maxDistance)
    }
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
        throw ServiceError.badRequest("the image id must be a positive integer")
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

/// JSON response bodies.
enum JSONBody {
    static func response(_ status: Int, _ value: JSONValue) -> HTTPResponse {
        HTTPResponse.json(status, value.bytes)
    }
}
