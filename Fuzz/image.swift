// libFuzzer target: JPEG and PNG decoding along the service's thumbnail path (header, then streamed 32×32 thumbnail).
import Imaging

private let limits = DecodeLimits(maxBytes: 1 << 20, maxPixels: 4_000_000)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let info = try? ImageDecoder.info(bytes, limits: limits) else { return 0 }
    precondition(info.width > 0 && info.height > 0 && info.width * info.height <= limits.maxPixels,
                 "info passed an image of \(info.width)×\(info.height)")
    // The service's path: decoded a row at a time straight into the 32×32 thumbnail.
    guard let thumbnail = try? ImageDecoder.thumbnail(bytes, width: 32, height: 32, limits: limits) else { return 0 }
    precondition(thumbnail.width == 32 && thumbnail.height == 32 && thumbnail.pixels.count == 32 * 32 * 3,
                 "thumbnail is \(thumbnail.width)×\(thumbnail.height) with \(thumbnail.pixels.count) bytes")
    return 0
}
