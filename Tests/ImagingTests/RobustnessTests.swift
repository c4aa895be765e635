import CJPEG
import CPNG
import XCTest
@testable import Imaging

final class RobustnessTests: XCTestCase {
    /// Asserts that `body` throws exactly `expected`.
    func assertThrows<T>(_ expected: ImagingError, _ body: @autoclosure () throws -> T, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            XCTAssertEqual(error as? ImagingError, expected, line: line)
        }
    }

    /// Asserts that `body` throws `.corrupt` with a non-empty message.
    func assertCorrupt<T>(_ body: @autoclosure () throws -> T, _ context: String = "", line: UInt = #line) {
        XCTAssertThrowsError(try body(), context, line: line) { error in
            guard case let ImagingError.corrupt(message)? = error as? ImagingError else {
                return XCTFail("expected .corrupt, got \(error) \(context)", line: line)
            }
            XCTAssertFalse(message.isEmpty, line: line)
        }
    }

    static func samplePNG() throws -> [UInt8] {
        try ImageEncoder.png(JPEGDecodingTests.gradient())
    }

    static func sampleJPEG(progressive: Bool = false) throws -> [UInt8] {
        try ImageEncoder.jpeg(JPEGDecodingTests.gradient(), quality: 80, progressive: progressive)
    }

    func testEmptyAndRandomBytesAreUnsupported() {
        assertThrows(.unsupportedFormat, try ImageDecoder.decode([]))
        assertThrows(.unsupportedFormat, try ImageDecoder.info([]))
        var generator = SeededGenerator(seed: 5)
        for _ in 0..<50 {
            var bytes = (0..<Int.random(in: 1...2000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if bytes.first == 0xFF || bytes.first == 0x89 { bytes[0] = 0 }
            assertThrows(.unsupportedFormat, try ImageDecoder.decode(bytes))
        }
        XCTAssertNil(ImageFormat.detect([0xFF, 0xD8]))
    }

    func testRandomBytesAfterMagicAreCorrupt() {
        var generator = SeededGenerator(seed: 6)
        for magic in [[0xFF, 0xD8, 0xFF] as [UInt8], PNGHeader.signature] {
            for _ in 0..<50 {
                let bytes = magic + (0..<Int.random(in: 0...2000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                assertCorrupt(try ImageDecoder.decode(bytes))
            }
        }
    }

    func testTruncatedJPEGIsCorrupt() throws {
        for progressive in [false, true] {
            let file = try Self.sampleJPEG(progressive: progressive)
            for fraction in [0.1, 0.3, 0.5, 0.8, 0.95] {
                let truncated = Array(file.prefix(Int(Double(file.count) * fraction)))
                assertCorrupt(try ImageDecoder.decode(truncated), "\(fraction) of progressive \(progressive)")
            }
            // Only the final EOI marker missing: still refused, the file must be complete.
            assertCorrupt(try ImageDecoder.decode(Array(file.dropLast(2))))
        }
    }

    func testTruncatedPNGIsCorrupt() throws {
        let file = try Self.samplePNG()
        for length in [10, 30, 40, file.count / 2, file.count - 13, file.count - 1] {
            assertCorrupt(try ImageDecoder.decode(Array(file.prefix(length))), "\(length) bytes")
        }
    }

    /// Offset of the first chunk of `type` in a PNG.
    static func chunkOffset(_ type: String, in file: [UInt8]) -> Int? {
        var offset = 8
        while let length = file.bigEndian32(at: offset), offset + 12 + length <= file.count {
            if Array(file[(offset + 4)..<(offset + 8)]) == Array(type.utf8) { return offset }
            offset += 12 + length
        }
        return nil
    }

    func testBadCRCIsCorrupt() throws {
        let file = try Self.samplePNG()
        XCTAssertNoThrow(try ImageDecoder.decode(file))
        let idat = try XCTUnwrap(Self.chunkOffset("IDAT", in: file))
        let length = try XCTUnwrap(file.bigEndian32(at: idat))
        var badCRC = file
        badCRC[idat + 8 + length] ^= 0x01
        assertCorrupt(try ImageDecoder.decode(badCRC))
        var badData = file
        badData[idat + 8 + length / 2] ^= 0x40
        assertCorrupt(try ImageDecoder.decode(badData))
        var badHeader = file
        badHeader[8 + 8 + 12] ^= 0x01  // IHDR's CRC
        assertCorrupt(try ImageDecoder.decode(badHeader))
    }

    func testHugeHeaderIsRefusedBeforeDecoding() {
        let bomb = Fixture.pngHeaderOnly(width: 100_000, height: 100_000)
        XCTAssertEqual(bomb.count, 8 + 25 + 12)
        let refusal = ImagingError.tooManyPixels(width: 100_000, height: 100_000, limit: 40_000_000)
        assertThrows(refusal, try ImageDecoder.info(bomb))
        assertThrows(refusal, try ImageDecoder.decode(bomb))
        // With the CRC wrong the header is still only read, never trusted with an allocation.
        var badCRC = bomb
        badCRC[8 + 8 + 13] ^= 0xFF
        assertThrows(refusal, try ImageDecoder.decode(badCRC))
        // Within the limits, the same header-only file fails for lack of image data, not size.
        assertCorrupt(try ImageDecoder.decode(Fixture.pngHeaderOnly(width: 10, height: 10)))
        let maximum = Fixture.pngHeaderOnly(width: 0x7FFF_FFFF, height: 0x7FFF_FFFF)
        // However high a caller sets the limit, buffer sizes cannot overflow.
        assertThrows(.tooManyPixels(width: 0x7FFF_FFFF, height: 0x7FFF_FFFF, limit: 1 << 40),
                     try ImageDecoder.decode(maximum, limits: DecodeLimits(maxPixels: Int.max)))
    }

    func testHugeJPEGHeaderIsRefused() throws {
        var file = try Self.sampleJPEG()
        // Rewrite the frame header's height and width to 65535×65535.
        let sof = try XCTUnwrap(zip(file.indices, file.dropFirst()).first { file[$0.0] == 0xFF && $0.1 == 0xC0 }?.0)
        file[(sof + 5)...(sof + 8)] = [0xFF, 0xFF, 0xFF, 0xFF]
        assertThrows(.tooManyPixels(width: 65535, height: 65535, limit: 40_000_000), try ImageDecoder.decode(file))
    }

    func testPixelLimitIsInclusive() throws {
        let file = try Self.samplePNG()  // 64×48 = 3072 pixels
        XCTAssertNoThrow(try ImageDecoder.decode(file, limits: DecodeLimits(maxPixels: 3072)))
        assertThrows(.tooManyPixels(width: 64, height: 48, limit: 3071),
                     try ImageDecoder.decode(file, limits: DecodeLimits(maxPixels: 3071)))
    }

    func testByteLimit() throws {
        let file = try Self.sampleJPEG()
        XCTAssertNoThrow(try ImageDecoder.decode(file, limits: DecodeLimits(maxBytes: file.count)))
        let limits = DecodeLimits(maxBytes: file.count - 1)
        assertThrows(.tooManyBytes(size: file.count, limit: file.count - 1), try ImageDecoder.decode(file, limits: limits))
        assertThrows(.tooManyBytes(size: file.count, limit: file.count - 1), try ImageDecoder.info(file, limits: limits))
    }

    func testMessagesTellWhatToDo() {
        let errors: [ImagingError] = [.unsupportedFormat, .tooManyBytes(size: 100, limit: 10),
                                      .tooManyPixels(width: 5, height: 6, limit: 20), .corrupt("Premature end of JPEG file"),
                                      .sideTooLong(width: 1, height: 40_000_000, limit: 32_768),
                                      .tooMuchMemory(width: 9000, height: 7000, limit: 1024)]
        for error in errors { XCTAssertTrue(error.description.hasSuffix("."), error.description) }
        XCTAssertTrue(errors[1].description.contains("100"))
        XCTAssertTrue(errors[2].description.contains("5×6"))
        XCTAssertTrue(errors[3].description.contains("Premature end of JPEG file"))
        XCTAssertTrue(errors[4].description.contains("1×40000000") && errors[4].description.contains("32768"))
        XCTAssertTrue(errors[5].description.contains("9000×7000") && errors[5].description.contains("1024 bytes"))
    }

    /// Hundreds of seeded mutations of valid files: each must decode or throw an `ImagingError`;
    /// a crash or a process exit would take the test run down with it.
    /// `IMAGING_FUZZ_ROUNDS` runs more rounds than the default, for a longer local search.
    func testMutatedFilesNeverCrash() throws {
        let rounds = ProcessInfo.processInfo.environment["IMAGING_FUZZ_ROUNDS"].flatMap(Int.init) ?? 1400
        let interlacedPalette = Fixture.png(width: 20, height: 20, depth: 4, colorType: PNG_COLOR_TYPE_PALETTE,
                                            samples: (0..<400).map { $0 % 16 }, interlaced: true,
                                            palette: (0..<48).map { UInt8($0 * 5) }, paletteAlpha: [0, 100, 200])
        let sixteenBit = Fixture.png(width: 16, height: 16, depth: 16, colorType: PNG_COLOR_TYPE_RGB_ALPHA,
                                     samples: (0..<1024).map { $0 * 61 })
        let cmyk = Fixture.jpeg(JPEGDecodingTests.cmykStrip(inverted: true), width: 64, height: 16, components: 4,
                                input: JCS_CMYK, file: JCS_YCCK, progressive: true, adobe: 1)
        let oriented = Fixture.insertingAPP1(try Self.sampleJPEG(), payload: Fixture.exif(orientation: 6, littleEndian: true))
        let originals = [try Self.samplePNG(), interlacedPalette, sixteenBit,
                         try Self.sampleJPEG(), try Self.sampleJPEG(progressive: true), cmyk, oriented]
        var generator = SeededGenerator(seed: 2024)
        var decoded = 0, refused = 0
        for round in 0..<rounds {
            var bytes = originals[round % originals.count]
            switch Int.random(in: 0..<4, using: &generator) {
            case 0:  // flip a few bytes anywhere past the magic
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    bytes[Int.random(in: 3..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            case 1:  // truncate
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &generator)))
            case 2:  // insert random bytes
                let at = Int.random(in: 3...bytes.count, using: &generator)
                bytes.insert(contentsOf: (0..<Int.random(in: 1...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }, at: at)
            default:  // copy a stretch of the file over another place
                let length = Int.random(in: 1...64, using: &generator)
                let from = Int.random(in: 0..<(bytes.count - length), using: &generator)
                let to = Int.random(in: 3..<(bytes.count - length), using: &generator)
                bytes.replaceSubrange(to..<(to + length), with: bytes[from..<(from + length)])
            }
            // The streaming thumbnail must agree with the whole decode: the same thumbnail, or
            // the same refusal, never a thumbnail of a file the decoder refuses.
            let limits = DecodeLimits(maxPixels: 1_000_000)
            let thumbnail = Result { try ImageDecoder.thumbnail(bytes, width: 7, height: 5, limits: limits) }
            do {
                let image = try ImageDecoder.decode(bytes, limits: limits)
                XCTAssertEqual(image.pixels.count, image.width * image.height * 3)
                XCTAssertEqual(try thumbnail.get(), image.resized(width: 7, height: 5), "round \(round)")
                decoded += 1
            } catch let error as ImagingError {
                XCTAssertThrowsError(try thumbnail.get(), "round \(round)") { XCTAssertEqual($0 as? ImagingError, error) }
                refused += 1
            }
        }
        XCTAssertEqual(decoded + refused, rounds)
        XCTAssertGreaterThan(refused, rounds / 2, "most damage is detected")
        XCTAssertGreaterThan(decoded, 0, "damage inside entropy-coded data decodes, as libjpeg intends")
    }
}

final class ScanLimitTests: XCTestCase {
    /// The byte range of the first scan of a JPEG: its SOS segment and entropy-coded data.
    static func firstScan(_ file: [UInt8]) -> Range<Int>? {
        guard let start = zip(file.indices, file.dropFirst()).first(where: { file[$0.0] == 0xFF && $0.1 == 0xDA })?.0,
              let length = file.bigEndian16(at: start + 2) else { return nil }
        var end = start + 2 + length
        // Entropy-coded data runs to the first marker that is neither a stuffed zero nor a restart.
        while end + 1 < file.count {
            if file[end] == 0xFF, file[end + 1] != 0x00, !(0xD0...0xD7).contains(file[end + 1]) { return start..<end }
            end += 1
        }
        return nil
    }

    /// A progressive file with its first (DC) scan repeated: libjpeg accepts the repetition with
    /// a warning, so only the scan limit stops a file of endless scans from burning CPU.
    static func repeatingFirstScan(times: Int) throws -> [UInt8] {
        let file = try ImageEncoder.jpeg(JPEGDecodingTests.gradient(), quality: 80, progressive: true)
        let scan = try XCTUnwrap(firstScan(file))
        var repeated = Array(file[..<scan.upperBound])
        for _ in 0..<times { repeated += file[scan] }
        return repeated + file[scan.upperBound...]
    }

    func testScanLimit() throws {
        XCTAssertNoThrow(try ImageDecoder.decode(Self.repeatingFirstScan(times: 900)))
        XCTAssertThrowsError(try ImageDecoder.decode(Self.repeatingFirstScan(times: 1100))) { error in
            XCTAssertEqual(error as? ImagingError, .corrupt("JPEG has more than 1000 scans"))
        }
    }
}
