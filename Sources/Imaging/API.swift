/// Image decoding, encoding and resampling.

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
    /// The media type for HTTP `Content-Type`.
    public var mimeType: String { self == .jpeg ? "image/jpeg" : "image/png" }
    /// The format from the leading magic bytes, or nil.
    public static func detect(_ bytes: [UInt8]) -> ImageFormat? {
        if bytes.starts(with: PNGHeader.signature) { return .png }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        return nil
    }
}

/// Limits that bound the memory and work a decode may take, whatever a client sends; the size
/// limits are checked against the header before any pixel buffer is allocated.
public struct DecodeLimits: Sendable {
    /// Largest encoded size accepted, in bytes.
    public var maxBytes: Int = 32 * 1024 * 1024
    /// Largest width × height accepted, as declared by the header.
    public var maxPixels: Int = 40_000_000
    /// Longest side accepted, in pixels. A 1×40,000,000 strip passes the pixel limit, but
    /// resizing it the whole-image way needs memory in proportion to its long side.
    public var maxSide: Int = 32_768
    /// Most memory libjpeg may use for whole-image buffers in one decode, in bytes: progressive
    /// and multi-scan JPEGs keep every DCT coefficient in memory until the last scan (about
    /// 3 bytes a pixel with 4:2:0 chroma, 6 without subsampling). Baseline files need no such
    /// buffer and only a few rows of working memory, which this does not count.
    public var maxDecoderMemoryBytes: Int = 256 * 1024 * 1024
    public init(maxBytes: Int = 32 * 1024 * 1024, maxPixels: Int = 40_000_000, maxSide: Int = 32_768,
                maxDecoderMemoryBytes: Int = 256 * 1024 * 1024) {
        self.maxBytes = maxBytes
        self.maxPixels = maxPixels
        self.maxSide = maxSide
        self.maxDecoderMemoryBytes = maxDecoderMemoryBytes
    }
}

/// Why an image could not be decoded.
public enum ImagingError: Error, Equatable, CustomStringConvertible {
    /// Not JPEG or PNG.
    case unsupportedFormat
    /// Encoded bytes over the limit.
    case tooManyBytes(size: Int, limit: Int)
    /// Declared dimensions over the pixel limit (a decompression bomb is refused here).
    case tooManyPixels(width: Int, height: Int, limit: Int)
    /// A declared side (width or height, after orientation) over the side limit.
    case sideTooLong(width: Int, height: Int, limit: Int)
    /// The decoder would need more memory than `DecodeLimits.maxDecoderMemoryBytes` (`limit`).
    case tooMuchMemory(width: Int, height: Int, limit: Int)
    /// The data is damaged or truncated; the library's message.
    case corrupt(String)
    public var description: String {
        switch self {
        case .unsupportedFormat:
            return "The data is not a JPEG or PNG image; send the image as JPEG or PNG."
        case let .tooManyBytes(size, limit):
            return "The image is \(size) bytes, over the limit of \(limit) bytes; send a smaller file or raise the byte limit."
        case let .tooManyPixels(width, height, limit):
            return "The image is \(width)×\(height) pixels, over the limit of \(limit) pixels; send a smaller image or raise the pixel limit."
        case let .sideTooLong(width, height, limit):
            return "The image is \(width)×\(height) pixels, and each side may be at most \(limit) pixels; crop or scale it down, or raise the side limit."
        case let .tooMuchMemory(width, height, limit):
            return "Decoding this \(width)×\(height) JPEG needs more than the decoder memory limit of \(limit) bytes (a progressive or multi-scan JPEG holds the whole image's coefficients while decoding); send it as a baseline JPEG or a smaller image, or raise the decoder memory limit."
        case let .corrupt(message):
            return "The image is damaged or truncated (\(message)); send the complete, undamaged file."
        }
    }
}

/// Header facts read without decoding pixels.
public struct ImageInfo: Equatable, Sendable {
    /// The file's encoding.
    public var format: ImageFormat
    /// Width as decoded, that is after EXIF orientation (orientations 5–8 swap the sides).
    public var width: Int
    /// Height as decoded, that is after EXIF orientation.
    public var height: Int
}

/// Decodes JPEG and PNG into 8-bit RGB, applying EXIF orientation, compositing alpha on white.
/// Both decoders work a row at a time; `thumbnail` never holds the whole image.
///
/// Damage policy: a file that ends early (JPEG data running out, a missing EOI, a PNG chunk cut
/// short) or fails a PNG CRC is `.corrupt`; damage libjpeg can step over inside complete data
/// (a bad Huffman code, extraneous bytes before a marker) is tolerated as libjpeg intends. A damaged
/// or unreadable EXIF block is ignored. A JPEG with more than 1,000 progressive scans is refused.
public enum ImageDecoder {
    /// Format and decoded dimensions from the header alone, with the byte, pixel and side limits applied.
    public static func info(_ bytes: [UInt8], limits: DecodeLimits = DecodeLimits()) throws -> ImageInfo {
        try Decoding.header(bytes, limits: limits).info
    }
    /// The whole image as 8-bit RGB; limits are checked before any pixel buffer is allocated.
    public static func decode(_ bytes: [UInt8], limits: DecodeLimits = DecodeLimits()) throws -> RGBImage {
        try Decoding.decode(bytes, limits: limits)
    }
    /// The image (after orientation) area-averaged to `width`×`height`, exactly as
    /// `decode(bytes, limits:).resized(width:height:)` returns it, but decoded a row at a time:
    /// memory is the thumbnail plus one row and the decoder's own state, whatever the image's
    /// size or aspect ratio. This is the path for untrusted uploads.
    public static func thumbnail(_ bytes: [UInt8], width: Int, height: Int,
                                 limits: DecodeLimits = DecodeLimits()) throws -> RGBImage {
        try Decoding.thumbnail(bytes, width: width, height: height, limits: limits)
    }
}

/// Encoders, for thumbnails, tests and importing raw datasets through the normal pipeline.
public enum ImageEncoder {
    /// A lossless 8-bit RGB PNG.
    public static func png(_ image: RGBImage) throws -> [UInt8] {
        try Encoding.png(image)
    }
    /// A baseline (or progressive) YCbCr JPEG; `quality` runs from 1 to 100.
    public static func jpeg(_ image: RGBImage, quality: Int = 90, progressive: Bool = false) throws -> [UInt8] {
        try Encoding.jpeg(image, quality: quality, progressive: progressive)
    }
}

extension RGBImage {
    /// The image resampled to `width`×`height` by area averaging (box filter; also correct when
    /// enlarging). Needs the whole source image; for uploads, `ImageDecoder.thumbnail` streams.
    public func resized(width: Int, height: Int) -> RGBImage {
        Resampling.areaAverage(self, width: width, height: height)
    }
    /// A grayscale image (one byte per pixel) replicated to RGB.
    public init(gray: [UInt8], width: Int, height: Int) {
        precondition(width >= 0 && height >= 0 && gray.count == width * height,
                     "gray holds \(gray.count) bytes, not width×height = \(width)×\(height)")
        var pixels = [UInt8](repeating: 0, count: gray.count * 3)
        for (index, value) in gray.enumerated() {
            pixels[3 * index] = value
            pixels[3 * index + 1] = value
            pixels[3 * index + 2] = value
        }
        self.init(width: width, height: height, pixels: pixels)
    }
}
