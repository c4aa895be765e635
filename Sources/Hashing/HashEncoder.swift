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
