import Foundation

/// A change another replica committed, which this replica's in-memory state must follow.
public enum Change: Equatable, Sendable {
    /// An image's code under a model version (an upload, or a code stored for the active version).
    case code(imageID: Int64, modelVersion: Int, code: [UInt8])
    /// An image and all its codes were removed.
    case delete(imageID: Int64)
    /// A model version became the one answering searches.
    case activate(modelVersion: Int)
}

/// A change with its place in the change log.
public struct LoggedChange: Equatable, Sendable {
    /// Increasing in commit order, so "everything after N" is exactly what a follower has not seen.
    public var sequence: Int64
    public var change: Change
    public init(sequence: Int64, change: Change) { self.sequence = sequence; self.change = change }
}

/// The changes other processes make to a shared database, in commit order. A follower remembers the
/// last sequence number it applied and asks for what came after; `waitForChanges` saves it from polling.
public protocol ChangeFeed: AnyObject, Sendable {
    /// The sequence number of the newest change; read before loading state, then follow from it.
    func latestChangeSequence() throws -> Int64
    /// Changes after `sequence`, oldest first, at most `limit`: other processes' codes and every delete
    /// and activation (this process's own too, so that ordering against remote changes is kept).
    func changes(after sequence: Int64, limit: Int) throws -> [LoggedChange]
    /// How many changes `changes(after:)` would return with no limit: how far a follower at `sequence`
    /// lags behind the log.
    func pendingChangeCount(after sequence: Int64) throws -> Int
    /// Blocks until a change may have been committed or `timeout` passes; true when woken by one.
    /// Throws `StorageUnavailableError` while the database cannot be reached.
    func waitForChanges(timeout: TimeInterval) throws -> Bool
    /// The oldest sequence number still in the log (0 when nothing was pruned): a follower whose cursor
    /// is before it missed changes and must reload its state.
    func oldestRetainedSequence() throws -> Int64
    /// Deletes changes older than `age` seconds; returns how many.
    @discardableResult
    func pruneChanges(olderThan age: TimeInterval) throws -> Int
}

/// What `ServiceStore.claimJob` found.
public enum JobClaim: Equatable, Sendable {
    /// A new job, queued and leased to this process.
    case claimed(jobID: Int64)
    /// Another job is queued or running (on this replica or another one); no job was created.
    case busy(jobID: Int64)
}
