import Foundation

/// Why an ITQ model could not be trained.
public enum ITQError: Error, CustomStringConvertible, Equatable {
    case tooFewSamples(samples: Int, bits: Int)
    case tooManyBits(bits: Int, dimension: Int)
    case badShape(String)

    public var description: String {
        switch self {
        case .tooFewSamples(let samples, let bits):
            return "ITQ with \(bits) bits needs more than \(bits) training images, got \(samples)"
        case .tooManyBits(let bits, let dimension):
            return "ITQ cannot make \(bits) bits from \(dimension)-dimensional features; use at most \(dimension)"
        case .badShape(let why):
            return "ITQ training data has the wrong shape: \(why)"
        }
    }
}

/// The linear map of iterative quantisation (Gong & Lazebnik): subtract the mean, project on the top
/// `bits` principal directions, rotate by the learned orthogonal matrix. Only the product of the PCA
/// basis and the rotation is kept.
public struct ITQProjection: Sendable {
    public let dimension: Int
    public let bits: Int
    /// Training mean, `dimension` values.
    public let mean: [Float]
    /// `dimension×bits` projection (PCA basis times rotation), row-major.
    public let projection: [Float]
    /// Quantisation loss ‖B − VR‖²/N after each ITQ iteration, for inspection.
    public let quantizationLossHistory: [Double]

    /// Learns the projection from `count` feature rows.
    /// - Parameters:
    ///   - normalizeRows: scale each centred training row to unit length before PCA, as faiss's
    ///     `ITQTransform` does; signs of the outputs do not depend on it, only the learned map does.
    ///   - powerIterations: subspace iterations of the randomised PCA (each multiplies by XᵀX once).
    public static func train(
        features: [Float], count: Int, dimension: Int, bits: Int, iterations: Int = 50, seed: UInt64 = 0x175,
        normalizeRows: Bool = true, powerIterations: Int = 16
    ) throws -> ITQProjection {
        guard features.count == count * dimension, dimension > 0 else {
            throw ITQError.badShape("\(features.count) floats for \(count) rows of \(dimension)")
        }
        guard bits <= dimension else { throw ITQError.tooManyBits(bits: bits, dimension: dimension) }
        guard count > bits else { throw ITQError.tooFewSamples(samples: count, bits: bits) }

        var mean = [Float](repeating: 0, count: dimension)
        var sums = [Double](repeating: 0, count: dimension)
        for row in 0..<count { for column in 0..<dimension { sums[column] += Double(features[row * dimension + column]) } }
        for column in 0..<dimension { mean[column] = Float(sums[column] / Double(count)) }
        var centred = features
        for row in 0..<count {
            var norm: Float = 0
            for column in 0..<dimension {
                let value = centred[row * dimension + column] - mean[column]
                centred[row * dimension + column] = value
                norm += value * value
            }
            if normalizeRows && norm > 0 {
                let scale = 1 / norm.squareRoot()
                for column in 0..<dimension { centred[row * dimension + column] *= scale }
            }
        }

        var generator = SplitMix64(seed: seed)
        let basis = principalDirections(centred, count: count, dimension: dimension, directions: bits,
                                        powerIterations: powerIterations, generator: &generator)
        let reduced = matrixProduct(centred, basis, m: count, n: bits, k: dimension)

        // Random orthogonal start, then alternate B = sign(VR) and the orthogonal Procrustes step.
        var rotation = (0..<(bits * bits)).map { _ in generator.nextGaussian() }
        orthonormalizeColumns(&rotation, rows: bits, columns: bits)
        var history: [Double] = []
        for _ in 0..<iterations {
            let rotated = matrixProduct(reduced, rotation, m: count, n: bits, k: bits)
            let signs = rotated.map(binarize)
            var loss = 0.0
            for index in rotated.indices { let gap = Double(signs[index] - rotated[index]); loss += gap * gap }
            history.append(loss / Double(count))
            // Vᵀ B = U S Wᵀ maximises tr(Rᵀ Vᵀ B) at R = U Wᵀ.
            let correlation = matrixProduct(reduced, transposeA: true, signs, m: bits, n: bits, k: count)
            let (u, _, w) = squareSVD(correlation.map(Double.init), n: bits)
            var next = [Float](repeating: 0, count: bits * bits)
            for row in 0..<bits {
                for column in 0..<bits {
                    var sum = 0.0
                    for inner in 0..<bits { sum += u[row * bits + inner] * w[column * bits + inner] }
                    next[row * bits + column] = Float(sum)
                }
            }
            rotation = next
        }
        return ITQProjection(
            dimension: dimension, bits: bits, mean: mean,
            projection: matrixProduct(basis, rotation, m: dimension, n: bits, k: bits),
            quantizationLossHistory: history)
    }

    /// The top `directions` eigenvectors of XᵀX (`dimension×directions`, orthonormal columns, by
    /// decreasing eigenvalue), by randomised subspace iteration and a Rayleigh–Ritz step: it costs a few
    /// products with X, where a full eigen-decomposition of a 3072×3072 covariance would take minutes.
    static func principalDirections(
        _ data: [Float], count: Int, dimension: Int, directions: Int, powerIterations: Int,
        generator: inout SplitMix64
    ) -> [Float] {
        let width = min(dimension, directions + max(16, directions / 2))
        var subspace = (0..<(dimension * width)).map { _ in generator.nextGaussian() }
        orthonormalizeColumns(&subspace, rows: dimension, columns: width)
        for _ in 0..<powerIterations {
            let projected = matrixProduct(data, subspace, m: count, n: width, k: dimension)
            subspace = matrixProduct(data, transposeA: true, projected, m: dimension, n: width, k: count)
            orthonormalizeColumns(&subspace, rows: dimension, columns: width)
        }
        let projected = matrixProduct(data, subspace, m: count, n: width, k: dimension)
        let small = matrixProduct(projected, transposeA: true, projected, m: width, n: width, k: count)
        let (_, vectors) = symmetricEigen(small.map(Double.init), n: width)
        var leading = [Float](repeating: 0, count: width * directions)
        for row in 0..<width { for column in 0..<directions { leading[row * directions + column] = Float(vectors[row * width + column]) } }
        return matrixProduct(subspace, leading, m: dimension, n: directions, k: width)
    }

