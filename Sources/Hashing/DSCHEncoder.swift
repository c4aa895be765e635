import Foundation
import NeuralNet

/// Networks of one trained model for concurrent callers: a `Sequential` keeps per-call state, so every
/// caller borrows a replica of its own and returns it afterwards.
final class NetworkPool: @unchecked Sendable {
    let configuration: EncoderConfiguration
    /// The network's parameters and statistics (`Sequential.serialized()`), from which replicas are built.
    let weights: [UInt8]
    private let lock = NSLock()
    private var idle: [Sequential] = []

    init(configuration: EncoderConfiguration, weights: [UInt8]) throws {
        self.configuration = configuration
        self.weights = weights
        idle.append(try makeNetwork())
    }

    private func makeNetwork() throws -> Sequential {
        let network = try Sequential.dschEncoder(configuration, seed: 0)
        try network.load(from: weights)
        network.mode = .inference
        return network
    }

    /// Runs `body` with a network no other caller is using.
    func withNetwork<Result>(_ body: (Sequential) throws -> Result) throws -> Result {
        lock.lock()
        let borrowed = idle.popLast()
        lock.unlock()
        let network = try borrowed ?? makeNetwork()
        defer {
            lock.lock()
            idle.append(network)
            lock.unlock()
        }
        return try body(network)
    }
}

/// Trained network, an optional projection of its outputs, and sign, behind HashEncoder (kind "dsch");
/// safe to call `encode` from several threads.
public struct DSCHEncoder: HashEncoder {
    public let kind = ModelKind.dsch
    public var bits: Int { projection?.bits ?? configuration.bits }
    public var inputSize: Int { configuration.inputSize }
    /// The network's architecture; its `bits` is the width of the network's output.
    public let configuration: EncoderConfiguration
    /// The iterative-quantisation map from the network's outputs to the code, fitted on the training
    /// images' outputs; nil when the signs of the outputs are the code.
    public let projection: ITQProjection?
    /// Whether a code is the sign of the mean of the outputs for the image and its mirror image, so that
    /// an image and its mirror image get the same code (twice the encoding work).
    public let averagesMirrorImages: Bool
    private let pool: NetworkPool

    /// Images per forward pass when encoding: large enough to keep both cores busy, small enough to
    /// keep activations in a few tens of megabytes.
    static let encodingBatch = 256

    /// Wraps a trained network (copied: later changes to `network` do not reach the encoder) and the
    /// projection of its outputs, whose dimension must be the network's output width.
    public init(
        network: Sequential, configuration: EncoderConfiguration, averagesMirrorImages: Bool = false, projection: ITQProjection? = nil
    ) throws {
        if let projection, projection.dimension != configuration.bits || projection.bits < 1 || projection.bits > projection.dimension {
            throw HashEncoderError.badModelData(
                "a projection of \(projection.dimension) values to \(projection.bits) bits does not fit a network of \(configuration.bits) outputs")
        }
        self.init(
            pool: try NetworkPool(configuration: configuration, weights: network.serialized()), averagesMirrorImages: averagesMirrorImages,
            projection: projection)
    }

    private init(pool: NetworkPool, averagesMirrorImages: Bool, projection: ITQProjection?) {
        configuration = pool.configuration
        self.averagesMirrorImages = averagesMirrorImages
        self.projection = projection
        self.pool = pool
    }

    /// The same network with its outputs projected to `bits` by iterative quantisation fitted on the
    /// outputs for `thumbnails` (the training images), replacing any projection it had.
    public func projected(toBits bits: Int, fittedOn thumbnails: [[UInt8]]) throws -> DSCHEncoder {
        let size = inputSize
        let outputs = try pool.withNetwork { network in
            try DSCHEncoder.forward(network, thumbnails: thumbnails, size: size, averagingMirrorImages: averagesMirrorImages)
        }
        let projection = try ITQProjection.train(features: outputs, count: thumbnails.count, dimension: configuration.bits, bits: bits)
        return DSCHEncoder(pool: pool, averagesMirrorImages: averagesMirrorImages, projection: projection)
    }

    /// The tanh outputs of the network in inference mode (averaged with the mirror image's when
    /// `averagesMirrorImages`), projected when there is a projection: one row of `bits` per thumbnail.
    public func encode(thumbnails: [[UInt8]]) -> [[Float]] {
        let size = inputSize, bits = self.bits
        for (index, thumbnail) in thumbnails.enumerated() {
            precondition(thumbnail.count == size * size * 3, "thumbnail \(index) has \(thumbnail.count) bytes, expected \(size * size * 3)")
        }
        guard !thumbnails.isEmpty else { return [] }
        do {
            var output = try pool.withNetwork { network in
                try DSCHEncoder.forward(network, thumbnails: thumbnails, size: size, averagingMirrorImages: averagesMirrorImages)
            }
            if let projection { output = projection.apply(features: output, count: thumbnails.count) }
            return (0..<thumbnails.count).map { Array(output[($0 * bits)..<(($0 + 1) * bits)]) }
        } catch {
            // Shapes were checked above and the network was loaded at construction, so a failure here
            // is a defect, not bad input.
            preconditionFailure("DSCH encoder failed on checked input: \(error)")
        }
    }

