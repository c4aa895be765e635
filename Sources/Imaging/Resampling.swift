/// Area-averaging resampling in exact integer arithmetic.
///
/// Source pixel x covers [x·outputWidth, (x+1)·outputWidth) and output pixel i covers
/// [i·sourceWidth, (i+1)·sourceWidth) once both axes are scaled by the other side's count, so
/// every overlap is an integer and each output pixel's weights total sourceWidth × sourceHeight.
/// Area averaging is linear and separable, so every source pixel can be added where it lies, in
/// any order: rows top to bottom, or the scattered rows of an interlaced file's passes.
enum Resampling {
    /// Each output pixel is the rounded (half up) mean of the source area it covers, weighted
    /// by exact coverage; downscaling by whole factors averages whole blocks.
    static func areaAverage(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        precondition(width > 0 && height > 0, "cannot resize to \(width)x\(height)")
        precondition(image.width > 0 && image.height > 0 && image.pixels.count == image.width * image.height * 3,
                     "cannot resize a \(image.width)x\(image.height) image from \(image.pixels.count) bytes")
        if width == image.width && height == image.height { return image }
        let accumulator = AreaAverageAccumulator(sourceWidth: image.width, sourceHeight: image.height,
                                                 outputWidth: width, outputHeight: height)
        image.pixels.withUnsafeBufferPointer { source in
            for y in 0..<image.height {
                accumulator.add(row: source.baseAddress! + y * image.width * 3, y: y,
                                firstX: 0, xStep: 1, count: image.width)
            }
        }
        return accumulator.image()
    }
}

/// Collects an area-averaged thumbnail from source pixels delivered a row (or part of a row) at
/// a time, so a decoder can stream into it: its memory is one output image of sums plus one
/// output row, whatever the source size or aspect ratio.
final class AreaAverageAccumulator {
    let sourceWidth: Int
    let sourceHeight: Int
    let outputWidth: Int
    let outputHeight: Int
    /// Weighted sums of every output sample (outputWidth × outputHeight × 3). Each is at most
    /// 255 × sourceWidth × sourceHeight, and the header's absolute pixel limit (2^40) keeps that
    /// under 2^48, so Int never overflows.
    let sums: UnsafeMutableBufferPointer<Int>
    /// One output row of horizontal sums for the source row being added (outputWidth × 3).
    let rowSums: UnsafeMutableBufferPointer<Int>

    init(sourceWidth: Int, sourceHeight: Int, outputWidth: Int, outputHeight: Int) {
        precondition(sourceWidth > 0 && sourceHeight > 0 && outputWidth > 0 && outputHeight > 0,
                     "cannot resize \(sourceWidth)x\(sourceHeight) to \(outputWidth)x\(outputHeight)")
        // Scaled coordinates reach sourceWidth × outputWidth (and likewise vertically), and the
        // sums reach 255 × sourceWidth × sourceHeight: all must fit in an Int.
        func fits(_ first: Int, _ second: Int) -> Bool { !first.multipliedReportingOverflow(by: second).overflow }
        precondition(fits(sourceWidth, outputWidth) && fits(sourceHeight, outputHeight)
                     && fits(sourceWidth, sourceHeight) && fits(sourceWidth * sourceHeight, 255)
                     && fits(outputWidth, outputHeight) && fits(outputWidth * outputHeight, 3),
                     "cannot resize \(sourceWidth)x\(sourceHeight) to \(outputWidth)x\(outputHeight) in integer arithmetic")
        self.sourceWidth = sourceWidth
        self.sourceHeight = sourceHeight
        self.outputWidth = outputWidth
        self.outputHeight = outputHeight
        sums = .allocate(capacity: outputWidth * outputHeight * 3)
        sums.initialize(repeating: 0)
        rowSums = .allocate(capacity: outputWidth * 3)
        rowSums.initialize(repeating: 0)
    }

    deinit {
        sums.deallocate()
        rowSums.deallocate()
    }

    /// Adds `count` packed RGB pixels that lie at x = firstX + k·xStep of source row `y`.
    /// Every source pixel must be added exactly once before `image()`.
    func add(row: UnsafePointer<UInt8>, y: Int, firstX: Int, xStep: Int, count: Int) {
        precondition(y >= 0 && y < sourceHeight && firstX >= 0 && xStep > 0 && count > 0
                     && firstX + (count - 1) * xStep < sourceWidth,
                     "row \(y) from \(firstX) by \(xStep) for \(count) pixels is outside \(sourceWidth)x\(sourceHeight)")
        let rowSums = rowSums.baseAddress!
        rowSums.update(repeating: 0, count: outputWidth * 3)
        // Horizontal: spread each pixel over the output columns its scaled extent overlaps.
        // Columns only move right along a row, so the first overlapped column is found by
        // walking on from the previous pixel's, not by dividing.
        var column = firstX * outputWidth / sourceWidth
        var pixel = row
        for k in 0..<count {
            let start = (firstX + k * xStep) * outputWidth, end = start + outputWidth
            while (column + 1) * sourceWidth <= start { column += 1 }
            let red = Int(pixel[0]), green = Int(pixel[1]), blue = Int(pixel[2])
            var output = column, lower = start
            while output < outputWidth && output * sourceWidth < end {
                let upper = min(end, (output + 1) * sourceWidth)
                let weight = upper - lower
                rowSums[3 * output] += weight * red
                rowSums[3 * output + 1] += weight * green
                rowSums[3 * output + 2] += weight * blue
                output += 1
                lower = output * sourceWidth
            }
            pixel += 3
        }
        // Vertical: add the row's sums, weighted by coverage, to every output row it overlaps.
        let start = y * outputHeight, end = start + outputHeight
        var outputRow = start / sourceHeight
        let samples = outputWidth * 3
        while outputRow < outputHeight && outputRow * sourceHeight < end {
            let weight = min(end, (outputRow + 1) * sourceHeight) - max(start, outputRow * sourceHeight)
            let destination = sums.baseAddress! + outputRow * samples
            for index in 0..<samples {
                destination[index] += weight * rowSums[index]
            }
            outputRow += 1
        }
    }

    /// The output image: each sum divided by the total weight, rounded half up.
    func image() -> RGBImage {
        let total = sourceWidth * sourceHeight
        let pixels = sums.map { UInt8(($0 + total / 2) / total) }
        return RGBImage(width: outputWidth, height: outputHeight, pixels: pixels)
    }
}
