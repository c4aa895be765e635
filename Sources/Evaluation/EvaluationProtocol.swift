import Foundation
import Imaging

/// Why the evaluation data could not be assembled.
public enum EvaluationDataError: Error, CustomStringConvertible {
    case tooFewQueries(label: Int, found: Int, wanted: Int)
    case imageSizeMismatch(train: String, test: String)

    public var description: String {
        switch self {
        case .tooFewQueries(let label, let found, let wanted):
            return "the test split holds only \(found) images of class \(label), the protocol needs \(wanted) queries per class"
        case .imageSizeMismatch(let train, let test):
            return "train images are \(train) but test images are \(test); both splits must have one size"
        }
    }
}

/// The retrieval protocol of the project's evaluation page, applied to an MNIST-style dataset:
/// all images are the train split then the test split; queries are, for each class in order, the first
/// `queriesPerClass` test images of that class in file order; the database is every other image; the
/// training set is the first `trainingCount` train images. No random numbers are involved.
public struct EvaluationProtocol: Sendable {
    /// Every image, train split first: 28×28 grayscale bytes each for Fashion-MNIST.
    public let images: IDXImages
    /// The label of every image, in the order of `images`.
    public let labels: [UInt8]
    /// How many images come from the train split (they occupy indices `0..<trainCount`).
    public let trainCount: Int
    /// Indices into `images` of the queries, class by class.
    public let queryIndices: [Int]
    /// Indices into `images` of the database, ascending.
    public let databaseIndices: [Int]
    /// Indices into `images` of the training set.
    public let trainingIndices: [Int]

    /// The Debian `dataset-fashion-mnist` location.
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"
    /// Queries taken from each class of the test split.
    public static let standardQueriesPerClass = 100
    /// Train images the encoders learn from.
    public static let standardTrainingCount = 5_000
    /// Ranked results mAP is computed over (mAP@1000).
    public static let rankingDepth = 1_000
    /// Ranked results precision is computed over (P@100).
    public static let precisionDepth = 100

    /// Builds the split from images and labels already read (train first, then test).
    public init(
        images: IDXImages, labels: [UInt8], trainCount: Int,
        queriesPerClass: Int = standardQueriesPerClass, classCount: Int = 10, trainingCount: Int = standardTrainingCount
    ) throws {
        guard images.count == labels.count else { throw IDXError.countMismatch(images: images.count, labels: labels.count) }
        self.images = images
        self.labels = labels
        self.trainCount = trainCount
        var perClass = [[Int]](repeating: [], count: classCount)
        for index in trainCount..<images.count {
            let label = Int(labels[index])
            if label < classCount, perClass[label].count < queriesPerClass { perClass[label].append(index) }
        }
        for (label, members) in perClass.enumerated() where members.count < queriesPerClass {
            throw EvaluationDataError.tooFewQueries(label: label, found: members.count, wanted: queriesPerClass)
        }
        queryIndices = perClass.flatMap { $0 }
        var isQuery = [Bool](repeating: false, count: images.count)
        for index in queryIndices { isQuery[index] = true }
        databaseIndices = (0..<images.count).filter { !isQuery[$0] }
        trainingIndices = Array(0..<min(trainingCount, trainCount))
    }

    /// A split with its index lists given.
    init(images: IDXImages, labels: [UInt8], trainCount: Int, queryIndices: [Int], databaseIndices: [Int], trainingIndices: [Int]) {
        self.images = images
        self.labels = labels
        self.trainCount = trainCount
        self.queryIndices = queryIndices
        self.databaseIndices = databaseIndices
        self.trainingIndices = trainingIndices
    }

    /// A small collection cut from this one, for checking that training adapts to collections of a
    /// few thousand images: the first `size` train-split images are both the training set and the
    /// collection searched; every tenth of them is a query, the others the database.
    public func smallCollection(size: Int) -> EvaluationProtocol {
        let members = Array(0..<min(size, trainCount))
        return EvaluationProtocol(
            images: images, labels: labels, trainCount: trainCount, queryIndices: members.filter { $0 % 10 == 0 },
            databaseIndices: members.filter { $0 % 10 != 0 }, trainingIndices: members)
    }

    /// Reads the four IDX files (`train-images-idx3-ubyte.gz` and so on) from `directory` and builds the split.
    public static func load(
        directory: String = fashionMNISTDirectory,
        queriesPerClass: Int = standardQueriesPerClass, trainingCount: Int = standardTrainingCount
    ) throws -> EvaluationProtocol {
        func path(_ name: String) -> String {
            let compressed = directory + "/" + name + ".gz"
            return FileManager.default.fileExists(atPath: compressed) ? compressed : directory + "/" + name
        }
        let trainImages = try IDXReader.readImages(path: path("train-images-idx3-ubyte"))
        let trainLabels = try IDXReader.readLabels(path: path("train-labels-idx1-ubyte"))
        let testImages = try IDXReader.readImages(path: path("t10k-images-idx3-ubyte"))
        let testLabels = try IDXReader.readLabels(path: path("t10k-labels-idx1-ubyte"))
        guard trainImages.count == trainLabels.count else {
            throw IDXError.countMismatch(images: trainImages.count, labels: trainLabels.count)
        }
        guard trainImages.rows == testImages.rows, trainImages.columns == testImages.columns else {
            throw EvaluationDataError.imageSizeMismatch(
                train: "\(trainImages.rows)×\(trainImages.columns)", test: "\(testImages.rows)×\(testImages.columns)")
        }
        let all = IDXImages(
            count: trainImages.count + testImages.count, rows: trainImages.rows, columns: trainImages.columns,
            pixels: trainImages.pixels + testImages.pixels)
        return try EvaluationProtocol(
            images: all, labels: trainLabels + testLabels, trainCount: trainImages.count,
            queriesPerClass: queriesPerClass, trainingCount: trainingCount)
    }

    /// The thumbnail (`inputSize`×`inputSize` RGB bytes, interleaved) of image `index`, in the format
    /// `HashEncoder.encode(thumbnails:)` takes.
    public func thumbnail(_ index: Int, inputSize: Int = 32) -> [UInt8] {
        grayThumbnail(Array(images.image(index)), width: images.columns, height: images.rows, size: inputSize)
    }

    /// Thumbnails of the given images.
    public func thumbnails(_ indices: [Int], inputSize: Int = 32) -> [[UInt8]] {
        indices.map { thumbnail($0, inputSize: inputSize) }
    }

    /// The labels of the given images.
    public func labels(of indices: [Int]) -> [UInt8] { indices.map { labels[$0] } }
}

/// A `size`×`size` RGB thumbnail of a grayscale image, made the way the service makes the thumbnail of
/// an upload (`ImageDecoder.thumbnail`): Imaging's exact area averaging, gray replicated to three
/// channels. So codes of the evaluation and of the service agree for the same picture.
public func grayThumbnail(_ pixels: [UInt8], width: Int, height: Int, size: Int) -> [UInt8] {
    RGBImage(gray: pixels, width: width, height: height).resized(width: size, height: size).pixels
}
