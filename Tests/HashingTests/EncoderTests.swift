import NeuralNet
import XCTest
@testable import Hashing

final class EncoderTests: XCTestCase {
    func testSymmetricEigenKnownMatrix() {
        // [[2, 1], [1, 2]] has eigenvalues 3 and 1 with eigenvectors (1, 1)/√2 and (1, −1)/√2.
        let (values, vectors) = symmetricEigen([2, 1, 1, 2], n: 2)
        XCTAssertEqual(values[0], 3, accuracy: 1e-12); XCTAssertEqual(values[1], 1, accuracy: 1e-12)
        XCTAssertEqual(abs(vectors[0]), 0.5.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(vectors[0] * vectors[2], 0.5, accuracy: 1e-12)
    }

    func testSquareSVDReconstructsAndIsOrthogonal() {
        var generator = SplitMix64(seed: 11)
        let n = 6
        var matrix = (0..<(n * n)).map { _ in Double(generator.nextGaussian()) }
        for column in 0..<n { matrix[column * n + 5] = matrix[column * n + 4] }  // rank deficient
        let (u, s, v) = squareSVD(matrix, n: n)
        for row in 0..<n {
            for column in 0..<n {
                var rebuilt = 0.0, uu = 0.0, vv = 0.0
                for k in 0..<n {
                    rebuilt += u[row * n + k] * s[k] * v[column * n + k]
                    uu += u[k * n + row] * u[k * n + column]
                    vv += v[k * n + row] * v[k * n + column]
                }
                XCTAssertEqual(rebuilt, matrix[row * n + column], accuracy: 1e-9)
                XCTAssertEqual(uu, row == column ? 1 : 0, accuracy: 1e-9)
                XCTAssertEqual(vv, row == column ? 1 : 0, accuracy: 1e-9)
            }
        }
    }

    /// Axis-aligned data with variances 16, 9, 4, 1, 0.25: the two leading directions are the first two axes.
    func testPrincipalDirectionsOfKnownCovariance() {
        var generator = SplitMix64(seed: 5)
        let scales: [Float] = [4, 3, 2, 1, 0.5]
        let data = (0..<2_000).flatMap { _ in scales.map { $0 * generator.nextGaussian() } }
        let basis = ITQProjection.principalDirections(data, count: 2_000, dimension: 5, directions: 2, powerIterations: 8, generator: &generator)
        XCTAssertEqual(abs(basis[0 * 2 + 0]), 1, accuracy: 0.02)
        XCTAssertEqual(abs(basis[1 * 2 + 1]), 1, accuracy: 0.02)
    }

    func testITQEncoderSerialisationRoundTrip() throws {
        var generator = SplitMix64(seed: 2)
        let thumbnails = (0..<40).map { _ in (0..<(4 * 4 * 3)).map { _ in UInt8(generator.next() % 256) } }
        let encoder = try ITQEncoder.train(thumbnails: thumbnails, bits: 8, inputSize: 4, iterations: 10)
        XCTAssertEqual(encoder.kind, .itq)
        let loaded = try ITQEncoder.load(encoder.serialized())
        XCTAssertEqual(loaded.bits, 8)
        XCTAssertEqual(loaded.inputSize, 4)
        XCTAssertEqual(loaded.encode(thumbnails: thumbnails), encoder.encode(thumbnails: thumbnails))
        var corrupt = try encoder.serialized()
        corrupt.removeLast()
        XCTAssertThrowsError(try ITQEncoder.load(corrupt))
        XCTAssertThrowsError(try ITQEncoder.load(Array("LSH1xxxxxxxxxxxx".utf8)))
    }
}

final class AugmentationTests: XCTestCase {
    private func thumbnail(size: Int, seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        return (0..<(size * size * 3)).map { _ in UInt8(generator.next() % 256) }
    }

    func testPlainTensorLayoutAndScaling() {
        let image: [UInt8] = [0, 255, 51, 255, 0, 102, 0, 0, 0, 255, 255, 255]  // 2×2 RGB
        let tensor = Augmentation.tensor(thumbnail: image, size: 2)
        XCTAssertEqual(tensor.count, 12)
        XCTAssertEqual(tensor[0], -0.5)             // R of pixel 0
        XCTAssertEqual(tensor[1], 0.5)              // R of pixel 1
        XCTAssertEqual(tensor[4], 0.5)              // G of pixel 0
        XCTAssertEqual(tensor[8], 0.2 - 0.5, accuracy: 1e-6)  // B of pixel 0
    }

