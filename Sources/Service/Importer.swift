import Foundation
import Evaluation
import Imaging

/// Feeds folders of JPEG/PNG files, or IDX image files (such as Fashion-MNIST's), through the same
/// ingest pipeline as `POST /v1/images`, reporting progress.
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

    let ingest: Ingest
    let logger: Logger
    /// Called with (done, total) at most a few times a second and once at the end.
    var progress: (Int, Int) -> Void = { _, _ in }

    /// Imports into a database directly.
    public init(service: ImageService, logger: Logger, progress: @escaping (Int, Int) -> Void = { _, _ in }) {
        self.init(ingest: { try service.ingest(bytes: $0, metadataJSON: $1).created }, logger: logger, progress: progress)
    }

    /// Imports through any ingest path, such as `POST /v1/images` of a running server.
    public init(ingest: @escaping Ingest, logger: Logger, progress: @escaping (Int, Int) -> Void = { _, _ in }) {
        self.ingest = ingest
        self.logger = logger
        self.progress = progress
    }

    /// Imports every path: directories are walked for .jpg/.jpeg/.png; other files must be images or IDX
    /// image files. `labels` (an IDX label file) adds `{"label": n, "index": i}` metadata to IDX images.
    public func run(paths: [String], labels: String? = nil, limit: Int? = nil) throws -> Summary {
        var summary = Summary()
        for path in paths {
            if try isIDX(path) {
                try importIDX(path: path, labels: labels, limit: limit, summary: &summary)
            } else {
                let files = try imageFiles(at: path)
                let chosen = limit.map { Array(files.prefix($0)) } ?? files
                var lastReport = Date.distantPast
                for (number, file) in chosen.enumerated() {
                    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
                    record(file, bytes: bytes, metadata: jsonObject(["path": file]), summary: &summary)
                    report(number + 1, chosen.count, &lastReport)
                }
            }
        }
        return summary
    }

    private func importIDX(path: String, labels: String?, limit: Int?, summary: inout Summary) throws {
        let images = try IDXReader.readImages(path: path)
        let labelValues = try labels.map { try IDXReader.readLabels(path: $0) }
        if let labelValues, labelValues.count != images.count {
            throw ServiceError.badRequest("\(labels!) has \(labelValues.count) labels but \(path) has \(images.count) images")
        }
        let count = min(images.count, limit ?? images.count)
        let name = URL(fileURLWithPath: path).lastPathComponent
        var lastReport = Date.distantPast
        for index in 0..<count {
            let pixels = Array(images.pixels[(index * images.rows * images.columns)..<((index + 1) * images.rows * images.columns)])
            let png = try ImageEncoder.png(RGBImage(gray: pixels, width: images.columns, height: images.rows))
            var metadata: [String: Any] = ["source": name, "index": index]
            if let labelValues { metadata["label"] = Int(labelValues[index]) }
            record("\(name)[\(index)]", bytes: png, metadata: jsonObject(metadata), summary: &summary)
            report(index + 1, count, &lastReport)
        }
    }

    private func record(_ name: String, bytes: [UInt8], metadata: String?, summary: inout Summary) {
        do {
            if try ingest(bytes, metadata) { summary.created += 1 } else { summary.duplicates += 1 }
        } catch {
            summary.failed += 1
            logger.warning("import skipped a file", [("file", name), ("reason", "\(error)")])
        }
    }

    private func report(_ done: Int, _ total: Int, _ last: inout Date) {
        let now = Date()
        if done == total || now.timeIntervalSince(last) > 0.2 {
            last = now
            progress(done, total)
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

    private func jsonObject(_ object: [String: Any]) -> String? {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])).map { String(decoding: $0, as: UTF8.self) }
    }
}
