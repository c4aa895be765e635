import XCTest
@testable import HTTP

final class ResponseEncodingTests: XCTestCase {
    private func encoded(_ response: HTTPResponse, method: String = "GET", keepAlive: Bool = true) -> String {
        String(decoding: ResponseEncoding.encode(response, requestID: "rid", keepAlive: keepAlive, requestMethod: method,
                                                 date: Date(timeIntervalSince1970: 784_111_777)), as: UTF8.self)
    }

    func testHTTPDateKnownAnswer() {
        XCTAssertEqual(ResponseEncoding.httpDate(Date(timeIntervalSince1970: 784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertEqual(ResponseEncoding.httpDate(Date(timeIntervalSince1970: 0)), "Thu, 01 Jan 1970 00:00:00 GMT")
    }

    func testServerOwnedHeadersReplaceTheHandlersAndHeaderInjectionIsStripped() {
        let response = HTTPResponse(status: 200, headers: HTTPHeaders([
            ("Content-Length", "999"), ("Transfer-Encoding", "chunked"), ("connection", "upgrade"),
            ("X-Note", "a\r\nSet-Cookie: evil=1"),
        ]), body: Array("body".utf8))
        XCTAssertEqual(encoded(response, keepAlive: false),
                       "HTTP/1.1 200 OK\r\nX-Note: aSet-Cookie: evil=1\r\nContent-Length: 4\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                       + "Connection: close\r\nX-Request-Id: rid\r\n\r\nbody")
    }

    func testHeadKeepsLengthWithoutBodyAnd204HasNeither() {
        let head = encoded(HTTPResponse(status: 200, body: Array("body".utf8)), method: "HEAD")
        XCTAssertTrue(head.contains("Content-Length: 4\r\n"))
        XCTAssertTrue(head.hasSuffix("\r\n\r\n"))
        let empty = encoded(HTTPResponse(status: 204, body: Array("ignored".utf8)))
        XCTAssertTrue(empty.hasPrefix("HTTP/1.1 204 No Content\r\n"))
        XCTAssertFalse(empty.contains("Content-Length"))
        XCTAssertTrue(empty.hasSuffix("X-Request-Id: rid\r\n\r\n"))
    }

    func testRequestIDsAreEchoedOnlyWhenSafe() {
        XCTAssertEqual(RequestID.make(clientValue: "abc-123"), "abc-123")
        XCTAssertEqual(RequestID.make(clientValue: "4bf92f35-77b3.4da6:a3ce_929d0e0e4736"), "4bf92f35-77b3.4da6:a3ce_929d0e0e4736")
        XCTAssertEqual(RequestID.make(clientValue: String(repeating: "x", count: 64)), String(repeating: "x", count: 64))
        for unsafe in ["", "has space", "new\nline", String(repeating: "x", count: 65), "caf\u{e9}", "a=b", "q\"uote", "tab\t",
                       "x\\y", "semi;colon", "slash/"] {
            let made = RequestID.make(clientValue: unsafe)
            XCTAssertNotEqual(made, unsafe)
            XCTAssertEqual(made.count, 32)
        }
        XCTAssertNotEqual(RequestID.make(clientValue: nil), RequestID.make(clientValue: nil))
    }

    func testLoggedPathsStayOnOneLine() {
        XCTAssertEqual(loggablePath("/a b/\u{e9}\n%"), "/a%20b/%C3%A9%0A%25")
        XCTAssertEqual(loggablePath(""), "-")
    }

    func testLogValuesStayOneField() {
        XCTAssertEqual(logValue("GET"), "GET")
        XCTAssertEqual(logValue("/v1/images/42"), "/v1/images/42")
        XCTAssertEqual(logValue(""), #""""#)
        XCTAssertEqual(logValue("a b"), #""a b""#)
        XCTAssertEqual(logValue("x status=200"), #""x status=200""#)
        XCTAssertEqual(logValue(#"say "hi" \ bye"#), #""say \"hi\" \\ bye""#)
        XCTAssertEqual(logValue("one\ntwo\r\u{7F}\u{e9}"), #""one\x0Atwo\x0D\x7F\xC3\xA9""#)
    }
}
