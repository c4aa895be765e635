import Foundation

/// Something that turns thumbnails into binary codes. LSH, ITQ and DSCH all sit behind it, so the
/// service never knows which kind of model is active.
public protocol HashEncoder: Sendable {
    /// The model kind stored in the `models` table; `EncoderRegistry` loads and trains it.
    var kind: ModelKind { get }
    /// Code length in bits.
    var bits: Int { get }
    /// Thumbnail side the encoder expects (input is `inputSize`×`inputSize` RGB, 8-bit, interleaved).
    var inputSize: Int { get }
    /// Real-valued outputs whose signs are the code, one row of `bits` floats per image.
    func encode(thumbnails: [[UInt8]]) -> [[Float]]
    /// The serialised model, loadable by the kind's `load`.
    func serialized() throws -> [UInt8]
}

/// Why an encoder could not be built or loaded.
public enum HashEncoderError: Error, CustomStringConvertible {
    case badModelData(String)
    case unknownKind(String)
    public var description: String {
        switch self {
        case .badModelData(let why): return "model data is unusable: \(why)"
        case .unknownKind(let kind): return "unknown model kind '\(kind)'"
        }
    }
}

/// Thumbnails as centred float features: each byte scaled to [0, 1], minus 0.5.
public func centredPixelFeatures(_ thumbnail: [UInt8]) -> [Float] {
    thumbnail.map { Float($0) / 255 - 0.5 }
}

/// Thumbnails per matrix product in `linearHashOutputs`: large enough for an efficient product, small
/// enough that the feature matrix stays near 24 MiB at 32×32 pixels.
let linearEncodingChunk = 2_048

/// The outputs of a linear hash (LSH, ITQ): the centred pixel features of `linearEncodingChunk`
/// thumbnails at a time as a row-major matrix, handed to `project`, which returns `count×bits` outputs.
/// Every thumbnail must hold `inputSize²×3` bytes.
func linearHashOutputs(
    thumbnails: [[UInt8]], inputSize: Int, bits: Int, project: (_ features: [Float], _ count: Int) -> [Float]
) -> [[Float]] {
    let dimension = inputSize * inputSize * 3
    var result: [[Float]] = []
    result.reserveCapacity(thumbnails.count)
    var start = 0
    while start < thumbnails.count {
        let end = min(start + linearEncodingChunk, thumbnails.count)
        var features = [Float]()
        features.reserveCapacity((end - start) * dimension)
        for thumbnail in thumbnails[start..<end] {
            precondition(thumbnail.count == dimension, "thumbnail has \(thumbnail.count) bytes, expected \(dimension)")
            features.append(contentsOf: centredPixelFeatures(thumbnail))
        }
        let outputs = project(features, end - start)
        for row in 0..<(end - start) { result.append(Array(outputs[(row * bits)..<((row + 1) * bits)])) }
        start = end
    }
    return result
}
