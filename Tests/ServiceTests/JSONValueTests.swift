import Foundation
import XCTest
@testable import Service

/// The response writer: exact text for known values, and output any JSON parser reads back.
final class JSONValueTests: XCTestCase {
    private func text(_ value: JSONValue) -> String { String(decoding: value.bytes, as: UTF8.self) }

    func testIntegersAtTheEdgesOfTheirRange() {
        for number in [0, 7, -1, 10, -10, 1_234_567_890, Int64.max, Int64.min] {
            XCTAssertEqual(text(.integer(number)), String(number))
        }
    }

    func testStringsAreEscapedOnlyWhereJSONNeedsIt() {
        XCTAssertEqual(text(.string("plain/ascii é")), #""plain/ascii é""#)
        XCTAssertEqual(text(.string("a\"b\\c\nd\re\tf\u{01}")), #""a\"b\\c\nd\re\tf\u0001""#)
        XCTAssertEqual(text(.string("")), #""""#)
    }

    func testObjectsWriteTheirKeysSortedAndParseBack() throws {
        let value = JSONValue.object([
            "zeta": .array([.int(1), .number(2.5), .bool(true), .null]), "alpha": .string("x\"y"),
            "mid": .object(["b": .integer(-3), "a": .raw(#"{"k":[1,2]}"#)]),
        ])
        XCTAssertEqual(text(value), #"{"alpha":"x\"y","mid":{"a":{"k":[1,2]},"b":-3},"zeta":[1,2.5,true,null]}"#)
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(value.bytes)) as? [String: Any])
        XCTAssertEqual(parsed["alpha"] as? String, "x\"y")
    }
}
