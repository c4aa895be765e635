import XCTest
@testable import HammingIndex
final class HammingIndexPlaceholderTests: XCTestCase { func testBuilds() {} }
