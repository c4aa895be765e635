import Foundation
import HTTP
import HammingIndex
import Storage

/// Maps the HTTP API of the design onto `ImageService`.
public struct Routes {
    let service: ImageService
    let metrics: Metrics
    let worker: RetrainWorker

    /// Registers every public route on `router`.
    public func register(on router: Router) {
        // `curl -T file URL` sends PUT; it is accepted wherever an image is uploaded.
        for method in ["POST", "PUT"] {
            router.add(method, "/v1/images") { try self.upload($0) }
            router.add(method, "/v1/search") { try self.searchUpload($0) }
        }
        router.add("GET", "/v1/images/{id}") { request in
            try JSONBody.response(200, imageJSON(try self.service.image(id: imageID(request))))
        }
        router.add("GET", "/v1/images/{id}/content") { request in
            let content = try self.service.content(id: try imageID(request))
            return HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", content.contentType)]), body: content.bytes)
        }
        router.add("DELETE", "/v1/images/{id}") { request in
            try self.service.delete(id: try imageID(request))
            return HTTPResponse(status: 204)
        }
        router.add("GET", "/v1/images/{id}/similar") { request in
            let id = try imageID(request)
            let (k, maxDistance) = try self.searchParameters(request)
            let result = try self.service.similar(to: id, k: k, maxDistance: maxDistance)
            return try JSONBody.response(200, [
                "query": ["id": id] as [String: Any],
                "model_version": result.model.version,
                "results": result.hits.map(hitJSON),
            ])
        }
        router.add("GET", "/healthz") { _ in
            let model = self.service.currentModel
            return try JSONBody.response(200, ["status": "ok", "model_version": model.version, "indexed": model.count])
        }
        router.add("GET", "/metrics") { _ in
            let text = self.metrics.render(gauges: try self.gauges())
            return HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "text/plain; version=0.0.4")]), body: Array(text.utf8))
        }
    }

    private func gauges() throws -> [(name: String, help: String, value: Double)] {
        let model = service.currentModel
        return [
            ("dsch_images_indexed", "Images stored in the database.", Double(try service.store.imageCount())),
            ("dsch_index_size", "Codes in the in-memory index of the active model.", Double(model.count)),
            ("dsch_active_model_version", "Version of the model answering searches.", Double(model.version)),
            ("dsch_active_model_bits", "Code length of the active model.", Double(model.bits)),
        ] + (try jobGauges())
    }

    /// Retrain jobs by status, one series per status so that dashboards see zeros too.
    private func jobGauges() throws -> [(name: String, help: String, value: Double)] {
        let counts = try service.store.jobCounts()
        return ["queued", "running", "succeeded", "failed"].map { status in
            ("dsch_retrain_jobs{status=\"\(status)\"}", "Retrain jobs by status.", Double(counts[status] ?? 0))
        }
    }

    private func searchUpload(_ request: HTTPRequest) throws -> HTTPResponse {
        let (k, maxDistance) = try searchParameters(request)
        let result = try service.search(bytes: try imageBytes(request).bytes, k: k, maxDistance: maxDistance)
        return try JSONBody.response(200, [
            "query": ["code": BinaryCode.hex(result.code, bits: result.model.bits)],
            "model_version": result.model.version,
            "results": result.hits.map(hitJSON),
        ])
    }

    private func upload(_ request: HTTPRequest) throws -> HTTPResponse {
        let (bytes, partMeta) = try imageBytes(request)
        let metadata = try metadataJSON(partMeta ?? request.query["meta"])
        let result = try service.ingest(bytes: bytes, metadataJSON: metadata)
        var body = imageJSON(result.record)
        body["code"] = result.code
        body["model_version"] = result.modelVersion
        body["created"] = result.created
        var response = try JSONBody.response(result.created ? 201 : 200, body)
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

/// Validates optional metadata: it must be a JSON object; stored as sent.
func metadataJSON(_ text: String?) throws -> String? {
    guard let text, !text.isEmpty else { return nil }
    guard let data = text.data(using: .utf8), (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
        throw ServiceError.badRequest("meta must be a JSON object, for example {\"label\":\"shoe\"}")
    }
    return text
}

/// The numeric `{id}` path parameter.
func imageID(_ request: HTTPRequest) throws -> Int64 {
    guard let text = request.pathParameters["id"], let id = Int64(text), id > 0 else {
        throw ServiceError.badRequest("the image id must be a positive integer")
    }
    return id
}

/// An image's metadata as a JSON object.
func imageJSON(_ record: ImageRecord) -> [String: Any] {
    var body: [String: Any] = [
        "id": record.id, "sha256": record.sha256, "content_type": record.contentType,
        "width": record.width, "height": record.height, "byte_size": record.byteSize, "created_at": record.createdAt,
    ]
    if let meta = record.metadataJSON, let data = meta.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) {
        body["meta"] = object
    }
    return body
}

func hitJSON(_ hit: SearchHit) -> [String: Any] {
    var body = imageJSON(hit.record)
    body["distance"] = hit.neighbor.distance
    return body
}

/// JSON response bodies with sorted keys, so output is stable for scripts and tests.
enum JSONBody {
    static func response(_ status: Int, _ object: [String: Any]) throws -> HTTPResponse {
        HTTPResponse.json(status, Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])))
    }
}
