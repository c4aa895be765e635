import XCTest
@testable import Imaging

final class ResamplingTests: XCTestCase {
    /// A one-channel test image replicated to RGB.
    static func gray(_ values: [UInt8], width: Int) -> RGBImage {
        RGBImage(gray: values, width: width, height: values.count / width)
    }

    /// The red channel of every pixel.
    static func red(_ image: RGBImage) -> [UInt8] {
        stride(from: 0, to: image.pixels.count, by: 3).map { image.pixels[$0] }
    }

    func testGrayInitReplicatesChannels() {
        let image = RGBImage(gray: [0, 128, 255], width: 3, height: 1)
        XCTAssertEqual(image.pixels, [0, 0, 0, 128, 128, 128, 255, 255, 255])
    }

    func testHalvingAveragesTwoByTwoBlocks() {
        let source = Self.gray([  0,  10, 100, 101,
                                 20,  30, 102, 102,
                                255, 255,   1,   2,
                                255, 254,   3,   4], width: 4)
        // Means 15, 101.25, 254.75 and 2.5 (halves round up).
        XCTAssertEqual(Self.red(source.resized(width: 2, height: 2)), [15, 101, 255, 3])
        let colour = RGBImage(width: 2, height: 2, pixels: [255, 0, 0,  0, 255, 0,  0, 0, 255,  1, 1, 1])
        XCTAssertEqual(colour.resized(width: 1, height: 1).pixels, [64, 64, 64])
    }

    func testFractionalCoverageWeights() {
        // 3 → 2: each output covers 1.5 source pixels: (2a + b)/3 and (b + 2c)/3.
        XCTAssertEqual(Self.red(Self.gray([0, 90, 180], width: 3).resized(width: 2, height: 1)), [30, 150])
        // 2 → 3 (enlarging): the middle output straddles both sources equally.
        XCTAssertEqual(Self.red(Self.gray([0, 100], width: 2).resized(width: 3, height: 1)), [0, 50, 100])
        // Vertical axis uses the same weights.
        XCTAssertEqual(Self.red(Self.gray([0, 90, 180], width: 1).resized(width: 1, height: 2)), [30, 150])
    }

    func testFashionMNISTEnlargement() {
        // 28 → 32: output 1 covers [0.875, 1.75): 1/8 of source 0 and 3/4 of source 1.
        var values = [UInt8](repeating: 0, count: 28 * 28)
        for y in 0..<28 { values[y * 28 + 1] = 70 }
        let enlarged = Self.gray(values, width: 28).resized(width: 32, height: 32)
        XCTAssertEqual(enlarged.width, 32)
        XCTAssertEqual(enlarged.height, 32)
        XCTAssertEqual(enlarged.pixel(0, 5), [0, 0, 0])
        XCTAssertEqual(enlarged.pixel(1, 5), [60, 60, 60])  // 70 · 0.75 / 0.875
        XCTAssertEqual(enlarged.pixel(2, 5), [20, 20, 20])  // output 2 covers [1.75, 2.625): 70 · 0.25 / 0.875
        let flat = Self.gray([UInt8](repeating: 77, count: 28 * 28), width: 28).resized(width: 32, height: 32)
        XCTAssertTrue(flat.pixels.allSatisfy { $0 == 77 })
    }

    func testSameSizeIsIdentityAndLargeDownscaleKeepsMean() {
        var generator = SeededGenerator(seed: 8)
        let pixels = (0..<(60 * 40 * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let image = RGBImage(width: 60, height: 40, pixels: pixels)
        XCTAssertEqual(image.resized(width: 60, height: 40), image)
        let single = image.resized(width: 1, height: 1)
        for channel in 0..<3 {
            let values = stride(from: channel, to: pixels.count, by: 3).map { Double(pixels[$0]) }
            let mean = values.reduce(0, +) / Double(values.count)
            XCTAssertEqual(Double(single.pixels[channel]), mean.rounded(), accuracy: 0.5)
        }
    }

    /// Area averaging is linear, so pixels may arrive in any order and in pieces: rows bottom
    /// to top, split into interleaved columns as Adam7 passes deliver them, give the same sums.
    func testAccumulatorIgnoresOrderAndSplitting() {
        var generator = SeededGenerator(seed: 12)
        let width = 23, height = 9
        let pixels = (0..<(width * height * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let image = RGBImage(width: width, height: height, pixels: pixels)
        for (outputWidth, outputHeight) in [(5, 4), (46, 2), (1, 20)] {
            let accumulator = AreaAverageAccumulator(sourceWidth: width, sourceHeight: height,
                                                     outputWidth: outputWidth, outputHeight: outputHeight)
            for y in (0..<height).reversed() {
                for (firstX, step) in [(1, 3), (0, 3), (2, 3)] {
                    let columns = Array(stride(from: firstX, to: width, by: step))
                    let row = columns.flatMap { pixels[(3 * (y * width + $0))..<(3 * (y * width + $0) + 3)] }
                    accumulator.add(row: row, y: y, firstX: firstX, xStep: step, count: columns.count)
                }
            }
            XCTAssertEqual(accumulator.image(), image.resized(width: outputWidth, height: outputHeight))
        }
    }

    /// The accumulator's memory is the output's sums and one output row, for any source size.
    func testAccumulatorSizeDependsOnTheOutputOnly() {
        let accumulator = AreaAverageAccumulator(sourceWidth: 1 << 20, sourceHeight: 1 << 20,
                                                 outputWidth: 7, outputHeight: 3)
        XCTAssertEqual(accumulator.sums.count, 7 * 3 * 3)
        XCTAssertEqual(accumulator.rowSums.count, 7 * 3)
        // At 2^40 pixels (the absolute pixel limit) a sum of 255s stays far inside Int.
        XCTAssertLessThan(255 * (1 << 40), Int.max >> 8)
    }
}
