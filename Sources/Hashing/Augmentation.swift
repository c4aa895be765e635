import Foundation
import NeuralNet

/// How training views are drawn from a thumbnail.
public struct AugmentationSettings: Sendable, Equatable {
    /// Fraction of the thumbnail's area a crop covers.
    public var cropScale: ClosedRange<Float> = 0.5...1
    /// Width/height ratio of a crop (drawn log-uniformly).
    public var aspectRatio: ClosedRange<Float> = (3.0 / 4.0)...(4.0 / 3.0)
    public var flipProbability: Float = 0.5
    /// Brightness factor drawn from `1 ± brightness`.
    public var brightness: Float = 0.4
    /// Contrast factor drawn from `1 ± contrast`, around the image's mean luminance.
    public var contrast: Float = 0.4
    /// Probability of turning a view gray (a no-op on images that already are).
    public var grayscaleProbability: Float = 0.2

    /// The defaults above.
    public init() {}
}

/// Network input tensors from thumbnails, plain or randomly augmented. A thumbnail is `S×S` RGB bytes,
/// interleaved; a tensor is float CHW `[3×S×S]` holding `value/255 − 0.5` (the same scaling as
/// `centredPixelFeatures`, so that an untrained network sees zero-centred inputs).
public enum Augmentation {
    /// The plain (evaluation-mode) tensor of one thumbnail.
    public static func tensor(thumbnail: [UInt8], size: Int) -> [Float] {
        precondition(thumbnail.count == size * size * 3, "thumbnail has \(thumbnail.count) bytes, expected \(size * size * 3)")
        let plane = size * size
        var result = [Float](repeating: 0, count: 3 * plane)
        for pixel in 0..<plane {
            for channel in 0..<3 { result[channel * plane + pixel] = Float(thumbnail[pixel * 3 + channel]) / 255 - 0.5 }
        }
        return result
    }

    /// The plain tensors of a batch, `N×3×S×S`.
    public static func batchTensor(thumbnails: [[UInt8]], size: Int) -> [Float] {
        thumbnails.flatMap { tensor(thumbnail: $0, size: size) }
    }

    /// `N×3×S×S` tensors mirrored left to right, every row of every channel reversed.
    public static func horizontallyFlipped(_ batch: [Float], size: Int) -> [Float] {
        precondition(batch.count % (size * size) == 0, "tensor of \(batch.count) values is not made of \(size)×\(size) planes")
        var result = batch
        for rowStart in stride(from: 0, to: batch.count, by: size) {
            for column in 0..<size { result[rowStart + column] = batch[rowStart + size - 1 - column] }
        }
        return result
    }

    /// One random view of a thumbnail: random resized crop (bilinear back to `S×S`), horizontal flip,
    /// brightness then contrast jitter, random grayscale. Draws from `generator` only.
    public static func view(
        thumbnail: [UInt8], size: Int, settings: AugmentationSettings = AugmentationSettings(),
        generator: inout SplitMix64
    ) -> [Float] {
        precondition(thumbnail.count == size * size * 3, "thumbnail has \(thumbnail.count) bytes, expected \(size * size * 3)")
        let side = Float(size)
        func uniform(_ range: ClosedRange<Float>) -> Float {
            range.lowerBound + (range.upperBound - range.lowerBound) * generator.nextUniform()
        }
        // Crop window in pixel units; after ten misses fall back to the whole thumbnail.
        var cropX: Float = 0, cropY: Float = 0, cropWidth = side, cropHeight = side
        for _ in 0..<10 {
            let area = side * side * uniform(settings.cropScale)
            let ratio = exp(uniform(log(settings.aspectRatio.lowerBound)...log(settings.aspectRatio.upperBound)))
            let width = (area * ratio).squareRoot(), height = (area / ratio).squareRoot()
            if width <= side && height <= side {
                cropWidth = width; cropHeight = height
                cropX = uniform(0...(side - width)); cropY = uniform(0...(side - height))
                break
            }
        }
        let flip = generator.nextUniform() < settings.flipProbability
        let brightness = uniform((1 - settings.brightness)...(1 + settings.brightness))
        let contrast = uniform((1 - settings.contrast)...(1 + settings.contrast))
        let gray = generator.nextUniform() < settings.grayscaleProbability

        let plane = size * size
        var result = [Float](repeating: 0, count: 3 * plane)
        let maximum = side - 1
        for outY in 0..<size {
            let sourceY = min(max(cropY + (Float(outY) + 0.5) * cropHeight / side - 0.5, 0), maximum)
            let y0 = Int(sourceY), y1 = min(y0 + 1, size - 1), fy = sourceY - Float(y0)
            for outX in 0..<size {
                let column = flip ? size - 1 - outX : outX
                let sourceX = min(max(cropX + (Float(column) + 0.5) * cropWidth / side - 0.5, 0), maximum)
                let x0 = Int(sourceX), x1 = min(x0 + 1, size - 1), fx = sourceX - Float(x0)
                for channel in 0..<3 {
                    func at(_ x: Int, _ y: Int) -> Float { Float(thumbnail[(y * size + x) * 3 + channel]) / 255 }
                    let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * fx
                    let bottom = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * fx
                    result[channel * plane + outY * size + outX] = (top + (bottom - top) * fy) * brightness
                }
            }
        }
        var meanLuminance: Float = 0
        for pixel in 0..<plane {
            meanLuminance += 0.299 * result[pixel] + 0.587 * result[plane + pixel] + 0.114 * result[2 * plane + pixel]
        }
        meanLuminance /= Float(plane)
        for index in result.indices {
            result[index] = min(max((result[index] - meanLuminance) * contrast + meanLuminance, 0), 1)
        }
        if gray {
            for pixel in 0..<plane {
                let luminance = 0.299 * result[pixel] + 0.587 * result[plane + pixel] + 0.114 * result[2 * plane + pixel]
                for channel in 0..<3 { result[channel * plane + pixel] = luminance }
            }
        }
        for index in result.indices { result[index] -= 0.5 }
        return result
    }

    /// Two random views of every thumbnail of a batch as one `2N×3×S×S` buffer: rows `i` and `i + N`
    /// are the two views of thumbnail `i`, matching the layout the DSCH losses expect.
    public static func twoViews(
        batch: [[UInt8]], size: Int, settings: AugmentationSettings = AugmentationSettings(), seed: UInt64
    ) -> [Float] {
        var generator = SplitMix64(seed: seed)
        var first: [Float] = [], second: [Float] = []
        first.reserveCapacity(batch.count * 3 * size * size)
        second.reserveCapacity(batch.count * 3 * size * size)
        for thumbnail in batch {
            first.append(contentsOf: view(thumbnail: thumbnail, size: size, settings: settings, generator: &generator))
            second.append(contentsOf: view(thumbnail: thumbnail, size: size, settings: settings, generator: &generator))
        }
        return first + second
    }
}
