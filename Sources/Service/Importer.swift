import Foundation
import Evaluation
import Imaging

/// Feeds folders of JPEG/PNG files, or IDX image files (such as Fashion-MNIST's), through the same
/// ingest pipeline as `POST /v1/images`, reporting progress.
///
/// Into a database it works in batches: each batch is decoded on every core and stored in one
/// transaction, and the next batch is prepared while the previous one is being written. A process
/// killed mid-way loses at most the batch in flight, never part of one; running the import again
/// stores the rest (images already stored count as duplicates).
public struct Importer {
    /// Counts of what an import did.
    public struct Summary: Equatable, Sendable {
        public var created = 0
        public var duplicates = 0
        public var failed = 0
        public var total: Int { created + duplicates + failed }
    }

    /// Stores one image with its metadata JSON; returns true when it was new.
    public typealias Ingest = ([UInt8], String?) throws -> Bool

    /// Where the images go: a database through the batched path, or any one-at-a-time ingest.
    private enum Destination {
        case service(ImageService)
        case single(Ingest)
    }

    private let destination: Destination
    let logger: Logger
    /// Called with (done, total) at most a few times a second and once at the end.
    var progress: (Int, Int) -> Void = { _, _ in }
    /// Images per batch (per transaction) into a database: large enough that one commit's sync to disk
    /// is spread over many images, small enough that a kill loses little and memory stays flat.
    public var batchSize = 500

    /// Imports into a database directly, in batches.
    public init(service: ImageService, logger: Logger, batchSize: Int = 500, progress: @escaping (Int, Int) -> Void = { _, _ in }) {
        destination = .service(service)
        self.logger = logger
        self.batchSize = max(1, batchSize)
        self.progress = progress
    }

    /// Imports through any ingest path, such as `POST /v1/images` of a running server, one image at a time.
    public init(ingest: @escaping Ingest, logger: Logger, progress: @escaping (Int, Int) -> Void = { _, _ in }) {
        destination = .single(ingest)
        self.logger = logger
        self.progress = progress
    }

    /// One image to import: a name for messages and the upload itself.
    private struct Item {
        var name: String
        var upload: Upload
    }

    /// Imports every path: directories are walked for .jpg/.jpeg/.png; other files must be images or IDX
    /// image files. `labels` (an IDX label file) adds `{"label": n, "index": i}` metadata to IDX images.
    public func run(paths: [String], labels: String? = nil, limit: Int? = nil) throws -> Summary {
        var pipeline = Pipeline(importer: self)
        // A path that cannot be read ends the import, but not before the batch in flight is stored.
        defer { pipeline.finish() }
        for path in paths {
            if try isIDX(path) {
                try importIDX(path: path, labels: labels, limit: limit, pipeline: &pipeline)
            } else {
                let files = try imageFiles(at: path)
                let chosen = limit.map { Array(files.prefix($0)) } ?? files
                pipeline.begin(total: chosen.count)
                for start in stride(from: 0, to: chosen.count, by: batchSize) {
                    let items = try chosen[start..<min(start + batchSize, chosen.count)].map { file in
                        Item(name: file, upload: Upload(bytes: try [UInt8](Data(contentsOf: URL(fileURLWithPath: file))),
                                                        metadataJSON: "{\"path\":\(Importer.jsonString(file))}"))
                    }
                    pipeline.submit(items)
                }
                pipeline.finish()
            }
        }
        return pipeline.summary
    }

    private func importIDX(path: String, labels: String?, limit: Int?, pipeline: inout Pipeline) throws {
        let images = try IDXReader.readImages(path: path)
        let labelValues = try labels.map { try IDXReader.readLabels(path: $0) }
        if let labelValues, labelValues.count != images.count {
            throw ServiceError.badRequest("\(labels!) has \(labelValues.count) labels but \(path) has \(images.count) images")
        }
        let count = min(images.count, limit ?? images.count)
        let name = URL(fileURLWithPath: path).lastPathComponent
        let source = Importer.jsonString(name)
        let side = images.rows * images.columns
        pipeline.begin(total: count)
        for start in stride(from: 0, to: count, by: batchSize) {
            let indices = start..<min(start + batchSize, count)
            // PNG encoding is a good part of the work; spread it over the cores like the decoding.
            let encoded = indices.mappedOnEveryCore { index in
                let pixels = Array(images.pixels[(index * side)..<((index + 1) * side)])
                return Result { try ImageEncoder.png(RGBImage(gray: pixels, width: images.columns, height: images.rows)) }
                    .mapError { $0 as? ImagingError ?? .corrupt("\($0)") }
            }
            var items: [Item] = []
            items.reserveCapacity(indices.count)
            for (offset, index) in indices.enumerated() {
                let png: [UInt8]
                switch encoded[offset] {
                case .success(let bytes): png = bytes
                case .failure(let error): throw error
                }
                // Written by hand, keys sorted: JSONSerialization cost more than the rest of an image's import.
                let label = labelValues.map { ",\"label\":\($0[index])" } ?? ""
                items.append(Item(name: "\(name)[\(index)]", upload: Upload(bytes: png, metadataJSON: "{\"index\":\(index)\(label),\"source\":\(source)}")))
            }
            pipeline.submit(items)
        }
        pipeline.finish()
    }