    /// The network's outputs for thumbnails without augmentation (averaged with those of their mirror
    /// images when `averagingMirrorImages`), row after row, computed `encodingBatch` images at a time so
    /// that memory stays bounded for any count.
    static func forward(_ network: Sequential, thumbnails: [[UInt8]], size: Int, averagingMirrorImages: Bool = false) throws -> [Float] {
        var output: [Float] = []
        var start = 0
        while start < thumbnails.count {
            let end = min(start + encodingBatch, thumbnails.count)
            let shape = [end - start, 3, size, size]
            let batch = Augmentation.batchTensor(thumbnails: Array(thumbnails[start..<end]), size: size)
            var batchOutput = try network.forward(Tensor(shape: shape, storage: batch)).storage
            if averagingMirrorImages {
                let mirrored = try network.forward(Tensor(shape: shape, storage: Augmentation.horizontallyFlipped(batch, size: size))).storage
                for index in batchOutput.indices { batchOutput[index] = (batchOutput[index] + mirrored[index]) * 0.5 }
            }
            output += batchOutput
            start = end
        }
        return output
    }

    private static let magic: [UInt8] = Array("DSCH".utf8)
    /// Version 1 had no flags word; it is still read (as an encoder without the code batch norm). Version
    /// 2 has no projection, and is still written for an encoder without one, so that earlier builds read it.
    private static let formatVersion = 3
    private static let unprojectedFormatVersion = 2

    /// The bits of the header's flags word.
    private enum Flags {
        static let codeBatchNorm = 1
        static let mirrorAveraging = 2
        /// A projection block (code bits, mean, projection matrix) sits between the header and the network.
        static let projected = 4
        /// The head grid side sits in bits 8–15.
        static let headGridShift = 8
        static let headGridMask = 0xff
    }

    /// Binary layout: "DSCH", little-endian UInt32 format version, the network's output width,
    /// inputSize, the three widths, hidden width, flags (bit 0: code batch norm; bit 1: codes average the
    /// mirror image's outputs; bit 2: projected; bits 8–15: head grid side, 0 read as 1); when projected,
    /// UInt32 code bits, then Float32 mean (output width) and projection (output width × code bits); then
    /// the network file (`Sequential.serialized()`, which carries its own checksum).
    public func serialized() throws -> [UInt8] {
        var file = ModelFileWriter(DSCHEncoder.magic)
        let flags = (configuration.codeBatchNorm ? Flags.codeBatchNorm : 0) | (averagesMirrorImages ? Flags.mirrorAveraging : 0)
            | (projection != nil ? Flags.projected : 0) | min(configuration.headGrid, Flags.headGridMask) << Flags.headGridShift
        let version = projection == nil ? DSCHEncoder.unprojectedFormatVersion : DSCHEncoder.formatVersion
        let header = [version, configuration.bits, inputSize] + configuration.widths + [configuration.hiddenWidth, flags]
        for value in header { file.append(value) }
        if let projection {
            file.append(projection.bits)
            file.append(projection.mean)
            file.append(projection.projection)
        }
        file.append(bytes: pool.weights)
        return file.bytes
    }

    /// Rebuilds an encoder from `serialized()`.
    public static func load(_ data: [UInt8]) throws -> DSCHEncoder {
        guard data.count > 4 + 8 * 4, Array(data[0..<4]) == magic else {
            throw HashEncoderError.badModelData("DSCH model does not start with the DSCH header")
        }
        var reader = ModelFileReader(data)
        let configuration: EncoderConfiguration
        let flags: Int
        var projection: ITQProjection?
        do {
            _ = try reader.bytes(magic.count)
            let version = try reader.int()
            guard (1...formatVersion).contains(version) else {
                throw HashEncoderError.badModelData("DSCH model format version \(version); this build reads versions 1 to \(formatVersion)")
            }
            let bits = try reader.int(), inputSize = try reader.int()
            let widths = [try reader.int(), try reader.int(), try reader.int()]
            let hiddenWidth = try reader.int()
            flags = version == 1 ? 0 : try reader.int()
            configuration = EncoderConfiguration(
                bits: bits, widths: widths, hiddenWidth: hiddenWidth, inputChannels: 3, inputSize: inputSize,
                codeBatchNorm: flags & Flags.codeBatchNorm != 0, headGrid: max(1, (flags >> Flags.headGridShift) & Flags.headGridMask))
            if version >= 3 && flags & Flags.projected != 0 {
                let codeBits = try reader.int()
                // Checked before reading, so that a hostile header cannot ask for more floats than follow.
                guard codeBits >= 1, codeBits <= bits, bits <= reader.remaining / 4 / (codeBits + 1) else {
                    throw HashEncoderError.badModelData(
                        "DSCH projection of \(bits) outputs to \(codeBits) bits does not fit the \(reader.remaining) bytes that follow")
                }
                let mean = try reader.floats(bits)
                projection = ITQProjection(
                    dimension: bits, bits: codeBits, mean: mean, projection: try reader.floats(bits * codeBits), quantizationLossHistory: [])
            }
        } catch let error as ModelFileError {
            throw HashEncoderError.badModelData("DSCH header: \(error)")
        }
        // The header's sizes decide what building the network allocates: the network file after the
        // header must hold at least its weights before anything is built. (Without a weight count the
        // sizes are invalid, and building the network below says how.)
        let networkBytes = reader.remaining
        if let weightCount = configuration.weightCount, weightCount > networkBytes / 4 {
            throw HashEncoderError.badModelData(
                "DSCH header (bits \(configuration.bits), widths \(configuration.widths), hidden \(configuration.hiddenWidth), "
                    + "input \(configuration.inputSize)) describes a network larger than the \(networkBytes) bytes that follow it")
        }
        do {
            let network = try Sequential.dschEncoder(configuration, seed: 0)
            try network.load(from: Array(reader.rest()))
            return try DSCHEncoder(
                network: network, configuration: configuration, averagesMirrorImages: flags & Flags.mirrorAveraging != 0, projection: projection)
        } catch let error as NeuralNetError {
            throw HashEncoderError.badModelData("DSCH network: \(error)")
        }
    }
}
