import XCTest
@testable import HTTP

/// Inputs found by the `http-parser` and `multipart` libFuzzer targets (Fuzz/, scripts/fuzz; the inputs are
/// also under Fuzz/crashers), each guarding the fix it led to.
final class HTTPFuzzRegressionTests: XCTestCase {
    private struct Outcome: Equatable {
        var events: [ParserEvent] = []
        var error: ParseError?
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
                while let event = try parser.next() { outcome.events.append(event) }
            } catch {
                outcome.error = error as? ParseError
                return outcome
            }
        }
        return outcome
    }

    /// A trailer line longer than the header limit that ends in a bare LF: parsed whole it is a 400
    /// ("trailer section ends with a bare LF"); fed byte by byte the length limit trips before the LF
    /// arrives and it is a 431. The verdict must not depend on how the bytes were split.
    func testLongTrailerLineEndingInABareLFGetsOneVerdict() throws {
        let limits = ParserLimits(maxHeaderBytes: 1024, maxBodyBytes: 2048, maxHeaderCount: 12)
        let bytes = Array("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".utf8)
            + [UInt8](repeating: UInt8(ascii: "a"), count: 1100) + [0x0A]
        let whole = parse(bytes, pieceSize: bytes.count, limits: limits)
        XCTAssertNotNil(whole.error)
        XCTAssertEqual(whole, parse(bytes, pieceSize: 1, limits: limits))
        XCTAssertEqual(whole, parse(bytes, pieceSize: 7, limits: limits))
    }
}
