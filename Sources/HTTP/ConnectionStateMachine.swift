import Foundation

/// The decisions of one connection, free of sockets and clocks: fed bytes and times, it returns what to do.
/// Times are monotonic nanoseconds supplied by the caller, so tests can drive timeouts without waiting.
struct ConnectionStateMachine {
    /// What the connection should do next.
    enum Action: Equatable {
        /// Send `HTTP/1.1 100 Continue`, then ask again.
        case sendContinue
        /// Reserve this many bytes from the shared body budget, then call `bodyReserved`; if no reservation
        /// can be had, answer `ParseError.serverBusy` and close instead.
        case reserveBody(Int)
        /// Run the request through the router and send the response, then call `responseSent`.
        case serve(RequestHead, body: [UInt8])
        /// Answer with this error and close (no response has started, since only one request is in flight).
        case fail(ParseError)
        /// Close without answering: idle timeout, shutdown while idle, or the client left between requests.
        case close
        /// Wait for bytes until this monotonic time, then ask again.
        case read(until: UInt64)
    }

    private var parser: RequestParser
    private let readTimeout: UInt64
    private let idleTimeout: UInt64
    /// When the first byte of the request being received arrived; nil between requests.
    private var requestStarted: UInt64?
    private var idleSince: UInt64
    /// Whether the last request served asked to close the connection.
    private var closeAfterResponse = false
    /// The request being received asked for `100 Continue` and has not had it yet; it is sent only once the
    /// body is reserved, so a refused client never uploads.
    private var continuePending = false

    init(limits: ParserLimits, readTimeout: Double, idleTimeout: Double, now: UInt64) {
        parser = RequestParser(limits: limits)
        self.readTimeout = ConnectionStateMachine.nanoseconds(readTimeout)
        self.idleTimeout = ConnectionStateMachine.nanoseconds(idleTimeout)
        idleSince = now
    }

    private static func nanoseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }

    /// When the request being received (or, between requests, the connection) started, for durations in logs.
    var requestStartTime: UInt64? { requestStarted }

    /// Bytes arrived from the client.
    mutating func received<Bytes: Sequence>(_ bytes: Bytes, at now: UInt64) where Bytes.Element == UInt8 {
        if requestStarted == nil { requestStarted = now }
        parser.feed(bytes)
    }

    /// The reservation asked for by `.reserveBody` was granted: the parser may take that many more body bytes.
    mutating func bodyReserved(_ bytes: Int) {
        parser.allowBody(bytes)
    }

    /// The client closed its side (or the read failed).
    mutating func endOfStream() -> Action {
        if parser.hasPartialRequest {
            return .fail(.badRequest("the connection ended before the request was complete"))
        }
        return .close
    }

    /// The next thing to do at `now`; `stopping` is true once the server is shutting down.
    mutating func nextAction(now: UInt64, stopping: Bool) -> Action {
        if closeAfterResponse { return .close }
        do {
            if let event = try parser.next() {
                switch event {
                case .head(let head):
                    continuePending = head.expectsContinue
                    return nextAction(now: now, stopping: stopping)
                case .needsBodyAllowance(let bytes):
                    return .reserveBody(bytes)
                case .request(let head, let body):
                    continuePending = false
                    return .serve(head, body: body)
                }
            }
            // The parser now waits for body bytes the client holds back until invited.
            if continuePending {
                continuePending = false
                return .sendContinue
            }
        } catch let error as ParseError {
            return .fail(error)
        } catch {
            return .fail(.badRequest("unreadable request"))
        }
        let partial = parser.hasPartialRequest
        if !partial && stopping { return .close }
        let deadline = requestStarted.map { $0 + readTimeout } ?? idleSince + idleTimeout
        if now >= deadline {
            if partial {
                return .fail(ParseError(status: 408, code: "request_timeout",
                                        message: "the request was not received within \(Double(readTimeout) / 1e9) seconds"))
            }
            return .close
        }
        return .read(until: deadline)
    }

    /// The response to the request last returned by `.serve` was written; `keepAlive` says whether the connection stays open.
    mutating func responseSent(keepAlive: Bool, at now: UInt64) {
        closeAfterResponse = !keepAlive
        idleSince = now
        // Pipelined bytes already buffered belong to the next request, whose clock starts now.
        requestStarted = parser.hasPartialRequest ? now : nil
    }
}
