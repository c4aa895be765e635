/// SHA-256 (FIPS 180-4), used for migration checksums and to recognise uploads already stored.
///
/// Written here rather than taken from a crypto library because the project links no Swift packages
/// and Foundation on Linux has no digest API. Blocks are read straight from the caller's buffer; only
/// the final one or two padded blocks are copied.
public enum SHA256 {
    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBufferPointer { digest($0) }
    }

    /// The 32-byte digest of the bytes in `buffer`.
    public static func digest(_ buffer: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (
            0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19
        )
        let count = buffer.count
        let wholeBlocks = count / 64
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { schedule in
            let schedule = schedule.baseAddress!
            if let base = buffer.baseAddress {
                for block in 0..<wholeBlocks { compress(&state, block: base + block * 64, schedule: schedule) }
            }
            // Padding: the rest of the message, 0x80, zeros, then the bit length big-endian.
            var tail = [UInt8](repeating: 0, count: 128)
            let restCount = count - wholeBlocks * 64
            for index in 0..<restCount { tail[index] = buffer[wholeBlocks * 64 + index] }
            tail[restCount] = 0x80
            let tailLength = restCount + 9 <= 64 ? 64 : 128
            let bitLength = UInt64(count) &* 8
            for index in 0..<8 { tail[tailLength - 1 - index] = UInt8(truncatingIfNeeded: bitLength >> UInt64(index * 8)) }
            tail.withUnsafeBufferPointer { tail in
                for offset in stride(from: 0, to: tailLength, by: 64) {
                    compress(&state, block: tail.baseAddress! + offset, schedule: schedule)
                }
            }
        }
        let words = [state.0, state.1, state.2, state.3, state.4, state.5, state.6, state.7]
        var result = [UInt8](repeating: 0, count: 32)
        for (index, word) in words.enumerated() {
            result[index * 4] = UInt8(truncatingIfNeeded: word >> 24)
            result[index * 4 + 1] = UInt8(truncatingIfNeeded: word >> 16)
            result[index * 4 + 2] = UInt8(truncatingIfNeeded: word >> 8)
            result[index * 4 + 3] = UInt8(truncatingIfNeeded: word)
        }
        return result
    }

    /// Lower-case hex of `bytes` (64 characters for a digest).
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var characters: [UInt8] = []
        characters.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            characters.append(digits[Int(byte >> 4)])
            characters.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: characters, as: UTF8.self)
    }

    /// `hex(digest(bytes))`: the form stored in the `images.sha256` column.
    public static func hexDigest(_ bytes: [UInt8]) -> String { hex(digest(bytes)) }

    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    @inline(__always)
    private static func rotateRight(_ value: UInt32, _ amount: UInt32) -> UInt32 {
        (value >> amount) | (value << (32 - amount))
    }

    /// One round: `d` and `h` are the two variables it writes; the caller renames the rest.
    @inline(__always)
    private static func round(
        _ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32,
        _ e: UInt32, _ f: UInt32, _ g: UInt32, _ h: inout UInt32, _ constantPlusWord: UInt32
    ) {
        let s1 = rotateRight(e, 6) ^ rotateRight(e, 11) ^ rotateRight(e, 25)
        let choice = g ^ (e & (f ^ g))
        let temp1 = h &+ s1 &+ choice &+ constantPlusWord
        let s0 = rotateRight(a, 2) ^ rotateRight(a, 13) ^ rotateRight(a, 22)
        let majority = (a & b) | (c & (a | b))
        d = d &+ temp1
        h = temp1 &+ s0 &+ majority
    }

    /// One 64-byte block into the running state.
    @inline(__always)
    private static func compress(
        _ state: inout (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32),
        block: UnsafePointer<UInt8>, schedule w: UnsafeMutablePointer<UInt32>
    ) {
        for index in 0..<16 {
            let byte = block + index * 4
            w[index] = UInt32(byte[0]) << 24 | UInt32(byte[1]) << 16 | UInt32(byte[2]) << 8 | UInt32(byte[3])
        }
        for index in 16..<64 {
            let s0 = rotateRight(w[index - 15], 7) ^ rotateRight(w[index - 15], 18) ^ (w[index - 15] >> 3)
            let s1 = rotateRight(w[index - 2], 17) ^ rotateRight(w[index - 2], 19) ^ (w[index - 2] >> 10)
            w[index] = w[index - 16] &+ s0 &+ w[index - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = state
        roundConstants.withUnsafeBufferPointer { constants in
            let k = constants.baseAddress!
            // Eight rounds per pass with the variables' roles rotated by name instead of by moves.
            for index in stride(from: 0, to: 64, by: 8) {
                round(a, b, c, &d, e, f, g, &h, k[index] &+ w[index])
                round(h, a, b, &c, d, e, f, &g, k[index + 1] &+ w[index + 1])
                round(g, h, a, &b, c, d, e, &f, k[index + 2] &+ w[index + 2])
                round(f, g, h, &a, b, c, d, &e, k[index + 3] &+ w[index + 3])
                round(e, f, g, &h, a, b, c, &d, k[index + 4] &+ w[index + 4])
                round(d, e, f, &g, h, a, b, &c, k[index + 5] &+ w[index + 5])
                round(c, d, e, &f, g, h, a, &b, k[index + 6] &+ w[index + 6])
                round(b, c, d, &e, f, g, h, &a, k[index + 7] &+ w[index + 7])
            }
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d,
                 state.4 &+ e, state.5 &+ f, state.6 &+ g, state.7 &+ h)
    }
}
