import Foundation

/// A shared allowance of request-body bytes: connections reserve before buffering a body and release once
/// its response is sent, so the bodies held at once never exceed `capacity` however many clients upload.
final class BodyBudget: @unchecked Sendable {
    let capacity: Int
    private let condition = NSCondition()
    private var reserved = 0

    init(capacity: Int) { self.capacity = max(0, capacity) }

    /// Bytes currently reserved.
    var used: Int {
        condition.lock()
        defer { condition.unlock() }
        return reserved
    }

    /// Reserves `bytes`, waiting up to `timeout` seconds for others to release; false if there was no room
    /// in time (at once when `bytes` exceeds the whole capacity, since waiting could not help).
    func reserve(_ bytes: Int, timeout: Double) -> Bool {
        guard bytes > 0 else { return true }
        guard bytes <= capacity else { return false }
        let deadline = Date().addingTimeInterval(max(0, timeout))
        condition.lock()
        defer { condition.unlock() }
        while reserved + bytes > capacity {
            if !condition.wait(until: deadline) && reserved + bytes > capacity { return false }
        }
        reserved += bytes
        return true
    }

    /// Returns `bytes` earlier reserved and wakes the waiting connections.
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        condition.lock()
        reserved = max(0, reserved - bytes)
        condition.broadcast()
        condition.unlock()
    }
}
