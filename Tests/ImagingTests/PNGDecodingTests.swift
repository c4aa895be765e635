import CPNG
import XCTest
@testable import Imaging

final class PNGDecodingTests: XCTestCase {
    /// Every colour type with every bit depth the PNG specification allows for it.
    static let combinations: [(colorType: Int32, depths: [Int])] = [
        (PNG_COLOR_TYPE_GRAY, [1, 2, 4, 8, 16]),
        (PNG_COLOR_TYPE_RGB, [8, 16]),
        (PNG_COLOR_TYPE_PALETTE, [1, 2, 4, 8]),
        (PNG_COLOR_TYPE_GRAY_ALPHA, [8, 16]),
        (PNG_COLOR_TYPE_RGB_ALPHA, [8, 16]),
    ]

    /// A depth-bit sample scaled to 8 bits, rounded to nearest.
    static func to8(_ sample: Int, depth: Int) -> Int {
        Int((Double(sample) * 255 / Double((1 << depth) - 1)).rounded())
    }

    /// An 8-bit colour value over white with an 8-bit alpha, rounded to nearest.
    static func overWhite(_ value: Int, alpha: Int) -> Int {
        Int((Double(value) * Double(alpha) / 255 + 255 * (1 - Double(alpha) / 255)).rounded())
    }

