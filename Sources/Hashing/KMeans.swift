import Foundation
import NeuralNet

/// Why a clustering could not be fitted.
public enum ClusteringError: Error, CustomStringConvertible, Equatable {
    case moreClustersThanPoints(clusters: Int, points: Int)
    case badShape(String)
    case noClusters

    public var description: String {
        switch self {
        case .moreClustersThanPoints(let clusters, let points):
            return "cannot fit \(clusters) clusters/components to \(points) points; use at most \(points) or add data"
        case .badShape(let why): return "clustering input has the wrong shape: \(why)"
        case .noClusters: return "the number of clusters must be at least 1"
        }
    }
}

/// k-means clustering: k-means++ seeding, Lloyd iterations until no assignment changes, an empty cluster
/// re-seeded with the point farthest from its centre. Deterministic for a given seed.
public struct KMeans: Sendable {
    /// `k×dimension` centres, row-major.
    public let centroids: [Float]
    /// The cluster of every point.
    public let assignments: [Int]
    public let k: Int
    public let dimension: Int
    /// Sum of squared distances of the points to their centres.
    public let inertia: Double
    /// Lloyd iterations run.
    public let iterations: Int

    /// Clusters `count` points of `dimension` floats (row-major in `data`) into `k` groups.
    public static func fit(
        data: [Float], count: Int, dimension: Int, k: Int, seed: UInt64 = 0x6b6d, maxIterations: Int = 300
    ) throws -> KMeans {
        guard k >= 1 else { throw ClusteringError.noClusters }
        guard data.count == count * dimension, dimension > 0 else {
            throw ClusteringError.badShape("\(data.count) floats for \(count) points of \(dimension) dimensions")
        }
        guard k <= count else { throw ClusteringError.moreClustersThanPoints(clusters: k, points: count) }
        let points = data.map(Double.init)
        var generator = SplitMix64(seed: seed)
        var centroids = plusPlusSeeds(points, count: count, dimension: dimension, k: k, generator: &generator)
        var assignments = [Int](repeating: -1, count: count)
        var distances = [Double](repeating: 0, count: count)
        var iterations = 0
        while iterations < maxIterations {
            iterations += 1
            let changed = assign(points, count: count, dimension: dimension, centroids: centroids, k: k,
                                 assignments: &assignments, distances: &distances)
            if !changed && iterations > 1 { break }
            centroids = updateCentroids(points, count: count, dimension: dimension, k: k,
                                        assignments: &assignments, distances: &distances, previous: centroids)
        }
        _ = assign(points, count: count, dimension: dimension, centroids: centroids, k: k,
                   assignments: &assignments, distances: &distances)
        return KMeans(
            centroids: centroids.map(Float.init), assignments: assignments, k: k, dimension: dimension,
            inertia: distances.reduce(0, +), iterations: iterations)
    }

    /// k-means++: each next seed drawn with probability proportional to its squared distance to the
    /// nearest seed so far.
    static func plusPlusSeeds(
        _ points: [Double], count: Int, dimension: Int, k: Int, generator: inout SplitMix64
    ) -> [Double] {
        var centroids = [Double](repeating: 0, count: k * dimension)
        var nearest = [Double](repeating: .infinity, count: count)
        var chosen = Int(generator.next() % UInt64(count))
        for cluster in 0..<k {
            for column in 0..<dimension { centroids[cluster * dimension + column] = points[chosen * dimension + column] }
            var total = 0.0
            for point in 0..<count {
                var distance = 0.0
                for column in 0..<dimension {
                    let difference = points[point * dimension + column] - centroids[cluster * dimension + column]
                    distance += difference * difference
                }
                nearest[point] = min(nearest[point], distance)
                total += nearest[point]
            }
            guard cluster + 1 < k else { break }
            if total <= 0 {
                // Every point coincides with a seed: any point will do.
                chosen = Int(generator.next() % UInt64(count))
                continue
            }
            var target = Double(generator.next() >> 11) / Double(1 << 53) * total
            chosen = count - 1
            for point in 0..<count {
                target -= nearest[point]
                if target < 0 { chosen = point; break }
            }
        }
        return centroids
    }

    /// Assigns each point to its nearest centre (squared distance via one matrix product); returns
    /// whether any assignment changed.
    static func assign(
        _ points: [Double], count: Int, dimension: Int, centroids: [Double], k: Int,
        assignments: inout [Int], distances: inout [Double]
    ) -> Bool {
        let products = matrixProduct(points, centroids, transposeB: true, m: count, n: k, k: dimension)
        let centroidNorms = (0..<k).map { cluster in
            (0..<dimension).reduce(0.0) { $0 + centroids[cluster * dimension + $1] * centroids[cluster * dimension + $1] }
        }
        var changed = false
        for point in 0..<count {
            var pointNorm = 0.0
            for column in 0..<dimension { pointNorm += points[point * dimension + column] * points[point * dimension + column] }
            var best = 0, bestDistance = Double.infinity
            for cluster in 0..<k {
                let distance = centroidNorms[cluster] - 2 * products[point * k + cluster]
                if distance < bestDistance { bestDistance = distance; best = cluster }
            }
            if assignments[point] != best { changed = true; assignments[point] = best }
            distances[point] = max(0, bestDistance + pointNorm)
        }
        return changed
    }

    /// Means of the assigned points; an empty cluster takes the point farthest from its own centre.
    static func updateCentroids(
        _ points: [Double], count: Int, dimension: Int, k: Int,
        assignments: inout [Int], distances: inout [Double], previous: [Double]
    ) -> [Double] {
        var sums = [Double](repeating: 0, count: k * dimension)
        var sizes = [Int](repeating: 0, count: k)
        for point in 0..<count {
            let cluster = assignments[point]
            sizes[cluster] += 1
            for column in 0..<dimension { sums[cluster * dimension + column] += points[point * dimension + column] }
        }
        for cluster in 0..<k where sizes[cluster] == 0 {
            var farthest = -1, farthestDistance = -1.0
            for point in 0..<count where sizes[assignments[point]] > 1 && distances[point] > farthestDistance {
                farthest = point; farthestDistance = distances[point]
            }
            guard farthest >= 0 else { continue }
            let donor = assignments[farthest]
            sizes[donor] -= 1
            for column in 0..<dimension {
                sums[donor * dimension + column] -= points[farthest * dimension + column]
                sums[cluster * dimension + column] = points[farthest * dimension + column]
            }
            sizes[cluster] = 1
            assignments[farthest] = cluster
            distances[farthest] = 0
        }
        var centroids = previous
        for cluster in 0..<k where sizes[cluster] > 0 {
            for column in 0..<dimension {
                centroids[cluster * dimension + column] = sums[cluster * dimension + column] / Double(sizes[cluster])
            }
        }
        return centroids
    }
}