    func testTwoViewsShapeAndDeterminism() {
        let batch = (0..<3).map { thumbnail(size: 8, seed: UInt64($0)) }
        let views = Augmentation.twoViews(batch: batch, size: 8, seed: 42)
        XCTAssertEqual(views.count, 2 * 3 * 3 * 8 * 8)
        XCTAssertEqual(views, Augmentation.twoViews(batch: batch, size: 8, seed: 42))
        XCTAssertNotEqual(views, Augmentation.twoViews(batch: batch, size: 8, seed: 43))
        XCTAssertTrue(views.allSatisfy { $0 >= -0.5 && $0 <= 0.5 })
        // The two views of one image differ.
        let stride = 3 * 8 * 8
        XCTAssertNotEqual(Array(views[0..<stride]), Array(views[(3 * stride)..<(4 * stride)]))
    }

    /// With every random part switched off a view is the plain tensor; with flipping forced it is its mirror.
    func testNeutralSettingsGiveThePlainTensor() {
        let image = thumbnail(size: 6, seed: 9)
        var settings = AugmentationSettings()
        settings.cropScale = 1...1; settings.aspectRatio = 1...1
        settings.flipProbability = 0; settings.brightness = 0; settings.contrast = 0; settings.grayscaleProbability = 0
        var generator = SplitMix64(seed: 1)
        let plain = Augmentation.tensor(thumbnail: image, size: 6)
        let view = Augmentation.view(thumbnail: image, size: 6, settings: settings, generator: &generator)
        for index in plain.indices { XCTAssertEqual(view[index], plain[index], accuracy: 1e-5) }
        settings.flipProbability = 1
        let mirrored = Augmentation.view(thumbnail: image, size: 6, settings: settings, generator: &generator)
        for channel in 0..<3 {
            for y in 0..<6 {
                for x in 0..<6 {
                    XCTAssertEqual(mirrored[channel * 36 + y * 6 + x], plain[channel * 36 + y * 6 + 5 - x], accuracy: 1e-5)
                }
            }
        }
        // The batch mirror used when encoding agrees with the augmentation's flip, and undoes itself.
        let batch = plain + Augmentation.tensor(thumbnail: thumbnail(size: 6, seed: 10), size: 6)
        let flippedBatch = Augmentation.horizontallyFlipped(batch, size: 6)
        for index in plain.indices { XCTAssertEqual(flippedBatch[index], mirrored[index], accuracy: 1e-5) }
        XCTAssertEqual(flippedBatch[108 + 5], batch[108])
        XCTAssertEqual(Augmentation.horizontallyFlipped(flippedBatch, size: 6), batch)
        settings.flipProbability = 0; settings.grayscaleProbability = 1
        let gray = Augmentation.view(thumbnail: image, size: 6, settings: settings, generator: &generator)
        for pixel in 0..<36 {
            XCTAssertEqual(gray[pixel], gray[36 + pixel]); XCTAssertEqual(gray[pixel], gray[72 + pixel])
        }
    }
}

final class LSHEncoderTests: XCTestCase {
    /// The batched encoder must agree with the definition: each output is a projection row · features.
    func testLSHMatchesDirectProjectionAndRoundTrips() throws {
        var generator = SplitMix64(seed: 4)
        let thumbnails = (0..<5).map { _ in (0..<(4 * 4 * 3)).map { _ in UInt8(generator.next() % 256) } }
        let encoder = LSHEncoder(bits: 7, inputSize: 4, seed: 99)
        var projectionGenerator = SplitMix64(seed: 99)
        let projection = (0..<(7 * 48)).map { _ in projectionGenerator.nextGaussian() }
        let outputs = encoder.encode(thumbnails: thumbnails)
        for (row, thumbnail) in thumbnails.enumerated() {
            let features = centredPixelFeatures(thumbnail)
            for bit in 0..<7 {
                let expected = (0..<48).reduce(Float(0)) { $0 + projection[bit * 48 + $1] * features[$1] }
                XCTAssertEqual(outputs[row][bit], expected, accuracy: 1e-4)
            }
        }
        XCTAssertEqual(try LSHEncoder.load(encoder.serialized()).encode(thumbnails: thumbnails), outputs)
    }
}
