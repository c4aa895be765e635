import CBLAS

/// 2-D convolution over NCHW input by im2col and one matrix product per group of images.
///
/// Weights are `[out, in, kernelHeight, kernelWidth]`. Images are processed in groups sized so that
/// the column matrix stays near `columnBudget` floats: the products stay large enough for OpenBLAS
/// to run at full speed while the scratch memory stays bounded whatever the batch size.
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

    /// Floats of im2col scratch a group of images may use (16 MiB).
    static let columnBudget = 4 << 20

    private var savedInput: Buffer?
    private let output = Buffer()

    /// A convolution with He-initialised weights drawn from `generator` and a zero bias.
    public init(
        inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
        bias: Bool = true, generator: inout SeededGenerator
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

    private func groupSize(_ g: Geometry) -> Int {
        max(1, min(g.batch, Conv2d.columnBudget / max(g.rows * g.outPixels, 1)))
    }

    override func forward(_ input: Buffer, training: Bool) -> Buffer {
        let g = geometry(input.shape)
        savedInput = input
        output.reshape([g.batch, outChannels, g.outHeight, g.outWidth])
        let group = groupSize(g)
        let columns = workspace.columns, product = workspace.product
        columns.reshape([g.rows * group * g.outPixels])
        product.reshape([outChannels * group * g.outPixels])
        let pointwise = kernelHeight == 1 && kernelWidth == 1 && stride == 1 && padding == 0
        var first = 0
        while first < g.batch {
            let images = min(group, g.batch - first)
            let length = images * g.outPixels
            let source: UnsafePointer<Float>
            if pointwise && images == 1 {
                source = UnsafePointer(input.pointer + first * g.channels * g.inPixels)
            } else {
                im2col(g, input: input.pointer, first: first, images: images, columns: columns.pointer)
                source = UnsafePointer(columns.pointer)
            }
            // A single image's product is already in NCHW order, so write it in place.
            let target = images == 1 ? output.pointer + first * outChannels * g.outPixels : product.pointer
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outChannels), Int32(length), Int32(g.rows),
                1, weight.value.pointer, Int32(g.rows), source, Int32(length), 0, target, Int32(length))
            if images > 1 {
                scatter(product.pointer, into: output.pointer, first: first, images: images, pixels: g.outPixels)
            }
            first += images
        }
        if let bias {
            let b = bias.value.pointer, out = output.pointer, pixels = g.outPixels, channels = outChannels
            parallelRanges(g.batch) { range in
                for image in range {
                    for channel in 0..<channels {
                        let row = out + (image * channels + channel) * pixels
                        let value = b[channel]
                        for index in 0..<pixels { row[index] += value }
                    }
                }
            }
        }
        return output
    }

    override func backward(_ outputGradient: Buffer, spare: Buffer, needsInputGradient: Bool) -> Buffer? {
        guard let input = savedInput else { fatalError("Conv2d.backward before forward") }
        let g = geometry(input.shape)
        let group = groupSize(g)
        let columns = workspace.columns, product = workspace.product
        columns.reshape([g.rows * group * g.outPixels])
        product.reshape([outChannels * group * g.outPixels])
        if needsInputGradient { spare.reshape(input.shape) }
        if let bias {
            let db = bias.gradient.pointer, grad = outputGradient.pointer
            for image in 0..<g.batch {
                for channel in 0..<outChannels {
                    db[channel] += sum(grad + (image * outChannels + channel) * g.outPixels, g.outPixels)
                }
            }
        }
        var first = 0
        while first < g.batch {
            let images = min(group, g.batch - first)
            let length = images * g.outPixels
            let gradient: UnsafeMutablePointer<Float>
            if images == 1 {
                gradient = outputGradient.pointer + first * outChannels * g.outPixels
            } else {
                gather(outputGradient.pointer, into: product.pointer, first: first, images: images, pixels: g.outPixels)
                gradient = product.pointer
            }
            im2col(g, input: input.pointer, first: first, images: images, columns: columns.pointer)
            // dW[out, rows] += dY[out, length] · columnsᵀ
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(outChannels), Int32(g.rows), Int32(length),
                1, gradient, Int32(length), columns.pointer, Int32(length), 1, weight.gradient.pointer, Int32(g.rows))
            if needsInputGradient {
                // dColumns[rows, length] = Wᵀ · dY, then folded back onto the input pixels.
                cblas_sgemm(
                    CblasRowMajor, CblasTrans, CblasNoTrans, Int32(g.rows), Int32(length), Int32(outChannels),
                    1, weight.value.pointer, Int32(g.rows), gradient, Int32(length), 0, columns.pointer, Int32(length))
                col2im(g, columns: columns.pointer, first: first, images: images, inputGradient: spare.pointer)
            }
            first += images
        }
        return needsInputGradient ? spare : nil
    }

    /// Moves a `[out, images · pixels]` product into NCHW order.
    private func scatter(
        _ product: UnsafeMutablePointer<Float>, into output: UnsafeMutablePointer<Float>,
        first: Int, images: Int, pixels: Int
    ) {
        let channels = outChannels
        parallelRanges(images) { range in
            for image in range {
                for channel in 0..<channels {
                    (output + ((first + image) * channels + channel) * pixels)
                        .update(from: product + (channel * images + image) * pixels, count: pixels)
                }
            }
        }
    }

    /// Moves NCHW gradients of a group of images into a `[out, images · pixels]` matrix.
    private func gather(
        _ gradient: UnsafeMutablePointer<Float>, into product: UnsafeMutablePointer<Float>,
        first: Int, images: Int, pixels: Int
    ) {
        let channels = outChannels
        parallelRanges(images) { range in
            for image in range {
                for channel in 0..<channels {
                    (product + (channel * images + image) * pixels)
                        .update(from: gradient + ((first + image) * channels + channel) * pixels, count: pixels)
                }
            }
        }
    }

    /// Lays out every receptive field of images `first..<first+images` as a column of
    /// `columns[rows, images · outPixels]`, with zeros where the kernel overhangs the padding.
    private func im2col(
        _ g: Geometry, input: UnsafeMutablePointer<Float>, first: Int, images: Int,
        columns: UnsafeMutablePointer<Float>
    ) {
        let length = images * g.outPixels
        parallelRanges(images) { range in
            for image in range {
                let source = input + (first + image) * g.channels * g.inPixels
                for channel in 0..<g.channels {
                    let plane = source + channel * g.inPixels
                    for ky in 0..<g.kernelHeight {
                        for kx in 0..<g.kernelWidth {
                            let row = (channel * g.kernelHeight + ky) * g.kernelWidth + kx
                            let target = columns + row * length + image * g.outPixels
                            let span = Conv2d.validSpan(g, offset: kx, extent: g.width, outExtent: g.outWidth)
                            for oy in 0..<g.outHeight {
                                let iy = oy * g.stride - g.padding + ky
                                let line = target + oy * g.outWidth
                                if iy < 0 || iy >= g.height {
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
        }
    }

    /// Adds every column entry back onto the input pixel it was copied from (the adjoint of im2col).
    private func col2im(
        _ g: Geometry, columns: UnsafeMutablePointer<Float>, first: Int, images: Int,
        inputGradient: UnsafeMutablePointer<Float>
    ) {
        let length = images * g.outPixels
        parallelRanges(images) { range in
            for image in range {
                let target = inputGradient + (first + image) * g.channels * g.inPixels
                target.update(repeating: 0, count: g.channels * g.inPixels)
                for channel in 0..<g.channels {
                    let plane = target + channel * g.inPixels
                    for ky in 0..<g.kernelHeight {
                        for kx in 0..<g.kernelWidth {
                            let row = (channel * g.kernelHeight + ky) * g.kernelWidth + kx
                            let source = columns + row * length + image * g.outPixels
                            let span = Conv2d.validSpan(g, offset: kx, extent: g.width, outExtent: g.outWidth)
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