    /// Random samples for a 13×11 image (big enough for all seven Adam7 passes) and the RGB
    /// we expect, computed directly from the samples.
    static func sample(colorType: Int32, depth: Int, generator: inout SeededGenerator)
        -> (samples: [Int], palette: [UInt8], paletteAlpha: [UInt8], expected: [UInt8]) {
        let width = 13, height = 11
        let channels = Fixture.channels(colorType: colorType)
        let limit = colorType == PNG_COLOR_TYPE_PALETTE ? min(1 << depth, 6) : 1 << depth
        let samples = (0..<(width * height * channels)).map { _ in Int.random(in: 0..<limit, using: &generator) }
        var palette: [UInt8] = []
        var paletteAlpha: [UInt8] = []
        if colorType == PNG_COLOR_TYPE_PALETTE {
            palette = (0..<(3 * limit)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            paletteAlpha = Array([255, 0, 128, 37].prefix(limit))  // tRNS may cover only the first entries
        }
        var expected: [UInt8] = []
        for pixel in 0..<(width * height) {
            let s = Array(samples[(pixel * channels)..<((pixel + 1) * channels)])
            let rgb: [Int], alpha: Int
            switch colorType {
            case PNG_COLOR_TYPE_GRAY:
                rgb = Array(repeating: to8(s[0], depth: depth), count: 3); alpha = 255
            case PNG_COLOR_TYPE_GRAY_ALPHA:
                rgb = Array(repeating: to8(s[0], depth: depth), count: 3); alpha = to8(s[1], depth: depth)
            case PNG_COLOR_TYPE_RGB:
                rgb = s.map { to8($0, depth: depth) }; alpha = 255
            case PNG_COLOR_TYPE_RGB_ALPHA:
                rgb = s[0..<3].map { to8($0, depth: depth) }; alpha = to8(s[3], depth: depth)
            default:
                rgb = (0..<3).map { Int(palette[3 * s[0] + $0]) }
                alpha = s[0] < paletteAlpha.count ? Int(paletteAlpha[s[0]]) : 255
            }
            expected += rgb.map { UInt8(overWhite($0, alpha: alpha)) }
        }
        return (samples, palette, paletteAlpha, expected)
    }

    func testEveryColorTypeAndBitDepthDecodesToExpectedRGB() throws {
        var generator = SeededGenerator(seed: 7)
        var checked = 0
        for (colorType, depths) in Self.combinations {
            for depth in depths {
                let fixture = Self.sample(colorType: colorType, depth: depth, generator: &generator)
                for interlaced in [false, true] {
                    let file = Fixture.png(width: 13, height: 11, depth: depth, colorType: colorType,
                                           samples: fixture.samples, interlaced: interlaced,
                                           palette: fixture.palette, paletteAlpha: fixture.paletteAlpha)
                    let image = try ImageDecoder.decode(file)
                    XCTAssertEqual(image.width, 13)
                    XCTAssertEqual(image.height, 11)
                    XCTAssertEqual(image.pixels, fixture.expected,
                                   "colour type \(colorType), depth \(depth), interlaced \(interlaced)")
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 30)
    }

    func testInterlacedAndPlainFilesDecodeToTheSamePixels() throws {
        var generator = SeededGenerator(seed: 11)
        let width = 37, height = 23
        let samples = (0..<(width * height * 3)).map { _ in Int.random(in: 0...255, using: &generator) }
        let plain = Fixture.png(width: width, height: height, depth: 8, colorType: PNG_COLOR_TYPE_RGB, samples: samples)
        let interlaced = Fixture.png(width: width, height: height, depth: 8, colorType: PNG_COLOR_TYPE_RGB,
                                     samples: samples, interlaced: true)
        XCTAssertNotEqual(plain, interlaced)
        XCTAssertEqual(interlaced[8 + 8 + 12], 1, "IHDR interlace method byte says Adam7")
        let first = try ImageDecoder.decode(plain)
        XCTAssertEqual(first, try ImageDecoder.decode(interlaced))
        XCTAssertEqual(first.pixels, samples.map(UInt8.init))
    }

    func testAlphaIsCompositedOnWhite() throws {
        // (r, g, b, a) → known RGB over white, worked out by hand.
        let samples = [255, 0, 0, 128,   0, 0, 255, 0,   10, 20, 30, 255,   0, 0, 0, 64]
        let file = Fixture.png(width: 4, height: 1, depth: 8, colorType: PNG_COLOR_TYPE_RGB_ALPHA, samples: samples)
        let image = try ImageDecoder.decode(file)
        XCTAssertEqual(image.pixels, [255, 127, 127,  255, 255, 255,  10, 20, 30,  191, 191, 191])
    }

    func testColorKeyTransparencyBecomesWhite() throws {
        let gray = Fixture.png(width: 3, height: 1, depth: 8, colorType: PNG_COLOR_TYPE_GRAY,
                               samples: [0, 50, 100], colorKey: (50, 0, 0))
        XCTAssertEqual(try ImageDecoder.decode(gray).pixels, [0, 0, 0, 255, 255, 255, 100, 100, 100])
        let rgb = Fixture.png(width: 2, height: 1, depth: 16, colorType: PNG_COLOR_TYPE_RGB,
                              samples: [0, 0, 0, 1000, 2000, 3000], colorKey: (1000, 2000, 3000))
        XCTAssertEqual(try ImageDecoder.decode(rgb).pixels, [0, 0, 0, 255, 255, 255])
    }

    func testPaletteWithTransparencyKnownAnswer() throws {
        let palette: [UInt8] = [200, 100, 0,  0, 0, 0,  40, 80, 120]
        let file = Fixture.png(width: 3, height: 1, depth: 2, colorType: PNG_COLOR_TYPE_PALETTE,
                               samples: [0, 1, 2], palette: palette, paletteAlpha: [0, 255])
        XCTAssertEqual(try ImageDecoder.decode(file).pixels, [255, 255, 255,  0, 0, 0,  40, 80, 120])
    }

    func testSixteenBitSamplesAreRoundedToEightBits() throws {
        // 0x8080 is exactly 128/255 of full scale; 0x0080 rounds down to 0 and 0xFF7F up to 255.
        let file = Fixture.png(width: 4, height: 1, depth: 16, colorType: PNG_COLOR_TYPE_GRAY,
                               samples: [0x8080, 0x0080, 0xFF7F, 0x1234])
        let image = try ImageDecoder.decode(file)
        XCTAssertEqual(image.pixels.enumerated().filter { $0.offset % 3 == 0 }.map { $0.element },
                       [128, 0, 255, UInt8(Self.to8(0x1234, depth: 16))])
    }

    func testWideStripBeyondLibpngDefaultWidthLimitDecodes() throws {
        // libpng's own default refuses rows over 1,000,000 pixels; our limits govern instead.
        let width = 1_200_000
        let file = Fixture.png(width: width, height: 1, depth: 1, colorType: PNG_COLOR_TYPE_GRAY,
                               samples: (0..<width).map { $0 % 2 })
        let limits = DecodeLimits(maxSide: width)
        let info = try ImageDecoder.info(file, limits: limits)
        XCTAssertEqual(info, ImageInfo(format: .png, width: width, height: 1))
        let image = try ImageDecoder.decode(file, limits: limits)
        XCTAssertEqual(image.pixel(0, 0), [0, 0, 0])
        XCTAssertEqual(image.pixel(width - 1, 0), [255, 255, 255])
    }

    func testEncoderRoundTripIsExact() throws {
        var generator = SeededGenerator(seed: 3)
        let pixels = (0..<(9 * 5 * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let image = RGBImage(width: 9, height: 5, pixels: pixels)
        let file = try ImageEncoder.png(image)
        XCTAssertEqual(ImageFormat.detect(file), .png)
        XCTAssertEqual(try ImageDecoder.info(file), ImageInfo(format: .png, width: 9, height: 5))
        XCTAssertEqual(try ImageDecoder.decode(file), image)
    }

    func testEncoderRefusesMismatchedBuffer() {
        XCTAssertThrowsError(try ImageEncoder.png(RGBImage(width: 2, height: 2, pixels: [1, 2, 3]))) { error in
            guard case ImagingError.corrupt = error else { return XCTFail("unexpected \(error)") }
        }
    }
}
