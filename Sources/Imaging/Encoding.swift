import CJPEG
import CPNG

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs the C encoders on validated images.
enum Encoding {
    /// JPEG's frame header stores each side in 16 bits, and libjpeg refuses more than 65,500.
    static let maximumJPEGSide = 65_500

    static func png(_ image: RGBImage) throws -> [UInt8] {
        try validate(image)
        var message = [CChar](repeating: 0, count: Int(DSCH_PNG_MESSAGE_CAPACITY))
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = image.pixels.withUnsafeBufferPointer { pixels in
            dsch_png_encode(pixels.baseAddress, png_uint_32(image.width), png_uint_32(image.height),
                            image.width * 3, 8, PNG_COLOR_TYPE_RGB, 0, nil, 0, nil, 0, 0, 0, 0, 0,
                            &output, &size, &message)
        }
        return try take(status: status, output: output, size: size, message: message)
    }

    static func jpeg(_ image: RGBImage, quality: Int, progressive: Bool) throws -> [UInt8] {
        try validate(image)
        guard image.width <= maximumJPEGSide, image.height <= maximumJPEGSide else {
            throw ImagingError.corrupt("JPEG cannot store an image of \(image.width)x\(image.height); each side must be at most \(maximumJPEGSide)")
        }
        var message = [CChar](repeating: 0, count: Int(DSCH_JPEG_MESSAGE_CAPACITY))
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let status = image.pixels.withUnsafeBufferPointer { pixels in
            dsch_jpeg_encode(pixels.baseAddress, UInt32(image.width), UInt32(image.height), 3,
                             JCS_RGB, JCS_YCbCr, Int32(min(max(quality, 1), 100)),
                             progressive ? 1 : 0, -1, &output, &size, &message)
        }
        return try take(status: status, output: output, size: Int(size), message: message)
    }

    /// Refuses an image whose buffer does not match its dimensions.
    private static func validate(_ image: RGBImage) throws {
        guard image.width > 0, image.height > 0, image.width <= 0x7FFF_FFFF, image.height <= 0x7FFF_FFFF,
              image.pixels.count == image.width * image.height * 3 else {
            throw ImagingError.corrupt("cannot encode a \(image.width)x\(image.height) image from \(image.pixels.count) bytes; it needs width×height×3 bytes")
        }
    }

    /// Copies a malloc'd C result into an array and frees it.
    private static func take(status: Int32, output: UnsafeMutablePointer<UInt8>?, size: Int,
                             message: [CChar]) throws -> [UInt8] {
        defer { free(output) }
        guard status == 0, let output else { throw ImagingError.corrupt(Decoding.text(message)) }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }
}
