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

    /// Foundation's canonical form, as the full path of `MetadataPolicy.canonical` writes it.
    private func foundationCanonical(_ text: String) -> String? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    func testCanonicalFlatObjectsAreRecognisedExactlyWhenFoundationWouldWriteThemBackUnchanged() {
        let accepted = [#"{}"#, #"{"index":12,"label":3,"source":"train-images.idx"}"#, #"{"a":-7,"b":0,"c":"x/y z"}"#,
                        #"{"":"","ab":123456789012345}"#]
        for text in accepted {
            XCTAssertTrue(MetadataPolicy.isCanonicalFlatObject(Array(text.utf8)), text)
            XCTAssertEqual(foundationCanonical(text), text)
        }
        let refused = [#"{"b":1,"a":2}"#, #"{"a":1,"a":2}"#, #"{ "a":1}"#, #"{"a":01}"#, #"{"a":-0}"#, #"{"a":1.5}"#,
                       #"{"a":1e3}"#, #"{"a":"\n"}"#, #"{"a":"\u00e9"}"#, #"{"a":"é"}"#, #"{"a":true}"#, #"{"a":null}"#,
                       #"{"a":1234567890123456}"#, #"{"a":{}}"#, #"{"a":[1]}"#, #"{"a":1,}"#, #"{"a":1}x"#, #"{"a":1"#, "[]", "",
                       #"{"_":1,"a":2}"#, #"{"a9":1,"a10":2}"#, #"{"A":1,"b":2}"#]
        for text in refused { XCTAssertFalse(MetadataPolicy.isCanonicalFlatObject(Array(text.utf8)), text) }

        // Random flat objects: whenever the fast path takes one, Foundation agrees byte for byte.
        var generator = SystemRandomNumberGenerator()
        let keyAlphabet = Array("abcab/ 9_A\"".utf8)
        var taken = 0
        for _ in 0..<3_000 {
            let count = Int.random(in: 0...4, using: &generator)
            var fields: [String] = []
            for _ in 0..<count {
                let key = String(decoding: (0..<Int.random(in: 0...3, using: &generator)).map { _ in keyAlphabet.randomElement(using: &generator)! }, as: UTF8.self)
                let value: String
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: value = String(Int.random(in: -1_000_000...1_000_000, using: &generator))
                case 1: value = ["0", "-0", "007", "9999999999999999", "12"].randomElement(using: &generator)!
                case 2: value = "\"\(key)\""
                default: value = "\"v/\(Int.random(in: 0...99, using: &generator))\""
                }
                fields.append("\"\(key)\":\(value)")
            }
            if Bool.random(using: &generator) { fields.sort() }
            let text = "{" + fields.joined(separator: ",") + "}"
            guard MetadataPolicy.isCanonicalFlatObject(Array(text.utf8)) else { continue }
            if count > 0 { taken += 1 }
            XCTAssertEqual(foundationCanonical(text), text)
        }
        XCTAssertGreaterThan(taken, 100, "the random non-empty objects must exercise the fast path")
    }
}
