import Foundation

/// A Gaussian mixture with diagonal covariances fitted by EM: k-means start, log-sum-exp in every
/// E-step, a variance floor, empty components re-seeded at the worst-explained point, stopped when the
/// mean log-likelihood per point improves by less than `tolerance`. Computation is in Double.
public struct GaussianMixture: Sendable {
    public let components: Int
    public let dimension: Int
    /// Mixture weights π (sum to 1).
    public let weights: [Float]
    /// `components×dimension` means, row-major.
    public let means: [Float]
    /// `components×dimension` diagonal variances, row-major, each at least the variance floor.
    public let variances: [Float]
    /// `count×components` posteriors of the fitted points, each row summing to 1 (after the optional
    /// top-r cut, renormalised over the kept entries).
    public let responsibilities: [Float]
    /// Mean log-likelihood per point at the end of fitting.
    public let meanLogLikelihood: Double
    /// EM iterations run.
    public let iterations: Int

    /// Fits `components` Gaussians to `count` points of `dimension` floats (row-major in `data`).
    /// `topPosteriors`, when given, keeps only the r largest posteriors of each point.
    public static func fit(
        data: [Float], count: Int, dimension: Int, components: Int, seed: UInt64 = 0x676d6d,
        maxIterations: Int = 100, tolerance: Double = 1e-5, varianceFloor: Double = 1e-4,
        topPosteriors: Int? = nil
    ) throws -> GaussianMixture {
        // Start from k-means (which also checks the shape and the component count): weights by cluster
        // size, per-cluster variances.
        let start = try KMeans.fit(data: data, count: count, dimension: dimension, k: components, seed: seed, maxIterations: 50)
        let points = data.map(Double.init)
        let squares = points.map { $0 * $0 }
        var means = start.centroids.map(Double.init)
        var weights = [Double](repeating: 0, count: components)
        var variances = [Double](repeating: 0, count: components * dimension)
        let globalVariance = columnVariances(points, count: count, dimension: dimension).map { max($0, varianceFloor) }
        for point in 0..<count {
            let cluster = start.assignments[point]
            weights[cluster] += 1
            for column in 0..<dimension {
                let difference = points[point * dimension + column] - means[cluster * dimension + column]
                variances[cluster * dimension + column] += difference * difference
            }
        }
        for cluster in 0..<components {
            for column in 0..<dimension {
                let index = cluster * dimension + column
                variances[index] = weights[cluster] > 1
                    ? max(variances[index] / weights[cluster], varianceFloor) : globalVariance[column]
            }
            weights[cluster] /= Double(count)
        }

        var responsibilities = [Double](repeating: 0, count: count * components)
        var pointLogLikelihood = [Double](repeating: 0, count: count)
        var previous = -Double.infinity
        var current = -Double.infinity
        var iterations = 0
        while true {
            current = expectation(
                points: points, squares: squares, count: count, dimension: dimension, components: components,
                weights: weights, means: means, variances: variances,
                responsibilities: &responsibilities, pointLogLikelihood: &pointLogLikelihood)
            if iterations >= maxIterations || abs(current - previous) < tolerance { break }
            previous = current
            iterations += 1
            maximization(
                points: points, squares: squares, count: count, dimension: dimension, components: components,
                responsibilities: responsibilities, pointLogLikelihood: pointLogLikelihood,
                globalVariance: globalVariance, varianceFloor: varianceFloor,
                weights: &weights, means: &means, variances: &variances)
        }
        var posteriors = responsibilities.map(Float.init)
        if let top = topPosteriors { keepTopPosteriors(&posteriors, rows: count, columns: components, keep: top) }
        return GaussianMixture(
            components: components, dimension: dimension, weights: weights.map(Float.init),
            means: means.map(Float.init), variances: variances.map(Float.init), responsibilities: posteriors,
            meanLogLikelihood: current, iterations: iterations)
    }

    /// Posteriors of new points (`count×components`, rows summing to 1).
    public func posteriors(data: [Float], count: Int) -> [Float] {
        let points = data.map(Double.init)
        var responsibilities = [Double](repeating: 0, count: count * components)
        var pointLogLikelihood = [Double](repeating: 0, count: count)
        _ = GaussianMixture.expectation(
            points: points, squares: points.map { $0 * $0 }, count: count, dimension: dimension,
            components: components, weights: weights.map(Double.init), means: means.map(Double.init),
            variances: variances.map(Double.init), responsibilities: &responsibilities,
            pointLogLikelihood: &pointLogLikelihood)
        return responsibilities.map(Float.init)
    }

