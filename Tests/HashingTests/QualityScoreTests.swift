import XCTest
@testable import Hashing

/// The label-free score the quality gate ranks candidate models by.
final class QualityScoreTests: XCTestCase {
    /// Outputs whose signs spell `code` over `bits` bits.
    private func outputs(_ code: UInt64, bits: Int) -> [Float] { (0..<bits).map { code >> UInt64($0) & 1 == 1 ? 1 : -1 } }

    func testDistinctCodesFoundByTheirCopiesScoreTheirBalance() {
        // Four codes that split each of two bits in half: perfect balance, every copy nearest its own.
        let originals = BinaryCodes(outputs: [0b00, 0b01, 0b10, 0b11].map { outputs($0, bits: 2) }, bits: 2)
        let copies = BinaryCodes(outputs: [0b00, 0b01, 0b10, 0b11].map { outputs($0, bits: 2) }, bits: 2)
        let score = QualityScore.measure(originals: originals, copies: copies, owners: [0, 1, 2, 3])
        XCTAssertEqual(score.firstRankRate, 1)
        XCTAssertEqual(score.balance, 1, accuracy: 1e-12)
        XCTAssertEqual(score.constantBits, 0)
        XCTAssertEqual(score.score, 1, accuracy: 1e-12)
    }

    func testTiesCountTheChanceOfARandomTieBreakAndCloserOthersCountNothing() {
        // Originals 0b000, 0b011, 0b101. A copy 0b001 of original 0 is at distance 1 from all three:
        // a three-way tie, credit 1/3. A copy 0b111 of original 0 has both others closer: credit 0.
        let originals = BinaryCodes(outputs: [0b000, 0b011, 0b101].map { outputs($0, bits: 3) }, bits: 3)
        let copies = BinaryCodes(outputs: [0b001, 0b111].map { outputs($0, bits: 3) }, bits: 3)
        let score = QualityScore.measure(originals: originals, copies: copies, owners: [0, 0])
        XCTAssertEqual(score.firstRankRate, (1.0 / 3 + 0) / 2, accuracy: 1e-12)
        // Bit 0 is set in 2 of 3, bit 1 in 1 of 3, bit 2 in 1 of 3: each bit's entropy is H(1/3).
        let entropy = -(1.0 / 3 * log2(1.0 / 3) + 2.0 / 3 * log2(2.0 / 3))
        XCTAssertEqual(score.balance, entropy, accuracy: 1e-12)
    }

    func testACollapsedEncoderScoresZero() {
        // Every output the same (or NaN, whose sign bit is 0): every copy ties with every original.
        let constant = [Float](repeating: 0.5, count: 16)
        let originals = BinaryCodes(outputs: Array(repeating: constant, count: 10), bits: 16)
        let copies = BinaryCodes(outputs: Array(repeating: [Float](repeating: .nan, count: 16), count: 10), bits: 16)
        let score = QualityScore.measure(originals: originals, copies: copies, owners: Array(0..<10))
        XCTAssertEqual(score.constantBits, 16)
        XCTAssertEqual(score.balance, 0)
        XCTAssertEqual(score.score, 0)
        XCTAssertEqual(score.firstRankRate, 0.1, accuracy: 1e-12, "a ten-way tie gives each copy a one-in-ten chance")
    }

    func testWideCodesSpanSeveralWords() {
        // 130 bits: codes differ only in bit 129, in the third word.
        var first = [Float](repeating: -1, count: 130), second = first
        second[129] = 1
        first[0] = 1; second[0] = 1
        let originals = BinaryCodes(outputs: [first, second], bits: 130)
        let score = QualityScore.measure(originals: originals, copies: BinaryCodes(outputs: [second, first], bits: 130), owners: [1, 0])
        XCTAssertEqual(score.firstRankRate, 1)
        XCTAssertEqual(score.constantBits, 129)
        XCTAssertEqual(score.balance, 1.0 / 130, accuracy: 1e-12)
    }

    func testTheScoreIsWrittenWithItsProduct() throws {
        let data = try JSONEncoder().encode(QualityScore(firstRankRate: 0.5, balance: 0.5, constantBits: 2))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(object["score"] as? Double, 0.25)
        XCTAssertEqual(try JSONDecoder().decode(QualityScore.self, from: data), QualityScore(firstRankRate: 0.5, balance: 0.5, constantBits: 2))
    }
}
