import Foundation
import Hashing
import Imaging
import Storage

/// Stored images held out of a retrain's training, with altered copies of each, on which every
/// candidate model is scored before one is activated (see `QualityScore`).
public struct QualitySample {
    /// Ids of the held-out images (none of them is trained on).
    let imageIDs: [Int64]
    /// Their stored thumbnails.
    let originals: [[UInt8]]
    /// For each original, thumbnails of the alterations a user's copy of it might have gone through.
    let alteredCopies: [[[UInt8]]]

    /// Fewer held-out images than this and the gate is skipped: with a handful of images the score is
    /// noise, and such collections retrain in seconds anyway.
    static let minimumImages = 20

    /// Every `stride`-th id of `ids` to hold out, at most `limit` and about a tenth of the collection
    /// so that small collections keep most images for training; empty when that is below `minimumImages`.
    static func heldOutIDs(from ids: [Int64], limit: Int) -> [Int64] {
        let count = min(limit, ids.count / 10)
        guard count >= minimumImages else { return [] }
        let step = Double(ids.count) / Double(count)
        // Offset by half a step so that the held-out ids do not coincide with the training sample's
        // stride, which starts at the first id.
        return (0..<count).map { ids[min(ids.count - 1, Int((Double($0) + 0.5) * step))] }
    }

    /// Reads the held-out images and makes their altered copies; an image that no longer decodes or was
    /// deleted meanwhile is left out.
    static func make(ids: [Int64], store: ServiceStore, inputSize: Int, limits: DecodeLimits) throws -> QualitySample {
        let thumbnails = Dictionary(try store.thumbnails(ids: ids).map { ($0.imageID, $0.thumbnail) }, uniquingKeysWith: { first, _ in first })
        var keptIDs: [Int64] = [], originals: [[UInt8]] = [], copies: [[[UInt8]]] = []
        for id in ids {
            guard let thumbnail = thumbnails[id], let content = try store.imageContent(id: id),
                  let altered = try? alterations(of: content.bytes, inputSize: inputSize, limits: limits, seed: UInt64(bitPattern: id))
            else { continue }
            keptIDs.append(id)
            originals.append(thumbnail)
            copies.append(altered)
        }
        return QualitySample(imageIDs: keptIDs, originals: originals, alteredCopies: copies)
    }

    /// Side of the working copy the alterations are applied to: large enough that a recompression or a
    /// crop changes the thumbnail the way it would change the full image, small enough to be quick.
    static let workingSide = 96

    /// Thumbnails of four altered copies of an image: JPEG-recompressed at low quality, shrunk to half
    /// and scaled back, cropped to about 80 % of its area, and brightened by a quarter.
    public static func alterations(of bytes: [UInt8], inputSize: Int, limits: DecodeLimits, seed: UInt64) throws -> [[UInt8]] {
        let info = try ImageDecoder.info(bytes, limits: limits)
        let scale = min(1, Double(workingSide) / Double(max(info.width, info.height)))
        let working = try ImageDecoder.thumbnail(
            bytes, width: max(1, Int((Double(info.width) * scale).rounded())), height: max(1, Int((Double(info.height) * scale).rounded())),
            limits: limits)
        func thumbnail(_ image: RGBImage) -> [UInt8] { image.resized(width: inputSize, height: inputSize).pixels }

        let recompressed = try ImageDecoder.decode(try ImageEncoder.jpeg(working, quality: 25))
        let shrunk = working.resized(width: max(1, working.width / 2), height: max(1, working.height / 2))
        // The crop's corner moves with the image, so the gate does not favour one part of the frame.
        let mixed = (seed &+ 1) &* 0x9e37_79b9_7f4a_7c15
        let cropWidth = max(1, Int(Double(working.width) * 0.9)), cropHeight = max(1, Int(Double(working.height) * 0.9))
        let left = Int(mixed % UInt64(working.width - cropWidth + 1))
        let top = Int((mixed >> 32) % UInt64(working.height - cropHeight + 1))
        var cropped = [UInt8](repeating: 0, count: cropWidth * cropHeight * 3)
        for row in 0..<cropHeight {
            let source = ((top + row) * working.width + left) * 3
            cropped.replaceSubrange((row * cropWidth * 3)..<((row + 1) * cropWidth * 3), with: working.pixels[source..<(source + cropWidth * 3)])
        }
        let brightened = RGBImage(width: working.width, height: working.height,
                                  pixels: working.pixels.map { UInt8(min(255, Double($0) * 1.25 + 8)) })
        return [thumbnail(recompressed), thumbnail(shrunk), thumbnail(RGBImage(width: cropWidth, height: cropHeight, pixels: cropped)),
                thumbnail(brightened)]
    }

    /// The score of `encoder` on this sample.
    func score(_ encoder: HashEncoder) -> QualityScore {
        QualityScore.measure(encoder: encoder, originals: originals, alteredCopies: alteredCopies)
    }
}

/// One model a retrain may activate, with its gate score.
struct GateCandidate {
    /// How the job's result names it: "new dsch", "new itq", "active model 3".
    let name: String
    let encoder: HashEncoder
    /// The trained encoder to store, or nil for the model already active.
    let trained: TrainedEncoder?
    var score: QualityScore?
}

/// What the gate decided and why, recorded as the job's result.
struct GateDecision: Encodable {
    struct Entry: Encodable {
        let name: String
        let kind: String
        let bits: Int
        let quality: QualityScore?
    }
    let heldOutImages: Int
    let candidates: [Entry]
    let chosen: String
    let reason: String

    /// Picks the best-scoring candidate (the first of equals, so the newly requested model wins a tie),
    /// or the first when forced or when there was nothing to score on.
    static func choose(_ candidates: [GateCandidate], heldOutImages: Int, force: Bool) -> (index: Int, decision: GateDecision) {
        let entries = candidates.map { Entry(name: $0.name, kind: $0.encoder.kind.rawValue, bits: $0.encoder.bits, quality: $0.score) }
        func decision(_ index: Int, _ reason: String) -> (Int, GateDecision) {
            (index, GateDecision(heldOutImages: heldOutImages, candidates: entries, chosen: candidates[index].name, reason: reason))
        }
        if force { return decision(0, "forced: the request asked to activate the new model regardless of its score") }
        guard heldOutImages > 0 else {
            return decision(0, "not scored: fewer than \(QualitySample.minimumImages * 10) images, too few to hold out a sample")
        }
        var best = 0
        for index in candidates.indices.dropFirst() where (candidates[index].score?.score ?? -1) > (candidates[best].score?.score ?? -1) {
            best = index
        }
        let others = candidates.indices.filter { $0 != best }
            .map { String(format: "%@ %.3f", candidates[$0].name, candidates[$0].score?.score ?? 0) }.joined(separator: ", ")
        return decision(best, String(format: "highest quality score %.3f (others: %@)", candidates[best].score?.score ?? 0, others))
    }

    /// The decision as a JSON object's text.
    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // The API's field names are snake_case.
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return (try? encoder.encode(["gate": self])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
