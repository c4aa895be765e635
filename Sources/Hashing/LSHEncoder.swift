import Foundation
import NeuralNet

/// Data-independent locality-sensitive hashing: the signs of random Gaussian projections of the
/// centred thumbnail pixels. The cold-start model of the service: it needs no training, so an empty
/// database can index and search from the first upload.
public struct LSHEncoder: HashEncoder {
    public let kind = ModelKind.lsh
    public let bits: Int
    public let inputSize: Int
    public let seed: UInt64
    /// `bits` rows of `inputSize * inputSize * 3` weights, drawn from `SplitMix64(seed:)`.
    private let projection: [Float]

    /// The seed of an LSH model made without one.
    public static let defaultSeed: UInt64 = 0x5eed

    /// The encoder whose projections `seed` fixes: the same seed always gives the same codes.
    public init(bits: Int, inputSize: Int, seed: UInt64 = LSHEncoder.defaultSeed) {
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
        return linearHashOutputs(thumbnails: thumbnails, inputSize: inputSize, bits: bits) { features, count in
            matrixProduct(features, projection, transposeB: true, m: count, n: bits, k: dimension)
        }
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
