import CJPEG
import XCTest
@testable import Imaging

final class JPEGDecodingTests: XCTestCase {
    /// A smooth 64×48 colour gradient: JPEG keeps such content within a few levels.
    static func gradient() -> RGBImage {
        let width = 64, height = 48
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                pixels += [UInt8(x * 4), UInt8(y * 5), UInt8((x + y) * 2)]
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Mean and largest absolute difference over all samples.
    static func difference(_ a: [UInt8], _ b: [UInt8]) -> (mean: Double, max: Int) {
        precondition(a.count == b.count)
        let errors = zip(a, b).map { abs(Int($0) - Int($1)) }
        return (Double(errors.reduce(0, +)) / Double(errors.count), errors.max() ?? 0)
    }

    func testBaselineRoundTripWithinTolerance() throws {
        let image = Self.gradient()
        let file = try ImageEncoder.jpeg(image, quality: 95)
        XCTAssertEqual(ImageFormat.detect(file), .jpeg)
        XCTAssertEqual(try ImageDecoder.info(file), ImageInfo(format: .jpeg, width: 64, height: 48))
        let decoded = try ImageDecoder.decode(file)
        XCTAssertEqual(decoded.width, 64)
        XCTAssertEqual(decoded.height, 48)
        let error = Self.difference(decoded.pixels, image.pixels)
        XCTAssertLessThan(error.mean, 2.5)
        XCTAssertLessThan(error.max, 24)
    }

    func testProgressiveRoundTripWithinTolerance() throws {
        let image = Self.gradient()
        let file = try ImageEncoder.jpeg(image, quality: 95, progressive: true)
        let hasProgressiveFrame = zip(file, file.dropFirst()).contains { $0 == 0xFF && $1 == 0xC2 }
        XCTAssertTrue(hasProgressiveFrame, "the file has an SOF2 (progressive) frame header")
        let decoded = try ImageDecoder.decode(file)
        let error = Self.difference(decoded.pixels, image.pixels)
        XCTAssertLessThan(error.mean, 2.5)
        XCTAssertLessThan(error.max, 24)
        XCTAssertEqual(decoded, try ImageDecoder.decode(try ImageEncoder.jpeg(image, quality: 95, progressive: true)))
    }

    func testGrayscaleFileDecodesToEqualChannels() throws {
        let width = 40, height = 24
        let gray = (0..<(width * height)).map { UInt8(($0 % width) * 6) }
        let file = Fixture.jpeg(gray, width: width, height: height, components: 1,
                                input: JCS_GRAYSCALE, file: JCS_GRAYSCALE)
        let decoded = try ImageDecoder.decode(file)
        XCTAssertEqual(decoded.width, width)
        for index in 0..<(width * height) {
            XCTAssertEqual(decoded.pixels[3 * index], decoded.pixels[3 * index + 1])
            XCTAssertEqual(decoded.pixels[3 * index], decoded.pixels[3 * index + 2])
        }
        let error = Self.difference(decoded.pixels, RGBImage(gray: gray, width: width, height: height).pixels)
        XCTAssertLessThan(error.mean, 2)
    }

    /// Ink amounts (c, m, y, k) of four 16×16 flat blocks and the RGB each should show.
    static let inks: [[Int]] = [[0, 0, 0, 0], [255, 0, 0, 0], [0, 128, 255, 0], [0, 0, 0, 128]]
    static let inkColors: [[Int]] = [[255, 255, 255], [0, 255, 255], [255, 127, 0], [127, 127, 127]]

    /// CMYK samples for a 64×16 strip of the four ink blocks; `inverted` stores 255 − ink.
    static func cmykStrip(inverted: Bool) -> [UInt8] {
        var samples: [UInt8] = []
        for _ in 0..<16 {
            for x in 0..<64 {
                samples += inks[x / 16].map { UInt8(inverted ? 255 - $0 : $0) }
            }
        }
        return samples
    }

    func assertInkColors(_ file: [UInt8], file line: UInt = #line) throws {
        let decoded = try ImageDecoder.decode(file)
        XCTAssertEqual(decoded.width, 64, line: line)
        for (block, expected) in Self.inkColors.enumerated() {
            let actual = decoded.pixel(16 * block + 8, 8)
            for channel in 0..<3 {
                XCTAssertEqual(Double(actual[channel]), Double(expected[channel]), accuracy: 6,
                               "block \(block) channel \(channel): \(actual)", line: line)
            }
        }
    }

    func testPlainCMYKWithoutAdobeMarker() throws {
        let file = Fixture.jpeg(Self.cmykStrip(inverted: false), width: 64, height: 16, components: 4,
                                input: JCS_CMYK, file: JCS_CMYK, adobe: 0)
        try assertInkColors(file)
    }

    func testAdobeInvertedCMYK() throws {
        let file = Fixture.jpeg(Self.cmykStrip(inverted: true), width: 64, height: 16, components: 4,
                                input: JCS_CMYK, file: JCS_CMYK, adobe: 1)
        try assertInkColors(file)
    }

    func testAdobeYCCK() throws {
        let file = Fixture.jpeg(Self.cmykStrip(inverted: true), width: 64, height: 16, components: 4,
                                input: JCS_CMYK, file: JCS_YCCK, adobe: 1)
        try assertInkColors(file)
        let progressive = Fixture.jpeg(Self.cmykStrip(inverted: true), width: 64, height: 16, components: 4,
                                       input: JCS_CMYK, file: JCS_YCCK, progressive: true, adobe: 1)
        try assertInkColors(progressive)
    }

    func testQualityIsClampedAndChangesSize() throws {
        let image = Self.gradient()
        let low = try ImageEncoder.jpeg(image, quality: 10)
        let high = try ImageEncoder.jpeg(image, quality: 100)
        XCTAssertLessThan(low.count, high.count)
        XCTAssertEqual(try ImageEncoder.jpeg(image, quality: -5), try ImageEncoder.jpeg(image, quality: 1))
    }
}

final class JPEGHeaderTests: XCTestCase {
    func testStrayBytesBeforeAMarkerAreSkippedAsLibjpegDoes() throws {
        let file = try ImageEncoder.jpeg(JPEGDecodingTests.gradient(), quality: 90)
        // Three stray bytes after the first segment (JFIF APP0).
        let end = 4 + (try XCTUnwrap(file.bigEndian16(at: 4)))
        let padded = Array(file[0..<end]) + [0x00, 0x12, 0x34] + Array(file[end...])
        XCTAssertEqual(try ImageDecoder.info(padded), ImageInfo(format: .jpeg, width: 64, height: 48))
        XCTAssertEqual(try ImageDecoder.decode(padded), try ImageDecoder.decode(file))
    }

    func testNoFrameHeaderIsCorrupt() {
        XCTAssertThrowsError(try ImageDecoder.info([0xFF, 0xD8, 0xFF, 0xD9])) { error in
            guard case ImagingError.corrupt = error else { return XCTFail("unexpected \(error)") }
        }
    }
}
