import Foundation
import Imaging

/// Precision–recall curves drawn on a raster and saved as PNG: recall on the horizontal axis, precision
/// on the vertical one, both 0…1 with grid lines every 0.1, one coloured line per method and a legend
/// of coloured boxes in the top-right corner (in method order; no text, so the caller names the colours).
public struct PrecisionRecallPlot {
    /// One method's curve.
    public struct Curve: Sendable {
        public var method: String
        public var points: [PrecisionRecallPoint]
        public init(method: String, points: [PrecisionRecallPoint]) {
            self.method = method
            self.points = points
        }
    }

    /// Line colours in legend order (RGB), distinct on white and for common colour blindness.
    public static let palette: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [
        ("blue", (0, 114, 178)), ("orange", (230, 159, 0)), ("green", (0, 158, 115)),
        ("vermilion", (213, 94, 0)), ("purple", (150, 80, 160)), ("sky blue", (86, 180, 233)),
        ("yellow", (240, 228, 66)), ("black", (0, 0, 0)),
    ]

    public var width: Int
    public var height: Int
    public var curves: [Curve]

    public init(curves: [Curve], width: Int = 800, height: Int = 600) {
        self.curves = curves
        self.width = width
        self.height = height
    }

    /// The colour name of each curve, in order, for a caption.
    public var colourNames: [String] { curves.indices.map { Self.palette[$0 % Self.palette.count].name } }

    /// The drawn raster.
    public func raster() -> RGBImage {
        var canvas = Canvas(width: width, height: height)
        let left = 60, right = width - 20, top = 20, bottom = height - 50
        func x(_ recall: Double) -> Double { Double(left) + min(max(recall, 0), 1) * Double(right - left) }
        func y(_ precision: Double) -> Double { Double(bottom) - min(max(precision, 0), 1) * Double(bottom - top) }
        for tick in 0...10 {
            let fraction = Double(tick) / 10
            let gray: (UInt8, UInt8, UInt8) = (225, 225, 225)
            canvas.line(x(fraction), Double(top), x(fraction), Double(bottom), colour: gray, thickness: 1)
            canvas.line(Double(left), y(fraction), Double(right), y(fraction), colour: gray, thickness: 1)
            // Tick marks outside the axes.
            canvas.line(x(fraction), Double(bottom), x(fraction), Double(bottom + 6), colour: (0, 0, 0), thickness: 1)
            canvas.line(Double(left - 6), y(fraction), Double(left), y(fraction), colour: (0, 0, 0), thickness: 1)
        }
        canvas.line(Double(left), Double(bottom), Double(right), Double(bottom), colour: (0, 0, 0), thickness: 2)
        canvas.line(Double(left), Double(top), Double(left), Double(bottom), colour: (0, 0, 0), thickness: 2)
        for (index, curve) in curves.enumerated() {
            let colour = Self.palette[index % Self.palette.count].rgb
            let points = curve.points.sorted { $0.radius < $1.radius }
            for (a, b) in zip(points, points.dropFirst()) {
                canvas.line(x(a.recall), y(a.precision), x(b.recall), y(b.precision), colour: colour, thickness: 3)
            }
            if points.count == 1 { canvas.box(Int(x(points[0].recall)) - 2, Int(y(points[0].precision)) - 2, 5, 5, colour: colour) }
        }
        // Legend: one box per curve, stacked in the top-right corner on a framed white panel.
        let box = 18, gap = 6
        let panelHeight = curves.count * (box + gap) + gap
        let panelLeft = right - box - 2 * gap, panelTop = top + gap
        canvas.box(panelLeft - 1, panelTop - 1, box + 2 * gap + 2, panelHeight + 2, colour: (0, 0, 0))
        canvas.box(panelLeft, panelTop, box + 2 * gap, panelHeight, colour: (255, 255, 255))
        for index in curves.indices {
            canvas.box(panelLeft + gap, panelTop + gap + index * (box + gap), box, box,
                       colour: Self.palette[index % Self.palette.count].rgb)
        }
        return RGBImage(width: width, height: height, pixels: canvas.pixels)
    }

    /// The PNG file of `raster()`.
    public func png() throws -> [UInt8] { try ImageEncoder.png(raster()) }
}

/// A white RGB raster with the two primitives the plot needs.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ colour: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let offset = (y * width + x) * 3
        pixels[offset] = colour.0; pixels[offset + 1] = colour.1; pixels[offset + 2] = colour.2
    }

    /// A filled rectangle, clipped to the raster.
    mutating func box(_ x: Int, _ y: Int, _ boxWidth: Int, _ boxHeight: Int, colour: (UInt8, UInt8, UInt8)) {
        for row in y..<(y + max(boxHeight, 0)) { for column in x..<(x + max(boxWidth, 0)) { set(column, row, colour) } }
    }

    /// A straight segment stamped with a square pen of side `thickness`, one stamp per pixel step.
    mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, colour: (UInt8, UInt8, UInt8), thickness: Int) {
        let steps = max(Int(max(abs(x1 - x0), abs(y1 - y0)).rounded(.up)), 1)
        let offset = (thickness - 1) / 2
        for step in 0...steps {
            let t = Double(step) / Double(steps)
            let x = Int((x0 + (x1 - x0) * t).rounded()), y = Int((y0 + (y1 - y0) * t).rounded())
            box(x - offset, y - offset, thickness, thickness, colour: colour)
        }
    }
}
