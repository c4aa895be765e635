// libFuzzer target: JPEG and PNG decoding along the thumbnail path (header, decode, 32×32 resample).
import Imaging

private let limits = DecodeLimits(maxBytes: 1 << 20, maxPixels: 4_000_000)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let info = try? ImageDecoder.info(bytes, limits: limits) else { return 0 }
    precondition(info.width > 0 && info.height > 0 && info.width * info.height <= limits.maxPixels,
                 "info passed an image of \(info.width)×\(info.height)")
    // When the streaming ImageDecoder.thumbnail(_:width:height:limits:) lands, this one line becomes
    //     guard let thumbnail = try? ImageDecoder.thumbnail(bytes, width: 32, height: 32, limits: limits) else { return 0 }
    // and the two checks on `image` below go.
    guard let thumbnail = thumbnail(bytes, info: info) else { return 0 }
    precondition(thumbnail.width == 32 && thumbnail.height == 32 && thumbnail.pixels.count == 32 * 32 * 3,
                 "thumbnail is \(thumbnail.width)×\(thumbnail.height) with \(thumbnail.pixels.count) bytes")
    return 0
}

/// Today's thumbnail path: decode the whole image, then resample.
private func thumbnail(_ bytes: [UInt8], info: ImageInfo) -> RGBImage? {
    guard let image = try? ImageDecoder.decode(bytes, limits: limits) else { return nil }
    precondition(image.width == info.width && image.height == info.height,
                 "info said \(info.width)×\(info.height), decode gave \(image.width)×\(image.height)")
    precondition(image.pixels.count == image.width * image.height * 3, "decoded pixel buffer has the wrong size")
    return image.resized(width: 32, height: 32)
}
