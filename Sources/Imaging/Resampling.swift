/// Area-averaging resampling in exact integer arithmetic.
enum Resampling {
    /// The source pixels overlapping one output pixel, with integer overlap weights.
    struct Span {
        var first: Int
        var weights: [Int]
    }

    /// For every output index, the source indices it covers and by how much. Scaling both axes by
    /// `outputCount` makes every boundary an integer: source pixel j covers
    /// [j·outputCount, (j+1)·outputCount) and output pixel i covers [i·sourceCount, (i+1)·sourceCount),
    /// so each span's weights sum to exactly `sourceCount`.
    static func spans(from sourceCount: Int, to outputCount: Int) -> [Span] {
        (0..<outputCount).map { output in
            let start = output * sourceCount, end = start + sourceCount
            let first = start / outputCount
            let last = (end - 1) / outputCount
            let weights = (first...last).map { source in
                min(end, (source + 1) * outputCount) - max(start, source * outputCount)
            }
            return Span(first: first, weights: weights)
        }
    }

    /// Each output pixel is the rounded (half up) mean of the source area it covers, weighted
    /// by exact coverage; downscaling by whole factors averages whole blocks.
    static func areaAverage(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        precondition(width > 0 && height > 0, "cannot resize to \(width)x\(height)")
        precondition(image.width > 0 && image.height > 0 && image.pixels.count == image.width * image.height * 3,
                     "cannot resize a \(image.width)x\(image.height) image from \(image.pixels.count) bytes")
        if width == image.width && height == image.height { return image }
        let columns = spans(from: image.width, to: width)
        let rows = spans(from: image.height, to: height)
        // Horizontal pass: sums weighted by column coverage (each row's weights total image.width).
        var horizontal = [Int](repeating: 0, count: image.height * width * 3)
        image.pixels.withUnsafeBufferPointer { source in
            horizontal.withUnsafeMutableBufferPointer { sums in
                for y in 0..<image.height {
                    let sourceRow = y * image.width * 3
                    let sumRow = y * width * 3
                    for (x, span) in columns.enumerated() {
                        var red = 0, green = 0, blue = 0
                        for (offset, weight) in span.weights.enumerated() {
                            let index = sourceRow + 3 * (span.first + offset)
                            red += weight * Int(source[index])
                            green += weight * Int(source[index + 1])
                            blue += weight * Int(source[index + 2])
                        }
                        sums[sumRow + 3 * x] = red
                        sums[sumRow + 3 * x + 1] = green
                        sums[sumRow + 3 * x + 2] = blue
                    }
                }
            }
        }
        // Vertical pass, then one division by the total weight image.width × image.height.
        let total = image.width * image.height
        var output = [UInt8](repeating: 0, count: width * height * 3)
        horizontal.withUnsafeBufferPointer { sums in
            output.withUnsafeMutableBufferPointer { destination in
                for (y, span) in rows.enumerated() {
                    for x in 0..<(width * 3) {
                        var sum = 0
                        for (offset, weight) in span.weights.enumerated() {
                            sum += weight * sums[(span.first + offset) * width * 3 + x]
                        }
                        destination[y * width * 3 + x] = UInt8((sum + total / 2) / total)
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: output)
    }
}