    /// Keeps the `keep` largest entries of each row and renormalises the row over them.
    public static func keepTopPosteriors(_ posteriors: inout [Float], rows: Int, columns: Int, keep: Int) {
        guard keep < columns else { return }
        for row in 0..<rows {
            let base = row * columns
            let order = (0..<columns).sorted { posteriors[base + $0] > posteriors[base + $1] || (posteriors[base + $0] == posteriors[base + $1] && $0 < $1) }
            var total: Float = 0
            for (rank, column) in order.enumerated() {
                if rank < keep { total += posteriors[base + column] } else { posteriors[base + column] = 0 }
            }
            if total > 0 { for column in 0..<columns { posteriors[base + column] /= total } }
        }
    }

    static func columnVariances(_ points: [Double], count: Int, dimension: Int) -> [Double] {
        var mean = [Double](repeating: 0, count: dimension), second = [Double](repeating: 0, count: dimension)
        for point in 0..<count {
            for column in 0..<dimension {
                let value = points[point * dimension + column]
                mean[column] += value; second[column] += value * value
            }
        }
        return (0..<dimension).map { second[$0] / Double(count) - (mean[$0] / Double(count)) * (mean[$0] / Double(count)) }
    }

    /// E-step: log πₘ + log N(x | μₘ, diag σ²ₘ) for all pairs through two matrix products, then
    /// row-wise log-sum-exp. Returns the mean log-likelihood per point.
    static func expectation(
        points: [Double], squares: [Double], count: Int, dimension: Int, components: Int,
        weights: [Double], means: [Double], variances: [Double],
        responsibilities: inout [Double], pointLogLikelihood: inout [Double]
    ) -> Double {
        let precisions = variances.map { 1 / $0 }
        let weightedMeans = (0..<(components * dimension)).map { means[$0] * precisions[$0] }
        var constants = [Double](repeating: 0, count: components)
        for component in 0..<components {
            var sum = Double(dimension) * log(2 * Double.pi)
            for column in 0..<dimension {
                let index = component * dimension + column
                sum += log(variances[index]) + means[index] * weightedMeans[index]
            }
            constants[component] = log(max(weights[component], 1e-300)) - 0.5 * sum
        }
        // Σ_d (x−μ)²/σ² = Σ x²/σ² − 2 Σ x μ/σ² + Σ μ²/σ²; the last term is in `constants`.
        let quadratic = matrixProduct(squares, precisions, transposeB: true, m: count, n: components, k: dimension)
        let cross = matrixProduct(points, weightedMeans, transposeB: true, m: count, n: components, k: dimension)
        var total = 0.0
        responsibilities.withUnsafeMutableBufferPointer { output in
            for point in 0..<count {
                let base = point * components
                for component in 0..<components {
                    output[base + component] = constants[component]
                        - 0.5 * quadratic[base + component] + cross[base + component]
                }
                let row = UnsafeMutableBufferPointer(rebasing: output[base..<(base + components)])
                let normaliser = logSumExp(UnsafeBufferPointer(row))
                for component in 0..<components { row[component] = exp(row[component] - normaliser) }
                pointLogLikelihood[point] = normaliser
                total += normaliser
            }
        }
        return total / Double(count)
    }

    /// M-step: weights, means and variances from the responsibilities. A component with (almost) no
    /// responsibility is re-seeded at the point the mixture explains worst.
    static func maximization(
        points: [Double], squares: [Double], count: Int, dimension: Int, components: Int,
        responsibilities: [Double], pointLogLikelihood: [Double], globalVariance: [Double], varianceFloor: Double,
        weights: inout [Double], means: inout [Double], variances: inout [Double]
    ) {
        let firstMoments = matrixProduct(responsibilities, transposeA: true, points, m: components, n: dimension, k: count)
        let secondMoments = matrixProduct(responsibilities, transposeA: true, squares, m: components, n: dimension, k: count)
        var mass = [Double](repeating: 0, count: components)
        for point in 0..<count {
            for component in 0..<components { mass[component] += responsibilities[point * components + component] }
        }
        var worstFirst = (0..<count).sorted { pointLogLikelihood[$0] < pointLogLikelihood[$1] }.makeIterator()
        for component in 0..<components {
            if mass[component] < 1e-8 {
                let seedPoint = worstFirst.next() ?? 0
                for column in 0..<dimension {
                    means[component * dimension + column] = points[seedPoint * dimension + column]
                    variances[component * dimension + column] = globalVariance[column]
                }
                weights[component] = 1 / Double(count)
                continue
            }
            weights[component] = mass[component] / Double(count)
            for column in 0..<dimension {
                let index = component * dimension + column
                let mean = firstMoments[index] / mass[component]
                means[index] = mean
                variances[index] = max(secondMoments[index] / mass[component] - mean * mean, varianceFloor)
            }
        }
        let weightTotal = weights.reduce(0, +)
        for component in 0..<components { weights[component] /= weightTotal }
    }
}
