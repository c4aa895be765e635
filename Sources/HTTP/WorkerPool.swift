import Foundation

/// A fixed set of threads running submitted work in FIFO order, so at most `count` handlers run at once.
final class WorkerPool: @unchecked Sendable {
    private let condition = NSCondition()
    /// Taken slots are cleared at once: a finished closure must not keep what it captured (such as a
    /// request body) alive until the queue is next compacted.
    private var queue: [(() -> Void)?] = []
    private var queueHead = 0
    private var stopping = false
    private let finished = DispatchGroup()

    /// Starts `count` threads; `stackSize` gives handlers room for deep work such as image decoding.
    init(count: Int, name: String, stackSize: Int = 4 << 20) {
        for index in 0..<max(1, count) {
            finished.enter()
            let thread = Thread { [self] in
                runLoop()
                finished.leave()
            }
            thread.name = "\(name)-\(index)"
            thread.stackSize = stackSize
            thread.start()
        }
    }

    /// Queues `work`; it runs on one of the pool's threads.
    func submit(_ work: @escaping () -> Void) {
        condition.lock()
        queue.append(work)
        condition.signal()
        condition.unlock()
    }

    /// Lets queued work finish, then ends the threads; with `wait` false it returns at once and the
    /// threads end on their own once the queue is empty (used when a handler outlived the shutdown deadline).
    func stop(wait: Bool = true) {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        if wait { finished.wait() }
    }

    private func runLoop() {
        while true {
            condition.lock()
            while queueHead == queue.count && !stopping { condition.wait() }
            if queueHead == queue.count {
                condition.unlock()
                return
            }
            let work = queue[queueHead]
            queue[queueHead] = nil
            queueHead += 1
            if queueHead > 64 && queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            condition.unlock()
            work?()
        }
    }
}