    /// Counts outcomes, logs refusals and reports progress for the batches of one path.
    private struct Pipeline {
        let importer: Importer
        var summary = Summary()
        private var done = 0
        private var total = 0
        private var lastReport = Date.distantPast
        /// The batch being stored on `storeQueue` while the next one is prepared.
        private var inFlight: (items: [Item], result: StoreResult)?
        private let storeQueue = DispatchQueue(label: "dsch.import.store")
        private let storing = DispatchGroup()

        init(importer: Importer) { self.importer = importer }

        mutating func begin(total: Int) {
            self.total = total
            done = 0
            lastReport = .distantPast
        }

        /// Stores `items`: with a database, prepares them here while the previous batch is written, then
        /// hands them to the store queue; otherwise ingests them one by one.
        mutating func submit(_ items: [Item]) {
            switch importer.destination {
            case .single(let ingest):
                for item in items {
                    do {
                        if try ingest(item.upload.bytes, item.upload.metadataJSON) { summary.created += 1 } else { summary.duplicates += 1 }
                    } catch {
                        refused(item.name, reason: "\(error)")
                    }
                    advance(by: 1)
                }
            case .service(let service):
                let prepared = service.prepare(items.map(\.upload))
                finish()
                let result = StoreResult()
                storeQueue.async(group: storing) { result.value = Result { try service.store(prepared) } }
                inFlight = (items, result)
            }
        }

        /// Waits for the batch in flight, if any, and counts what became of it.
        mutating func finish() {
            guard let (items, box) = inFlight, case .service(let service) = importer.destination else { return }
            storing.wait()
            inFlight = nil
            switch box.value! {
            case .success(let outcomes):
                for (item, outcome) in zip(items, outcomes) { count(item, outcome) }
            case .failure(let error):
                // The transaction stored nothing; one by one, only the images that cannot be stored are lost.
                importer.logger.warning("import batch failed; storing its images one at a time", [("images", "\(items.count)"), ("reason", "\(error)")])
                for item in items {
                    do {
                        let result = try service.ingest(bytes: item.upload.bytes, metadataJSON: item.upload.metadataJSON)
                        count(item, .stored(id: result.record.id, created: result.created))
                    } catch {
                        refused(item.name, reason: "\(error)")
                    }
                }
            }
            advance(by: items.count)
        }

        private mutating func count(_ item: Item, _ outcome: BatchIngestOutcome) {
            switch outcome {
            case .stored(_, let created): if created { summary.created += 1 } else { summary.duplicates += 1 }
            case .failed(let error): refused(item.name, reason: "\(error)")
            }
        }

        private mutating func refused(_ name: String, reason: String) {
            summary.failed += 1
            importer.logger.warning("import skipped a file", [("file", name), ("reason", reason)])
        }

        private mutating func advance(by count: Int) {
            done += count
            progress(force: done == total)
        }

        private mutating func progress(force: Bool) {
            let now = Date()
            if force || now.timeIntervalSince(lastReport) > 0.2 {
                lastReport = now
                importer.progress(done, total)
            }
        }
    }

    /// The outcome of a batch stored on another thread, read after waiting for it.
    private final class StoreResult: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: Result<[BatchIngestOutcome], any Error>?
        var value: Result<[BatchIngestOutcome], any Error>? {
            get { lock.withLock { stored } }
            set { lock.withLock { stored = newValue } }
        }
    }

    private func isIDX(_ path: String) throws -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ServiceError.notFound("\(path) does not exist")
        }
        return !isDirectory.boolValue && (path.contains("idx3") || path.hasSuffix(".idx") || path.hasSuffix(".idx.gz"))
    }

    private func imageFiles(at path: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return [path] }
        guard let walker = FileManager.default.enumerator(atPath: path) else { return [] }
        let extensions: Set<String> = ["jpg", "jpeg", "png"]
        return walker.compactMap { $0 as? String }
            .filter { extensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
            .sorted()
            .map { (path as NSString).appendingPathComponent($0) }
    }

    /// `text` as a JSON string literal.
    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
