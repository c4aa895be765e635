// Jobs repository contract (placeholder until the Storage work lands; then this file is removed).

/// A retrain job row.
public struct JobRecord: Equatable, Sendable {
    public var id: Int64
    public var kind: String
    public var status: String
    public var progress: Double
    public var message: String?
    public var configJSON: String?
    public var modelVersion: Int?
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
}

extension Store {
    public func createJob(kind: String, configJSON: String?) throws -> Int64 { fatalError("pending") }
    public func job(id: Int64) throws -> JobRecord? { fatalError("pending") }
    public func runningJob() throws -> JobRecord? { fatalError("pending") }
    public func updateJob(id: Int64, status: String?, progress: Double?, message: String?, modelVersion: Int?) throws { fatalError("pending") }
    public func failInterruptedJobs(reason: String) throws -> [JobRecord] { fatalError("pending") }
    public func jobCounts() throws -> [String: Int] { fatalError("pending") }
    public func deleteCodes(modelVersion: Int) throws { fatalError("pending") }
    public func deleteModel(version: Int) throws { fatalError("pending") }
    public func setModelStatus(version: Int, status: String) throws { fatalError("pending") }
    public func imageCount(afterID: Int64) throws -> Int { fatalError("pending") }
    public func maxImageID() throws -> Int64 { fatalError("pending") }
}
