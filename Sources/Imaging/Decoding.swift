import CJPEG
import CPNG

/// Runs the C decoders, which hand over one decoded RGB row at a time: a full decode copies the
/// rows into an image sized from the already limit-checked header, and a thumbnail adds them to
/// an area-average accumulator so that no whole-image buffer ever exists.
enum Decoding {
    static func header(_ bytes: [UInt8], limits: DecodeLimits) throws -> ImageHeader {
        try ImageHeader.read(bytes, limits: limits)
    }

    static func decode(_ bytes: [UInt8], limits: DecodeLimits) throws -> RGBImage {
        let header = try ImageHeader.read(bytes, limits: limits)
        let width = header.storedWidth, height = header.storedHeight
        // No zero fill: on success the decoder has delivered every pixel exactly once (Adam7's
        // passes partition the image), and on failure the array is dropped.
        let pixels = try [UInt8](unsafeUninitializedCapacity: width * height * 3) { output, initialized in
            let base = output.baseAddress!
            try decodeRows(bytes, header: header, limits: limits) { rgb, y, firstX, xStep, count in
                precondition(y < height && firstX + (count - 1) * xStep < width,
                             "decoder delivered pixels outside the \(width)x\(height) image")
                if xStep == 1 {
                    (base + 3 * (y * width + firstX)).initialize(from: rgb, count: 3 * count)
                    return
                }
                var destination = base + 3 * (y * width + firstX)
                var source = rgb
                for _ in 0..<count {
                    destination.initialize(from: source, count: 3)
                    destination += 3 * xStep
                    source += 3
                }
            }
            initialized = output.count
        }
        return header.orientation.apply(to: RGBImage(width: width, height: height, pixels: pixels))
    }

    /// The decoded image area-averaged to `width`×`height` (after orientation), streaming: the
    /// stored image is accumulated into the side-swapped size when the orientation swaps sides,
    /// and the orientation is applied to the small result. Flips and quarter turns commute with
    /// area averaging (the spans are symmetric), so this equals decoding, turning and resizing.
    static func thumbnail(_ bytes: [UInt8], width: Int, height: Int, limits: DecodeLimits) throws -> RGBImage {
        precondition(width > 0 && height > 0, "cannot make a \(width)x\(height) thumbnail")
        let header = try ImageHeader.read(bytes, limits: limits)
        let swaps = header.orientation.swapsSides
        let accumulator = AreaAverageAccumulator(sourceWidth: header.storedWidth, sourceHeight: header.storedHeight,
                                                 outputWidth: swaps ? height : width,
                                                 outputHeight: swaps ? width : height)
        try decodeRows(bytes, header: header, limits: limits) { rgb, y, firstX, xStep, count in
            accumulator.add(row: rgb, y: y, firstX: firstX, xStep: xStep, count: count)
        }
        return header.orientation.apply(to: accumulator.image())
    }

    /// Receives `count` packed RGB pixels lying at x = firstX + k·xStep of stored row y.
    typealias RowHandler = (_ rgb: UnsafePointer<UInt8>, _ y: Int, _ firstX: Int, _ xStep: Int, _ count: Int) -> Void

    /// Holds the Swift handler behind the C callback's `void *context`.
    private final class RowReceiver {
        let handle: RowHandler
        init(_ handle: @escaping RowHandler) { self.handle = handle }
    }

    /// The one C callback for both decoders. It only calls the handler and returns, so the C
    /// error handlers' longjmp never crosses a Swift frame.
    private static let rowCallback: @convention(c) (UnsafeMutableRawPointer?, Int, Int, Int, Int, UnsafePointer<UInt8>?) -> Void = {
        context, y, firstX, xStep, count, rgb in
        guard let context, let rgb else { return }
        Unmanaged<RowReceiver>.fromOpaque(context).takeUnretainedValue().handle(rgb, y, firstX, xStep, count)
    }

    /// Decodes the stored (unoriented) image, handing every row to `handle`; throws before or
    /// after any rows were handled, so a caller must discard what it built when this throws.
    private static func decodeRows(_ bytes: [UInt8], header: ImageHeader, limits: DecodeLimits,
                                   handle: @escaping RowHandler) throws {
        let receiver = RowReceiver(handle)
        let context = Unmanaged.passUnretained(receiver).toOpaque()
        switch header.format {
        case .jpeg:
            var message = [CChar](repeating: 0, count: Int(DSCH_JPEG_MESSAGE_CAPACITY))
            let status = withExtendedLifetime(receiver) {
                bytes.withUnsafeBufferPointer { data in
                    dsch_jpeg_decode_rows(data.baseAddress, UInt(data.count), UInt32(header.storedWidth),
                                          UInt32(header.storedHeight), max(limits.maxDecoderMemoryBytes, 0),
                                          rowCallback, context, &message)
                }
            }
            switch status {
            case DSCH_JPEG_OK:
                return
            case DSCH_JPEG_TOO_MUCH_MEMORY:
                let info = header.info
                throw ImagingError.tooMuchMemory(width: info.width, height: info.height,
                                                 limit: limits.maxDecoderMemoryBytes)
            default:
                throw ImagingError.corrupt(text(message))
            }
        case .png:
            var message = [CChar](repeating: 0, count: Int(DSCH_PNG_MESSAGE_CAPACITY))
            let status = withExtendedLifetime(receiver) {
                bytes.withUnsafeBufferPointer { data in
                    dsch_png_decode_rows(data.baseAddress, data.count, png_uint_32(header.storedWidth),
                                         png_uint_32(header.storedHeight), rowCallback, context, &message)
                }
            }
            guard status == 0 else { throw ImagingError.corrupt(text(message)) }
        }
    }

    /// A C message buffer as a Swift string, with a fallback for an empty message.
    static func text(_ message: [CChar]) -> String {
        let bytes = message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let string = String(decoding: bytes, as: UTF8.self)
        return string.isEmpty ? "unknown decoder failure" : string
    }
}
