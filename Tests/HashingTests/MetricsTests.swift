import XCTest
@testable import Hashing
