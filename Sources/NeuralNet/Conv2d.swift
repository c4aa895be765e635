import CBLAS

/// 2-D convolution over NCHW input by im2col and single-threaded OpenBLAS products.
///
/// Weights are `[out, in, kernelHeight, kernelWidth]`. The batch is split into one contiguous range
/// of images per worker thread; each worker unfolds one image at a time into its own column matrix
/// (small enough to stay in its core's cache) and multiplies it straight into the NCHW output, so no
/// transposition pass is needed. This measured faster than one multi-threaded product over a whole
/// group of images followed by a scatter into NCHW order.
public final class Conv2d: Layer {
    /// Input channels.
    public let inChannels: Int
    /// Output channels.
    public let outChannels: Int
    /// Kernel height and width.
    public let kernelHeight: Int, kernelWidth: Int
    /// Step between neighbouring output positions, in input pixels.
    public let stride: Int
    /// Zero rows and columns added on each side of the input.
    public let padding: Int
    /// Filter bank, `[out, in, kernelHeight, kernelWidth]`.
    public let weight: Parameter
    /// Per-output-channel bias, absent when a normalisation layer follows.
    public let bias: Parameter?

    private var savedInput: Buffer?
    private let output = Buffer()

    /// A convolution with He-initialised weights drawn from `generator` and a zero bias.
    public init(
        inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
        bias: Bool = true, generator: inout SplitMix64
    ) throws {
        guard inChannels > 0, outChannels > 0, kernelSize > 0, stride > 0, padding >= 0 else {
            throw NeuralNetError.invalidConfiguration(
                "Conv2d needs positive channels, kernel size and stride and a non-negative padding")
        }
        self.inChannels = inChannels
        self.outChannels = outChannels
        kernelHeight = kernelSize
        kernelWidth = kernelSize
        self.stride = stride
        self.padding = padding
        weight = Parameter(name: "weight", shape: [outChannels, inChannels, kernelSize, kernelSize], appliesWeightDecay: true)
        self.bias = bias ? Parameter(name: "bias", shape: [outChannels], appliesWeightDecay: false) : nil
        super.init()
        kaimingNormal(weight, fanIn: inChannels * kernelSize * kernelSize, generator: &generator)
    }

    public override var architectureDescription: String {
        "Conv2d(in: \(inChannels), out: \(outChannels), kernel: \(kernelHeight)x\(kernelWidth), stride: \(stride), padding: \(padding), bias: \(bias != nil))"
    }

    public override var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    override func makeReplica() throws -> Layer {
        var generator = SplitMix64(seed: 0)
        return try Conv2d(
            inChannels: inChannels, outChannels: outChannels, kernelSize: kernelHeight, stride: stride,
            padding: padding, bias: bias != nil, generator: &generator)
    }

    public override func outputShape(for inputShape: [Int]) throws -> [Int] {
        try requireRank(inputShape, 4, layer: self, expected: "[N, \(inChannels), H, W]")
        let height = (inputShape[2] + 2 * padding - kernelHeight) / stride + 1
        let width = (inputShape[3] + 2 * padding - kernelWidth) / stride + 1
        guard inputShape[1] == inChannels, inputShape[2] + 2 * padding >= kernelHeight,
              inputShape[3] + 2 * padding >= kernelWidth else {
            throw NeuralNetError.shapeMismatch(
                layer: architectureDescription,
                expected: "[N, \(inChannels), H, W] with H, W ≥ \(kernelHeight - 2 * padding)", actual: inputShape)
        }
        return [inputShape[0], outChannels, height, width]
    }

    private struct Geometry {
        let batch, channels, height, width, outHeight, outWidth, kernelHeight, kernelWidth, stride, padding: Int
        var outPixels: Int { outHeight * outWidth }
        var inPixels: Int { height * width }
        var rows: Int { channels * kernelHeight * kernelWidth }
    }

