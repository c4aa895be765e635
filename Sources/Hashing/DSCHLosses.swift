import Foundation

/// A loss value and its gradient with respect to the codes it was given (same shape as the codes).
public struct LossAndGradient: Sendable {
    public let loss: Float
    public let gradient: [Float]
}

/// The losses of the DSCH M-step on plain row-major matrices, each with its analytic gradient, so that
/// they can be checked and measured apart from the network. Codes `h` are the tanh outputs of the 2B
/// views of a batch: rows `i` and `i + B` are the two views of image `i`. Arithmetic is in Double inside.
public enum DSCHLoss {
    /// The contrastive instance loss over the 2B views: softmax over cosine similarities / τ with the
    /// view itself left out; the target of view i spreads over every other view j in proportion to
    /// `sᵢⱼ = pᵢ·pⱼ` (image-level posteriors, so both views of an image share one row), the other view
    /// of the same image always weighted 1, each row normalised. With `posteriors == nil` the target
    /// is the other view alone (NT-Xent, plain two-view contrastive hashing).
    /// - Parameters:
    ///   - codes: `2B×bits` tanh outputs.
    ///   - posteriors: `B×components` image-level posteriors, or nil.
    public static func instance(
        codes: [Float], batchSize: Int, bits: Int, temperature: Float,
        posteriors: [Float]? = nil, components: Int = 0
    ) -> LossAndGradient {
        let rows = 2 * batchSize
        precondition(codes.count == rows * bits, "codes must be 2B×bits")
        if let posteriors { precondition(posteriors.count == batchSize * components, "posteriors must be B×components") }
        let tau = Double(temperature)
        let (unit, norms) = normalizedRows(codes, rows: rows, columns: bits)

        // Pair weights: the co-occurrence sᵢⱼ of the images the views come from.
        func image(_ view: Int) -> Int { view % batchSize }
        var cooccurrence: [Double]? = nil
        if let posteriors {
            var s = [Double](repeating: 0, count: batchSize * batchSize)
            for a in 0..<batchSize {
                for b in a..<batchSize {
                    var dot = 0.0
                    for m in 0..<components { dot += Double(posteriors[a * components + m]) * Double(posteriors[b * components + m]) }
                    s[a * batchSize + b] = dot; s[b * batchSize + a] = dot
                }
            }
            cooccurrence = s
        }

        var coefficient = [Double](repeating: 0, count: rows * rows)  // G = (softmax − target) / rows
        var loss = 0.0
        var logits = [Double](repeating: 0, count: rows)
        var targets = [Double](repeating: 0, count: rows)
        for i in 0..<rows {
            let partner = (i + batchSize) % rows
            for j in 0..<rows {
                logits[j] = j == i ? -.infinity : dot(unit, i, unit, j, bits) / tau
                if j == i { targets[j] = 0 } else if j == partner { targets[j] = 1 } else {
                    targets[j] = cooccurrence.map { $0[image(i) * batchSize + image(j)] } ?? 0
                }
            }
            let targetSum = targets.reduce(0, +)
            let normaliser = logits.withUnsafeBufferPointer { logSumExp($0) }
            for j in 0..<rows where j != i {
                let target = targets[j] / targetSum
                loss -= target * (logits[j] - normaliser)
                coefficient[i * rows + j] = (exp(logits[j] - normaliser) - target) / Double(rows)
            }
        }
        loss /= Double(rows)

        // dL/dzᵢ = (1/τ) Σⱼ (Gᵢⱼ + Gⱼᵢ) zⱼ, then through the normalisation.
        var unitGradient = [Double](repeating: 0, count: rows * bits)
        for i in 0..<rows {
            for j in 0..<rows where j != i {
                let weight = (coefficient[i * rows + j] + coefficient[j * rows + i]) / tau
                for k in 0..<bits { unitGradient[i * bits + k] += weight * unit[j * bits + k] }
            }
        }
        return LossAndGradient(
            loss: Float(loss),
            gradient: throughNormalization(unitGradient, unit: unit, norms: norms, rows: rows, columns: bits))
    }

    /// The component loss `−Σₘ pᵢₘ log[πₘ exp(cos(hᵢ, μₘ)/τ) / Σₖ πₖ exp(cos(hᵢ, μₖ)/τ)]` averaged over
    /// rows, with the centres μ held fixed. The same function serves the fine and the coarse level.
    /// - Parameters:
    ///   - codes: `rows×bits`.
    ///   - posteriors: `rows×components`, or `(rows/2)×components` to share one row between both views.
    ///   - weights: π, `components` values (a zero weight keeps its component out of the softmax).
    ///   - centres: `components×bits` (binarised means, ±1).
    public static func component(
        codes: [Float], rows: Int, bits: Int, posteriors: [Float], weights: [Float], centres: [Float],
        components: Int, temperature: Float
    ) -> LossAndGradient {
        precondition(codes.count == rows * bits, "codes must be rows×bits")
        precondition(centres.count == components * bits && weights.count == components, "centres and weights")
        let posteriorRows = posteriors.count / max(components, 1)
        precondition(posteriors.count == posteriorRows * components && (posteriorRows == rows || 2 * posteriorRows == rows),
                     "posteriors must have one row per code or one per image")
        let tau = Double(temperature)
        let (unit, norms) = normalizedRows(codes, rows: rows, columns: bits)
        let (unitCentres, _) = normalizedRows(centres, rows: components, columns: bits)
        let logWeights = weights.map { $0 > 0 ? log(Double($0)) : -Double.infinity }

        var loss = 0.0
        var unitGradient = [Double](repeating: 0, count: rows * bits)
        var logits = [Double](repeating: 0, count: components)
        for i in 0..<rows {
            let posteriorRow = (i % posteriorRows) * components
            for m in 0..<components { logits[m] = logWeights[m] + dot(unit, i, unitCentres, m, bits) / tau }
            let normaliser = logits.withUnsafeBufferPointer { logSumExp($0) }
            var mass = 0.0
            for m in 0..<components { mass += Double(posteriors[posteriorRow + m]) }
            for m in 0..<components {
                let p = Double(posteriors[posteriorRow + m])
                if p > 0 { loss -= p * (logits[m] - normaliser) }
                let logitGradient = (exp(logits[m] - normaliser) * mass - p) / Double(rows)
                if logitGradient != 0 {
                    let scale = logitGradient / tau
                    for k in 0..<bits { unitGradient[i * bits + k] += scale * unitCentres[m * bits + k] }
                }
            }
        }
        return LossAndGradient(
            loss: Float(loss / Double(rows)),
            gradient: throughNormalization(unitGradient, unit: unit, norms: norms, rows: rows, columns: bits))
    }

