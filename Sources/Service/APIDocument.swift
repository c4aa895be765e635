import Foundation

/// The OpenAPI 3.1 description served at `GET /openapi.json`. Every operation the routers register is
/// listed in `operations`; a test compares the two (methods, paths and path parameters) both ways, so a
/// route cannot be added, renamed or removed without this document following.
enum APIDocument {
    /// One documented operation.
    struct Operation {
        var method: String
        /// The path as the router spells it (`/v1/images/{id}`), which is also OpenAPI's path template.
        var path: String
        var summary: String
        var tag: String
        var parameters: [JSONValue] = []
        var requestBody: JSONValue?
        var responses: [(status: Int, response: JSONValue)]
        /// Needs `Authorization: Bearer <token>`.
        var needsToken = false
        /// Accepts `meta.KEY=VALUE` query parameters, which OpenAPI has no way to name.
        var acceptsMetadataFilters = false
    }

    /// The document's JSON text, built once.
    static let bytes: [UInt8] = document.bytes

    static var document: JSONValue {
        var paths: [String: [String: JSONValue]] = [:]
        for operation in operations {
            paths[operation.path, default: [:]][operation.method.lowercased()] = json(operation)
        }
        return .object([
            "openapi": .string("3.1.0"),
            "info": .object([
                "title": .string("dsch"),
                "version": .string(ServiceVersion.string),
                "description": .string("""
                    Image similarity search with learned binary hash codes. Every error body is the Error schema. \
                    Besides the statuses listed per operation, any request may get 405 (method not allowed; see Allow), \
                    408 (the request arrived too slowly), 411, 413 (body over server.maxBodyBytes), 431 (headers too large) \
                    or 503 with Retry-After (too many connections, or no room for the body right now).
                    """),
            ]),
            "servers": .array([.object(["url": .string("/")])]),
            "tags": .array(["images", "search", "pages", "operations", "admin"].map { .object(["name": .string($0)]) }),
            "paths": .object(paths.mapValues { .object($0) }),
            "components": .object([
                "schemas": .object(schemas),
                "securitySchemes": .object([
                    "adminToken": .object(["type": .string("http"), "scheme": .string("bearer"),
                                           "description": .string("DSCH_ADMIN_TOKEN, or the admin-token file beside the database")]),
                ]),
            ]),
        ])
    }

    private static func json(_ operation: Operation) -> JSONValue {
        var fields: [String: JSONValue] = [
            "summary": .string(operation.summary),
            "tags": .array([.string(operation.tag)]),
            "operationId": .string(operationID(operation)),
            "responses": .object(Dictionary(uniqueKeysWithValues: operation.responses.map { (String($0.status), $0.response) })),
        ]
        if !operation.parameters.isEmpty { fields["parameters"] = .array(operation.parameters) }
        if let body = operation.requestBody { fields["requestBody"] = body }
        if operation.needsToken { fields["security"] = .array([.object(["adminToken": .array([])])]) }
        if operation.acceptsMetadataFilters {
            fields["description"] = .string("""
                Metadata filters: any number (at most 16) of query parameters meta.KEY=VALUE, all of which must match. \
                A top-level key matches when its value is a string equal to VALUE, or a number, true, false or null \
                whose JSON text equals VALUE (meta.size=3 matches {"size":3} and {"size":"3"}).
                """)
            fields["x-query-parameter-patterns"] = .array([.string("meta.{key}")])
        }
        return .object(fields)
    }

