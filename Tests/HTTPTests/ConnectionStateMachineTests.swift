import XCTest
@testable import HTTP

/// Drives the connection's decisions with a fake clock: timeouts are checked without waiting.
final class ConnectionStateMachineTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000
    private let start: UInt64 = 1_000 * 1_000_000_000

    private func makeMachine() -> ConnectionStateMachine {
        ConnectionStateMachine(limits: ParserLimits(maxHeaderBytes: 256, maxBodyBytes: 16, maxHeaderCount: 8),
                               readTimeout: 2, idleTimeout: 5, now: start)
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testIdleConnectionWaitsForTheIdleTimeoutThenCloses() {
        var machine = makeMachine()
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .read(until: start + 5 * second))
        XCTAssertEqual(machine.nextAction(now: start + 5 * second, stopping: false), .close)
    }

    func testReadTimeoutRunsFromTheFirstByteHoweverSlowlyBytesArrive() {
        var machine = makeMachine()
        let request = bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        // One byte per second: the deadline set by the first byte never moves.
        for (index, byte) in request.prefix(2).enumerated() {
            let now = start + UInt64(index) * second
            machine.received([byte], at: now)
            XCTAssertEqual(machine.nextAction(now: now, stopping: false), .read(until: start + 2 * second))
        }
        guard case .fail(let error) = machine.nextAction(now: start + 2 * second, stopping: false) else {
            return XCTFail("a request still incomplete at its deadline must fail")
        }
        XCTAssertEqual(error.status, 408)
    }

    func testExpectContinueThenServeThenKeepAlive() {
        var machine = makeMachine()
        machine.received(bytes("PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"), at: start)
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .reserveBody(2), "the body is reserved before the client is invited")
        machine.bodyReserved(2)
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .sendContinue)
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .read(until: start + 2 * second))
        machine.received(bytes("ok"), at: start + second)
        guard case .serve(let head, let body) = machine.nextAction(now: start + second, stopping: false) else {
            return XCTFail("expected the request")
        }
        XCTAssertEqual(head.path, "/x")
        XCTAssertEqual(body, bytes("ok"))
        machine.responseSent(keepAlive: true, at: start + 3 * second)
        XCTAssertEqual(machine.nextAction(now: start + 3 * second, stopping: false), .read(until: start + 8 * second),
                       "after a response the idle timeout applies, counted from the response")
    }

    func testOversizedDeclaredBodyFailsWithoutContinue() {
        var machine = makeMachine()
        machine.received(bytes("PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 17\r\n\r\n"), at: start)
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .fail(.bodyTooLarge))
    }

    func testPipelinedRequestStartsItsClockWhenThePreviousResponseIsSent() {
        var machine = makeMachine()
        machine.received(bytes("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo"), at: start)
        guard case .serve(let first, _) = machine.nextAction(now: start, stopping: false) else { return XCTFail("expected /a") }
        XCTAssertEqual(first.path, "/a")
        machine.responseSent(keepAlive: true, at: start + 10 * second)
        XCTAssertEqual(machine.nextAction(now: start + 10 * second, stopping: false), .read(until: start + 12 * second))
        machine.received(bytes("st: x\r\n\r\n"), at: start + 11 * second)
        guard case .serve(let second, _) = machine.nextAction(now: start + 11 * second, stopping: false) else { return XCTFail("expected /b") }
        XCTAssertEqual(second.path, "/b")
    }

    func testConnectionCloseIsHonouredAfterTheResponse() {
        var machine = makeMachine()
        machine.received(bytes("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"), at: start)
        guard case .serve(let head, _) = machine.nextAction(now: start, stopping: false) else { return XCTFail("expected /a") }
        XCTAssertFalse(head.keepAlive)
        machine.responseSent(keepAlive: head.keepAlive, at: start)
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .close, "nothing after Connection: close is served")
    }

    func testShutdownClosesIdleConnectionsButLetsAPartialRequestFinish() {
        var idle = makeMachine()
        XCTAssertEqual(idle.nextAction(now: start, stopping: true), .close)
        var receiving = makeMachine()
        receiving.received(bytes("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"), at: start)
        XCTAssertEqual(receiving.nextAction(now: start, stopping: true), .reserveBody(4))
        receiving.bodyReserved(4)
        XCTAssertEqual(receiving.nextAction(now: start, stopping: true), .read(until: start + 2 * second))
        receiving.received(bytes("cd"), at: start)
        guard case .serve = receiving.nextAction(now: start, stopping: true) else { return XCTFail("the request must still be served") }
    }

    func testEndOfStreamMidRequestIs400AndBetweenRequestsIsAQuietClose() {
        var idle = makeMachine()
        XCTAssertEqual(idle.endOfStream(), .close)
        var partial = makeMachine()
        partial.received(bytes("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"), at: start)
        _ = partial.nextAction(now: start, stopping: false)
        partial.bodyReserved(4)
        _ = partial.nextAction(now: start, stopping: false)
        guard case .fail(let error) = partial.endOfStream() else { return XCTFail("expected a failure") }
        XCTAssertEqual(error.status, 400)
    }

    func testNoBodyByteIsTakenBeforeTheReservationEvenWhenAlreadyReceived() {
        var machine = makeMachine()
        machine.received(bytes("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"), at: start)
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .reserveBody(3))
        XCTAssertEqual(machine.nextAction(now: start + second, stopping: false), .reserveBody(3),
                       "without a reservation the request is neither served nor read further")
        machine.bodyReserved(3)
        guard case .serve(_, let body) = machine.nextAction(now: start + second, stopping: false) else { return XCTFail("expected the request") }
        XCTAssertEqual(body, bytes("abc"))
    }

    func testChunkedBodyIsInvitedThenReservedChunkByChunk() {
        var machine = makeMachine()
        machine.received(bytes("PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"), at: start)
        // Nothing is known of the size until a chunk arrives, so the invitation comes first.
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .sendContinue)
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .read(until: start + 2 * second))
        machine.received(bytes("5\r\nhello\r\n"), at: start)
        XCTAssertEqual(machine.nextAction(now: start, stopping: false), .reserveBody(16), "a step, capped at the 16-byte body limit")
        machine.bodyReserved(16)
        machine.received(bytes("6\r\n world\r\n0\r\n\r\n"), at: start)
        guard case .serve(_, let body) = machine.nextAction(now: start, stopping: false) else { return XCTFail("expected the request") }
        XCTAssertEqual(body, bytes("hello world"))
    }

    func testRequestWithoutFramingIsServedWithAnEmptyBody() {
        var machine = makeMachine()
        machine.received(bytes("POST /x HTTP/1.1\r\nHost: x\r\n\r\n"), at: start)
        XCTAssertEqual(machine.nextAction(now: start, stopping: false).isServe, true)
    }
}

private extension ConnectionStateMachine.Action {
    var isServe: Bool { if case .serve = self { return true } else { return false } }
}
