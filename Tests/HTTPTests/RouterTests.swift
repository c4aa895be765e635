import XCTest
@testable import HTTP

/// An application error with its own status, as a handler would throw it.
private struct TeapotError: HTTPResponseError {
    var status: Int { 418 }
    var code: String { "teapot" }
    var message: String { "short and \"stout\"" }
    var headers: [(String, String)] { [("Retry-After", "5")] }
}

/// An error carrying details that must never reach the client.
private struct DatabaseFailure: Error {
    var detail = "SQLITE_CORRUPT at /secret/path/db.sqlite"
}

final class RouterTests: XCTestCase {
    private func text(_ response: HTTPResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    private func errorObject(_ response: HTTPResponse) throws -> [String: String] {
        let json = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return try XCTUnwrap(json?["error"] as? [String: String])
    }

    private func makeRouter() -> Router {
        let router = Router()
        router.add("GET", "/v1/images/{id}") { request in
            HTTPResponse(status: 200, body: Array("image \(request.pathParameters["id"] ?? "?")".utf8))
        }
        router.add("DELETE", "/v1/images/{id}") { _ in HTTPResponse(status: 204) }
        router.add("GET", "/v1/images/{id}/similar") { request in
            HTTPResponse(status: 200, body: Array("similar \(request.pathParameters["id"] ?? "?") k=\(request.query["k"] ?? "-")".utf8))
        }
        router.add("GET", "/v1/images/search") { _ in HTTPResponse(status: 200, body: Array("literal".utf8)) }
        router.add("POST", "/v1/admin/models/{version}/activate") { request in
            HTTPResponse(status: 200, body: Array("activate \(request.pathParameters["version"] ?? "?")".utf8))
        }
        router.add("GET", "/teapot") { _ in throw TeapotError() }
        router.add("GET", "/broken") { _ in throw DatabaseFailure() }
        return router
    }

    func testPathParametersAreCaptured() {
        let router = makeRouter()
        XCTAssertEqual(text(router.respond(to: HTTPRequest(method: "GET", path: "/v1/images/42"))), "image 42")
        XCTAssertEqual(text(router.respond(to: HTTPRequest(method: "GET", path: "/v1/images/7/similar", query: ["k": "3"]))), "similar 7 k=3")
        XCTAssertEqual(text(router.respond(to: HTTPRequest(method: "POST", path: "/v1/admin/models/3/activate"))), "activate 3")
    }

    func testLiteralSegmentBeatsParameterWhateverTheOrder() {
        let router = makeRouter()
        XCTAssertEqual(text(router.respond(to: HTTPRequest(method: "GET", path: "/v1/images/search"))), "literal")
        XCTAssertEqual(router.routeLabel(for: HTTPRequest(method: "GET", path: "/v1/images/search")), "/v1/images/search")
    }

    func testUnknownPathIs404JSON() throws {
        let router = makeRouter()
        for path in ["/nope", "/v1/images", "/v1/images/", "/v1/images/1/similar/extra", "/v1/images//similar"] {
            let response = router.respond(to: HTTPRequest(method: "GET", path: path))
            XCTAssertEqual(response.status, 404, path)
            XCTAssertEqual(response.headers["Content-Type"], "application/json")
            XCTAssertEqual(try errorObject(response)["code"], "not_found")
        }
        XCTAssertEqual(router.routeLabel(for: HTTPRequest(method: "GET", path: "/nope")), "unmatched")
    }

    func testWrongMethodIs405WithAllow() throws {
        let router = makeRouter()
        let response = router.respond(to: HTTPRequest(method: "PUT", path: "/v1/images/5"))
        XCTAssertEqual(response.status, 405)
        XCTAssertEqual(response.headers["Allow"], "DELETE, GET")
        XCTAssertEqual(try errorObject(response)["code"], "method_not_allowed")
        XCTAssertEqual(router.respond(to: HTTPRequest(method: "HEAD", path: "/v1/images/5")).status, 405)
        XCTAssertEqual(router.routeLabel(for: HTTPRequest(method: "PUT", path: "/v1/images/5")), "unmatched")
    }

    func testResponseErrorDecidesItsResponse() throws {
        let response = makeRouter().respond(to: HTTPRequest(method: "GET", path: "/teapot"))
        XCTAssertEqual(response.status, 418)
        XCTAssertEqual(response.headers["Retry-After"], "5")
        XCTAssertEqual(try errorObject(response), ["code": "teapot", "message": "short and \"stout\""])
    }

    func testOtherErrorsBecomeGeneric500() throws {
        let router = makeRouter()
        let (response, unexpected) = router.respondReportingFailure(to: HTTPRequest(method: "GET", path: "/broken"))
        XCTAssertEqual(response.status, 500)
        XCTAssertFalse(text(response).contains("SQLITE"), "internals leaked: \(text(response))")
        XCTAssertFalse(text(response).contains("secret"))
        XCTAssertEqual(try errorObject(response)["code"], "internal_error")
        XCTAssertTrue(unexpected is DatabaseFailure, "the real error must reach the server's log")
    }

    func testRouteLabelIsThePattern() {
        XCTAssertEqual(makeRouter().routeLabel(for: HTTPRequest(method: "GET", path: "/v1/images/9/similar")), "/v1/images/{id}/similar")
    }

    func testErrorJSONEscapesAwkwardText() throws {
        let response = HTTPResponse.error(400, code: "bad", message: "quote \" backslash \\ newline \n tab \t slash / é")
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(try errorObject(response)["message"], "quote \" backslash \\ newline \n tab \t slash / é")
        XCTAssertTrue(text(response).hasPrefix(#"{"error":{"code":"bad","message":"#), text(response))
    }

    func testEncodedSlashDoesNotSplitASegment() {
        let router = makeRouter()
        let encoded = HTTPRequest(method: "GET", path: "/v1/images/a/b", pathSegments: ["v1", "images", "a/b"])
        XCTAssertEqual(text(router.respond(to: encoded)), "image a/b")
        // `/v1/images/1%2Fsimilar` is the image `1/similar`, not the similar-images route for image 1.
        let lookalike = HTTPRequest(method: "GET", path: "/v1/images/1/similar", pathSegments: ["v1", "images", "1/similar"])
        XCTAssertEqual(text(router.respond(to: lookalike)), "image 1/similar")
        XCTAssertEqual(router.routeLabel(for: lookalike), "/v1/images/{id}")
    }

    func testFrozenTableResolvesOnceAndLabelsComeFromAFixedSet() {
        let router = makeRouter()
        let table = router.freeze()
        XCTAssertTrue(table === router.freeze(), "freezing twice gives the same table")
        let matched = table.route(HTTPRequest(method: "GET", path: "/v1/images/9/similar"))
        XCTAssertEqual(text(matched.response), "similar 9 k=-")
        XCTAssertEqual(matched.routeLabel, "/v1/images/{id}/similar")
        XCTAssertNil(matched.unexpected)
        XCTAssertEqual(table.route(HTTPRequest(method: "GET", path: "/nope/\(UUID())")).routeLabel, MetricsLabel.unmatchedRoute)
        XCTAssertEqual(table.route(HTTPRequest(method: "PUT", path: "/v1/images/5")).routeLabel, "unmatched")
        let failed = table.route(HTTPRequest(method: "GET", path: "/broken"))
        XCTAssertEqual(failed.routeLabel, "/broken")
        XCTAssertTrue(failed.unexpected is DatabaseFailure)
    }

    func testResolvedRoutesSayWhereTheirHandlerRuns() {
        let router = Router()
        router.add("GET", "/pool") { _ in HTTPResponse(status: 200) }
        router.add("GET", "/inline", execution: .eventLoop) { _ in HTTPResponse(status: 201) }
        let table = router.freeze()
        let pooled = table.resolve(HTTPRequest(method: "GET", path: "/pool"))
        XCTAssertEqual(pooled.execution, .workerPool, "the pool is the default")
        let inline = table.resolve(HTTPRequest(method: "GET", path: "/inline"))
        XCTAssertEqual(inline.execution, .eventLoop)
        XCTAssertEqual(inline.run().response.status, 201)
        let unknown = table.resolve(HTTPRequest(method: "GET", path: "/missing"))
        XCTAssertEqual(unknown.execution, .eventLoop, "a 404 needs no worker")
        XCTAssertEqual(unknown.run().response.status, 404)
        XCTAssertEqual(table.resolve(HTTPRequest(method: "POST", path: "/inline")).run().response.status, 405)
    }

    func testMethodLabelsAreFoldedIntoAFixedSet() {
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            XCTAssertEqual(MetricsLabel.method(method), method)
        }
        for method in ["BREW", "get", "PROPFIND", "X\(UUID().uuidString)"] {
            XCTAssertEqual(MetricsLabel.method(method), "other", method)
        }
        XCTAssertEqual(HTTPRequest(method: "TRACE", path: "/").methodLabel, "other")
    }
}
