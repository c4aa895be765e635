/// Max pooling over NCHW input; the index of each window's maximum is saved for backward.
public final class MaxPool2d: Layer {
    /// Window height and width.
    public let kernelSize: Int
    /// Step between windows.
    public let stride: Int

    private let output = Buffer()
    private var argmax: [Int32] = []
    private var inputShape: [Int] = []

    /// Non-overlapping pooling by default (`stride` = `kernelSize`); windows never overhang the input.
    public init(kernelSize: Int, stride: Int? = nil) throws {
        guard kernelSize > 0, (stride ?? kernelSize) > 0 else {
            throw NeuralNetError.invalidConfiguration("MaxPool2d needs a positive kernel size and stride")
        }
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        super.init()
    }

    public override var architectureDescription: String { "MaxPool2d(kernel: \(kernelSize), stride: \(stride))" }

    override func makeReplica() throws -> Layer { try MaxPool2d(kernelSize: kernelSize, stride: stride) }

    public override func outputShape(for inputShape: [Int]) throws -> [Int] {
        try requireRank(inputShape, 4, layer: self, expected: "[N, C, H, W] with H, W ≥ \(kernelSize)")
        guard inputShape[2] >= kernelSize, inputShape[3] >= kernelSize else {
            throw NeuralNetError.shapeMismatch(
                layer: architectureDescription, expected: "[N, C, H, W] with H, W ≥ \(kernelSize)", actual: inputShape)
        }
        return [inputShape[0], inputShape[1], (inputShape[2] - kernelSize) / stride + 1,
                (inputShape[3] - kernelSize) / stride + 1]
    }

    override func forward(_ input: Buffer, training: Bool) -> Buffer {
        let shape = input.shape
        inputShape = shape
        let planes = shape[0] * shape[1], height = shape[2], width = shape[3]
        let outHeight = (height - kernelSize) / stride + 1, outWidth = (width - kernelSize) / stride + 1
        output.reshape([shape[0], shape[1], outHeight, outWidth])
        let total = planes * outHeight * outWidth
        if argmax.count < total { argmax = [Int32](repeating: 0, count: total) }
        let x = input.pointer, y = output.pointer, kernel = kernelSize, stride = self.stride
        argmax.withUnsafeMutableBufferPointer { indices in
            let indices = indices.baseAddress!
            parallelRanges(planes) { range in
                for plane in range {
                    let source = x + plane * height * width
                    let base = plane * outHeight * outWidth
                    if kernel == 2 && stride == 2 {
                        // The encoder's pooling: four candidates, no inner loops.
                        for oy in 0..<outHeight {
                            let top = 2 * oy * width
                            var ox = 0
                            while ox + 8 <= outWidth && width >= 2 * ox + 16 {
                                let first = top + 2 * ox
                                let upper = UnsafeRawPointer(source + first).loadUnaligned(as: SIMD16<Float>.self)
                                let lower = UnsafeRawPointer(source + first + width).loadUnaligned(as: SIMD16<Float>.self)
                                let a = upper.evenHalf, b = upper.oddHalf, c = lower.evenHalf, d = lower.oddHalf
                                let columns = SIMD8<Int32>(repeating: Int32(first)) &+ SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14)
                                let takeB = b .> a, takeD = d .> c
                                let left = a.replacing(with: b, where: takeB)
                                let right = c.replacing(with: d, where: takeD)
                                let leftIndex = columns.replacing(with: columns &+ 1, where: takeB)
                                let rightIndex = (columns &+ Int32(width)).replacing(with: columns &+ Int32(width + 1), where: takeD)
                                let takeRight = right .> left
                                let target = base + oy * outWidth + ox
                                UnsafeMutableRawPointer(y + target).storeBytes(of: left.replacing(with: right, where: takeRight), as: SIMD8<Float>.self)
                                UnsafeMutableRawPointer(indices + target).storeBytes(
                                    of: leftIndex.replacing(with: rightIndex, where: takeRight), as: SIMD8<Int32>.self)
                                ox += 8
                            }
                            while ox < outWidth {
                                let a = top + 2 * ox, b = a + 1, c = a + width, d = c + 1
                                let left = source[b] > source[a] ? b : a
                                let right = source[d] > source[c] ? d : c
                                let best = source[right] > source[left] ? right : left
                                y[base + oy * outWidth + ox] = source[best]
                                indices[base + oy * outWidth + ox] = Int32(best)
                                ox += 1
                            }
                        }
                        continue
                    }
                    for oy in 0..<outHeight {
                        for ox in 0..<outWidth {
                            var best = oy * stride * width + ox * stride
                            var bestValue = source[best]
                            for ky in 0..<kernel {
                                let row = (oy * stride + ky) * width + ox * stride
                                for kx in 0..<kernel where source[row + kx] > bestValue {
                                    bestValue = source[row + kx]
                                    best = row + kx
                                }
                            }
                            y[base + oy * outWidth + ox] = bestValue
                            indices[base + oy * outWidth + ox] = Int32(best)
                        }
                    }
                }
            }
        }
        return output
    }

    override func backward(_ outputGradient: Buffer, spare: Buffer, needsInputGradient: Bool) -> Buffer? {
        guard needsInputGradient else { return nil }
        spare.reshape(inputShape)
        let planes = inputShape[0] * inputShape[1], inPixels = inputShape[2] * inputShape[3]
        let outPixels = output.count / planes
        let dy = outputGradient.pointer, dx = spare.pointer
        argmax.withUnsafeBufferPointer { indices in
            let indices = indices.baseAddress!
            parallelRanges(planes) { range in
                for plane in range {
                    let target = dx + plane * inPixels
                    target.update(repeating: 0, count: inPixels)
                    let base = plane * outPixels
                    for index in 0..<outPixels { target[Int(indices[base + index])] += dy[base + index] }
                }
            }
        }
        return spare
    }
}

/// Averages each channel over its whole plane: `[N, C, H, W]` → `[N, C]`.
public final class GlobalAvgPool: Layer {
    private let output = Buffer()
    private var inputShape: [Int] = []

    /// A global average pool (no parameters).
    public override init() { super.init() }

    public override var architectureDescription: String { "GlobalAvgPool" }

    override func makeReplica() throws -> Layer { GlobalAvgPool() }

    public override func outputShape(for inputShape: [Int]) throws -> [Int] {
        try requireRank(inputShape, 4, layer: self, expected: "[N, C, H, W]")
        return [inputShape[0], inputShape[1]]
    }

    override func forward(_ input: Buffer, training: Bool) -> Buffer {
        inputShape = input.shape
        let planes = inputShape[0] * inputShape[1], pixels = inputShape[2] * inputShape[3]
        output.reshape([inputShape[0], inputShape[1]])
        let x = input.pointer, y = output.pointer, scale = 1 / Float(pixels)
        for plane in 0..<planes { y[plane] = sum(x + plane * pixels, pixels) * scale }
        return output
    }

    override func backward(_ outputGradient: Buffer, spare: Buffer, needsInputGradient: Bool) -> Buffer? {
        guard needsInputGradient else { return nil }
        spare.reshape(inputShape)
        let planes = inputShape[0] * inputShape[1], pixels = inputShape[2] * inputShape[3]
        let dy = outputGradient.pointer, dx = spare.pointer, scale = 1 / Float(pixels)
        for plane in 0..<planes { (dx + plane * pixels).update(repeating: dy[plane] * scale, count: pixels) }
        return spare
    }
}
