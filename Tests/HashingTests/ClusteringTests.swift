import NeuralNet
import XCTest
@testable import Hashing

final class ClusteringTests: XCTestCase {
    /// Points from well-separated Gaussians; returns the data and the true cluster of each point.
    private func blobs(centres: [[Float]], spread: [[Float]], counts: [Int], seed: UInt64) -> (data: [Float], labels: [Int]) {
        var generator = SplitMix64(seed: seed)
        var data: [Float] = [], labels: [Int] = []
        // Interleave the clusters so that the order of points carries no information.
        let total = counts.reduce(0, +)
        var remaining = counts
        var cluster = 0
        while labels.count < total {
            if remaining[cluster] > 0 {
                remaining[cluster] -= 1
                labels.append(cluster)
                for (column, centre) in centres[cluster].enumerated() { data.append(centre + spread[cluster][column] * generator.nextGaussian()) }
            }
            cluster = (cluster + 1) % counts.count
        }
        return (data, labels)
    }

    func testKMeansFindsSeparatedClusters() throws {
        let centres: [[Float]] = [[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]]
        let (data, labels) = blobs(centres: centres, spread: Array(repeating: [0.5, 0.5, 0.5], count: 4), counts: [50, 60, 70, 80], seed: 1)
        let model = try KMeans.fit(data: data, count: labels.count, dimension: 3, k: 4, seed: 9)
        // Same partition as the truth, up to relabelling.
        var mapping: [Int: Int] = [:]
        for (point, label) in labels.enumerated() {
            if let known = mapping[label] { XCTAssertEqual(model.assignments[point], known) } else { mapping[label] = model.assignments[point] }
        }
        XCTAssertEqual(Set(mapping.values).count, 4)
        for (label, cluster) in mapping {
            for column in 0..<3 { XCTAssertEqual(model.centroids[cluster * 3 + column], centres[label][column], accuracy: 0.2) }
        }
        let again = try KMeans.fit(data: data, count: labels.count, dimension: 3, k: 4, seed: 9)
        XCTAssertEqual(again.centroids, model.centroids)
    }

    /// Many identical points and k equal to the point count forces empty clusters, which must be re-seeded.
    func testKMeansReseedsEmptyClusters() throws {
        let data: [Float] = [0, 0, 0, 0, 0, 0, 5, 5, 9, 9]
        let model = try KMeans.fit(data: data, count: 5, dimension: 2, k: 3, seed: 2)
        XCTAssertEqual(Set(model.assignments).count, 3)
        XCTAssertEqual(model.inertia, 0, accuracy: 1e-9)
        XCTAssertThrowsError(try KMeans.fit(data: data, count: 5, dimension: 2, k: 6)) {
            XCTAssertEqual($0 as? ClusteringError, .moreClustersThanPoints(clusters: 6, points: 5))
        }
    }

    func testGaussianMixtureRecoversKnownParameters() throws {
        let centres: [[Float]] = [[-4, 0], [3, 3], [3, -3]]
        let spread: [[Float]] = [[0.5, 1.0], [1.0, 0.3], [0.7, 0.7]]
        let counts = [600, 300, 300]
        let (data, labels) = blobs(centres: centres, spread: spread, counts: counts, seed: 4)
        let model = try GaussianMixture.fit(data: data, count: labels.count, dimension: 2, components: 3, seed: 5)
        for (truth, centre) in centres.enumerated() {
            let match = try XCTUnwrap((0..<3).min { a, b in
                abs(model.means[a * 2] - centre[0]) + abs(model.means[a * 2 + 1] - centre[1])
                    < abs(model.means[b * 2] - centre[0]) + abs(model.means[b * 2 + 1] - centre[1])
            })
            XCTAssertEqual(model.weights[match], Float(counts[truth]) / 1_200, accuracy: 0.02)
            for column in 0..<2 {
                XCTAssertEqual(model.means[match * 2 + column], centre[column], accuracy: 0.15)
                XCTAssertEqual(model.variances[match * 2 + column], spread[truth][column] * spread[truth][column], accuracy: 0.15 * spread[truth][column] * spread[truth][column] + 0.02)
            }
        }
        for row in 0..<labels.count {
            XCTAssertEqual(model.responsibilities[(row * 3)..<(row * 3 + 3)].reduce(0, +), 1, accuracy: 1e-5)
        }
        XCTAssertEqual(model.weights.reduce(0, +), 1, accuracy: 1e-5)
        // New points get the same posteriors as the fitted ones.
        let first = model.posteriors(data: Array(data[0..<2]), count: 1)
        for component in 0..<3 { XCTAssertEqual(first[component], model.responsibilities[component], accuracy: 1e-5) }
    }

