import XCTest
@testable import NeuralNet

/// `EncoderConfiguration.weightCount`, which model loaders check against a file's length before building.
final class EncoderSizeTests: XCTestCase {
    func testWeightCountIsTheConvolutionAndLinearWeights() throws {
        for configuration in [
            EncoderConfiguration(),
            EncoderConfiguration(bits: 8, widths: [4, 8, 8], hiddenWidth: 16, inputSize: 8, codeBatchNorm: true),
            EncoderConfiguration(bits: 16, widths: [2, 3, 5], hiddenWidth: 7, inputSize: 16, headGrid: 2),
        ] {
            let network = try Sequential.dschEncoder(configuration)
            let weights = network.namedTensors.filter { $0.parameter.shape.count >= 2 }.reduce(0) { $0 + $1.parameter.count }
            XCTAssertEqual(configuration.weightCount, weights, "\(configuration)")
            let stored = network.namedTensors.reduce(0) { $0 + $1.parameter.count }
            XCTAssertLessThanOrEqual(try XCTUnwrap(configuration.weightCount), stored)
        }
    }

    /// Sizes from a damaged model header: the product used to trap inside `Conv2d` instead of throwing.
    func testSizesThatOverflowAreAnErrorNotATrap() {
        for configuration in [
            EncoderConfiguration(widths: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF]),
            EncoderConfiguration(bits: Int.max / 2, hiddenWidth: 1 << 40),
            EncoderConfiguration(inputSize: 1 << 40),
        ] {
            XCTAssertNil(configuration.weightCount)
            XCTAssertThrowsError(try Sequential.dschEncoder(configuration)) { error in
                guard case NeuralNetError.invalidConfiguration = error else { return XCTFail("unexpected \(error)") }
            }
        }
        XCTAssertNil(EncoderConfiguration(widths: [1, 0, 1]).weightCount)
    }
}
