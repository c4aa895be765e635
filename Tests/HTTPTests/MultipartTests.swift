import XCTest
@testable import HTTP

final class MultipartTests: XCTestCase {
    /// Bytes that look like trouble inside a file: CR, LF, a dash run and a near-boundary.
    private let fileBytes: [UInt8] = [0xFF, 0xD8, 0x0D, 0x0A, 0x2D, 0x2D, 0x0D, 0x0A, 0x00, 0x01] + Array("\r\n--------------------------d74496d66958873".utf8) + [0xFF, 0xD9]

    func testBoundaryFromContentType() {
        XCTAssertEqual(Multipart.boundary(contentType: "multipart/form-data; boundary=------------------------d74496d66958873e"),
                       "------------------------d74496d66958873e")
        XCTAssertEqual(Multipart.boundary(contentType: "Multipart/Form-Data; charset=utf-8; BOUNDARY=\"a b;c\""), "a b;c")
        XCTAssertEqual(Multipart.boundary(contentType: "multipart/form-data;boundary=simple"), "simple")
        XCTAssertNil(Multipart.boundary(contentType: "multipart/mixed; boundary=x"))
        XCTAssertNil(Multipart.boundary(contentType: "multipart/form-data"))
        XCTAssertNil(Multipart.boundary(contentType: "multipart/form-data; boundary=\"\""))
        XCTAssertNil(Multipart.boundary(contentType: "multipart/form-data; boundary=" + String(repeating: "x", count: 71)))
        XCTAssertNil(Multipart.boundary(contentType: "image/png"))
    }

    /// The body curl 8 sends for `curl -F image=@photo.jpg -F meta='{"a":1}'`.
    private func curlBody(boundary: String) -> [UInt8] {
        var body: [UInt8] = []
        body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".utf8)
        body += fileBytes
        body += Array("\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{\"a\":1}\r\n--\(boundary)--\r\n".utf8)
        return body
    }

    func testBodyAsCurlSendsIt() throws {
        let contentType = "multipart/form-data; boundary=------------------------d74496d66958873e"
        let boundary = try XCTUnwrap(Multipart.boundary(contentType: contentType))
        let parts = try Multipart.parse(curlBody(boundary: boundary), boundary: boundary)
        XCTAssertEqual(parts.count, 2)
        XCTAssertEqual(parts[0].name, "image")
        XCTAssertEqual(parts[0].filename, "photo.jpg")
        XCTAssertEqual(parts[0].contentType, "image/jpeg")
        XCTAssertEqual(parts[0].body, fileBytes)
        XCTAssertEqual(parts[1].name, "meta")
        XCTAssertNil(parts[1].filename)
        XCTAssertNil(parts[1].contentType)
        XCTAssertEqual(String(decoding: parts[1].body, as: UTF8.self), "{\"a\":1}")
    }

    func testPreambleEpiloguePaddingAndEmptyPart() throws {
        let body = "this is a preamble\r\n--xyz  \r\ncontent-disposition: form-data; name=empty\r\n\r\n\r\n--xyz\r\n"
            + "Content-Disposition: form-data; name=\"q\\\"uote\"; filename=\"a;b.png\"\r\n\r\nv\r\n--xyz--\r\nepilogue here"
        let parts = try Multipart.parse(Array(body.utf8), boundary: "xyz")
        XCTAssertEqual(parts.map(\.name), ["empty", "q\"uote"])
        XCTAssertEqual(parts[0].body, [])
        XCTAssertEqual(parts[1].filename, "a;b.png")
        XCTAssertEqual(parts[1].body, Array("v".utf8))
    }

    func testMalformedBodiesAre400() {
        let cases: [String] = [
            "",
            "no boundary at all",
            "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue without close",
            "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\nno blank line\r\n--xyz--",
            "--xyz\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--xyz--",
            "--xyz\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--xyz--",
            "--xyz\r\nBroken header\r\n\r\nv\r\n--xyz--",
            "--xyzjunk\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--xyz--",
            "--xyz--",
        ]
        for body in cases {
            XCTAssertThrowsError(try Multipart.parse(Array(body.utf8), boundary: "xyz"), body) { error in
                XCTAssertEqual((error as? HTTPResponseError)?.status, 400, body)
            }
        }
    }
}
