// libFuzzer target: the incremental HTTP/1.x request parser.
// The input is fed whole, then split in two at a point derived from its first byte, then byte by byte;
// all three must give the same events and the same error (the property RequestParserTests relies on).
// Body allowances are granted as asked, as a connection with room in its budget grants them.
@testable import HTTP

private struct Outcome: Equatable {
    var events: [ParserEvent] = []
    var error: ParseError?
}

private let limits = ParserLimits(maxHeaderBytes: 1024, maxBodyBytes: 2048, maxHeaderCount: 12)

private func parse(_ bytes: [UInt8], cuts: [Int]) -> Outcome {
    var parser = RequestParser(limits: limits)
    var outcome = Outcome()
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        parser.feed(bytes[start..<end])
        start = end
        do {
            while let event = try parser.next() {
                outcome.events.append(event)
                // As a connection with room in its body budget does; without the grant the parser
                // keeps asking (and the loop would never end).
                if case .needsBodyAllowance(let bytes) = event { parser.allowBody(bytes) }
            }
        } catch let error as ParseError {
            outcome.error = error
            return outcome
        } catch {
            fatalError("RequestParser threw a \(type(of: error)), not a ParseError: \(error)")
        }
    }
    return outcome
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = parse(bytes, cuts: [])
    let split = bytes.count * Int(bytes[0]) / 255
    let halves = parse(bytes, cuts: [split])
    if whole != halves {
        fatalError("whole and split-at-\(split) parses differ:\n  whole: \(whole)\n  split: \(halves)")
    }
    let single = parse(bytes, cuts: Array(1..<bytes.count))
    if whole != single {
        fatalError("whole and byte-by-byte parses differ:\n  whole:  \(whole)\n  single: \(single)")
    }
    return 0
}