    private func geometry(_ shape: [Int]) -> Geometry {
        Geometry(
            batch: shape[0], channels: shape[1], height: shape[2], width: shape[3],
            outHeight: (shape[2] + 2 * padding - kernelHeight) / stride + 1,
            outWidth: (shape[3] + 2 * padding - kernelWidth) / stride + 1,
            kernelHeight: kernelHeight, kernelWidth: kernelWidth, stride: stride, padding: padding)
    }

    override func forward(_ input: Buffer, training: Bool) -> Buffer {
        savedInput = input
        return convolve(input, epilogue: nil)
    }

    /// Inference forward pass of this convolution and the batch normalisation `norm` that follows it
    /// (with its fused ReLU, if any) in one: the normalisation's per-channel affine map is applied to
    /// each image's output while it is still in cache, which saves the normalisation's own pass over
    /// the whole batch. Keeps nothing for a backward pass.
    func forwardFolding(_ norm: BatchNorm, input: Buffer) -> Buffer {
        savedInput = nil
        let (scales, shifts) = norm.inferenceAffineMap()
        return convolve(input, epilogue: Epilogue(scales: scales, shifts: shifts, clampsAtZero: norm.fusedReLU))
    }

    /// A per-output-channel map `max?(scale · y + shift, 0)` applied to the convolution's output.
    private struct Epilogue {
        let scales: [Float], shifts: [Float]
        let clampsAtZero: Bool
    }

