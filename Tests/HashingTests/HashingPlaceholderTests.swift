import XCTest
@testable import Hashing
final class HashingPlaceholderTests: XCTestCase { func testBuilds() {} }
