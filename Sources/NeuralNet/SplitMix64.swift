import Foundation

/// The project's one seeded random generator (SplitMix64, Steele, Lea & Flood 2014): weight
/// initialisation, LSH projections, ITQ and clustering starts, augmentations and shuffling all draw
/// from it, so one seed gives one result. Its sequence is part of stored behaviour: an LSH model is
/// saved as its seed alone, so the outputs for a seed must never change.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits: a Weyl step, then the output mix.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }

    /// A uniform Float in [0, 1), from the top 24 bits (a Float's significand).
    public mutating func nextUniform() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// A standard normal sample (Box–Muller on two uniform doubles of 53 bits; the first is kept away
    /// from 0 so that its logarithm is finite).
    public mutating func nextGaussian() -> Float {
        let u1 = max(Double(next() >> 11) / Double(1 << 53), 1e-300)
        let u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
