// libFuzzer target: multipart/form-data boundary extraction and body parsing.
// Input: a Content-Type header value up to the first LF (at most 256 bytes), then the body.
// When the Content-Type yields no boundary the body is still parsed, with the boundary "XyZ".
import HTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMultipart(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let newline = bytes.prefix(256).firstIndex(of: 0x0A) ?? min(bytes.count, 256)
    let contentType = String(decoding: bytes[..<newline], as: UTF8.self)
    let body = Array(bytes[min(bytes.count, newline + 1)...])
    let boundary = Multipart.boundary(contentType: contentType)
    if let boundary {
        precondition((1...70).contains(boundary.utf8.count), "boundary of \(boundary.utf8.count) bytes returned")
    }
    if let parts = try? Multipart.parse(body, boundary: boundary ?? "XyZ") {
        precondition(!parts.isEmpty, "parse returned no parts without throwing")
        for part in parts { precondition(part.body.count <= body.count, "a part is longer than the body") }
    }
    return 0
}
