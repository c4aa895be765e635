import CZlib
import XCTest
import Imaging
@testable import Evaluation

final class DataTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("idx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func idx(magic: UInt32, dimensions: [UInt32], data: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        for word in [magic] + dimensions { bytes += [UInt8(word >> 24), UInt8(word >> 16 & 0xff), UInt8(word >> 8 & 0xff), UInt8(word & 0xff)] }
        return bytes + data
    }

    private func write(_ bytes: [UInt8], name: String, gzip: Bool) throws -> String {
        try writeTestFile(bytes, to: directory.appendingPathComponent(name).path, gzip: gzip)
    }

    func testReadsPlainAndGzipImagesAndLabels() throws {
        let pixels = (0..<(3 * 2 * 4)).map { UInt8($0 * 7 % 256) }
        for gzip in [false, true] {
            let images = try IDXReader.readImages(path: write(idx(magic: 0x803, dimensions: [3, 2, 4], data: pixels), name: "i\(gzip)", gzip: gzip))
            XCTAssertEqual([images.count, images.rows, images.columns], [3, 2, 4])
            XCTAssertEqual(images.pixels, pixels)
            XCTAssertEqual(Array(images.image(1)), Array(pixels[8..<16]))
            let labels = try IDXReader.readLabels(path: write(idx(magic: 0x801, dimensions: [3], data: [2, 0, 9]), name: "l\(gzip)", gzip: gzip))
            XCTAssertEqual(labels, [2, 0, 9])
        }
        if try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty { XCTFail("files were not written") }
    }

    func testRejectsBadFiles() throws {
        let badMagic = try write(idx(magic: 0x1234, dimensions: [1], data: [0]), name: "magic", gzip: true)
        XCTAssertThrowsError(try IDXReader.readLabels(path: badMagic)) { XCTAssertEqual($0 as? IDXError, .badMagic(path: badMagic, found: 0x1234)) }
        let labelsAsImages = try write(idx(magic: 0x801, dimensions: [1], data: [0]), name: "kind", gzip: false)
        XCTAssertThrowsError(try IDXReader.readImages(path: labelsAsImages)) {
            XCTAssertEqual($0 as? IDXError, .unexpectedDimensions(path: labelsAsImages, expected: 3, found: 1))
        }
        let truncated = try write(idx(magic: 0x803, dimensions: [2, 2, 2], data: [1, 2, 3]), name: "short", gzip: true)
        XCTAssertThrowsError(try IDXReader.readImages(path: truncated)) {
            XCTAssertEqual($0 as? IDXError, .truncated(path: truncated, expectedBytes: 8, foundBytes: 3))
        }
        let long = try write(idx(magic: 0x801, dimensions: [1], data: [1, 2]), name: "long", gzip: false)
        XCTAssertThrowsError(try IDXReader.readLabels(path: long)) { XCTAssertEqual($0 as? IDXError, .trailingBytes(path: long, expectedBytes: 1)) }
        let missing = directory.appendingPathComponent("absent").path
        XCTAssertThrowsError(try IDXReader.readLabels(path: missing)) { XCTAssertEqual($0 as? IDXError, .cannotOpen(path: missing)) }
    }

    /// Four classes, test split of 8 images: the queries are the first 1 of each class in file order.
    func testProtocolSplitOnSmallData() throws {
        let labels: [UInt8] = [0, 1, 2, 3, 0, 1] + [3, 3, 1, 0, 2, 2, 1, 0]
        let images = IDXImages(count: labels.count, rows: 1, columns: 1, pixels: labels)
        let split = try EvaluationProtocol(images: images, labels: labels, trainCount: 6, queriesPerClass: 1, classCount: 4, trainingCount: 4)
        XCTAssertEqual(split.queryIndices, [9, 8, 10, 6])
        XCTAssertEqual(split.databaseIndices, [0, 1, 2, 3, 4, 5, 7, 11, 12, 13])
        XCTAssertEqual(split.trainingIndices, [0, 1, 2, 3])
        XCTAssertThrowsError(try EvaluationProtocol(images: images, labels: labels, trainCount: 6, queriesPerClass: 3, classCount: 4))
    }

    func testGrayThumbnailAveragesAreasAndKeepsConstants() {
        XCTAssertEqual(grayThumbnail([10, 20, 30, 40], width: 2, height: 2, size: 1), [25, 25, 25])
        XCTAssertEqual(grayThumbnail([0, 100, 0, 100], width: 4, height: 1, size: 1), [50, 50, 50])
        let flat = [UInt8](repeating: 77, count: 28 * 28)
        XCTAssertEqual(grayThumbnail(flat, width: 28, height: 28, size: 32), [UInt8](repeating: 77, count: 32 * 32 * 3))
        // 2×1 → 3×3: the middle column straddles both inputs equally; every row repeats the one input row.
        let widened = grayThumbnail([0, 90], width: 2, height: 1, size: 3)
        XCTAssertEqual(widened, [[UInt8]](repeating: [0, 0, 0, 45, 45, 45, 90, 90, 90], count: 3).flatMap { $0 })
    }

    /// A Fashion-MNIST-like 28×28 gray image gets the same 32×32 thumbnail on the evaluation's path as
    /// the service gives it when it is uploaded as a PNG, so evaluated codes are the codes it would serve.
    func testEvaluationThumbnailIsTheServiceThumbnail() throws {
        var state: UInt64 = 0x28
        for _ in 0..<20 {
            // A bright blob on black, like the garments, with noise so that every pixel matters.
            let gray = (0..<(28 * 28)).map { index -> UInt8 in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let x = index % 28 - 14, y = index / 28 - 14
                let blob = max(0, 220 - 2 * (x * x + y * y))
                return UInt8(min(255, blob + Int(state >> 60)))
            }
            let upload = try ImageEncoder.png(RGBImage(gray: gray, width: 28, height: 28))
            let served = try ImageDecoder.thumbnail(upload, width: 32, height: 32).pixels
            XCTAssertEqual(grayThumbnail(gray, width: 28, height: 28, size: 32), served)
        }
    }

    /// The real Fashion-MNIST files, when installed: header, sizes and the protocol's counts.
    func testFashionMNISTWhenPresent() throws {
        let directory = EvaluationProtocol.fashionMNISTDirectory
        guard FileManager.default.fileExists(atPath: directory + "/t10k-labels-idx1-ubyte.gz") else {
            throw XCTSkip("Fashion-MNIST is not installed")
        }
        let testImages = try IDXReader.readImages(path: directory + "/t10k-images-idx3-ubyte.gz")
        XCTAssertEqual([testImages.count, testImages.rows, testImages.columns], [10_000, 28, 28])
        let split = try EvaluationProtocol.load(directory: directory)
        XCTAssertEqual(split.images.count, 70_000)
        XCTAssertEqual(split.queryIndices.count, 1_000)
        XCTAssertEqual(split.databaseIndices.count, 69_000)
        XCTAssertEqual(split.trainingIndices, Array(0..<5_000))
        XCTAssertTrue(split.queryIndices.allSatisfy { $0 >= 60_000 })
        XCTAssertEqual(split.labels(of: split.queryIndices), (0..<10).flatMap { [UInt8](repeating: UInt8($0), count: 100) })
        XCTAssertEqual(split.thumbnail(0).count, 32 * 32 * 3)
        // The protocol's thumbnails are the service's thumbnails of the same images.
        for index in [0, 1, 60_000] {
            let upload = try ImageEncoder.png(RGBImage(gray: Array(split.images.image(index)), width: 28, height: 28))
            XCTAssertEqual(split.thumbnail(index), try ImageDecoder.thumbnail(upload, width: 32, height: 32).pixels)
        }
    }
}

/// Writes `bytes` to `path`, gzip-compressed when asked (the IDX reader reads both), and returns the path.
func writeTestFile(_ bytes: [UInt8], to path: String, gzip: Bool) throws -> String {
    if gzip {
        let file = try XCTUnwrap(gzopen(path, "wb"))
        XCTAssertEqual(bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }, Int32(bytes.count))
        gzclose(file)
    } else {
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
    }
    return path
}
