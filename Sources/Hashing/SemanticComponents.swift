import Foundation

/// Why the semantic components could not be found.
public enum SemanticComponentsError: Error, CustomStringConvertible, Equatable {
    case tooManyFineComponents(components: Int, images: Int)
    case tooManyCoarseComponents(coarse: Int, fine: Int)
    case badShape(String)

    public var description: String {
        switch self {
        case .tooManyFineComponents(let components, let images):
            return "\(components) fine components need at least as many training images, but there are \(images); lower the fine component count or add images"
        case .tooManyCoarseComponents(let coarse, let fine):
            return "\(coarse) coarse components cannot group \(fine) fine components; use at most \(fine)"
        case .badShape(let why):
            return "codes have the wrong shape: \(why)"
        }
    }
}

/// The latent semantic components of the DSCH E-step, found from the codes of all training images:
/// a fine level (a diagonal Gaussian mixture over the codes) and a coarse level grouping the fine
/// components by k-means over their means.
public struct SemanticComponents: Sendable {
    public let images: Int
    public let bits: Int
    public let fineCount: Int
    public let coarseCount: Int
    /// `images×fineCount` fine posteriors, rows summing to 1.
    public let finePosteriors: [Float]
    /// Fine mixture weights π.
    public let fineWeights: [Float]
    /// `fineCount×bits` binarised fine means (±1).
    public let fineCentres: [Float]
    /// `fineCount×bits` continuous fine means, as fitted.
    public let fineMeans: [Float]
    /// The coarse group of every fine component.
    public let coarseOfFine: [Int]
    /// `images×coarseCount` coarse posteriors: each the sum of its fine children's posteriors.
    public let coarsePosteriors: [Float]
    /// Uniform coarse weights.
    public let coarseWeights: [Float]
    /// `coarseCount×bits` binarised k-means centres (±1).
    public let coarseCentres: [Float]
    /// Mean log-likelihood per image under the fine mixture.
    public let meanLogLikelihood: Double

    /// Runs the E-step on `codes` (`images×bits` tanh outputs, row-major).
    public static func find(
        codes: [Float], images: Int, bits: Int, fineCount: Int, coarseCount: Int, seed: UInt64 = 0x5c,
        topPosteriors: Int? = nil, maxIterations: Int = 100, varianceFloor: Double = 1e-4
    ) throws -> SemanticComponents {
        guard codes.count == images * bits, bits > 0 else {
            throw SemanticComponentsError.badShape("\(codes.count) values for \(images) images of \(bits) bits")
        }
        guard fineCount <= images else { throw SemanticComponentsError.tooManyFineComponents(components: fineCount, images: images) }
        guard coarseCount <= fineCount, coarseCount >= 1 else {
            throw SemanticComponentsError.tooManyCoarseComponents(coarse: coarseCount, fine: fineCount)
        }
        let mixture = try GaussianMixture.fit(
            data: codes, count: images, dimension: bits, components: fineCount, seed: seed,
            maxIterations: maxIterations, varianceFloor: varianceFloor, topPosteriors: topPosteriors)
        let grouping = try KMeans.fit(
            data: mixture.means, count: fineCount, dimension: bits, k: coarseCount, seed: seed &+ 1)
        var coarsePosteriors = [Float](repeating: 0, count: images * coarseCount)
        for image in 0..<images {
            for fine in 0..<fineCount {
                coarsePosteriors[image * coarseCount + grouping.assignments[fine]] += mixture.responsibilities[image * fineCount + fine]
            }
        }
        return SemanticComponents(
            images: images, bits: bits, fineCount: fineCount, coarseCount: coarseCount,
            finePosteriors: mixture.responsibilities, fineWeights: mixture.weights,
            fineCentres: mixture.means.map(binarize), fineMeans: mixture.means,
            coarseOfFine: grouping.assignments, coarsePosteriors: coarsePosteriors,
            coarseWeights: [Float](repeating: 1 / Float(coarseCount), count: coarseCount),
            coarseCentres: grouping.centroids.map(binarize), meanLogLikelihood: mixture.meanLogLikelihood)
    }

    /// The fine posteriors of the given images, rows in that order (for a minibatch).
    public func finePosteriors(of imageIndices: [Int]) -> [Float] {
        gatherRows(finePosteriors, columns: fineCount, rows: imageIndices)
    }

    /// The coarse posteriors of the given images, rows in that order (for a minibatch).
    public func coarsePosteriors(of imageIndices: [Int]) -> [Float] {
        gatherRows(coarsePosteriors, columns: coarseCount, rows: imageIndices)
    }
}

/// sign with sign(0) = +1, so that a centre is always a valid code.
@inline(__always)
func binarize(_ value: Float) -> Float { value < 0 ? -1 : 1 }

func gatherRows(_ matrix: [Float], columns: Int, rows: [Int]) -> [Float] {
    var result = [Float](); result.reserveCapacity(rows.count * columns)
    for row in rows { result.append(contentsOf: matrix[(row * columns)..<((row + 1) * columns)]) }
    return result
}
