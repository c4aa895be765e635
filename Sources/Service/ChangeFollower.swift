import Foundation
import Storage

/// Keeps this replica in step with the others sharing its database: a thread that waits on the
/// change feed (woken by `NOTIFY`, or once a second regardless) and applies the change log through
/// `ImageService.followChanges`. While the database is unreachable it retries every half second and,
/// once it answers, catches up from the last applied sequence number; searches go on meanwhile.
final class ChangeFollower: @unchecked Sendable {
    private let service: ImageService
    private let feed: ChangeFeed
    private let logger: Logger
    private let lock = NSLock()
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)
    /// Seconds between waits when nothing is notified: a lost notification costs at most this much delay.
    static let pollSeconds = 1.0
    /// Change-log rows older than this are deleted (by every replica, about hourly); a replica away
    /// longer reloads its index instead of replaying.
    static let retentionSeconds: TimeInterval = 24 * 3600

    init(service: ImageService, feed: ChangeFeed, logger: Logger) {
        self.service = service
        self.feed = feed
        self.logger = logger
    }

    /// Starts the thread.
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "dsch.follower"
        thread.start()
    }

    /// Stops the thread and waits for it (at most one poll interval plus the change being applied).
    func stop() {
        lock.withLock { stopped = true }
        finished.wait()
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    private func run() {
        defer { finished.signal() }
        var connected = true
        var lastPrune = Date.distantPast
        while !isStopped {
            do {
                try service.followChanges()
                if !connected {
                    logger.info("database reachable again; caught up with other replicas",
                                [("sequence", "\(service.followedChangeSequence)")])
                    connected = true
                }
                if Date().timeIntervalSince(lastPrune) > 3600 {
                    lastPrune = Date()
                    try feed.pruneChanges(olderThan: ChangeFollower.retentionSeconds)
                }
                _ = try feed.waitForChanges(timeout: ChangeFollower.pollSeconds)
            } catch {
                if connected {
                    logger.warning("cannot follow other replicas; retrying", [("reason", "\(error)")])
                    connected = false
                }
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
    }
}
