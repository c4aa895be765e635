import Foundation

/// Data-independent locality-sensitive hashing: the signs of random Gaussian projections of the
/// centred thumbnail pixels. The cold-start model of the service: it needs no training, so an empty
/// database can index and search from the first upload.
public struct LSHEncoder: HashEncoder {
    public let kind = "lsh"
    public let bits: Int
    public let inputSize: Int
    public let seed: UInt64
    /// `bits` rows of `inputSize * inputSize * 3` weights.
    private let projection: [Float]

    public init(bits: Int, inputSize: Int, seed: UInt64 = 0x5eed) {
        self.bits = bits
        self.inputSize = inputSize
        self.seed = seed
        var generator = SplitMix64(seed: seed)
        let dimension = inputSize * inputSize * 3
        projection = (0..<(bits * dimension)).map { _ in generator.nextGaussian() }
    }

    /// One matrix product per chunk of thumbnails (features × projectionᵀ) through OpenBLAS.
    public func encode(thumbnails: [[UInt8]]) -> [[Float]] {
        let dimension = inputSize * inputSize * 3
        var result: [[Float]] = []
        result.reserveCapacity(thumbnails.count)
        var start = 0
        while start < thumbnails.count {
            let end = min(start + 2_048, thumbnails.count)
            var features = [Float]()
            features.reserveCapacity((end - start) * dimension)
            for thumbnail in thumbnails[start..<end] {
                precondition(thumbnail.count == dimension, "thumbnail has \(thumbnail.count) bytes, expected \(dimension)")
                features.append(contentsOf: centredPixelFeatures(thumbnail))
            }
            let outputs = matrixProduct(features, projection, transposeB: true, m: end - start, n: bits, k: dimension)
            for row in 0..<(end - start) { result.append(Array(outputs[(row * bits)..<((row + 1) * bits)])) }
            start = end
        }
        return result
    }

    /// The projection is derived from the seed, so the model is just its parameters.
    public func serialized() throws -> [UInt8] {
        let text = "{\"bits\":\(bits),\"inputSize\":\(inputSize),\"seed\":\(seed)}"
        return Array(text.utf8)
    }

    /// The most projection weights `load` generates: enough for every size the service accepts
    /// (1,024 bits of 256×256 thumbnails), so a damaged file cannot ask for gigabytes.
    public static let maxProjectionWeights = 1 << 28

    /// Rebuilds an encoder from `serialized()`.
    public static func load(_ data: [UInt8]) throws -> LSHEncoder {
        struct Parameters: Decodable { let bits: Int; let inputSize: Int; let seed: UInt64 }
        let parameters: Parameters
        do {
            parameters = try JSONDecoder().decode(Parameters.self, from: Data(data))
        } catch {
            throw HashEncoderError.badModelData("LSH parameters: \(error)")
        }
        // The projection is generated, so its size comes from these numbers alone: check them first.
        let bits = parameters.bits, inputSize = parameters.inputSize
        guard bits > 0, inputSize > 0, inputSize <= 1 << 16,
              bits <= maxProjectionWeights / (inputSize * inputSize * 3) else {
            throw HashEncoderError.badModelData(
                "LSH parameters: \(bits) bits of \(inputSize)×\(inputSize) thumbnails (both must be positive, and bits × inputSize² × 3 at most \(maxProjectionWeights))")
        }
        return LSHEncoder(bits: bits, inputSize: inputSize, seed: parameters.seed)
    }
}

/// A small, fast, seedable generator (SplitMix64) so that every random choice is reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
    /// A uniform Float in [0, 1).
    public mutating func nextUniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    /// A standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Float {
        let u1 = max(Double(next() >> 11) / Double(1 << 53), 1e-300)
        let u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
