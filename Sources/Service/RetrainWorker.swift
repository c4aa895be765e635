import Foundation
import Hashing
import HammingIndex
import Storage

/// A retrain that could not start or failed, with the reason for the job row and the client.
public enum RetrainError: Error, CustomStringConvertible {
    case unknownKind(ModelKind)
    case invalidSettings(String)
    case cancelled
    /// The job's lease expired (this replica could not renew it in time) and another replica failed it.
    case leaseLost

    public var description: String {
        switch self {
        case .unknownKind(let kind): return "no trainer for model kind '\(kind)'"
        case .invalidSettings(let why): return "invalid training settings: \(why)"
        case .cancelled: return "cancelled: the service is shutting down"
        case .leaseLost: return "stopped: the job's lease expired and another replica marked it failed"
        }
    }
}

/// Runs one retrain at a time on its own low-priority queue: trains, records the model, encodes every
/// image (catching up with uploads that arrive meanwhile), activates the version and prunes old codes.
/// Search and uploads go on throughout; a failure leaves the previous version serving.
public final class RetrainWorker: @unchecked Sendable {
    let service: ImageService
    let store: ServiceStore
    let trainers: [ModelKind: ModelTrainer]
    let logger: Logger
    let metrics: Metrics
    private let queue = DispatchQueue(label: "dsch.retrain", qos: .utility)
    private let lock = NSLock()
    private var runningJobID: Int64?
    private var finishHandlers: [Int64: (Bool) -> Void] = [:]
    private var cancelled = false
    private var automaticTimer: DispatchSourceTimer?
    /// Image count at the last automatic retrain that failed, so a failing setup is not retried in a loop.
    private var failedAutomaticAt: Int?
    /// Set when the running job's lease could not be renewed; the job stops at its next progress report.
    private var leaseLost = false

    public init(service: ImageService, trainers: [ModelTrainer], logger: Logger, metrics: Metrics) {
        self.service = service
        store = service.store
        self.trainers = Dictionary(trainers.map { ($0.kind, $0) }, uniquingKeysWith: { first, _ in first })
        self.logger = logger
        self.metrics = metrics
    }

    /// Marks jobs a previous process left running as failed and removes their half-written model.
    public func recoverInterruptedJobs() throws {
        for job in try store.failInterruptedJobs(reason: "interrupted: the service stopped while the job ran") {
            logger.warning("retrain job marked failed after restart", [("job", "\(job.id)"), ("model_version", job.modelVersion.map(String.init) ?? "none")])
        }
    }

    /// Fails jobs whose replica stopped renewing their lease (it died mid-job); any replica may notice.
    func failAbandonedJobs() {
        do {
            for job in try store.failAbandonedJobs(reason: "abandoned: the replica running the job stopped renewing its lease") {
                logger.warning("retrain job of a stopped replica marked failed", [("job", "\(job.id)")])
            }
        } catch {
            logger.warning("cannot check for abandoned jobs", [("reason", "\(error)")])
        }
    }

    // MARK: Automatic retraining