    /// The quantisation loss `mean((|h| − 1)²)` over every entry, pulling tanh outputs to ±1.
    public static func quantization(codes: [Float]) -> LossAndGradient {
        guard !codes.isEmpty else { return LossAndGradient(loss: 0, gradient: []) }
        let count = Double(codes.count)
        var loss = 0.0
        var gradient = [Float](repeating: 0, count: codes.count)
        for (index, value) in codes.enumerated() {
            let h = Double(value)
            let gap = abs(h) - 1
            loss += gap * gap
            let sign: Double = h > 0 ? 1 : (h < 0 ? -1 : 0)
            gradient[index] = Float(2 * gap * sign / count)
        }
        return LossAndGradient(loss: Float(loss / count), gradient: gradient)
    }

    /// Decorrelation of the bits: the mean square of the off-diagonal entries of `C = HᵀH / rows`
    /// (the bits' correlations when they are centred, as the code batch norm makes them), so that the
    /// bits carry different information. `dL/dH = 4 / (rows·K·(K − 1)) · H (C − diag C)`.
    public static func decorrelation(codes: [Float], rows: Int, bits: Int) -> LossAndGradient {
        guard rows > 0, bits > 1, codes.count == rows * bits else { return LossAndGradient(loss: 0, gradient: [Float](repeating: 0, count: codes.count)) }
        var correlation = [Double](repeating: 0, count: bits * bits)
        for row in 0..<rows {
            let base = row * bits
            for first in 0..<bits {
                let value = Double(codes[base + first])
                for second in first..<bits { correlation[first * bits + second] += value * Double(codes[base + second]) }
            }
        }
        let pairs = Double(bits * (bits - 1))
        var loss = 0.0
        for first in 0..<bits {
            correlation[first * bits + first] = 0
            for second in (first + 1)..<bits {
                let value = correlation[first * bits + second] / Double(rows)
                correlation[first * bits + second] = value
                correlation[second * bits + first] = value
                loss += 2 * value * value
            }
        }
        let scale = 4 / (Double(rows) * pairs)
        var gradient = [Float](repeating: 0, count: codes.count)
        for row in 0..<rows {
            let base = row * bits
            for column in 0..<bits {
                var total = 0.0
                for other in 0..<bits { total += Double(codes[base + other]) * correlation[other * bits + column] }
                gradient[base + column] = Float(scale * total)
            }
        }
        return LossAndGradient(loss: Float(loss / pairs), gradient: gradient)
    }

    /// Rows scaled to unit length (a zero row stays zero) and the original lengths.
    static func normalizedRows(_ matrix: [Float], rows: Int, columns: Int) -> (unit: [Double], norms: [Double]) {
        var unit = [Double](repeating: 0, count: rows * columns)
        var norms = [Double](repeating: 0, count: rows)
        for row in 0..<rows {
            var sum = 0.0
            for column in 0..<columns { let v = Double(matrix[row * columns + column]); sum += v * v }
            let norm = sum.squareRoot()
            norms[row] = norm
            if norm > 0 { for column in 0..<columns { unit[row * columns + column] = Double(matrix[row * columns + column]) / norm } }
        }
        return (unit, norms)
    }

    /// Back through `z = h/‖h‖`: `dL/dh = (g − (g·z) z) / ‖h‖`.
    static func throughNormalization(_ unitGradient: [Double], unit: [Double], norms: [Double], rows: Int, columns: Int) -> [Float] {
        var gradient = [Float](repeating: 0, count: rows * columns)
        for row in 0..<rows where norms[row] > 0 {
            var projection = 0.0
            for column in 0..<columns { projection += unitGradient[row * columns + column] * unit[row * columns + column] }
            for column in 0..<columns {
                let index = row * columns + column
                gradient[index] = Float((unitGradient[index] - projection * unit[index]) / norms[row])
            }
        }
        return gradient
    }

    @inline(__always)
    static func dot(_ a: [Double], _ rowA: Int, _ b: [Double], _ rowB: Int, _ columns: Int) -> Double {
        var sum = 0.0
        for column in 0..<columns { sum += a[rowA * columns + column] * b[rowB * columns + column] }
        return sum
    }
}