    /// Projects `count` feature rows: `(x − mean) · projection`, `count×bits` row-major.
    public func apply(features: [Float], count: Int) -> [Float] {
        var centred = features
        for row in 0..<count { for column in 0..<dimension { centred[row * dimension + column] -= mean[column] } }
        return matrixProduct(centred, projection, m: count, n: bits, k: dimension)
    }
}

/// Iterative quantisation over centred thumbnail pixels: the data-dependent linear baseline between LSH
/// and DSCH, trained in seconds on the service's own images.
public struct ITQEncoder: HashEncoder {
    public let kind = "itq"
    public let bits: Int
    public let inputSize: Int
    public let model: ITQProjection

    public init(inputSize: Int, model: ITQProjection) {
        self.bits = model.bits
        self.inputSize = inputSize
        self.model = model
    }

    /// Trains on thumbnails (`inputSize`×`inputSize` RGB bytes each).
    public static func train(
        thumbnails: [[UInt8]], bits: Int, inputSize: Int, iterations: Int = 50, seed: UInt64 = 0x175,
        normalizeRows: Bool = true
    ) throws -> ITQEncoder {
        let dimension = inputSize * inputSize * 3
        var features = [Float](); features.reserveCapacity(thumbnails.count * dimension)
        for (index, thumbnail) in thumbnails.enumerated() {
            guard thumbnail.count == dimension else {
                throw ITQError.badShape("thumbnail \(index) has \(thumbnail.count) bytes, expected \(dimension)")
            }
            features.append(contentsOf: centredPixelFeatures(thumbnail))
        }
        let model = try ITQProjection.train(
            features: features, count: thumbnails.count, dimension: dimension, bits: bits,
            iterations: iterations, seed: seed, normalizeRows: normalizeRows)
        return ITQEncoder(inputSize: inputSize, model: model)
    }

    public func encode(thumbnails: [[UInt8]]) -> [[Float]] {
        let dimension = inputSize * inputSize * 3
        var result: [[Float]] = []
        result.reserveCapacity(thumbnails.count)
        let chunk = 2_048
        var start = 0
        while start < thumbnails.count {
            let end = min(start + chunk, thumbnails.count)
            var features = [Float](); features.reserveCapacity((end - start) * dimension)
            for thumbnail in thumbnails[start..<end] {
                precondition(thumbnail.count == dimension, "thumbnail has \(thumbnail.count) bytes, expected \(dimension)")
                features.append(contentsOf: centredPixelFeatures(thumbnail))
            }
            let outputs = model.apply(features: features, count: end - start)
            for row in 0..<(end - start) { result.append(Array(outputs[(row * bits)..<((row + 1) * bits)])) }
            start = end
        }
        return result
    }

    private static let magic: [UInt8] = Array("ITQ1".utf8)

    /// Binary layout: "ITQ1", then little-endian UInt32 bits, inputSize, dimension, then Float32 mean
    /// (`dimension`) and projection (`dimension×bits`).
    public func serialized() throws -> [UInt8] {
        var bytes = ITQEncoder.magic
        for value in [bits, inputSize, model.dimension] { withUnsafeBytes(of: UInt32(value).littleEndian) { bytes += $0 } }
        for value in model.mean + model.projection { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 } }
        return bytes
    }

    /// Rebuilds an encoder from `serialized()`.
    public static func load(_ data: [UInt8]) throws -> ITQEncoder {
        guard data.count >= 16, Array(data[0..<4]) == magic else {
            throw HashEncoderError.badModelData("ITQ model does not start with the ITQ1 header")
        }
        func word(_ offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(data[offset + $1]) << (8 * UInt32($1)) } }
        let bits = Int(word(4)), inputSize = Int(word(8)), dimension = Int(word(12))
        // Each field is under 2^32, so bounding inputSize keeps inputSize² × 3 × (bits + 1) within an Int.
        guard bits > 0, inputSize <= 1 << 12, dimension == inputSize * inputSize * 3 else {
            throw HashEncoderError.badModelData("ITQ header: \(bits) bits, input \(inputSize), dimension \(dimension)")
        }
        let floatCount = dimension + dimension * bits
        // Checked before any float is decoded, so a damaged header cannot size an allocation.
        guard data.count == 16 + 4 * floatCount else {
            throw HashEncoderError.badModelData("ITQ model holds \(data.count) bytes, expected \(16 + 4 * floatCount)")
        }
        let floats = (0..<floatCount).map { Float(bitPattern: word(16 + 4 * $0)) }
        let model = ITQProjection(
            dimension: dimension, bits: bits, mean: Array(floats[0..<dimension]),
            projection: Array(floats[dimension...]), quantizationLossHistory: [])
        return ITQEncoder(inputSize: inputSize, model: model)
    }
}