    /// Checks every `retrain.checkSeconds` whether a retrain is due (see `checkAutomaticRetrain`).
    public func startAutomaticChecks() {
        let interval = service.configuration.retrain.checkSeconds
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in
            self?.failAbandonedJobs()
            self?.checkAutomaticRetrain()
        }
        timer.resume()
        lock.lock()
        automaticTimer = timer
        lock.unlock()
    }

    /// Why a retrain is due now, or nil: no learned model of the configured kind yet and at least
    /// `retrain.minImages` images, or `retrain.afterNewImages` images added since the active model's
    /// training snapshot. A failed automatic retrain is not retried until that many more images arrive.
    func automaticRetrainReason() throws -> (reason: String, imageCount: Int)? {
        let settings = service.configuration.retrain
        guard settings.automatic, currentJobID == nil else { return nil }
        let count = try store.imageCount()
        lock.lock()
        let failedAt = failedAutomaticAt
        lock.unlock()
        if let failedAt, count < failedAt + settings.afterNewImages { return nil }
        let models = try store.models()
        let learned = models.contains { $0.kind == settings.kind && $0.status.isFinished }
        if !learned {
            return count >= settings.minImages ? ("\(count) images and no \(settings.kind) model yet", count) : nil
        }
        guard let active = try store.activeModelVersion(), let model = models.first(where: { $0.version == active }) else { return nil }
        let added = try store.imageCount(afterID: model.trainedThroughImageID ?? 0)
        return added >= settings.afterNewImages ? ("\(added) images added since model \(active) was trained", count) : nil
    }

    /// Starts a retrain when one is due (`automaticRetrainReason`).
    public func checkAutomaticRetrain() {
        do {
            guard let (reason, count) = try automaticRetrainReason() else { return }
            let job = try start(RetrainRequest(configuration: service.configuration), reason: reason)
            guard job.started else { return }
            onFinish(jobID: job.jobID) { [weak self] succeeded in
                guard let self else { return }
                self.lock.lock()
                self.failedAutomaticAt = succeeded ? nil : count
                self.lock.unlock()
            }
        } catch {
            logger.error("automatic retrain check failed", [("reason", "\(error)")])
        }
    }

    /// The job now running, if any.
    public var currentJobID: Int64? {
        lock.lock()
        defer { lock.unlock() }
        return runningJobID
    }

    /// Queues a retrain, or returns the running job's id with `started == false`.
    public func start(_ request: RetrainRequest, reason: String) throws -> (jobID: Int64, started: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if let running = runningJobID { return (running, false) }
        guard let trainer = trainers[request.kind] else { throw RetrainError.unknownKind(request.kind) }
        if cancelled { throw RetrainError.cancelled }
        // The claim is what keeps retrains one at a time across replicas; the local check above only
        // saves a round trip.
        let jobID: Int64
        switch try store.claimJob(kind: request.kind.rawValue, configJSON: request.overridesJSON) {
        case .busy(let running): return (running, false)
        case .claimed(let claimed): jobID = claimed
        }
        runningJobID = jobID
        leaseLost = false
        logger.info("retrain queued", [("job", "\(jobID)"), ("kind", request.kind.rawValue), ("reason", reason)])
        queue.async { self.run(jobID: jobID, trainer: trainer, request: request) }
        return (jobID, true)
    }

    /// Calls `handler` with success or failure when the job ends.
    func onFinish(jobID: Int64, _ handler: @escaping (Bool) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        finishHandlers[jobID] = handler
    }

    /// Stops a running job at its next progress report (it fails as cancelled) and refuses new ones;
    /// returns once the worker is idle.
    public func cancelAndWait() {
        lock.lock()
        cancelled = true
        automaticTimer?.cancel()
        automaticTimer = nil
        lock.unlock()
        queue.sync {}
    }

    private func checkCancelled() throws {
        lock.lock()
        defer { lock.unlock() }
        if cancelled { throw RetrainError.cancelled }
        if leaseLost { throw RetrainError.leaseLost }
    }

    /// Renews the job's lease three times per lease period until cancelled; a renewal that finds the
    /// job taken away stops the work. A renewal that fails only because the database is briefly
    /// unreachable is retried at the next tick: the lease is long enough to ride that out.
    private func startHeartbeat(jobID: Int64) -> DispatchSourceTimer {
        let interval = max(service.configuration.retrain.leaseSeconds / 3, 0.2)
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            do {
                if try !self.store.renewJobLease(id: jobID) {
                    self.lock.withLock { self.leaseLost = true }
                    self.logger.error("retrain lease lost", [("job", "\(jobID)")])
                }
            } catch {
                self.logger.warning("cannot renew the retrain lease", [("job", "\(jobID)"), ("reason", "\(error)")])
            }
        }
        timer.resume()
        return timer
    }

    private func run(jobID: Int64, trainer: ModelTrainer, request: RetrainRequest) {
        let started = Date()
        var newVersion: Int?
        var succeeded = false
        let heartbeat = startHeartbeat(jobID: jobID)
        defer {
            heartbeat.cancel()
            lock.lock()
            runningJobID = nil
            let handler = finishHandlers.removeValue(forKey: jobID)
            lock.unlock()
            handler?(succeeded)
        }
        do {
            try store.updateJob(id: jobID, status: .running, progress: 0, message: "loading thumbnails", modelVersion: nil)
            let snapshotID = try store.maxImageID()
            let ids = try store.imageIDs(through: snapshotID)
            let heldOutIDs = QualitySample.heldOutIDs(from: ids, limit: service.configuration.retrain.qualityGateImages)
            let heldOut = Set(heldOutIDs)
            let thumbnails = try loadThumbnails(ids: ids.filter { !heldOut.contains($0) })
            let trained = try trainer.train(thumbnails: thumbnails, settings: request.settings) { fraction, message in
                try self.checkCancelled()
                try? self.store.updateJob(id: jobID, status: nil, progress: RetrainWorker.trainingShare * min(max(fraction, 0), 1), message: message, modelVersion: nil)
            }
            let trainingSeconds = Date().timeIntervalSince(started)
            metrics.increment("dsch_training_seconds_total", by: trainingSeconds)

            let (chosen, decision) = try choose(trained, thumbnails: thumbnails, heldOutIDs: heldOutIDs, request: request, jobID: jobID)
            try store.recordJobResult(id: jobID, resultJSON: decision.json)
            logger.info("retrain quality gate", [("job", "\(jobID)"), ("chosen", decision.chosen), ("reason", decision.reason)])
            guard let trained = chosen else {
                try store.updateJob(id: jobID, status: .succeeded, progress: 1,
                                    message: "kept the active model: \(decision.reason)", modelVersion: nil)
                succeeded = true
                return
            }

            let version = try store.maxModelVersion() + 1
            newVersion = version
            let record = ModelRecord(version: version, kind: trained.encoder.kind.rawValue, bits: trained.encoder.bits,
                                     configJSON: trained.settingsJSON, weights: try trained.encoder.serialized(),
                                     metricsJSON: trained.metricsJSON, status: .building, createdAt: "",
                                     trainedThroughImageID: snapshotID)
            try store.insertModel(record, forJob: jobID, progress: RetrainWorker.trainingShare, message: "encoding images")

            let model = try ServingModel(version: version, encoder: trained.encoder)
            service.setBuilding(model)
            try encodeAll(into: model, through: snapshotID, jobID: jobID)
            try checkCancelled()
            try service.activate(model, afterID: snapshotID)
            try prune(keep: service.configuration.retrain.keepVersions)
            try store.updateJob(id: jobID, status: .succeeded, progress: 1,
                                message: String(format: "model version %d active after %.1f s", version, Date().timeIntervalSince(started)),
                                modelVersion: version)
            succeeded = true
            logger.info("retrain succeeded", [("job", "\(jobID)"), ("model_version", "\(version)"),
                                              ("seconds", String(format: "%.1f", Date().timeIntervalSince(started)))])
        } catch {
            service.setBuilding(nil)
            // Deleting the model removes its codes in the same transaction.
            if let version = newVersion, (try? store.activeModelVersion()) != version {
                _ = try? store.deleteModel(version: version)
            }
            try? store.updateJob(id: jobID, status: .failed, progress: nil, message: "\(error)", modelVersion: nil)
            logger.error("retrain failed", [("job", "\(jobID)"), ("reason", "\(error)")])
        }
    }

    /// Share of a job's progress bar given to training; encoding every image takes the rest.
    static let trainingShare = 0.8

    /// The quality gate: scores the new model, an ITQ model trained on the same images (seconds of
    /// work, and a safe fallback when deep training went wrong) and the active model on the held-out
    /// images, and returns the trained encoder to activate, or nil to keep the active one.
    private func choose(_ trained: TrainedEncoder, thumbnails: [[UInt8]], heldOutIDs: [Int64], request: RetrainRequest,
                        jobID: Int64) throws -> (TrainedEncoder?, GateDecision) {
        var candidates = [GateCandidate(name: "new \(trained.encoder.kind)", encoder: trained.encoder, trained: trained)]
        var scoredImages = 0
        if !heldOutIDs.isEmpty {
            try store.updateJob(id: jobID, status: nil, progress: nil,
                                message: "scoring models on \(heldOutIDs.count) held-out images", modelVersion: nil)
            let sample = try QualitySample.make(ids: heldOutIDs, store: store, inputSize: service.configuration.images.inputSize,
                                                limits: service.decodeLimits)
            if !request.force, trained.encoder.kind != .itq, let itqTrainer = trainers[.itq] {
                let itq = try itqTrainer.train(thumbnails: thumbnails, settings: request.settings) { _, _ in try self.checkCancelled() }
                candidates.append(GateCandidate(name: "new itq", encoder: itq.encoder, trained: itq))
            }
            // A request for another code length is a choice the gate does not second-guess: codes of
            // different lengths are not compared, only the new models of the requested length.
            let active = service.currentModel
            if active.bits == trained.encoder.bits {
                candidates.append(GateCandidate(name: "active model \(active.version)", encoder: active.encoder, trained: nil))
            }
            if sample.imageIDs.count >= QualitySample.minimumImages {
                scoredImages = sample.imageIDs.count
                for index in candidates.indices { candidates[index].score = sample.score(candidates[index].encoder) }
            }
        }
        let (index, decision) = GateDecision.choose(candidates, heldOutImages: scoredImages, force: request.force)
        return (candidates[index].trained, decision)
    }

    /// An even sample of at most `retrain.maxTrainingImages` of `ids`: the ids are chosen first, so only
    /// the sampled thumbnails are ever read, however large the collection.
    private func loadThumbnails(ids: [Int64]) throws -> [[UInt8]] {
        var ids = ids
        let cap = service.configuration.retrain.maxTrainingImages
        if ids.count > cap {
            // An even stride keeps the sample spread over the whole collection, old and new.
            let step = Double(ids.count) / Double(cap)
            ids = (0..<cap).map { ids[Int(Double($0) * step)] }
        }
        return try store.thumbnails(ids: ids).map(\.thumbnail)
    }

    private func encodeAll(into model: ServingModel, through snapshotID: Int64, jobID: Int64) throws {
        let total = max(try store.imageCount(), 1)
        var cursor: Int64 = 0
        var done = 0
        while cursor < snapshotID {
            let page = try store.thumbnails(afterID: cursor, limit: ImageService.encodingPageSize)
            guard let last = page.last else { break }
            cursor = last.imageID
            try service.storeCodes(for: page.filter { $0.imageID <= snapshotID }, in: model)
            try checkCancelled()
            done += page.count
            let share = RetrainWorker.trainingShare
            try store.updateJob(id: jobID, status: nil, progress: share + (1 - share) * min(Double(done) / Double(total), 1),
                                message: "encoded \(done) of \(total) images", modelVersion: nil)
        }
    }

    /// Drops the codes of models beyond the newest `keep` (never the active one); the model rows stay.
    private func prune(keep: Int) throws {
        let active = try store.activeModelVersion()
        let versions = try store.models().filter { $0.status != .pruned }.map(\.version).sorted(by: >)
        for version in versions.dropFirst(max(keep, 1)) where version != active {
            try store.pruneCodes(modelVersion: version)
        }
    }
}
