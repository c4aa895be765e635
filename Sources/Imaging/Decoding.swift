import CJPEG
import CPNG

/// Runs the C decoders; buffers are sized from the already limit-checked header.
enum Decoding {
    static func header(_ bytes: [UInt8], limits: DecodeLimits) throws -> ImageHeader {
        try ImageHeader.read(bytes, limits: limits)
    }

    static func decode(_ bytes: [UInt8], limits: DecodeLimits) throws -> RGBImage {
        let header = try ImageHeader.read(bytes, limits: limits)
        let stored: RGBImage
        switch header.format {
        case .jpeg: stored = try decodeJPEG(bytes, width: header.storedWidth, height: header.storedHeight)
        case .png: stored = try decodePNG(bytes, width: header.storedWidth, height: header.storedHeight)
        }
        return header.orientation.apply(to: stored)
    }

    private static func decodeJPEG(_ bytes: [UInt8], width: Int, height: Int) throws -> RGBImage {
        var message = [CChar](repeating: 0, count: Int(DSCH_JPEG_MESSAGE_CAPACITY))
        var status: Int32 = 0
        // No zero fill: libjpeg writes every byte on success, and on failure the array is dropped.
        let pixels = [UInt8](unsafeUninitializedCapacity: width * height * 3) { output, initialized in
            status = bytes.withUnsafeBufferPointer { data in
                dsch_jpeg_decode(data.baseAddress, UInt(data.count), output.baseAddress,
                                 UInt32(width), UInt32(height), &message)
            }
            initialized = output.count
        }
        guard status == 0 else { throw ImagingError.corrupt(text(message)) }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    private static func decodePNG(_ bytes: [UInt8], width: Int, height: Int) throws -> RGBImage {
        let count = width * height
        var message = [CChar](repeating: 0, count: Int(DSCH_PNG_MESSAGE_CAPACITY))
        var hasAlpha: Int32 = 0
        var status: Int32 = 0
        // No zero fill: libpng writes every byte it is asked for, and on failure the array is dropped.
        var pixels = [UInt8](unsafeUninitializedCapacity: count * 4) { output, initialized in
            status = bytes.withUnsafeBufferPointer { data in
                dsch_png_decode(data.baseAddress, data.count, output.baseAddress,
                                png_uint_32(width), png_uint_32(height), &hasAlpha, &message)
            }
            initialized = output.count
        }
        guard status == 0 else { throw ImagingError.corrupt(text(message)) }
        guard hasAlpha != 0 else {
            pixels.removeLast(count)
            return RGBImage(width: width, height: height, pixels: pixels)
        }
        // Composite on white and pack RGBA into RGB in place: the write index 3i never passes
        // the read index 4i, so no second full-size buffer is needed.
        pixels.withUnsafeMutableBufferPointer { buffer in
            for index in 0..<count {
                let alpha = UInt32(buffer[4 * index + 3])
                let white = 255 * (255 - alpha) + 127
                for channel in 0..<3 {
                    let value = UInt32(buffer[4 * index + channel])
                    buffer[3 * index + channel] = UInt8((value * alpha + white) / 255)
                }
            }
        }
        pixels.removeLast(count)
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// A C message buffer as a Swift string, with a fallback for an empty message.
    static func text(_ message: [CChar]) -> String {
        let bytes = message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let string = String(decoding: bytes, as: UTF8.self)
        return string.isEmpty ? "unknown decoder failure" : string
    }
}
