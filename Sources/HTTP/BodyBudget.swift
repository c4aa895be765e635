import Foundation

/// A shared allowance of request-body bytes: connections reserve before buffering a body and release once
/// its response is sent, so the bodies held at once never exceed `capacity` however many clients upload.
final class BodyBudget: @unchecked Sendable {
    let capacity: Int
    private let lock = NSLock()
    private var reserved = 0

    init(capacity: Int) { self.capacity = max(0, capacity) }

    /// Bytes currently reserved.
    var used: Int { lock.withLock { reserved } }

    /// Reserves `bytes` if there is room now. It never waits: event loops must not block, so a connection
    /// that finds no room retries on its loop's next sweep until its own deadline.
    func tryReserve(_ bytes: Int) -> Bool {
        guard bytes > 0 else { return true }
        return lock.withLock {
            guard reserved + bytes <= capacity else { return false }
            reserved += bytes
            return true
        }
    }

    /// Returns `bytes` earlier reserved.
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        lock.withLock { reserved = max(0, reserved - bytes) }
    }
}