    private func convolve(_ input: Buffer, epilogue: Epilogue?) -> Buffer {
        let g = geometry(input.shape)
        output.reshape([g.batch, outChannels, g.outHeight, g.outWidth])
        let workers = workerCount(for: g.batch)
        workspace.prepare(workers: workers, columnCount: g.rows * g.outPixels, weightCount: 0)
        let pointwise = kernelHeight == 1 && kernelWidth == 1 && stride == 1 && padding == 0
        let outChannels = self.outChannels, weights = weight.value.pointer
        let biasValues = bias?.value.pointer
        let x = input.pointer, y = output.pointer, workspace = self.workspace
        parallelWorkers(g.batch) { worker, images in
            let columns = workspace.columns[worker].pointer
            for image in images {
                let source = x + image * g.channels * g.inPixels
                if !pointwise { Conv2d.im2col(g, image: source, columns: columns) }
                let target = y + image * outChannels * g.outPixels
                // One image's product [out, pixels] is already in NCHW order.
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outChannels), Int32(g.outPixels), Int32(g.rows),
                    1, weights, Int32(g.rows), pointwise ? source : columns, Int32(g.outPixels), 0, target, Int32(g.outPixels))
                for channel in 0..<outChannels where biasValues != nil || epilogue != nil {
                    let bias = biasValues?[channel] ?? 0
                    let scale = epilogue?.scales[channel] ?? 1, shift = (epilogue?.shifts[channel] ?? 0) + scale * bias
                    Conv2d.affine(target + channel * g.outPixels, count: g.outPixels, scale: scale, shift: shift,
                                  clampsAtZero: epilogue?.clampsAtZero ?? false)
                }
            }
        }
        return output
    }

    /// `values = max?(scale · values + shift, 0)` over one output channel of one image.
    @inline(__always)
    private static func affine(_ values: UnsafeMutablePointer<Float>, count: Int, scale: Float, shift: Float, clampsAtZero: Bool) {
        let scales = SIMD8<Float>(repeating: scale), shifts = SIMD8<Float>(repeating: shift)
        var index = 0
        while index + 8 <= count {
            var mapped = load8(values, index) * scales + shifts
            if clampsAtZero { mapped.replace(with: 0, where: mapped .< 0) }
            store8(mapped, values, index)
            index += 8
        }
        while index < count {
            let value = values[index] * scale + shift
            values[index] = clampsAtZero ? max(value, 0) : value
            index += 1
        }
    }

    override func backward(_ outputGradient: Buffer, spare: Buffer, needsInputGradient: Bool) -> Buffer? {
        guard let input = savedInput else { fatalError("Conv2d.backward before forward") }
        let g = geometry(input.shape)
        let workers = workerCount(for: g.batch)
        let weightCount = outChannels * g.rows
        workspace.prepare(workers: workers, columnCount: g.rows * g.outPixels, weightCount: weightCount)
        if needsInputGradient { spare.reshape(input.shape) }
        let outChannels = self.outChannels, workspace = self.workspace
        let x = input.pointer, dy = outputGradient.pointer, dx = spare.pointer
        let weights = weight.value.pointer, weightGradient = weight.gradient.pointer
        if let bias {
            let db = bias.gradient.pointer
            parallelRanges(outChannels) { channels in
                for channel in channels {
                    var total: Float = 0
                    for image in 0..<g.batch { total += sum(dy + (image * outChannels + channel) * g.outPixels, g.outPixels) }
                    db[channel] += total
                }
            }
        }
        parallelWorkers(g.batch) { worker, images in
            let columns = workspace.columns[worker].pointer
            // The first worker adds into the gradient; the others fill partial sums added at the end.
            let partial = worker == 0 ? weightGradient : workspace.weightGradients[worker].pointer
            if worker != 0 { partial.update(repeating: 0, count: weightCount) }
            for image in images {
                let source = x + image * g.channels * g.inPixels
                let gradient = dy + image * outChannels * g.outPixels
                Conv2d.im2col(g, image: source, columns: columns)
                // dW[out, rows] += dY[out, pixels] · columnsᵀ
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(outChannels), Int32(g.rows), Int32(g.outPixels),
                    1, gradient, Int32(g.outPixels), columns, Int32(g.outPixels), 1, partial, Int32(g.rows))
                guard needsInputGradient else { continue }
                // dColumns[rows, pixels] = Wᵀ · dY, then folded back onto the input pixels.
                cblas_sgemm(
                    CblasRowMajor, CblasTrans, CblasNoTrans, Int32(g.rows), Int32(g.outPixels), Int32(outChannels),
                    1, weights, Int32(g.rows), gradient, Int32(g.outPixels), 0, columns, Int32(g.outPixels))
                Conv2d.col2im(g, columns: columns, inputGradient: dx + image * g.channels * g.inPixels)
            }
        }
        for worker in 1..<max(workers, 1) {
            let partial = workspace.weightGradients[worker].pointer
            for index in 0..<weightCount { weightGradient[index] += partial[index] }
        }
        return needsInputGradient ? spare : nil
    }

    /// Lays out every receptive field of one image as a column of `columns[rows, outPixels]`, with
    /// zeros where the kernel overhangs the input.
    private static func im2col(_ g: Geometry, image source: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Float>) {
        if g.stride == 1 && g.outWidth == g.width {
            im2colSameWidth(g, image: source, columns: columns)
            return
        }
        for channel in 0..<g.channels {
            let plane = source + channel * g.inPixels
            for ky in 0..<g.kernelHeight {
                for kx in 0..<g.kernelWidth {
                    let row = (channel * g.kernelHeight + ky) * g.kernelWidth + kx
                    let target = columns + row * g.outPixels
                    let span = validSpan(g, offset: kx, extent: g.width, outExtent: g.outWidth)
                    for oy in 0..<g.outHeight {
                        let iy = oy * g.stride - g.padding + ky
                        let line = target + oy * g.outWidth
                        if iy < 0 || iy >= g.height || span.isEmpty {
                            line.update(repeating: 0, count: g.outWidth)
                            continue
                        }
                        if span.lowerBound > 0 { line.update(repeating: 0, count: span.lowerBound) }
                        if span.upperBound < g.outWidth {
                            (line + span.upperBound).update(repeating: 0, count: g.outWidth - span.upperBound)
                        }
                        let sourceLine = plane + iy * g.width - g.padding + kx
                        if g.stride == 1 {
                            (line + span.lowerBound).update(from: sourceLine + span.lowerBound, count: span.count)
                        } else {
                            for ox in span { line[ox] = sourceLine[ox * g.stride] }
                        }
                    }
                }
            }
        }
    }

    /// im2col for stride 1 with output rows as wide as input rows (the encoder's "same" 3×3
    /// convolutions): each kernel tap's column rows are one shifted contiguous copy of the input plane,
    /// after which the entries that wrapped around a row edge are reset to the padding's zeros.
    private static func im2colSameWidth(_ g: Geometry, image source: UnsafeMutablePointer<Float>, columns: UnsafeMutablePointer<Float>) {
        let width = g.width
        for channel in 0..<g.channels {
            let plane = source + channel * g.inPixels
            for ky in 0..<g.kernelHeight {
                let firstRow = max(0, g.padding - ky), endRow = min(g.outHeight, g.height + g.padding - ky)
                for kx in 0..<g.kernelWidth {
                    let row = (channel * g.kernelHeight + ky) * g.kernelWidth + kx
                    let target = columns + row * g.outPixels
                    guard firstRow < endRow else {
                        target.update(repeating: 0, count: g.outPixels)
                        continue
                    }
                    if firstRow > 0 { target.update(repeating: 0, count: firstRow * width) }
                    if endRow < g.outHeight { (target + endRow * width).update(repeating: 0, count: (g.outHeight - endRow) * width) }
                    let shift = kx - g.padding
                    let count = (endRow - firstRow) * width
                    let head = max(0, -shift), tail = max(0, shift)
                    let destination = target + firstRow * width
                    let origin = plane + (firstRow - g.padding + ky) * width + shift
                    if count - tail > head { (destination + head).update(from: origin + head, count: count - tail - head) }
                    // Output column ox reads input column ox + shift, which must lie in 0..<width.
                    let lowEdge = min(max(-shift, 0), width), highEdge = max(min(width - shift, width), 0)
                    for outRow in firstRow..<endRow {
                        let line = target + outRow * width
                        for column in 0..<lowEdge { line[column] = 0 }
                        for column in highEdge..<width { line[column] = 0 }
                    }
                }
            }
        }
    }

    /// Adds every column entry back onto the input pixel it was copied from (the adjoint of im2col),
    /// overwriting one image's input gradient.
    private static func col2im(_ g: Geometry, columns: UnsafeMutablePointer<Float>, inputGradient target: UnsafeMutablePointer<Float>) {
        target.update(repeating: 0, count: g.channels * g.inPixels)
        for channel in 0..<g.channels {
            let plane = target + channel * g.inPixels
            for ky in 0..<g.kernelHeight {
                for kx in 0..<g.kernelWidth {
                    let row = (channel * g.kernelHeight + ky) * g.kernelWidth + kx
                    let source = columns + row * g.outPixels
                    let span = validSpan(g, offset: kx, extent: g.width, outExtent: g.outWidth)
                    if span.isEmpty { continue }
                    for oy in 0..<g.outHeight {
                        let iy = oy * g.stride - g.padding + ky
                        if iy < 0 || iy >= g.height { continue }
                        let line = source + oy * g.outWidth
                        let targetLine = plane + iy * g.width - g.padding + kx
                        if g.stride == 1 {
                            for ox in span { targetLine[ox] += line[ox] }
                        } else {
                            for ox in span { targetLine[ox * g.stride] += line[ox] }
                        }
                    }
                }
            }
        }
    }

    /// Output positions whose kernel tap at `offset` lands inside the input (not in the padding).
    private static func validSpan(_ g: Geometry, offset: Int, extent: Int, outExtent: Int) -> Range<Int> {
        // Position o reads input index o·stride − padding + offset, which must lie in 0..<extent.
        let shift = g.padding - offset
        let lower = shift > 0 ? (shift + g.stride - 1) / g.stride : 0
        let upperInclusive = extent - 1 + shift
        let upper = upperInclusive < 0 ? 0 : min(outExtent, upperInclusive / g.stride + 1)
        return lower < upper ? lower..<upper : 0..<0
    }
}
