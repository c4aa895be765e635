import NeuralNet
import XCTest
@testable import Hashing

final class LossTests: XCTestCase {
    private func random(_ count: Int, seed: UInt64, scale: Float = 0.8) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in tanh(scale * generator.nextGaussian()) }
    }

    /// Random posterior rows (softmax of Gaussian logits).
    private func posteriors(rows: Int, components: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(seed: seed)
        var result: [Float] = []
        for _ in 0..<rows {
            let logits = (0..<components).map { _ in 2 * generator.nextGaussian() }
            let total = logits.reduce(0) { $0 + exp($1) }
            result += logits.map { exp($0) / total }
        }
        return result
    }

    /// Compares the analytic gradient with central differences of step 0.01 (the loss is computed in
    /// Double and returned as Float, so rounding adds at most ~1e-5 to each difference quotient).
    /// Tolerance: 5e-4 absolute plus 1% of the analytic value.
    private func checkGradient(_ codes: [Float], file: StaticString = #filePath, line: UInt = #line, _ loss: ([Float]) -> LossAndGradient) {
        let analytic = loss(codes).gradient
        XCTAssertEqual(analytic.count, codes.count, file: file, line: line)
        XCTAssertGreaterThan(analytic.map(abs).max() ?? 0, 1e-3, "gradient is trivially zero", file: file, line: line)
        let step: Float = 0.01
        for index in codes.indices {
            var plus = codes, minus = codes
            plus[index] += step; minus[index] -= step
            let numeric = (loss(plus).loss - loss(minus).loss) / (plus[index] - minus[index])
            XCTAssertEqual(numeric, analytic[index], accuracy: 5e-4 + 0.01 * abs(analytic[index]),
                           "entry \(index)", file: file, line: line)
        }
    }

    /// Two images whose views coincide: rows (1,0), (0,1), (1,0), (0,1) at τ = 1. Each view sees cosines
    /// 0, 1, 0, so NT-Xent is −log(e / (e + 2)).
    func testInstanceLossKnownAnswers() {
        let codes: [Float] = [1, 0, 0, 1, 1, 0, 0, 1]
        let plain = DSCHLoss.instance(codes: codes, batchSize: 2, bits: 2, temperature: 1)
        XCTAssertEqual(Double(plain.loss), log(1 + 2 / M_E), accuracy: 1e-6)
        // Both images in one component: every other view is a target with weight 1/3.
        let shared = DSCHLoss.instance(codes: codes, batchSize: 2, bits: 2, temperature: 1, posteriors: [1, 0, 1, 0], components: 2)
        XCTAssertEqual(Double(shared.loss), log(M_E + 2) - 1.0 / 3, accuracy: 1e-6)
        // Disjoint components: the co-occurrence is zero and the loss falls back to NT-Xent.
        let disjoint = DSCHLoss.instance(codes: codes, batchSize: 2, bits: 2, temperature: 1, posteriors: [1, 0, 0, 1], components: 2)
        XCTAssertEqual(disjoint.loss, plain.loss, accuracy: 1e-6)
    }

    func testInstanceLossGradients() {
        let codes = random(2 * 3 * 5, seed: 1)
        checkGradient(codes) { DSCHLoss.instance(codes: $0, batchSize: 3, bits: 5, temperature: 0.5) }
        let p = posteriors(rows: 3, components: 4, seed: 2)
        checkGradient(codes) { DSCHLoss.instance(codes: $0, batchSize: 3, bits: 5, temperature: 0.3, posteriors: p, components: 4) }
    }

    /// h = (1, 1) against centres (1, 1) and (1, −1): cosines 1 and 0.
    func testComponentLossKnownAnswers() {
        let centres: [Float] = [1, 1, 1, -1]
        let uniform = DSCHLoss.component(codes: [1, 1], rows: 1, bits: 2, posteriors: [1, 0], weights: [0.5, 0.5],
                                         centres: centres, components: 2, temperature: 1)
        XCTAssertEqual(Double(uniform.loss), log(1 + 1 / M_E), accuracy: 1e-6)
        let skewed = DSCHLoss.component(codes: [1, 1], rows: 1, bits: 2, posteriors: [1, 0], weights: [0.25, 0.75],
                                        centres: centres, components: 2, temperature: 1)
        XCTAssertEqual(Double(skewed.loss), -log(0.25 * M_E / (0.25 * M_E + 0.75)), accuracy: 1e-6)
        // A mixed posterior is the weighted sum of the two one-hot losses.
        let mixed = DSCHLoss.component(codes: [1, 1], rows: 1, bits: 2, posteriors: [0.5, 0.5], weights: [0.5, 0.5],
                                       centres: centres, components: 2, temperature: 1)
        XCTAssertEqual(Double(mixed.loss), 0.5 * log(1 + 1 / M_E) + 0.5 * log(1 + M_E), accuracy: 1e-6)
    }

    func testComponentLossGradients() {
        var generator = SplitMix64(seed: 7)
        let centres: [Float] = (0..<(5 * 6)).map { _ in generator.nextGaussian() < 0 ? -1 : 1 }
        let weights: [Float] = [0.1, 0.3, 0.2, 0.15, 0.25]
        let codes = random(4 * 6, seed: 3)
        let perRow = posteriors(rows: 4, components: 5, seed: 4)
        checkGradient(codes) {
            DSCHLoss.component(codes: $0, rows: 4, bits: 6, posteriors: perRow, weights: weights, centres: centres, components: 5, temperature: 0.4)
        }
        // One posterior row per image, shared by both views.
        let perImage = posteriors(rows: 2, components: 5, seed: 5)
        checkGradient(codes) {
            DSCHLoss.component(codes: $0, rows: 4, bits: 6, posteriors: perImage, weights: weights, centres: centres, components: 5, temperature: 0.4)
        }
        let shared = DSCHLoss.component(codes: codes, rows: 4, bits: 6, posteriors: perImage, weights: weights, centres: centres, components: 5, temperature: 0.4)
        let explicit = DSCHLoss.component(codes: codes, rows: 4, bits: 6, posteriors: perImage + perImage, weights: weights, centres: centres, components: 5, temperature: 0.4)
        XCTAssertEqual(shared.loss, explicit.loss)
    }

    func testQuantizationLoss() {
        let result = DSCHLoss.quantization(codes: [0.5, -2])
        XCTAssertEqual(result.loss, 0.625, accuracy: 1e-7)
        XCTAssertEqual(result.gradient, [-0.5, -1])
        // Kept away from the kink of |h| at 0, where the difference quotient straddles two slopes.
        let codes = random(12, seed: 9, scale: 2).map { $0 < 0 ? min($0, -0.1) : max($0, 0.1) }
        checkGradient(codes) { DSCHLoss.quantization(codes: $0) }
    }

    func testDecorrelationLoss() {
        // Orthogonal bits are uncorrelated; two equal bits correlate fully: C₀₁ = 1, L = 2·1² / 2.
        XCTAssertEqual(DSCHLoss.decorrelation(codes: [1, 1, 1, -1], rows: 2, bits: 2).loss, 0)
        let equal = DSCHLoss.decorrelation(codes: [1, 1, 1, 1], rows: 2, bits: 2)
        XCTAssertEqual(equal.loss, 1, accuracy: 1e-7)
        XCTAssertEqual(equal.gradient, [1, 1, 1, 1])
        checkGradient(random(5 * 4, seed: 21, scale: 1.5)) { DSCHLoss.decorrelation(codes: $0, rows: 5, bits: 4) }
    }
}
