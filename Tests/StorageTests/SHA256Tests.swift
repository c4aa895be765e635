import XCTest
import TestSupport
import Storage

final class SHA256Tests: XCTestCase {
    /// FIPS 180-2 appendix B and the NIST example vectors.
    func testNISTVectors() {
        XCTAssertEqual(SHA256.hexDigest([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hexDigest(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hexDigest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hexDigest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Lengths on each side of the padding boundaries (55/56 bytes, one and two blocks), against Python's hashlib.
    func testPaddingBoundaries() {
        let expected: [Int: String] = [
            55: "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59",
            56: "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562",
            63: "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488",
            64: "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108",
            65: "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781",
            119: "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6",
            1000: "4e4c294b331f7a2099a379bec34b9f9fc03dc46ab465d998f4d683da53487e6d",
        ]
        for (length, digest) in expected {
            let message = (0..<length).map { UInt8($0 % 251) }
            XCTAssertEqual(SHA256.hexDigest(message), digest, "length \(length)")
        }
    }

    func testDigestIs32BytesAndHexIsLowerCase() {
        let digest = SHA256.digest(Array("abc".utf8))
        XCTAssertEqual(digest.count, 32)
        XCTAssertEqual(digest.prefix(2), [0xba, 0x78])
        XCTAssertEqual(SHA256.hex([0x00, 0x0f, 0xab, 0xff]), "000fabff")
    }
}
