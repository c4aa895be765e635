import XCTest
@testable import NeuralNet
final class NeuralNetPlaceholderTests: XCTestCase { func testBuilds() {} }
