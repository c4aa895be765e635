import CBLAS
import Foundation

// Small dense linear algebra on row-major buffers. Large products go through OpenBLAS; the small
// symmetric eigenproblems and SVDs (at most a few hundred rows) use cyclic Jacobi in Double, which is
// simple, accurate and fast enough at those sizes.

/// `C = alpha * op(A) * op(B) + beta * C` on row-major Float matrices, where `op(A)` is `m×k` and
/// `op(B)` is `k×n`.
func matrixMultiply(
    _ a: UnsafePointer<Float>, transposeA: Bool = false,
    _ b: UnsafePointer<Float>, transposeB: Bool = false,
    into c: UnsafeMutablePointer<Float>,
    m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
) {
    guard m > 0, n > 0 else { return }
    let lda = transposeA ? m : k
    let ldb = transposeB ? k : n
    cblas_sgemm(
        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(max(lda, 1)), b, Int32(max(ldb, 1)),
        beta, c, Int32(n))
}

/// Array convenience over `matrixMultiply`: returns `op(A) * op(B)` (`m×n`) through OpenBLAS.
public func matrixProduct(
    _ a: [Float], transposeA: Bool = false, _ b: [Float], transposeB: Bool = false, m: Int, n: Int, k: Int
) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                matrixMultiply(
                    pa.baseAddress!, transposeA: transposeA, pb.baseAddress!, transposeB: transposeB,
                    into: pc.baseAddress!, m: m, n: n, k: k)
            }
        }
    }
    return c
}

/// Eigen-decomposition of a symmetric `n×n` matrix (row-major) by cyclic Jacobi rotations.
/// Returns eigenvalues in descending order and the matching eigenvectors as the columns of a row-major
/// `n×n` matrix.
func symmetricEigen(_ matrix: [Double], n: Int, maxSweeps: Int = 100) -> (values: [Double], vectors: [Double]) {
    precondition(matrix.count == n * n, "matrix must be \(n)×\(n)")
    var a = matrix
    var v = [Double](repeating: 0, count: n * n)
    for i in 0..<n { v[i * n + i] = 1 }
    for _ in 0..<maxSweeps {
        var offDiagonal = 0.0
        var diagonal = 0.0
        for i in 0..<n {
            diagonal += a[i * n + i] * a[i * n + i]
            for j in (i + 1)..<n { offDiagonal += a[i * n + j] * a[i * n + j] }
        }
        if offDiagonal <= 1e-30 * max(diagonal, 1e-300) { break }
        for p in 0..<n {
            for q in (p + 1)..<n {
                let apq = a[p * n + q]
                if abs(apq) < 1e-300 { continue }
                let app = a[p * n + p], aqq = a[q * n + q]
                let theta = (aqq - app) / (2 * apq)
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot()
                let s = t * c
                for r in 0..<n {
                    let arp = a[r * n + p], arq = a[r * n + q]
                    a[r * n + p] = c * arp - s * arq
                    a[r * n + q] = s * arp + c * arq
                }
                for r in 0..<n {
                    let apr = a[p * n + r], aqr = a[q * n + r]
                    a[p * n + r] = c * apr - s * aqr
                    a[q * n + r] = s * apr + c * aqr
                }
                for r in 0..<n {
                    let vrp = v[r * n + p], vrq = v[r * n + q]
                    v[r * n + p] = c * vrp - s * vrq
                    v[r * n + q] = s * vrp + c * vrq
                }
            }
        }
    }
    let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
    var values = [Double](repeating: 0, count: n)
    var vectors = [Double](repeating: 0, count: n * n)
    for (column, source) in order.enumerated() {
        values[column] = a[source * n + source]
        for r in 0..<n { vectors[r * n + column] = v[r * n + source] }
    }
    return (values, vectors)
}

