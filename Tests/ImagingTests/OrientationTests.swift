import XCTest
@testable import Imaging

final class OrientationTests: XCTestCase {
    /// Six well-separated colours, named by letter.
    static let colors: [Character: [Int]] = [
        "a": [255, 0, 0], "b": [0, 255, 0], "c": [0, 0, 255],
        "d": [255, 255, 255], "e": [0, 0, 0], "f": [255, 255, 0],
    ]

    /// The stored image, 3 wide and 2 tall, each cell a 16×16 block so that JPEG keeps it flat:
    ///     a b c
    ///     d e f
    static func stored() -> RGBImage {
        let rows = ["abc", "def"]
        var pixels: [UInt8] = []
        for y in 0..<32 {
            for x in 0..<48 {
                let letter = Array(rows[y / 16])[x / 16]
                pixels += colors[letter]!.map(UInt8.init)
            }
        }
        return RGBImage(width: 48, height: 32, pixels: pixels)
    }

    /// How each EXIF orientation must look once turned upright, written out by hand.
    static let upright: [Int: [String]] = [
        1: ["abc", "def"],
        2: ["cba", "fed"],
        3: ["fed", "cba"],
        4: ["def", "abc"],
        5: ["ad", "be", "cf"],
        6: ["da", "eb", "fc"],
        7: ["fc", "eb", "da"],
        8: ["cf", "be", "ad"],
    ]

    /// The letter whose colour is nearest to `rgb`.
    static func letter(_ rgb: [Int]) -> Character {
        colors.min { first, second in
            zip(first.value, rgb).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
                < zip(second.value, rgb).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
        }!.key
    }

    /// The cells of a decoded image, read at each 16×16 block's centre.
    static func cells(_ image: RGBImage) -> [String] {
        (0..<(image.height / 16)).map { row in
            String((0..<(image.width / 16)).map { column in letter(image.pixel(16 * column + 8, 16 * row + 8)) })
        }
    }

    func testEveryOrientationInBothByteOrders() throws {
        let plain = try ImageEncoder.jpeg(Self.stored(), quality: 95)
        XCTAssertEqual(Self.cells(try ImageDecoder.decode(plain)), ["abc", "def"])
        for littleEndian in [true, false] {
            for orientation in 1...8 {
                let file = Fixture.insertingAPP1(plain, payload: Fixture.exif(orientation: orientation, littleEndian: littleEndian))
                let image = try ImageDecoder.decode(file)
                let expected = Self.upright[orientation]!
                XCTAssertEqual(Self.cells(image), expected, "orientation \(orientation), little endian \(littleEndian)")
                let info = try ImageDecoder.info(file)
                XCTAssertEqual([info.width, info.height], [image.width, image.height])
                XCTAssertEqual(image.width, 16 * expected[0].count)
            }
        }
    }

    func testOrientationAppliesToExactPixels() {
        // Stored 3×2 of single pixels 0…5 (red channel), turned clockwise (orientation 6).
        let stored = RGBImage(width: 3, height: 2, pixels: (0..<6).flatMap { [UInt8($0), 0, 0] })
        let turned = ExifOrientation.rotatedClockwise.apply(to: stored)
        XCTAssertEqual(turned.width, 2)
        XCTAssertEqual(turned.height, 3)
        XCTAssertEqual(stride(from: 0, to: 18, by: 3).map { turned.pixels[$0] }, [3, 0, 4, 1, 5, 2])
    }

    func testDamagedExifIsIgnored() throws {
        let plain = try ImageEncoder.jpeg(Self.stored(), quality: 95)
        let good = Fixture.exif(orientation: 6, littleEndian: false)
        var payloads: [[UInt8]] = []
        // Every truncation of a valid EXIF block.
        for length in 0..<good.count { payloads.append(Array(good.prefix(length))) }
        // Directory offset far past the end, and pointing at its own last bytes.
        var farOffset = good
        farOffset[10...13] = [0xFF, 0xFF, 0xFF, 0xF0]
        payloads.append(farOffset)
        var nearEnd = good
        nearEnd[13] = UInt8(good.count - 6 - 1)
        payloads.append(nearEnd)
        // An entry count of 65535 with only two entries present.
        var manyEntries = good
        manyEntries[14...15] = [0xFF, 0xFF]
        payloads.append(manyEntries)
        // Orientation values out of range and the wrong type.
        for value in [0, 9, 0xFFFF] { payloads.append(Fixture.exif(orientation: value, littleEndian: true)) }
        var wrongType = good
        wrongType[6 + 8 + 2 + 12 + 3] = 4  // LONG instead of SHORT
        payloads.append(wrongType)
        // Not EXIF at all, and an unknown byte order.
        payloads.append(Array("XMP\0 something".utf8))
        var badOrder = good
        badOrder[6...7] = [0x41, 0x41]
        payloads.append(badOrder)

        var generator = SeededGenerator(seed: 99)
        for _ in 0..<200 {
            var mutated = good
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                mutated[Int.random(in: 6..<mutated.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            payloads.append(mutated)
        }
        for payload in payloads {
            let file = Fixture.insertingAPP1(plain, payload: payload)
            let image = try ImageDecoder.decode(file)
            // Any orientation 1…8 is a legitimate reading of a mutated block; anything else is not.
            XCTAssertTrue([48, 32].contains(image.width))
            XCTAssertEqual(image.width * image.height, 48 * 32)
        }
        // The orientation value ends at byte 38 of the payload (6 "Exif\0\0" + 8 TIFF header
        // + 2 entry count + 12 for the Make entry + 10 into the orientation entry): any shorter
        // block is ignored, any longer one has the whole entry and is honoured.
        for length in 0...good.count {
            let image = try ImageDecoder.decode(Fixture.insertingAPP1(plain, payload: Array(good.prefix(length))))
            XCTAssertEqual(Self.cells(image), length < 38 ? ["abc", "def"] : ["da", "eb", "fc"],
                           "EXIF truncated to \(length) bytes")
        }
    }
}
