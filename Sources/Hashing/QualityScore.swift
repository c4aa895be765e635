import Foundation

/// A label-free score of how well an encoder's codes serve search on a collection: how often an
/// altered copy of an image finds the image itself first, and how evenly the bits split the images.
/// The retrain worker compares candidate models by it before activating one.
public struct QualityScore: Codable, Equatable, Sendable {
    /// Share of altered copies whose nearest original (by Hamming distance, among every sampled
    /// original) is their own; an original tied with k others counts 1/(k+1), the chance that a random
    /// tie-break puts it first. 0…1.
    public var firstRankRate: Double
    /// Mean binary entropy of the bits over the sampled originals: 1 when every bit splits them in
    /// half, 0 when every bit is constant. 0…1.
    public var balance: Double
    /// Bits that are the same for every sampled original.
    public var constantBits: Int
    /// `firstRankRate × balance`: the figure candidates are ranked by. A constant code scores 0 however
    /// the ties fall, and a few dead bits cost in proportion.
    public var score: Double { firstRankRate * balance }

    public init(firstRankRate: Double, balance: Double, constantBits: Int) {
        self.firstRankRate = firstRankRate
        self.balance = balance
        self.constantBits = constantBits
    }

    private enum CodingKeys: String, CodingKey { case firstRankRate, balance, constantBits, score }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        firstRankRate = try container.decode(Double.self, forKey: .firstRankRate)
        balance = try container.decode(Double.self, forKey: .balance)
        constantBits = try container.decode(Int.self, forKey: .constantBits)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(firstRankRate, forKey: .firstRankRate)
        try container.encode(balance, forKey: .balance)
        try container.encode(constantBits, forKey: .constantBits)
        try container.encode(score, forKey: .score)
    }

    /// Scores `encoder` on `originals` and their altered copies: `alteredCopies[i]` are thumbnails made
    /// from `originals[i]` (any number per original). Needs at least two originals.
    public static func measure(encoder: HashEncoder, originals: [[UInt8]], alteredCopies: [[[UInt8]]]) -> QualityScore {
        precondition(originals.count == alteredCopies.count, "one list of altered copies per original")
        let originalCodes = BinaryCodes(outputs: encoder.encode(thumbnails: originals), bits: encoder.bits)
        let flattened = alteredCopies.flatMap { $0 }
        let owners = alteredCopies.enumerated().flatMap { index, copies in Array(repeating: index, count: copies.count) }
        let copyCodes = BinaryCodes(outputs: encoder.encode(thumbnails: flattened), bits: encoder.bits)
        return measure(originals: originalCodes, copies: copyCodes, owners: owners)
    }

    /// The score of already computed codes: copy `j` was made from original `owners[j]`.
    public static func measure(originals: BinaryCodes, copies: BinaryCodes, owners: [Int]) -> QualityScore {
        precondition(copies.count == owners.count && originals.bits == copies.bits, "codes and owners must agree")
        var credit = 0.0
        for copy in 0..<copies.count {
            let own = copies.distance(copy, to: originals, owners[copy])
            var closer = 0, tied = 0
            for other in 0..<originals.count where other != owners[copy] {
                let distance = copies.distance(copy, to: originals, other)
                if distance < own { closer += 1; break }
                if distance == own { tied += 1 }
            }
            if closer == 0 { credit += 1 / Double(tied + 1) }
        }
        let ones = originals.onesPerBit()
        var entropy = 0.0
        var constantBits = 0
        for count in ones {
            let p = Double(count) / Double(max(originals.count, 1))
            if count == 0 || count == originals.count { constantBits += 1; continue }
            entropy += -(p * log2(p) + (1 - p) * log2(1 - p))
        }
        return QualityScore(firstRankRate: copies.count == 0 ? 0 : credit / Double(copies.count),
                            balance: originals.bits == 0 ? 0 : entropy / Double(originals.bits), constantBits: constantBits)
    }
}

/// Codes packed 64 bits to a word, row after row: the signs of an encoder's outputs (positive is a 1,
/// so a NaN output is a 0, as everywhere codes are made).
public struct BinaryCodes: Sendable {
    public let bits: Int
    public let count: Int
    /// Words per code.
    let stride: Int
    var words: [UInt64]

    /// Packs one row of `bits` outputs per code.
    public init(outputs: [[Float]], bits: Int) {
        self.bits = bits
        count = outputs.count
        stride = (bits + 63) / 64
        words = [UInt64](repeating: 0, count: stride * outputs.count)
        for (row, output) in outputs.enumerated() {
            for bit in 0..<min(bits, output.count) where output[bit] > 0 {
                words[row * stride + bit / 64] |= 1 << UInt64(bit % 64)
            }
        }
    }

    /// Hamming distance between code `row` here and code `other` of `codes`.
    func distance(_ row: Int, to codes: BinaryCodes, _ other: Int) -> Int {
        var total = 0
        for word in 0..<stride { total += (words[row * stride + word] ^ codes.words[other * stride + word]).nonzeroBitCount }
        return total
    }

    /// How many codes have each bit set.
    func onesPerBit() -> [Int] {
        var ones = [Int](repeating: 0, count: bits)
        for row in 0..<count {
            for bit in 0..<bits where words[row * stride + bit / 64] >> UInt64(bit % 64) & 1 == 1 { ones[bit] += 1 }
        }
        return ones
    }
}
