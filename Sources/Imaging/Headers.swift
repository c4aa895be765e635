/// Header parsing in Swift: dimensions and EXIF orientation are read here, before libjpeg or
/// libpng see the data, so that limits are enforced before either library allocates anything.

/// The facts decoding needs from a file's header.
struct ImageHeader {
    var format: ImageFormat
    /// Dimensions as stored in the file, before orientation.
    var storedWidth: Int
    var storedHeight: Int
    var orientation: ExifOrientation

    /// Dimensions as decoded, after orientation.
    var info: ImageInfo {
        orientation.swapsSides
            ? ImageInfo(format: format, width: storedHeight, height: storedWidth)
            : ImageInfo(format: format, width: storedWidth, height: storedHeight)
    }

    /// A ceiling under any configured pixel limit, so that buffer sizes (4 bytes a pixel while
    /// decoding) can never overflow whatever limit a caller sets.
    static let absolutePixelLimit = 1 << 40

    /// Reads the header of `bytes` and applies the byte, pixel and side limits.
    static func read(_ bytes: [UInt8], limits: DecodeLimits) throws -> ImageHeader {
        guard bytes.count <= limits.maxBytes else {
            throw ImagingError.tooManyBytes(size: bytes.count, limit: limits.maxBytes)
        }
        let header: ImageHeader
        switch ImageFormat.detect(bytes) {
        case .png?: header = try PNGHeader.read(bytes)
        case .jpeg?: header = try JPEGHeader.read(bytes)
        case nil: throw ImagingError.unsupportedFormat
        }
        let limit = min(limits.maxPixels, absolutePixelLimit)
        let (pixels, overflow) = header.storedWidth.multipliedReportingOverflow(by: header.storedHeight)
        if overflow || pixels > limit {
            let info = header.info
            throw ImagingError.tooManyPixels(width: info.width, height: info.height, limit: limit)
        }
        // Checked after the pixel limit so that an image too big both ways keeps reporting
        // its pixel count, the more fundamental of the two refusals.
        if header.storedWidth > limits.maxSide || header.storedHeight > limits.maxSide {
            let info = header.info
            throw ImagingError.sideTooLong(width: info.width, height: info.height, limit: limits.maxSide)
        }
        return header
    }
}

/// Big-endian reads that return nil instead of trapping past the end.
extension Array where Element == UInt8 {
    func bigEndian16(at offset: Int) -> Int? {
        guard offset >= 0, offset + 2 <= count else { return nil }
        return Int(self[offset]) << 8 | Int(self[offset + 1])
    }
    func bigEndian32(at offset: Int) -> Int? {
        guard offset >= 0, offset + 4 <= count else { return nil }
        return Int(self[offset]) << 24 | Int(self[offset + 1]) << 16 | Int(self[offset + 2]) << 8 | Int(self[offset + 3])
    }
}

/// The PNG signature and IHDR chunk.
enum PNGHeader {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// IHDR must be the first chunk: signature (8), length (4), type (4), then width and height.
    static func read(_ bytes: [UInt8]) throws -> ImageHeader {
        guard let length = bytes.bigEndian32(at: 8), let width = bytes.bigEndian32(at: 16),
              let height = bytes.bigEndian32(at: 20), bytes.count >= 24 + 5 else {
            throw ImagingError.corrupt("PNG ends inside its IHDR header")
        }
        guard length == 13, Array(bytes[12..<16]) == Array("IHDR".utf8) else {
            throw ImagingError.corrupt("PNG does not start with an IHDR chunk")
        }
        // The PNG specification caps each side at 2^31 − 1.
        guard (1...0x7FFF_FFFF).contains(width), (1...0x7FFF_FFFF).contains(height) else {
            throw ImagingError.corrupt("PNG declares an invalid size \(width)x\(height)")
        }
        return ImageHeader(format: .png, storedWidth: width, storedHeight: height, orientation: .up)
    }
}

/// The JPEG marker walk up to the first scan: frame size and EXIF orientation.
enum JPEGHeader {
    /// Start-of-frame markers (every coding process; C4, C8 and CC are other markers).
    static let startOfFrame: Set<UInt8> = [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7,
                                           0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF]

    static func read(_ bytes: [UInt8]) throws -> ImageHeader {
        var size: (width: Int, height: Int)?
        var orientation: ExifOrientation?
        var offset = 2
        // Walk the marker segments until the first scan; past the frame header any damage
        // only ends the walk, since the frame size is all `info` promises.
        walk: while offset < bytes.count {
            // Like libjpeg, step over stray bytes between segments to the next marker.
            while offset < bytes.count, bytes[offset] != 0xFF { offset += 1 }
            while offset < bytes.count, bytes[offset] == 0xFF { offset += 1 }
            guard offset < bytes.count else { break }
            let marker = bytes[offset]
            offset += 1
            switch marker {
            case 0x01, 0xD0...0xD8: continue walk  // standalone markers carry no length
            case 0xD9, 0xDA: break walk            // end of image, start of scan
            default: break
            }
            guard let length = bytes.bigEndian16(at: offset), length >= 2,
                  offset + length <= bytes.count else {
                if size != nil { break walk }
                throw ImagingError.corrupt("JPEG ends inside a marker segment")
            }
            if startOfFrame.contains(marker), size == nil {
                guard length >= 8, let height = bytes.bigEndian16(at: offset + 3),
                      let width = bytes.bigEndian16(at: offset + 5) else {
                    throw ImagingError.corrupt("JPEG frame header is too short")
                }
                guard width > 0, height > 0 else {
                    throw ImagingError.corrupt("JPEG frame declares a zero size, which is not supported")
                }
                size = (width, height)
            } else if marker == 0xE1, orientation == nil {
                orientation = ExifOrientation(app1: bytes[(offset + 2)..<(offset + length)])
            }
            offset += length
        }
        guard let size else {
            throw ImagingError.corrupt("JPEG has no frame header before its image data")
        }
        return ImageHeader(format: .jpeg, storedWidth: size.width, storedHeight: size.height,
                           orientation: orientation ?? .up)
    }
}
