import CJPEG
import CPNG
import Foundation
import XCTest
@testable import Imaging

/// The streaming thumbnail must equal decoding the whole image and resizing it, bit for bit.
final class ThumbnailTests: XCTestCase {
    /// Output sizes that shrink, keep, enlarge and change the aspect ratio of small fixtures.
    static let sizes: [(width: Int, height: Int)] = [(1, 1), (5, 4), (7, 17), (13, 11), (32, 9), (40, 50)]

    /// Asserts that `thumbnail` equals `decode` + `resized` for every size in `sizes`.
    func assertMatchesDecodeAndResize(_ file: [UInt8], sizes: [(width: Int, height: Int)] = sizes,
                                      limits: DecodeLimits = DecodeLimits(),
                                      _ context: @autoclosure () -> String = "", line: UInt = #line) throws {
        let decoded = try ImageDecoder.decode(file, limits: limits)
        for size in sizes {
            let expected = decoded.resized(width: size.width, height: size.height)
            let actual = try ImageDecoder.thumbnail(file, width: size.width, height: size.height, limits: limits)
            XCTAssertEqual(actual, expected, "\(size.width)x\(size.height) \(context())", line: line)
        }
    }

    func testEveryPNGColorTypeDepthAndInterlaceMatches() throws {
        var generator = SeededGenerator(seed: 17)
        var checked = 0
        for (colorType, depths) in PNGDecodingTests.combinations {
            for depth in depths {
                let fixture = PNGDecodingTests.sample(colorType: colorType, depth: depth, generator: &generator)
                for interlaced in [false, true] {
                    let file = Fixture.png(width: 13, height: 11, depth: depth, colorType: colorType,
                                           samples: fixture.samples, interlaced: interlaced,
                                           palette: fixture.palette, paletteAlpha: fixture.paletteAlpha)
                    try assertMatchesDecodeAndResize(file, "colour type \(colorType) depth \(depth) interlaced \(interlaced)")
                    // And the decode itself (now row-streamed too) still gives the known pixels.
                    XCTAssertEqual(try ImageDecoder.decode(file).pixels, fixture.expected)
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 30)
    }

    func testTransparencyFixturesMatch() throws {
        let files = [
            Fixture.png(width: 3, height: 1, depth: 8, colorType: PNG_COLOR_TYPE_GRAY,
                        samples: [0, 50, 100], colorKey: (50, 0, 0)),
            Fixture.png(width: 2, height: 1, depth: 16, colorType: PNG_COLOR_TYPE_RGB,
                        samples: [0, 0, 0, 1000, 2000, 3000], colorKey: (1000, 2000, 3000)),
            Fixture.png(width: 3, height: 1, depth: 2, colorType: PNG_COLOR_TYPE_PALETTE, samples: [0, 1, 2],
                        palette: [200, 100, 0, 0, 0, 0, 40, 80, 120], paletteAlpha: [0, 255]),
            Fixture.png(width: 4, height: 1, depth: 8, colorType: PNG_COLOR_TYPE_RGB_ALPHA,
                        samples: [255, 0, 0, 128, 0, 0, 255, 0, 10, 20, 30, 255, 0, 0, 0, 64]),
            Fixture.png(width: 4, height: 1, depth: 16, colorType: PNG_COLOR_TYPE_GRAY,
                        samples: [0x8080, 0x0080, 0xFF7F, 0x1234]),
        ]
        for (index, file) in files.enumerated() {
            try assertMatchesDecodeAndResize(file, "file \(index)")
        }
        // Alpha is composited before averaging, exactly as in a whole decode: the known answer.
        XCTAssertEqual(try ImageDecoder.thumbnail(files[3], width: 4, height: 1).pixels,
                       [255, 127, 127, 255, 255, 255, 10, 20, 30, 191, 191, 191])
    }

    /// Every size up to 11×11 interlaced: small images have empty Adam7 passes, which libpng
    /// skips; the shim must skip exactly the same ones or pixels land in the wrong place.
    func testSmallInterlacedImagesWithEmptyPassesMatch() throws {
        var generator = SeededGenerator(seed: 23)
        for width in 1...11 {
            for height in 1...11 {
                let samples = (0..<(width * height * 4)).map { _ in Int.random(in: 0...255, using: &generator) }
                let plain = Fixture.png(width: width, height: height, depth: 8, colorType: PNG_COLOR_TYPE_RGB_ALPHA,
                                        samples: samples)
                let interlaced = Fixture.png(width: width, height: height, depth: 8, colorType: PNG_COLOR_TYPE_RGB_ALPHA,
                                             samples: samples, interlaced: true)
                let image = try ImageDecoder.decode(plain)
                XCTAssertEqual(try ImageDecoder.decode(interlaced), image, "\(width)x\(height)")
                for size in [(1, 1), (3, 2), (width, height), (2 * width + 1, height + 3)] {
                    XCTAssertEqual(try ImageDecoder.thumbnail(interlaced, width: size.0, height: size.1),
                                   image.resized(width: size.0, height: size.1), "\(width)x\(height) to \(size)")
                }
            }
        }
    }

    func testJPEGFixturesMatch() throws {
        let gray = (0..<(40 * 24)).map { UInt8(($0 % 40) * 6) }
        let files: [(String, [UInt8])] = [
            ("baseline", try ImageEncoder.jpeg(JPEGDecodingTests.gradient(), quality: 90)),
            ("progressive", try ImageEncoder.jpeg(JPEGDecodingTests.gradient(), quality: 90, progressive: true)),
            ("gray", Fixture.jpeg(gray, width: 40, height: 24, components: 1, input: JCS_GRAYSCALE, file: JCS_GRAYSCALE)),
            ("cmyk", Fixture.jpeg(JPEGDecodingTests.cmykStrip(inverted: false), width: 64, height: 16, components: 4,
                                  input: JCS_CMYK, file: JCS_CMYK, adobe: 0)),
            ("adobe cmyk", Fixture.jpeg(JPEGDecodingTests.cmykStrip(inverted: true), width: 64, height: 16,
                                        components: 4, input: JCS_CMYK, file: JCS_CMYK, adobe: 1)),
            ("progressive ycck", Fixture.jpeg(JPEGDecodingTests.cmykStrip(inverted: true), width: 64, height: 16,
                                              components: 4, input: JCS_CMYK, file: JCS_YCCK, progressive: true,
                                              adobe: 1)),
        ]
        for (name, file) in files {
            try assertMatchesDecodeAndResize(file, name)
        }
    }

    func testEveryExifOrientationMatches() throws {
        let plain = try ImageEncoder.jpeg(OrientationTests.stored(), quality: 95)
        for littleEndian in [true, false] {
            for orientation in 1...8 {
                let file = Fixture.insertingAPP1(plain, payload: Fixture.exif(orientation: orientation,
                                                                              littleEndian: littleEndian))
                try assertMatchesDecodeAndResize(file, sizes: Self.sizes + [(32, 48), (48, 32), (100, 3)],
                                                 "orientation \(orientation)")
                // The upright layout survives shrinking to one pixel per cell.
                let info = try ImageDecoder.info(file)
                let cells = try ImageDecoder.thumbnail(file, width: info.width / 16, height: info.height / 16)
                XCTAssertEqual(cells.width, info.width / 16)
                XCTAssertEqual((0..<cells.height).map { row in
                    String((0..<cells.width).map { OrientationTests.letter(cells.pixel($0, row)) })
                }, OrientationTests.upright[orientation]!)
            }
        }
    }

    func testRandomImagesAtManySizesAndAspectRatios() throws {
        var generator = SeededGenerator(seed: 31)
        let sources = [(1, 1), (2, 3), (64, 48), (200, 3), (3, 200), (31, 17), (97, 101)]
        for (width, height) in sources {
            let pixels = (0..<(width * height * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let image = RGBImage(width: width, height: height, pixels: pixels)
            let file = try ImageEncoder.png(image)
            let sizes = [(1, 1), (width, height), (2 * width, 2 * height), (width + 1, max(1, height - 1)),
                         (3 * width + 2, 1), (1, 3 * height + 2), (7, 5), (224, 224)]
            for (outputWidth, outputHeight) in sizes {
                XCTAssertEqual(try ImageDecoder.thumbnail(file, width: outputWidth, height: outputHeight),
                               image.resized(width: outputWidth, height: outputHeight),
                               "\(width)x\(height) to \(outputWidth)x\(outputHeight)")
            }
        }
    }

    func testLongStripsMatch() throws {
        var generator = SeededGenerator(seed: 37)
        let length = 30_000
        let samples = (0..<length).map { _ in Int.random(in: 0...255, using: &generator) }
        for (width, height) in [(1, length), (length, 1)] {
            let file = Fixture.png(width: width, height: height, depth: 8, colorType: PNG_COLOR_TYPE_GRAY, samples: samples)
            try assertMatchesDecodeAndResize(file, sizes: [(1, 1), (32, 32), (3, 100), (100, 3), (2, 7)],
                                             "\(width)x\(height)")
        }
    }

    /// A 1×40,000,000 strip passes the pixel limit; resizing it the old way needed
    /// height × outputWidth × 3 Ints (about 30 GB for a 32-wide thumbnail). The side limit
    /// refuses it, and its 40,000,000×1 twin, from the header.
    func testHugeSidesAreRefusedFromTheHeader() throws {
        let length = 40_000_000
        let tall = PeriodicPNG.gray(width: 1, height: length, rows: [[10], [200], [77], [3]])
        let wide = PeriodicPNG.gray(width: length, value: 9)
        XCTAssertLessThan(tall.count, 1 << 20, "the file is small")
        XCTAssertLessThan(wide.count, 1 << 20, "the file is small")
        XCTAssertGreaterThan(length * 32 * 3 * MemoryLayout<Int>.size, 30_000_000_000)
        XCTAssertNoThrow(try ImageHeader.read(tall, limits: DecodeLimits(maxSide: length)),
                         "only the side limit refuses it")
        for (file, width, height) in [(tall, 1, length), (wide, length, 1)] {
            let refusal = ImagingError.sideTooLong(width: width, height: height, limit: 32_768)
            for attempt in [{ _ = try ImageDecoder.info(file) }, { _ = try ImageDecoder.decode(file) },
                            { _ = try ImageDecoder.thumbnail(file, width: 32, height: 32) }] {
                XCTAssertThrowsError(try attempt()) { error in XCTAssertEqual(error as? ImagingError, refusal) }
            }
        }
    }

    func testSideLimitIsInclusiveAndReportsUprightSides() throws {
        let file = try ImageEncoder.jpeg(JPEGDecodingTests.gradient())  // 64×48
        XCTAssertNoThrow(try ImageDecoder.thumbnail(file, width: 8, height: 6, limits: DecodeLimits(maxSide: 64)))
        XCTAssertThrowsError(try ImageDecoder.decode(file, limits: DecodeLimits(maxSide: 63))) { error in
            XCTAssertEqual(error as? ImagingError, .sideTooLong(width: 64, height: 48, limit: 63))
        }
        let turned = Fixture.insertingAPP1(file, payload: Fixture.exif(orientation: 6, littleEndian: true))
        XCTAssertThrowsError(try ImageDecoder.info(turned, limits: DecodeLimits(maxSide: 50))) { error in
            XCTAssertEqual(error as? ImagingError, .sideTooLong(width: 48, height: 64, limit: 50))
        }
        // An image over both limits reports its pixel count, as before.
        XCTAssertThrowsError(try ImageDecoder.info(file, limits: DecodeLimits(maxPixels: 100, maxSide: 10))) { error in
            XCTAssertEqual(error as? ImagingError, .tooManyPixels(width: 64, height: 48, limit: 100))
        }
    }

    /// Damage found mid-stream, after rows were already accumulated, must still be `.corrupt`:
    /// never a thumbnail with the missing part averaged in as grey or black.
    func testDamageDuringStreamingIsCorrupt() throws {
        func assertCorrupt(_ file: [UInt8], _ context: String, line: UInt = #line) {
            XCTAssertThrowsError(try ImageDecoder.thumbnail(file, width: 8, height: 8), context, line: line) { error in
                guard case ImagingError.corrupt? = error as? ImagingError else {
                    return XCTFail("expected .corrupt, got \(error) (\(context))", line: line)
                }
            }
        }
        var generator = SeededGenerator(seed: 41)
        let samples = (0..<(64 * 64 * 3)).map { _ in Int.random(in: 0...255, using: &generator) }
        for interlaced in [false, true] {
            let file = Fixture.png(width: 64, height: 64, depth: 8, colorType: PNG_COLOR_TYPE_RGB,
                                   samples: samples, interlaced: interlaced)
            for fraction in [0.3, 0.6, 0.9, 0.99] {
                assertCorrupt(Array(file.prefix(Int(Double(file.count) * fraction))), "PNG interlaced \(interlaced) \(fraction)")
            }
            assertCorrupt(Array(file.dropLast(13)), "PNG without IEND")
            let idat = try XCTUnwrap(RobustnessTests.chunkOffset("IDAT", in: file))
            let length = try XCTUnwrap(file.bigEndian32(at: idat))
            var badData = file
            badData[idat + 8 + length - 8] ^= 0x40
            assertCorrupt(badData, "PNG with damaged data near the end of IDAT")
        }
        for progressive in [false, true] {
            let file = try RobustnessTests.sampleJPEG(progressive: progressive)
            for fraction in [0.3, 0.6, 0.9] {
                assertCorrupt(Array(file.prefix(Int(Double(file.count) * fraction))), "JPEG progressive \(progressive) \(fraction)")
            }
            assertCorrupt(Array(file.dropLast(2)), "JPEG without EOI")
        }
    }

    /// A progressive JPEG holds every coefficient in libjpeg until the last scan. Over the
    /// decoder memory limit it is refused as `.tooMuchMemory`, not `.corrupt`; a baseline file of
    /// the same size decodes a few rows at a time within the same limit.
    func testProgressiveJPEGOverTheDecoderMemoryLimitIsRefused() throws {
        let width = 1024, height = 1024
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for index in 0..<(width * height) {
            let x = index % width, y = index / width
            pixels[3 * index] = UInt8(x & 0xFF)
            pixels[3 * index + 1] = UInt8(y & 0xFF)
            pixels[3 * index + 2] = UInt8((x ^ y) & 0xFF)
        }
        let image = RGBImage(width: width, height: height, pixels: pixels)
        let progressive = try ImageEncoder.jpeg(image, quality: 80, progressive: true)
        let baseline = try ImageEncoder.jpeg(image, quality: 80)
        // 4:2:0 keeps 1.5 × 64 coefficients of 2 bytes for each 8×8 block: about 3 MB here.
        let limits = DecodeLimits(maxDecoderMemoryBytes: 1 << 20)
        for attempt in [{ _ = try ImageDecoder.decode(progressive, limits: limits) },
                        { _ = try ImageDecoder.thumbnail(progressive, width: 16, height: 16, limits: limits) }] {
            XCTAssertThrowsError(try attempt()) { error in
                XCTAssertEqual(error as? ImagingError, .tooMuchMemory(width: width, height: height, limit: 1 << 20))
            }
        }
        XCTAssertEqual(try ImageDecoder.thumbnail(baseline, width: 16, height: 16, limits: limits),
                       try ImageDecoder.decode(baseline).resized(width: 16, height: 16))
        XCTAssertEqual(try ImageDecoder.thumbnail(progressive, width: 16, height: 16),
                       try ImageDecoder.decode(progressive).resized(width: 16, height: 16))
        let message = ImagingError.tooMuchMemory(width: width, height: height, limit: 1 << 20).description
        XCTAssertTrue(message.contains("1024×1024") && message.contains("baseline") && message.contains("raise"), message)
    }

    /// Peak resident memory, from /proc/self/status, after resetting the peak; nil where Linux's
    /// clear_refs interface is unavailable.
    static func peakResidentGrowth(during body: () throws -> Void) rethrows -> Int? {
        func kilobytes(_ field: String) -> Int? {
            guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
            return Int(line.split(separator: " ").dropFirst().first ?? "")
        }
        // Writing 5 to clear_refs resets VmHWM (the peak) to the current resident size.
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return nil }
        defer { try? handle.close() }
        guard (try? handle.write(contentsOf: Array("5".utf8))) != nil, let before = kilobytes("VmRSS") else { return nil }
        try body()
        guard let peak = kilobytes("VmHWM") else { return nil }
        return (peak - before) * 1024
    }

    /// A 4 × 2,000,000 image: decoding it whole and resizing it needs over 100 MB, streaming it
    /// needs the 2×100 thumbnail's sums and one row.
    func testTallImageThumbnailUsesMemoryForTheThumbnailOnly() throws {
        let period: [[UInt8]] = [[0, 10, 20, 30], [255, 254, 1, 2], [7, 8, 9, 10], [100, 101, 102, 103], [40, 0, 0, 40]]
        let height = 2_000_000
        let file = PeriodicPNG.gray(width: 4, height: height, rows: period)
        let limits = DecodeLimits(maxSide: height)
        // What the whole-image path would allocate: the RGB image, then a horizontal pass of
        // height × outputWidth × 3 Ints.
        let wholeImageBytes = 4 * height * 3 + height * 2 * 3 * MemoryLayout<Int>.size
        XCTAssertGreaterThan(wholeImageBytes, 100_000_000)
        // The accumulator holds the thumbnail's sums and one output row, nothing per source row.
        let accumulator = AreaAverageAccumulator(sourceWidth: 4, sourceHeight: height, outputWidth: 2, outputHeight: 100)
        XCTAssertEqual(accumulator.sums.count, 2 * 100 * 3)
        XCTAssertEqual(accumulator.rowSums.count, 2 * 3)

        var thumbnail: RGBImage?
        let growth = try Self.peakResidentGrowth {
            thumbnail = try ImageDecoder.thumbnail(file, width: 2, height: 100, limits: limits)
        }
        // Each output pixel covers 20,000 rows (4,000 whole periods) and two columns: the mean
        // of those 10 samples of the period, rounded half up.
        let expected: [Int] = (0..<2).map { column in
            var sum = 0
            for row in period { sum += Int(row[2 * column]) + Int(row[2 * column + 1]) }
            return (sum + 5) / 10
        }
        let result = try XCTUnwrap(thumbnail)
        XCTAssertEqual(result.width, 2)
        XCTAssertEqual(result.height, 100)
        for y in 0..<100 {
            XCTAssertEqual(result.pixel(0, y), Array(repeating: expected[0], count: 3))
            XCTAssertEqual(result.pixel(1, y), Array(repeating: expected[1], count: 3))
        }
        if let growth {
            // About 0.1 MB in practice; decoding the whole image first adds at least its 24 MB.
            XCTAssertLessThan(growth, 4 << 20, "peak memory grew by \(growth) bytes")
        } else {
            print("peak resident memory cannot be reset here; only the structural checks ran")
        }
    }
}