    /// `get_v1_images_id_similar` and the like: unique per method and path.
    private static func operationID(_ operation: Operation) -> String {
        let path = operation.path.split(separator: "/").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "{}")) }
            .joined(separator: "_").replacingOccurrences(of: ".", with: "_")
        return operation.method.lowercased() + (path.isEmpty ? "_root" : "_" + path)
    }

    // MARK: Building blocks

    private static func reference(_ name: String) -> JSONValue { .object(["$ref": .string("#/components/schemas/\(name)")]) }

    private static func pathParameter(_ name: String, _ description: String) -> JSONValue {
        .object(["name": .string(name), "in": .string("path"), "required": .bool(true), "description": .string(description),
                 "schema": .object(["type": .string("integer"), "minimum": .int(1)])])
    }

    private static func query(_ name: String, _ description: String, minimum: Int, maximum: Int? = nil, defaultValue: Int? = nil) -> JSONValue {
        var schema: [String: JSONValue] = ["type": .string("integer"), "minimum": .int(minimum)]
        if let maximum { schema["maximum"] = .int(maximum) }
        if let defaultValue { schema["default"] = .int(defaultValue) }
        return .object(["name": .string(name), "in": .string("query"), "description": .string(description), "schema": .object(schema)])
    }

    private static func jsonResponse(_ description: String, _ schema: String) -> JSONValue {
        .object(["description": .string(description),
                 "content": .object(["application/json": .object(["schema": reference(schema)])])])
    }

    private static func contentResponse(_ description: String, _ mediaTypes: [String], schema: JSONValue = .object(["type": .string("string")])) -> JSONValue {
        .object(["description": .string(description),
                 "content": .object(Dictionary(uniqueKeysWithValues: mediaTypes.map { ($0, .object(["schema": schema])) }))])
    }

    private static func error(_ description: String) -> JSONValue { jsonResponse(description, "Error") }

    private static let binary: JSONValue = .object(["type": .string("string"), "contentMediaType": .string("application/octet-stream")])

    /// An image upload: the raw body, or a form with `image` (and, for uploads, `meta`).
    private static func imageBody(withMetadata: Bool) -> JSONValue {
        var formFields: [String: JSONValue] = ["image": binary]
        if withMetadata { formFields["meta"] = .object(["type": .string("string"), "description": .string("a JSON object")]) }
        return .object([
            "required": .bool(true),
            "content": .object([
                "image/jpeg": .object(["schema": binary]),
                "image/png": .object(["schema": binary]),
                "application/octet-stream": .object(["schema": binary]),
                "multipart/form-data": .object(["schema": .object(["type": .string("object"), "required": .array([.string("image")]),
                                                                   "properties": .object(formFields)])]),
            ]),
        ])
    }

    private static let k = query("k", "how many results", minimum: 1, maximum: 1000, defaultValue: 10)
    private static let maxDistance = query("max_distance", "leave out results farther than this Hamming distance", minimum: 0)
    private static let imageID = pathParameter("id", "an image id, as returned by POST /v1/images")
    private static let unauthorized = error("no Authorization: Bearer header")
    private static let forbidden = error("the token is wrong")
    private static let imageErrors: [(status: Int, response: JSONValue)] = [
        (400, error("no body, a bad form, bad metadata or a bad parameter; the message says which")),
        (413, error("the image is over images.maxBytes, maxPixels or maxSide, or meta over images.maxMetaBytes")),
        (415, error("the body is not a JPEG or PNG")),
        (422, error("the image is damaged or truncated")),
    ]

    // MARK: The operations

    static let operations: [Operation] = uploadOperations + searchOperations + imageOperations + pageOperations + adminOperations

    private static let uploadOperations: [Operation] = ["POST", "PUT"].map { method in
        Operation(method: method, path: "/v1/images", summary: "Index one image (PUT is what curl -T sends)", tag: "images",
                  parameters: [.object(["name": .string("meta"), "in": .string("query"), "schema": .object(["type": .string("string")]),
                                        "description": .string("metadata, a JSON object (or send it as the form field meta)")])],
                  requestBody: imageBody(withMetadata: true),
                  responses: [(201, jsonResponse("stored; Location names the image", "IngestResult")),
                              (200, jsonResponse("identical bytes were stored before; the existing image", "IngestResult"))] + imageErrors)
    }

    private static let searchOperations: [Operation] = ["POST", "PUT"].map { method in
        Operation(method: method, path: "/v1/search", summary: "Nearest stored images to an uploaded image, which is not stored", tag: "search",
                  parameters: [k, maxDistance], requestBody: imageBody(withMetadata: false),
                  responses: [(200, jsonResponse("results by distance, then id", "SearchResponse"))] + imageErrors,
                  acceptsMetadataFilters: true)
    } + [
        Operation(method: "GET", path: "/v1/images/{id}/similar", summary: "Nearest stored images to a stored image, leaving it out", tag: "search",
                  parameters: [imageID, k, maxDistance],
                  responses: [(200, jsonResponse("results by distance, then id", "SearchResponse")),
                              (400, error("a bad id or parameter")), (404, error("no such image")),
                              (503, error("the image has no code under the active model yet; retry"))],
                  acceptsMetadataFilters: true),
        Operation(method: "GET", path: "/v1/duplicates", summary: "Groups of near-identical stored images", tag: "search",
                  parameters: [query("max_distance", "codes this close are linked; groups are the connected components (at most a quarter of the code length)",
                                     minimum: 0, defaultValue: 2),
                               query("limit", "groups per page", minimum: 1, maximum: 1000, defaultValue: 20),
                               query("offset", "groups to skip", minimum: 0, defaultValue: 0)],
                  responses: [(200, jsonResponse("groups, largest first, ties by smallest id; singletons left out", "DuplicateGroups")),
                              (400, error("a bad parameter"))]),
    ]

    private static let imageOperations: [Operation] = [
        Operation(method: "GET", path: "/v1/images", summary: "Stored images by id, a page at a time", tag: "images",
                  parameters: [query("limit", "images per page", minimum: 1, maximum: 1000, defaultValue: 50),
                               query("after", "the next_after of the previous page; images with a larger id", minimum: 0, defaultValue: 0)],
                  responses: [(200, jsonResponse("one page; next_after is null on the last", "ImageList")), (400, error("a bad parameter"))],
                  acceptsMetadataFilters: true),
        Operation(method: "GET", path: "/v1/images/{id}", summary: "An image's metadata", tag: "images", parameters: [imageID],
                  responses: [(200, jsonResponse("the image", "Image")), (400, error("a bad id")), (404, error("no such image"))]),
        Operation(method: "DELETE", path: "/v1/images/{id}", summary: "Remove an image everywhere", tag: "images", parameters: [imageID],
                  responses: [(204, .object(["description": .string("removed")])), (400, error("a bad id")), (401, unauthorized),
                              (403, forbidden), (404, error("no such image"))],
                  needsToken: true),
        Operation(method: "GET", path: "/v1/images/{id}/content", summary: "The original bytes", tag: "images", parameters: [imageID],
                  responses: [(200, contentResponse("the original as uploaded", ["image/jpeg", "image/png"], schema: binary)),
                              (400, error("a bad id")), (404, error("no such image"))]),
        Operation(method: "GET", path: "/v1/images/{id}/thumbnail", summary: "A JPEG preview, aspect kept, never enlarged", tag: "images",
                  parameters: [imageID, query("size", "longest side in pixels", minimum: 16, maximum: 512, defaultValue: 128),
                               .object(["name": .string("If-None-Match"), "in": .string("header"), "schema": .object(["type": .string("string")]),
                                        "description": .string("an ETag from an earlier answer")])],
                  responses: [(200, contentResponse("the preview, with a strong ETag and Cache-Control", ["image/jpeg"], schema: binary)),
                              (304, .object(["description": .string("the client's copy (If-None-Match) is current")])),
                              (400, error("a bad id or size")), (404, error("no such image")),
                              (413, error("the stored image is over the current decoding limits")),
                              (422, error("the stored image cannot be decoded"))]),
    ]

    private static let pageOperations: [Operation] = [
        Operation(method: "GET", path: "/", summary: "The web page: search, browse, duplicates, admin", tag: "pages",
                  parameters: [.object(["name": .string("view"), "in": .string("query"),
                                        "schema": .object(["enum": .array(["search", "list", "duplicates", "admin"].map { .string($0) })]),
                                        "description": .string("the view to open")]),
                               .object(["name": .string("similar"), "in": .string("query"), "schema": .object(["type": .string("integer")]),
                                        "description": .string("open the images similar to this id (with k, max_distance, meta.KEY)")])],
                  responses: [(200, contentResponse("HTML", ["text/html"]))]),
        Operation(method: "GET", path: "/app.js", summary: "The web page's script", tag: "pages",
                  responses: [(200, contentResponse("JavaScript", ["text/javascript"]))]),
        Operation(method: "GET", path: "/openapi.json", summary: "This document", tag: "pages",
                  responses: [(200, contentResponse("OpenAPI 3.1", ["application/json"], schema: .object(["type": .string("object")])))]),
        Operation(method: "GET", path: "/healthz", summary: "Liveness, the active model and the index size", tag: "operations",
                  responses: [(200, jsonResponse("serving", "Health"))]),
        Operation(method: "GET", path: "/metrics", summary: "Prometheus metrics", tag: "operations",
                  responses: [(200, contentResponse("text exposition format 0.0.4", ["text/plain"]))]),
    ]

    private static let adminOperations: [Operation] = [
        Operation(method: "POST", path: "/v1/admin/retrain", summary: "Start a retrain", tag: "admin",
                  requestBody: .object(["required": .bool(false), "content": .object([
                      "application/json": .object(["schema": reference("RetrainRequest")])])]),
                  responses: [(202, jsonResponse("queued; Location names the job", "Job")), (400, error("a bad setting; the message names it")),
                              (401, unauthorized), (403, forbidden),
                              (409, error("a retrain is running; Location names it"))],
                  needsToken: true),
        Operation(method: "GET", path: "/v1/admin/jobs", summary: "The newest jobs, newest first", tag: "admin",
                  parameters: [query("limit", "how many", minimum: 1, maximum: 200, defaultValue: 20)],
                  responses: [(200, jsonResponse("jobs", "JobList")), (400, error("a bad limit")), (401, unauthorized), (403, forbidden)],
                  needsToken: true),
        Operation(method: "GET", path: "/v1/admin/jobs/{id}", summary: "One job with its progress", tag: "admin",
                  parameters: [pathParameter("id", "a job id")],
                  responses: [(200, jsonResponse("the job", "Job")), (400, error("a bad id")), (401, unauthorized), (403, forbidden),
                              (404, error("no such job"))],
                  needsToken: true),
        Operation(method: "GET", path: "/v1/admin/models", summary: "Model versions, newest first, and the active one", tag: "admin",
                  responses: [(200, jsonResponse("models", "ModelList")), (401, unauthorized), (403, forbidden)],
                  needsToken: true),
        Operation(method: "POST", path: "/v1/admin/models/{version}/activate", summary: "Serve a finished version (roll back or forward)", tag: "admin",
                  parameters: [pathParameter("version", "a model version")],
                  responses: [(200, jsonResponse("the version, now active", "Model")), (400, error("a bad version")), (401, unauthorized),
                              (403, forbidden), (404, error("no finished version with that number")),
                              (409, error("a retrain is running, or the version cannot be loaded"))],
                  needsToken: true),
    ]

    // MARK: Schemas

    private static func object(_ properties: [String: JSONValue], required: [String], additional: Bool = false) -> JSONValue {
        .object(["type": .string("object"), "properties": .object(properties), "required": .array(required.sorted().map { .string($0) }),
                 "additionalProperties": .bool(additional)])
    }

    private static let integer: JSONValue = .object(["type": .string("integer")])
    private static let string: JSONValue = .object(["type": .string("string")])
    private static let boolean: JSONValue = .object(["type": .string("boolean")])
    private static func array(_ items: JSONValue) -> JSONValue { .object(["type": .string("array"), "items": items]) }

    private static let imageProperties: [String: JSONValue] = [
        "id": integer, "sha256": string, "content_type": string, "width": integer, "height": integer, "byte_size": integer,
        "created_at": .object(["type": .string("string"), "format": .string("date-time")]),
        "meta": .object(["type": .string("object"), "description": .string("the metadata given at upload, absent when none")]),
    ]
    private static let imageRequired = ["id", "sha256", "content_type", "width", "height", "byte_size", "created_at"]

    private static let modelProperties: [String: JSONValue] = [
        "version": integer, "kind": string, "bits": integer, "created_at": string, "active": boolean,
        "status": .object(["enum": .array(["building", "active", "inactive", "pruned"].map { .string($0) })]),
        "config": .object(["type": .string("object")]), "metrics": .object(["type": .string("object")]),
    ]

    private static let schemas: [String: JSONValue] = [
        "Error": object(["error": object(["code": string, "message": .object(["type": .string("string"),
                                                                               "description": .string("what to change")])],
                                         required: ["code", "message"])], required: ["error"]),
        "Image": object(imageProperties, required: imageRequired),
        "IngestResult": object(imageProperties.merging(["code": .object(["type": .string("string"), "description": .string("hex")]),
                                                        "model_version": integer, "created": boolean]) { first, _ in first },
                               required: imageRequired + ["code", "model_version", "created"]),
        "SearchHit": object(imageProperties.merging(["distance": integer]) { first, _ in first }, required: imageRequired + ["distance"]),
        "SearchResponse": object([
            "query": .object(["type": .string("object"), "description": .string("{\"id\":…} for similar, {\"code\":hex} for search"),
                              "properties": .object(["id": integer, "code": string])]),
            "model_version": integer, "results": array(reference("SearchHit")),
        ], required: ["query", "model_version", "results"]),
        "ImageList": object(["images": array(reference("Image")),
                             "next_after": .object(["type": .array([.string("integer"), .string("null")]),
                                                    "description": .string("pass as after= for the next page; null on the last page")])],
                            required: ["images", "next_after"]),
        "DuplicateGroups": object([
            "model_version": integer, "max_distance": integer, "total_groups": integer, "offset": integer, "limit": integer,
            "groups": array(object(["first_id": integer, "size": integer,
                                    "images": array(.object(["$ref": .string("#/components/schemas/SearchHit"),
                                                             "description": .string("distance is to the group's first image")]))],
                                   required: ["first_id", "size", "images"])),
        ], required: ["model_version", "max_distance", "total_groups", "offset", "limit", "groups"]),
        "Health": object(["status": string, "model_version": integer, "indexed": integer], required: ["status", "model_version", "indexed"]),
        "Job": object([
            "id": integer, "kind": string, "progress": .object(["type": .string("number"), "minimum": .int(0), "maximum": .int(1)]),
            "status": .object(["enum": .array(["queued", "running", "succeeded", "failed"].map { .string($0) })]),
            "message": string, "model_version": integer, "created_at": string, "started_at": string, "finished_at": string,
            "settings": .object(["type": .string("object")]),
            "result": .object(["type": .string("object"),
                               "description": .string("a retrain's quality gate: every candidate's score, the one chosen and why")]),
        ], required: ["id", "kind", "status", "progress", "created_at"]),
        "JobList": object(["jobs": array(reference("Job"))], required: ["jobs"]),
        "Model": object(modelProperties, required: ["version", "kind", "bits", "status", "created_at"]),
        "ModelList": object(["active_version": integer, "models": array(reference("Model"))], required: ["active_version", "models"]),
        "RetrainRequest": .object([
            "type": .string("object"),
            "description": .string("any setting of the dsch section of the configuration, kind (dsch or itq), and force"),
            "properties": .object([
                "kind": .object(["enum": .array([.string("dsch"), .string("itq")])]), "epochs": integer, "seed": integer,
                "scaleToCollection": .object(["type": .string("boolean"),
                                              "description": .string("adapt epochs and component counts to the collection's size (default true)")]),
                "force": .object(["type": .string("boolean"),
                                  "description": .string("activate the new model even when the quality gate prefers another")]),
            ]),
            "additionalProperties": .bool(true),
        ]),
    ]
}