    /// Far-away points would underflow a naive exp; the log-sum-exp E-step must keep posteriors finite.
    func testGaussianMixtureStaysFiniteWithTinyVariances() throws {
        var data: [Float] = []
        for index in 0..<40 { data += [Float(index % 2) * 1_000, Float(index % 2) * 1_000] }
        let model = try GaussianMixture.fit(data: data, count: 40, dimension: 2, components: 2, varianceFloor: 1e-6)
        XCTAssertTrue(model.responsibilities.allSatisfy { $0.isFinite })
        XCTAssertTrue(model.meanLogLikelihood.isFinite)
        XCTAssertEqual(model.variances.min() ?? 0, 1e-6, accuracy: 1e-9)
    }

    func testTopPosteriorCutKeepsLargestAndRenormalises() {
        var posteriors: [Float] = [0.1, 0.5, 0.3, 0.1, 0.25, 0.25, 0.25, 0.25]
        GaussianMixture.keepTopPosteriors(&posteriors, rows: 2, columns: 4, keep: 2)
        XCTAssertEqual(posteriors[0], 0); XCTAssertEqual(posteriors[3], 0)
        XCTAssertEqual(posteriors[1], 0.625, accuracy: 1e-6); XCTAssertEqual(posteriors[2], 0.375, accuracy: 1e-6)
        XCTAssertEqual(Array(posteriors[4...]), [0.5, 0.5, 0, 0])
    }

    func testSemanticComponentsLevelsAreConsistent() throws {
        let centres: [[Float]] = [[0.9, 0.9, -0.9, -0.9], [0.8, 0.9, -0.7, 0.9], [-0.9, -0.9, 0.9, 0.9], [-0.9, -0.8, 0.9, -0.9]]
        let (codes, _) = blobs(centres: centres, spread: Array(repeating: [0.05, 0.05, 0.05, 0.05], count: 4), counts: [30, 30, 30, 30], seed: 8)
        let components = try SemanticComponents.find(codes: codes, images: 120, bits: 4, fineCount: 4, coarseCount: 2, seed: 1)
        XCTAssertEqual(components.finePosteriors.count, 120 * 4)
        XCTAssertTrue((components.fineCentres + components.coarseCentres).allSatisfy { $0 == 1 || $0 == -1 })
        XCTAssertEqual(components.coarseWeights, [0.5, 0.5])
        // Fine components 0,1 share the first two signs, as do 2,3: they must pair up at the coarse level.
        XCTAssertEqual(Set(components.coarseOfFine).count, 2)
        for image in 0..<120 {
            var expected = [Float](repeating: 0, count: 2)
            for fine in 0..<4 { expected[components.coarseOfFine[fine]] += components.finePosteriors[image * 4 + fine] }
            for coarse in 0..<2 { XCTAssertEqual(components.coarsePosteriors[image * 2 + coarse], expected[coarse], accuracy: 1e-6) }
        }
        let groupOf = { (centre: [Float]) -> Int in
            let fine = (0..<4).first { m in (0..<4).allSatisfy { components.fineCentres[m * 4 + $0] == (centre[$0] < 0 ? -1 : 1) } }!
            return components.coarseOfFine[fine]
        }
        XCTAssertEqual(groupOf(centres[0]), groupOf(centres[1]))
        XCTAssertEqual(groupOf(centres[2]), groupOf(centres[3]))
        XCTAssertNotEqual(groupOf(centres[0]), groupOf(centres[2]))
        XCTAssertEqual(components.finePosteriors(of: [3, 0]), Array(components.finePosteriors[12..<16] + components.finePosteriors[0..<4]))

        XCTAssertThrowsError(try SemanticComponents.find(codes: codes, images: 120, bits: 4, fineCount: 121, coarseCount: 2)) {
            XCTAssertEqual($0 as? SemanticComponentsError, .tooManyFineComponents(components: 121, images: 120))
            XCTAssertTrue("\($0)".contains("121 fine components"))
        }
        XCTAssertThrowsError(try SemanticComponents.find(codes: codes, images: 120, bits: 4, fineCount: 4, coarseCount: 5))
    }
}
