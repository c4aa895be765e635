import XCTest
@testable import Storage
final class StoragePlaceholderTests: XCTestCase { func testBuilds() {} }
