import CBLAS
import Dispatch

/// Thread configuration of the numeric kernels.
///
/// Work is split over threads by the library itself (images of a batch for convolutions, channels for
/// batch normalisation, planes for pooling), each thread calling single-threaded OpenBLAS. Splitting
/// the batch keeps every matrix product on one core with its scratch memory in that core's cache, and
/// avoids OpenBLAS's pool spinning against the element-wise kernels; measured faster than letting
/// OpenBLAS split each product. OpenBLAS's own pool is therefore kept at one thread.
public enum ComputeThreads {
    nonisolated(unsafe) static var workerCount: Int = {
        let count = max(1, Int(openblas_get_num_threads()))
        openblas_set_num_threads(1)
        return count
    }()

    /// Number of threads one network call spreads its work over (initially OpenBLAS's default,
    /// which follows `OPENBLAS_NUM_THREADS` or the core count).
    public static var count: Int { workerCount }

    /// The CPU-specific kernel set OpenBLAS chose when it was loaded ("Haswell", "SkylakeX", …): its
    /// own detection, or the `OPENBLAS_CORETYPE` environment variable when that is set.
    public static var blasKernelName: String {
        openblas_get_corename().map { String(cString: $0) } ?? "unknown"
    }

    /// Sets the number of threads one network call uses; OpenBLAS itself stays single-threaded
    /// (`openblas_set_num_threads(1)`) because the library splits the work. Call it at start-up.
    public static func set(_ count: Int) {
        openblas_set_num_threads(1)
        workerCount = max(1, count)
    }
}

/// Runs `body` over `0..<count` split into contiguous ranges, one per worker thread, passing the
/// worker's index (for per-thread scratch memory). Stays on the calling thread when the work is too
/// small to pay for the hand-off.
@inline(__always)
func parallelWorkers(_ count: Int, minimumPerThread: Int = 1, _ body: (Int, Range<Int>) -> Void) {
    let workers = min(ComputeThreads.workerCount, count / max(minimumPerThread, 1))
    if workers <= 1 {
        body(0, 0..<count)
        return
    }
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
        body(worker, (count * worker / workers)..<(count * (worker + 1) / workers))
    }
}

/// `parallelWorkers` for bodies that need no per-thread scratch memory.
@inline(__always)
func parallelRanges(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
    parallelWorkers(count, minimumPerThread: minimumPerThread) { _, range in body(range) }
}

/// Number of workers `parallelWorkers` will use for `count` items.
func workerCount(for count: Int, minimumPerThread: Int = 1) -> Int {
    max(1, min(ComputeThreads.workerCount, count / max(minimumPerThread, 1)))
}
