import XCTest
@testable import Imaging
final class ImagingPlaceholderTests: XCTestCase { func testBuilds() {} }
