import XCTest
@testable import HTTP

/// What a parser produced from a whole input: its events and the error that stopped it, if any.
private struct Outcome: Equatable {
    var events: [ParserEvent] = []
    var error: ParseError?

    var requests: [(head: RequestHead, body: [UInt8])] {
        events.compactMap { if case .request(let head, let body) = $0 { return (head, body) } else { return nil } }
    }
}

/// Takes every event the parser has ready, granting each body allowance it asks for as a server with
/// room in its budget would; the requests are recorded as events too.
private func collect(_ parser: inout RequestParser, into outcome: inout Outcome) throws {
    while let event = try parser.next() {
        outcome.events.append(event)
        if case .needsBodyAllowance(let bytes) = event { parser.allowBody(bytes) }
    }
}

final class RequestParserTests: XCTestCase {
    private let limits = ParserLimits(maxHeaderBytes: 512, maxBodyBytes: 64, maxHeaderCount: 8)

    /// Found by the `http-parser` fuzz target (Fuzz/crashers/http-parser): a trailer line longer than the
    /// header limit that ends in a bare LF was a 400 parsed whole but a 431 byte by byte. The verdict must
    /// not depend on how the bytes were split.
    func testLongTrailerLineEndingInABareLFGetsOneVerdict() throws {
        let limits = ParserLimits(maxHeaderBytes: 1024, maxBodyBytes: 2048, maxHeaderCount: 12)
        let bytes = Array("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".utf8)
            + [UInt8](repeating: UInt8(ascii: "a"), count: 1100) + [0x0A]
        let whole = parse(bytes, pieceSize: bytes.count, limits: limits)
        XCTAssertEqual(whole.error?.status, 431)
        XCTAssertEqual(whole, parse(bytes, pieceSize: 1, limits: limits))
        XCTAssertEqual(whole, parse(bytes, pieceSize: 7, limits: limits))
    }

