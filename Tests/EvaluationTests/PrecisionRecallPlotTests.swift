import XCTest
@testable import Evaluation

final class PrecisionRecallPlotTests: XCTestCase {
    func testDrawsEveryCurveInItsColourAndALegend() throws {
        let rising = (0...4).map { PrecisionRecallPoint(radius: $0, precision: 1 - Double($0) * 0.2, recall: Double($0) * 0.25) }
        let flat = (0...4).map { PrecisionRecallPoint(radius: $0, precision: 0.3, recall: Double($0) * 0.25) }
        let plot = PrecisionRecallPlot(curves: [.init(method: "a", points: rising), .init(method: "b", points: flat)], width: 400, height: 300)
        let image = plot.raster()
        XCTAssertEqual(image.pixels.count, 400 * 300 * 3)
        func count(_ colour: (UInt8, UInt8, UInt8)) -> Int {
            stride(from: 0, to: image.pixels.count, by: 3).filter {
                image.pixels[$0] == colour.0 && image.pixels[$0 + 1] == colour.1 && image.pixels[$0 + 2] == colour.2
            }.count
        }
        let first = PrecisionRecallPlot.palette[0].rgb, second = PrecisionRecallPlot.palette[1].rgb
        // Each curve spans the plot's width (≥ 300 pixels of line) plus an 18×18 legend box.
        XCTAssertGreaterThan(count(first), 300 + 18 * 18)
        XCTAssertGreaterThan(count(second), 300 + 18 * 18)
        XCTAssertEqual(count(PrecisionRecallPlot.palette[2].rgb), 0)
        // The flat curve at precision 0.3 passes through the middle column at the height of 0.3.
        let x = 60 + (380 - 60) / 2, y = 250 - Int(0.3 * 230)
        XCTAssertEqual(Array(image.pixels[((y * 400 + x) * 3)..<((y * 400 + x) * 3 + 3)]), [second.0, second.1, second.2])
        XCTAssertEqual(Array(try plot.png().prefix(8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
        XCTAssertEqual(plot.colourNames, ["blue", "orange"])
    }
}
