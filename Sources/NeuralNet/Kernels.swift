/// Vectorised reductions for the element-wise layers; Swift does not reorder float additions on its
/// own, so the eight-lane accumulators are spelled out.

@inline(__always)
func load8(_ pointer: UnsafePointer<Float>, _ index: Int) -> SIMD8<Float> {
    UnsafeRawPointer(pointer + index).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func store8(_ value: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>, _ index: Int) {
    UnsafeMutableRawPointer(pointer + index).storeBytes(of: value, as: SIMD8<Float>.self)
}

/// Σ x over `count` floats.
@inline(__always)
func sum(_ pointer: UnsafePointer<Float>, _ count: Int) -> Float {
    var lanes = SIMD8<Float>()
    var index = 0
    while index + 8 <= count {
        lanes += load8(pointer, index)
        index += 8
    }
    var total = lanes.sum()
    while index < count {
        total += pointer[index]
        index += 1
    }
    return total
}

@inline(__always)
func sum(_ pointer: UnsafeMutablePointer<Float>, _ count: Int) -> Float {
    sum(UnsafePointer(pointer), count)
}

/// (Σ (x − shift), Σ (x − shift)²) over `count` floats; the shift keeps the variance accurate.
@inline(__always)
func shiftedMoments(_ pointer: UnsafePointer<Float>, _ count: Int, shift: Float) -> (Float, Float) {
    var sums = SIMD8<Float>(), squares = SIMD8<Float>()
    let shifts = SIMD8<Float>(repeating: shift)
    var index = 0
    while index + 8 <= count {
        let value = load8(pointer, index) - shifts
        sums += value
        squares += value * value
        index += 8
    }
    var total = sums.sum(), totalSquares = squares.sum()
    while index < count {
        let value = pointer[index] - shift
        total += value
        totalSquares += value * value
        index += 1
    }
    return (total, totalSquares)
}