    private func parse(_ bytes: [UInt8], pieceSize: Int, limits: ParserLimits) -> Outcome {
        var parser = RequestParser(limits: limits)
        var outcome = Outcome()
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + pieceSize)
            parser.feed(bytes[offset..<end])
            offset = end
            do {
                try collect(&parser, into: &outcome)
            } catch let error as ParseError {
                outcome.error = error
                return outcome
            } catch {
                XCTFail("unexpected error type \(error)")
            }
        }
        return outcome
    }

    /// Parses `text` whole and byte by byte, asserts both agree, and returns the outcome.
    private func parseBothWays(_ text: String, limits: ParserLimits? = nil, file: StaticString = #filePath, line: UInt = #line) -> Outcome {
        let bytes = Array(text.utf8)
        let whole = parse(bytes, pieceSize: max(1, bytes.count), limits: limits ?? self.limits)
        let single = parse(bytes, pieceSize: 1, limits: limits ?? self.limits)
        let odd = parse(bytes, pieceSize: 7, limits: limits ?? self.limits)
        XCTAssertEqual(whole, single, "whole and byte-by-byte parses differ", file: file, line: line)
        XCTAssertEqual(whole, odd, "whole and 7-byte-piece parses differ", file: file, line: line)
        return whole
    }

    private func assertStatus(_ text: String, _ status: Int, limits: ParserLimits? = nil, file: StaticString = #filePath, line: UInt = #line) {
        let outcome = parseBothWays(text, limits: limits, file: file, line: line)
        XCTAssertEqual(outcome.error?.status, status, "expected \(status), got \(String(describing: outcome.error))", file: file, line: line)
        XCTAssertTrue(outcome.requests.isEmpty, "a rejected request must not be delivered", file: file, line: line)
    }

    func testSimpleGetWithDecodedPathAndQuery() throws {
        let outcome = parseBothWays("GET /v1/images/a%20b/similar?k=10&name=red+car%21&k=12&flag HTTP/1.1\r\nHost: x\r\nX-Thing:  spaced value \r\n\r\n")
        XCTAssertNil(outcome.error)
        let request = try XCTUnwrap(outcome.requests.first)
        XCTAssertEqual(request.head.method, "GET")
        XCTAssertEqual(request.head.path, "/v1/images/a b/similar")
        XCTAssertEqual(request.head.query, ["k": "12", "name": "red car!", "flag": ""])
        XCTAssertEqual(request.head.headers["x-thing"], "spaced value")
        XCTAssertEqual(request.head.framing, .none)
        XCTAssertTrue(request.head.keepAlive)
        XCTAssertEqual(request.body, [])
    }

    func testPlusStaysLiteralInPath() throws {
        let outcome = parseBothWays("GET /a+b HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(outcome.requests.first?.head.path, "/a+b")
    }

    func testContentLengthBodyAndHeadEvent() throws {
        let outcome = parseBothWays("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.events.count, 3)
        guard case .head(let head) = outcome.events[0] else { return XCTFail("first event must be the head") }
        XCTAssertEqual(head.framing, .length(5))
        XCTAssertEqual(outcome.events[1], .needsBodyAllowance(5), "the whole declared length is asked for before any body byte")
        XCTAssertEqual(outcome.requests.first.map { String(decoding: $0.body, as: UTF8.self) }, "hello")
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let text = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "4;name=value;flag\r\nWiki\r\n5 \r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Checksum: abc\r\n\r\n"
        let outcome = parseBothWays(text)
        XCTAssertNil(outcome.error)
        let request = try XCTUnwrap(outcome.requests.first)
        XCTAssertEqual(String(decoding: request.body, as: UTF8.self), "Wikipedia in\r\n\r\nchunks.")
        XCTAssertEqual(request.head.framing, .chunked)
        XCTAssertNil(request.head.headers["X-Checksum"], "trailers must not be merged into the headers")
    }

    func testPipelinedRequestsComeOutInOrder() throws {
        let text = "GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            + "POST /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\nGET /four HTTP/1.0\r\n\r\n"
        let outcome = parseBothWays(text)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.requests.map(\.head.path), ["/one", "/two", "/three", "/four"])
        XCTAssertEqual(outcome.requests.map { String(decoding: $0.body, as: UTF8.self) }, ["", "abc", "z", ""])
    }

    func testLeadingEmptyLinesAreIgnored() {
        let outcome = parseBothWays("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(outcome.requests.map(\.head.path), ["/"])
    }

    func testKeepAliveRules() {
        XCTAssertEqual(parseBothWays("GET / HTTP/1.1\r\nHost: x\r\n\r\n").requests.first?.head.keepAlive, true)
        XCTAssertEqual(parseBothWays("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").requests.first?.head.keepAlive, false)
        XCTAssertEqual(parseBothWays("GET / HTTP/1.0\r\n\r\n").requests.first?.head.keepAlive, false)
        XCTAssertEqual(parseBothWays("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").requests.first?.head.keepAlive, true)
    }

    func testExpectContinueIsReported() {
        let outcome = parseBothWays("PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok")
        XCTAssertEqual(outcome.requests.first?.head.expectsContinue, true)
        XCTAssertEqual(parseBothWays("PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").requests.first?.head.expectsContinue, false)
    }

    func testDuplicateIdenticalContentLengthIsAccepted() {
        let outcome = parseBothWays("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc")
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.requests.first?.body, Array("abc".utf8))
    }

    // MARK: - Request smuggling

    func testConflictingContentLengthsAreRejected() {
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd", 400)
    }

    func testTransferEncodingWithContentLengthIsRejected() {
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400)
    }

    func testContentLengthMustBeDigits() {
        for value in ["+5", "-1", "5a", "0x5", "", " ", "1 2"] {
            assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \(value)\r\n\r\nhello", 400)
        }
    }

    func testHugeContentLengthIs413NotOverflow() {
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999999\r\n\r\n", 413)
    }

    func testUnknownOrMisplacedTransferCodings() {
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 501)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", 400)
    }

    func testWhitespaceBeforeColonAndLineFoldingAreRejected() {
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n", 400)
    }

    func testBareLineFeedsAreRejected() {
        assertStatus("GET / HTTP/1.1\nHost: x\n\n\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\nz\r\n0\r\n\r\n", 400)
    }

    func testHostIsRequiredOnceInHTTP11() {
        assertStatus("GET / HTTP/1.1\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)
        XCTAssertNil(parseBothWays("GET / HTTP/1.0\r\n\r\n").error)
    }

    // MARK: - Request line

    func testMalformedRequestLines() {
        assertStatus("GE T / HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /caf\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET / http/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /\r\n\r\n", 400)
    }

    func testOtherHTTPVersionsAre505() {
        assertStatus("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505)
        assertStatus("GET / HTTP/0.9\r\n\r\n", 505)
    }

    func testBadPercentEncodingIsRejected() {
        assertStatus("GET /a%G1 HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /a%4 HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /a%FF HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /a?q=%ZZ HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        XCTAssertEqual(parseBothWays("GET /caf%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n").requests.first?.head.path, "/caf\u{e9}")
    }

    // MARK: - Limits and framing errors

    func testHeaderSectionOverLimitIs431EvenBeforeItEnds() {
        let big = String(repeating: "a", count: 600)
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n", 431)
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(big)", 431)
    }

    func testTooManyHeaderFieldsIs431() {
        let fields = (0..<9).map { "X-\($0): v\r\n" }.joined()
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\n\(fields)\r\n", 431)
    }

    func testDeclaredBodyOverLimitIs413BeforeAnyBodyByte() {
        let outcome = parseBothWays("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n")
        XCTAssertEqual(outcome.error?.status, 413)
        XCTAssertTrue(outcome.events.isEmpty, "no head event, so no 100 Continue, for a body over the limit")
        XCTAssertNil(parseBothWays("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 64\r\n\r\n" + String(repeating: "b", count: 64)).error)
    }

    func testStreamedChunkedBodyOverLimitIs413() {
        let chunk = "20\r\n" + String(repeating: "c", count: 32) + "\r\n"
        let outcome = parseBothWays("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + chunk + chunk + "0\r\n\r\n")
        XCTAssertEqual(outcome.error?.status, 413)
        XCTAssertTrue(outcome.requests.isEmpty)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n", 413)
    }

    /// RFC 9112 §6.3: neither Content-Length nor Transfer-Encoding means an empty body, for any method.
    func testRequestWithoutLengthHasAnEmptyBodyWhateverTheMethod() {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let outcome = parseBothWays("\(method) /x HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertNil(outcome.error, method)
            XCTAssertEqual(outcome.requests.map(\.head.path), ["/x", "/next"], method)
            XCTAssertEqual(outcome.requests.first?.body, [], method)
            XCTAssertEqual(outcome.requests.first?.head.framing, BodyFraming.none, method)
        }
    }

    // MARK: - Body allowance

    func testDeclaredBodyIsTakenOnlyOnceAllowed() throws {
        let text = Array("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789".utf8)
        for pieceSize in [text.count, 1] {
            var parser = RequestParser(limits: limits)
            var events: [ParserEvent] = []
            var offset = 0
            while offset < text.count {
                parser.feed(text[offset..<min(text.count, offset + pieceSize)])
                offset += pieceSize
                // Until the allowance is asked for, take events; after it, only feed (the body must wait).
                while events.count < 2, let event = try parser.next() { events.append(event) }
            }
            XCTAssertEqual(events.count, 2, "pieces of \(pieceSize)")
            XCTAssertEqual(events.last, .needsBodyAllowance(10), "pieces of \(pieceSize)")
            XCTAssertEqual(try parser.next(), .needsBodyAllowance(10), "asked again until granted")
            parser.allowBody(4)
            XCTAssertEqual(try parser.next(), .needsBodyAllowance(6), "only the missing part is asked for")
            parser.allowBody(6)
            guard case .request(_, let body)? = try parser.next() else { return XCTFail("expected the request") }
            XCTAssertEqual(body, Array("0123456789".utf8))
        }
    }

    func testChunkedBodyAsksForAllowanceInStepsAndNeverPastTheLimit() throws {
        let stepLimits = ParserLimits(maxHeaderBytes: 512, maxBodyBytes: 64, maxHeaderCount: 8, bodyAllowanceStep: 8)
        let text = "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "3\r\nabc\r\n3\r\ndef\r\n14\r\n" + String(repeating: "g", count: 20) + "\r\n1F\r\n" + String(repeating: "h", count: 31) + "\r\n0\r\n\r\n"
        let outcome = parseBothWays(text, limits: stepLimits)
        XCTAssertNil(outcome.error)
        let allowances = outcome.events.compactMap { event -> Int? in
            if case .needsBodyAllowance(let bytes) = event { return bytes } else { return nil }
        }
        // One step covers both 3-byte chunks (8), the 20-byte chunk asks for what the 2 left over do not
        // cover, and the 31-byte chunk (larger than a step) for itself.
        XCTAssertEqual(allowances, [8, 18, 31])
        XCTAssertEqual(outcome.requests.first?.body.count, 57)
        XCTAssertEqual(allowances.reduce(0, +), 57)

        let capped = parseBothWays("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n")
        XCTAssertEqual(capped.events.dropFirst().first, .needsBodyAllowance(64), "a 1 MiB step is capped at the 64-byte body limit")
    }

    // MARK: - Path segments

    func testEncodedSlashStaysInsideItsSegment() throws {
        let outcome = parseBothWays("GET /v1/images/a%2Fb/similar%20x HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try XCTUnwrap(outcome.requests.first?.head)
        XCTAssertEqual(head.path, "/v1/images/a/b/similar x")
        XCTAssertEqual(head.pathSegments, ["v1", "images", "a/b", "similar x"])
        XCTAssertEqual(parseBothWays("GET / HTTP/1.1\r\nHost: x\r\n\r\n").requests.first?.head.pathSegments, [])
        XCTAssertEqual(parseBothWays("GET /a/ HTTP/1.1\r\nHost: x\r\n\r\n").requests.first?.head.pathSegments, ["a", ""])
    }

    func testMalformedChunks() {
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 x\r\nabc\r\n0\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nbad trailer\r\n\r\n", 400)
    }

    func testPartialRequestTracking() throws {
        var parser = RequestParser(limits: limits)
        XCTAssertFalse(parser.hasPartialRequest)
        parser.feed(Array("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab".utf8))
        XCTAssertNotNil(try parser.next())
        XCTAssertEqual(try parser.next(), .needsBodyAllowance(4))
        parser.allowBody(4)
        XCTAssertNil(try parser.next())
        XCTAssertTrue(parser.hasPartialRequest)
        parser.feed(Array("cd".utf8))
        guard case .request(_, let body)? = try parser.next() else { return XCTFail("expected the request") }
        XCTAssertEqual(body, Array("abcd".utf8))
        XCTAssertFalse(parser.hasPartialRequest)
    }

    /// Requests around every limit and framing edge, parsed split at every possible point.
    func testEverySplitPointAgreesWithWholeParse() {
        let headerAtLimit = "GET / HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "a", count: 512 - 28)
        let corpus: [String] = [
            headerAtLimit + "\r\n\r\n",
            headerAtLimit + "a\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: " + String(repeating: "t", count: 509) + "\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: " + String(repeating: "t", count: 520) + "\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
            "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "\rGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\rX0\r\n\r\n",
        ]
        XCTAssertEqual(headerAtLimit.utf8.count, 512)
        for text in corpus {
            let bytes = Array(text.utf8)
            let whole = parse(bytes, pieceSize: bytes.count, limits: limits)
            for split in 1..<bytes.count {
                var parser = RequestParser(limits: limits)
                var outcome = Outcome()
                for piece in [bytes[..<split], bytes[split...]] where outcome.error == nil {
                    parser.feed(piece)
                    do {
                        try collect(&parser, into: &outcome)
                    } catch {
                        outcome.error = error as? ParseError
                    }
                }
                XCTAssertEqual(outcome, whole, "split at \(split) of \(text.debugDescription.prefix(60))")
                if outcome != whole { break }
            }
        }
        XCTAssertNil(parse(Array(corpus[0].utf8), pieceSize: 1000, limits: limits).error, "a header section exactly at the limit is accepted")
        XCTAssertEqual(parse(Array(corpus[1].utf8), pieceSize: 1000, limits: limits).error?.status, 431)
        XCTAssertNil(parse(Array(corpus[2].utf8), pieceSize: 1000, limits: limits).error)
        XCTAssertEqual(parse(Array(corpus[3].utf8), pieceSize: 1000, limits: limits).error?.status, 431)
    }

    func testParserStaysFailedAfterAnError() {
        var parser = RequestParser(limits: limits)
        parser.feed(Array("BAD\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        XCTAssertThrowsError(try parser.next())
        XCTAssertThrowsError(try parser.next(), "bytes after a framing error must never be parsed as a request")
    }
}
