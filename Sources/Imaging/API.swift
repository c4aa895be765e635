/// Image decoding, encoding and resampling (API contract; implementation pending).

/// An 8-bit RGB image, pixels row-major and interleaved (r, g, b).
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]
    public init(width: Int, height: Int, pixels: [UInt8]) { self.width = width; self.height = height; self.pixels = pixels }
}

/// The encoded formats we decode.
public enum ImageFormat: String, Sendable {
    case jpeg, png
    public var mimeType: String { self == .jpeg ? "image/jpeg" : "image/png" }
    /// The format from the leading magic bytes, or nil.
    public static func detect(_ bytes: [UInt8]) -> ImageFormat? { fatalError("pending") }
}

/// Limits checked before any pixel buffer is allocated.
public struct DecodeLimits: Sendable {
    public var maxBytes: Int = 32 * 1024 * 1024
    public var maxPixels: Int = 40_000_000
    public init(maxBytes: Int = 32 * 1024 * 1024, maxPixels: Int = 40_000_000) { self.maxBytes = maxBytes; self.maxPixels = maxPixels }
}

/// Why an image could not be decoded.
public enum ImagingError: Error, Equatable, CustomStringConvertible {
    /// Not JPEG or PNG.
    case unsupportedFormat
    /// Encoded bytes over the limit.
    case tooManyBytes(size: Int, limit: Int)
    /// Declared dimensions over the pixel limit (a decompression bomb is refused here).
    case tooManyPixels(width: Int, height: Int, limit: Int)
    /// The data is damaged or truncated; the library's message.
    case corrupt(String)
    public var description: String { fatalError("pending") }
}

/// Header facts read without decoding pixels.
public struct ImageInfo: Equatable, Sendable {
    public var format: ImageFormat
    public var width: Int
    public var height: Int
}

/// Decodes JPEG and PNG into 8-bit RGB, applying EXIF orientation, compositing alpha on white.
public enum ImageDecoder {
    public static func info(_ bytes: [UInt8], limits: DecodeLimits = DecodeLimits()) throws -> ImageInfo { fatalError("pending") }
    public static func decode(_ bytes: [UInt8], limits: DecodeLimits = DecodeLimits()) throws -> RGBImage { fatalError("pending") }
}

/// Encoders, for thumbnails, tests and importing raw datasets through the normal pipeline.
public enum ImageEncoder {
    public static func png(_ image: RGBImage) throws -> [UInt8] { fatalError("pending") }
    public static func jpeg(_ image: RGBImage, quality: Int = 90, progressive: Bool = false) throws -> [UInt8] { fatalError("pending") }
}

extension RGBImage {
    /// The image resampled to `width`×`height` by area averaging (box filter; also correct when enlarging).
    public func resized(width: Int, height: Int) -> RGBImage { fatalError("pending") }
    /// A grayscale image (one byte per pixel) replicated to RGB.
    public init(gray: [UInt8], width: Int, height: Int) { fatalError("pending") }
}
