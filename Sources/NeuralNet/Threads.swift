import CBLAS
import Dispatch

/// Thread configuration of the numeric kernels.
///
/// Matrix products run on OpenBLAS's own thread pool; the element-wise kernels (im2col, batch
/// normalisation, pooling) split their work over the same number of threads with Dispatch.
public enum ComputeThreads {
    nonisolated(unsafe) static var workerCount = max(1, Int(openblas_get_num_threads()))

    /// Number of threads used by OpenBLAS and by the element-wise kernels.
    public static var count: Int { workerCount }

    /// Sets the thread count for OpenBLAS (`openblas_set_num_threads`) and the element-wise kernels.
    /// Call it once at start-up, before any network runs.
    public static func set(_ count: Int) {
        let clamped = max(1, count)
        openblas_set_num_threads(Int32(clamped))
        workerCount = clamped
    }
}

/// Runs `body` over `0..<count` split into contiguous ranges, one per worker thread,
/// staying on the calling thread when the work is too small to pay for the hand-off.
@inline(__always)
func parallelRanges(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = min(ComputeThreads.workerCount, count / max(minimumPerThread, 1))
    if workers <= 1 {
        body(0..<count)
        return
    }
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
        let start = count * worker / workers
        let end = count * (worker + 1) / workers
        body(start..<end)
    }
}