/// Singular value decomposition of a square `n×n` matrix by one-sided Jacobi (Hestenes):
/// `A = U diag(S) Vᵀ`, with `U` and `V` row-major `n×n`. Accurate for the small matrices of ITQ.
func squareSVD(_ matrix: [Double], n: Int, maxSweeps: Int = 100) -> (u: [Double], singular: [Double], v: [Double]) {
    precondition(matrix.count == n * n, "matrix must be \(n)×\(n)")
    // Work on columns of A: rotate column pairs until all are orthogonal; then U = columns / norms.
    var a = matrix
    var v = [Double](repeating: 0, count: n * n)
    for i in 0..<n { v[i * n + i] = 1 }
    for _ in 0..<maxSweeps {
        var rotated = false
        for p in 0..<n {
            for q in (p + 1)..<n {
                var alpha = 0.0, beta = 0.0, gamma = 0.0
                for r in 0..<n {
                    let x = a[r * n + p], y = a[r * n + q]
                    alpha += x * x; beta += y * y; gamma += x * y
                }
                if abs(gamma) <= 1e-15 * (alpha * beta).squareRoot() || gamma == 0 { continue }
                rotated = true
                let zeta = (beta - alpha) / (2 * gamma)
                let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                let c = 1 / (1 + t * t).squareRoot()
                let s = c * t
                for r in 0..<n {
                    let x = a[r * n + p], y = a[r * n + q]
                    a[r * n + p] = c * x - s * y
                    a[r * n + q] = s * x + c * y
                    let vx = v[r * n + p], vy = v[r * n + q]
                    v[r * n + p] = c * vx - s * vy
                    v[r * n + q] = s * vx + c * vy
                }
            }
        }
        if !rotated { break }
    }
    var singular = [Double](repeating: 0, count: n)
    var u = [Double](repeating: 0, count: n * n)
    for column in 0..<n {
        var norm = 0.0
        for r in 0..<n { norm += a[r * n + column] * a[r * n + column] }
        norm = norm.squareRoot()
        singular[column] = norm
        if norm > 0 { for r in 0..<n { u[r * n + column] = a[r * n + column] / norm } }
    }
    // A rank-deficient input leaves zero columns in U; complete them to an orthonormal basis so that
    // U Vᵀ is still a rotation.
    completeOrthonormalColumns(&u, n: n, filled: singular.map { $0 > 0 })
    return (u, singular, v)
}

/// Replaces the columns not marked `filled` with unit vectors orthogonal to all the others
/// (Gram–Schmidt against the standard basis).
func completeOrthonormalColumns(_ matrix: inout [Double], n: Int, filled: [Bool]) {
    var done = filled
    var candidate = 0
    for column in 0..<n where !done[column] {
        while candidate < n {
            var vector = [Double](repeating: 0, count: n)
            vector[candidate] = 1
            candidate += 1
            for other in 0..<n where done[other] {
                var dot = 0.0
                for r in 0..<n { dot += vector[r] * matrix[r * n + other] }
                for r in 0..<n { vector[r] -= dot * matrix[r * n + other] }
            }
            let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 1e-6 {
                for r in 0..<n { matrix[r * n + column] = vector[r] / norm }
                done[column] = true
                break
            }
        }
    }
}

/// Orthonormalises the columns of a row-major `rows×columns` Float matrix in place (modified
/// Gram–Schmidt in Double, run twice for stability). Columns that vanish are left zero.
func orthonormalizeColumns(_ matrix: inout [Float], rows: Int, columns: Int) {
    var work = matrix.map(Double.init)
    for _ in 0..<2 {
        for column in 0..<columns {
            for previous in 0..<column {
                var dot = 0.0
                for r in 0..<rows { dot += work[r * columns + column] * work[r * columns + previous] }
                for r in 0..<rows { work[r * columns + column] -= dot * work[r * columns + previous] }
            }
            var norm = 0.0
            for r in 0..<rows { norm += work[r * columns + column] * work[r * columns + column] }
            norm = norm.squareRoot()
            for r in 0..<rows { work[r * columns + column] = norm > 1e-12 ? work[r * columns + column] / norm : 0 }
        }
    }
    matrix = work.map(Float.init)
}

/// Numerically stable log Σ exp over a buffer.
@inline(__always)
func logSumExp(_ values: UnsafeBufferPointer<Double>) -> Double {
    var maximum = -Double.infinity
    for value in values where value > maximum { maximum = value }
    if maximum == -.infinity { return maximum }
    var sum = 0.0
    for value in values { sum += exp(value - maximum) }
    return maximum + log(sum)
}

/// `op(A) * op(B)` on row-major Double matrices (`m×n` result) through OpenBLAS.
func matrixProduct(
    _ a: [Double], transposeA: Bool = false, _ b: [Double], transposeB: Bool = false, m: Int, n: Int, k: Int
) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    guard m > 0, n > 0 else { return c }
    cblas_dgemm(
        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), 1, a, Int32(max(transposeA ? m : k, 1)), b,
        Int32(max(transposeB ? k : n, 1)), 0, &c, Int32(n))
    return c
}
