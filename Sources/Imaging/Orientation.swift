/// The EXIF orientation tag (0x0112): how the stored pixels must be turned to display upright.
enum ExifOrientation: Int {
    case up = 1, mirrored, rotated180, flippedVertically, transposed, rotatedClockwise, transversed, rotatedCounterClockwise

    /// Orientations 5–8 exchange width and height.
    var swapsSides: Bool { rawValue >= 5 }

    /// The orientation in an APP1 segment's payload, or nil when it is not EXIF, has no
    /// orientation, or is damaged in any way: a bad EXIF block must never stop a decode.
    init?(app1 payload: ArraySlice<UInt8>) {
        let bytes = Array(payload)
        guard bytes.count >= 14, bytes[0..<6].elementsEqual("Exif\0\0".utf8) else { return nil }
        let tiff = Array(bytes[6...])
        let littleEndian: Bool
        switch (tiff[0], tiff[1]) {
        case (0x49, 0x49): littleEndian = true   // "II", Intel order
        case (0x4D, 0x4D): littleEndian = false  // "MM", Motorola order
        default: return nil
        }
        func read16(_ offset: Int) -> Int? {
            guard offset >= 0, offset + 2 <= tiff.count else { return nil }
            return littleEndian ? Int(tiff[offset]) | Int(tiff[offset + 1]) << 8
                                : Int(tiff[offset]) << 8 | Int(tiff[offset + 1])
        }
        func read32(_ offset: Int) -> Int? {
            guard let first = read16(offset), let second = read16(offset + 2) else { return nil }
            return littleEndian ? first | second << 16 : first << 16 | second
        }
        guard read16(2) == 42, let directory = read32(4), let entryCount = read16(directory) else { return nil }
        for entry in 0..<entryCount {
            let position = directory + 2 + 12 * entry
            guard let tag = read16(position) else { return nil }
            guard tag == 0x0112 else { continue }
            // Type 3 is SHORT; one value fits in the entry, in its first two bytes.
            guard read16(position + 2) == 3, let count = read32(position + 4), count >= 1,
                  let value = read16(position + 8) else { return nil }
            self.init(rawValue: value)
            return
        }
        return nil
    }

    /// Where the stored pixel shown at (x, y) lies, as source = origin + x·stepX + y·stepY in
    /// pixel indices: every orientation is affine, so the copy loop needs no per-pixel branching.
    private func sourceWalk(width: Int, height: Int) -> (origin: Int, stepX: Int, stepY: Int) {
        let lastColumn = width - 1, lastRow = (height - 1) * width
        switch self {
        case .up: return (0, 1, width)
        case .mirrored: return (lastColumn, -1, width)                         // (w−1−x, y)
        case .rotated180: return (lastRow + lastColumn, -1, -width)            // (w−1−x, h−1−y)
        case .flippedVertically: return (lastRow, 1, -width)                   // (x, h−1−y)
        case .transposed: return (0, width, 1)                                 // (y, x)
        case .rotatedClockwise: return (lastRow, -width, 1)                    // (y, h−1−x)
        case .transversed: return (lastRow + lastColumn, -width, -1)           // (w−1−y, h−1−x)
        case .rotatedCounterClockwise: return (lastColumn, width, -1)          // (w−1−y, x)
        }
    }

    /// `image` (as stored) turned upright.
    func apply(to image: RGBImage) -> RGBImage {
        if self == .up { return image }
        let outputWidth = swapsSides ? image.height : image.width
        let outputHeight = swapsSides ? image.width : image.height
        let walk = sourceWalk(width: image.width, height: image.height)
        var output = [UInt8](repeating: 0, count: image.pixels.count)
        image.pixels.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { destination in
                var to = 0
                for y in 0..<outputHeight {
                    var from = walk.origin + y * walk.stepY
                    for _ in 0..<outputWidth {
                        destination[to] = source[3 * from]
                        destination[to + 1] = source[3 * from + 1]
                        destination[to + 2] = source[3 * from + 2]
                        to += 3
                        from += walk.stepX
                    }
                }
            }
        }
        return RGBImage(width: outputWidth, height: outputHeight, pixels: output)
    }
}
