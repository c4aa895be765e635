import Foundation
import NeuralNet
import XCTest
@testable import Hashing

/// Small settings that train in seconds in a debug build: narrow network, 16×16 input, few epochs.
private func smallSettings(epochs: Int = 2) -> DSCHSettings {
    var settings = DSCHSettings()
    settings.bits = 16
    settings.epochs = epochs
    settings.warmupEpochs = 1
    settings.batchSize = 32
    settings.widths = [8, 16, 16]
    settings.hiddenWidth = 32
    settings.fineComponents = 8
    settings.coarseComponents = 3
    settings.mixtureIterations = 10
    settings.learningRateWarmupEpochs = 0.5
    // Tests count epochs and components exactly; scaling to their tiny collections is tested alone.
    settings.scaleToCollection = false
    return settings
}

/// Random 16×16 RGB thumbnails.
private func randomThumbnails(_ count: Int, size: Int = 16, seed: UInt64 = 7) -> [[UInt8]] {
    var generator = SplitMix64(seed: seed)
    return (0..<count).map { _ in (0..<(size * size * 3)).map { _ in UInt8(truncatingIfNeeded: generator.next()) } }
}

final class DSCHSettingsTests: XCTestCase {
    func testSettingsScaleWithTheCollection() {
        let defaults = DSCHSettings()
        XCTAssertEqual(defaults.scaled(toImages: DSCHSettings.referenceImages), defaults, "the reference size changes nothing")

        let small = defaults.scaled(toImages: 1_000)
        XCTAssertEqual(small.epochs, defaults.epochs, "a smaller collection trains the same epochs, not more")
        XCTAssertEqual(small.warmupEpochs, defaults.warmupEpochs * 4, "warm-ups keep their steps, up to 4× the epochs")
        XCTAssertEqual(small.learningRateWarmupEpochs, defaults.learningRateWarmupEpochs * 4, accuracy: 1e-9)
        var short = defaults
        short.epochs = 6
        short.learningRateWarmupEpochs = 2
        XCTAssertEqual(short.scaled(toImages: 1_000).warmupEpochs, 3, "a warm-up is lengthened to half the epochs at most")
        XCTAssertEqual(short.scaled(toImages: 1_000).learningRateWarmupEpochs, 3, accuracy: 1e-9)
        short.warmupEpochs = 5
        XCTAssertEqual(short.scaled(toImages: 1_000).warmupEpochs, 5, "but never shortened below what was set")
        XCTAssertEqual(small.fineComponents, 40, "about 25 images per fine component")
        XCTAssertEqual(small.coarseComponents, defaults.coarseComponents)

        let large = defaults.scaled(toImages: 20_000)
        XCTAssertEqual(large.epochs, Int((Double(defaults.epochs) * 0.4).rounded()), "four times the images trains 40 % of the epochs")
        XCTAssertEqual(large.warmupEpochs, Int((Double(defaults.warmupEpochs) * 0.4).rounded()))
        XCTAssertEqual(large.fineComponents, defaults.fineComponents, "never more fine components than set")
        XCTAssertEqual(defaults.scaled(toImages: 10_000).epochs, Int((Double(defaults.epochs) / 2).rounded()), "twice the images, half the epochs")

        let tiny = defaults.scaled(toImages: 60)
        XCTAssertEqual(tiny.fineComponents, 2)
        XCTAssertEqual(tiny.coarseComponents, 2, "never more coarse components than fine")

        var fixed = defaults
        fixed.scaleToCollection = false
        XCTAssertEqual(fixed.scaled(toImages: 1_000), fixed, "off, the settings are used as given")
    }

    func testMissingKeysKeepDefaultsAndOverridesApply() throws {
        XCTAssertEqual(try DSCHSettings.decode(overrides: [:]), DSCHSettings())
        let settings = try DSCHSettings.decode(overrides: ["bits": 32, "temperature": 0.5, "cooccurrence": false, "widths": [8, 16, 32]])
        XCTAssertEqual(settings.bits, 32)
        XCTAssertEqual(settings.temperature, 0.5)
        XCTAssertFalse(settings.cooccurrence)
        XCTAssertEqual(settings.widths, [8, 16, 32])
        XCTAssertEqual(settings.epochs, DSCHSettings().epochs)
        XCTAssertEqual(settings.seed, DSCHSettings().seed)
        // A Boolean parsed from JSON text, as `--set cooccurrence=false` gives it, leaves the other settings alone.
        let parsed = try JSONSerialization.jsonObject(with: Data("false".utf8), options: [.fragmentsAllowed])
        XCTAssertEqual(try DSCHSettings.decode(overrides: ["cooccurrence": parsed]).seed, DSCHSettings().seed)
        // Overrides layer over the given base, not over the defaults.
        var base = DSCHSettings()
        base.epochs = 3
        XCTAssertEqual(try DSCHSettings.decode(overrides: ["bits": 16], base: base).epochs, 3)
    }

    func testUnknownKeyIsAnErrorNamingIt() {
        XCTAssertThrowsError(try DSCHSettings.decode(overrides: ["bits": 32, "temprature": 0.5])) { error in
            XCTAssertEqual(error as? DSCHSettingsError, .unknownKey("temprature"))
            XCTAssertTrue("\(error)".contains("temprature"))
        }
        XCTAssertThrowsError(try JSONDecoder().decode(DSCHSettings.self, from: Data(#"{"epochs": 3, "colour": 1}"#.utf8))) { error in
            XCTAssertEqual(error as? DSCHSettingsError, .unknownKey("colour"))
        }
    }

    func testWrongTypesAndRangesNameTheKey() {
        XCTAssertThrowsError(try DSCHSettings.decode(overrides: ["epochs": "many"])) { error in
            guard case .invalidValue(let key, _)? = error as? DSCHSettingsError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "epochs")
        }
        XCTAssertThrowsError(try DSCHSettings.decode(overrides: ["fineComponents": 10, "coarseComponents": 20])) { error in
            guard case .invalidValue(let key, _)? = error as? DSCHSettingsError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "coarseComponents")
        }
        XCTAssertThrowsError(try DSCHSettings.decode(overrides: ["temperature": 0]))
    }

    func testJSONRoundTripAndAblations() throws {
        var settings = DSCHSettings()
        settings.fineComponents = 123
        settings.seed = 99
        let decoded = try JSONDecoder().decode(DSCHSettings.self, from: JSONEncoder().encode(settings))
        XCTAssertEqual(decoded, settings)

        let plain = settings.applying(.plain)
        XCTAssertFalse(plain.usesComponents)
        let cooccurrence = settings.applying(.cooccurrence)
        XCTAssertTrue(cooccurrence.cooccurrence && cooccurrence.fineWeight == 0 && cooccurrence.coarseWeight == 0)
        let fine = settings.applying(.fine)
        XCTAssertTrue(fine.cooccurrence && fine.fineWeight == settings.fineWeight && fine.coarseWeight == 0)
        XCTAssertEqual(settings.applying(.full), settings)
    }
}

final class DSCHTrainerTests: XCTestCase {
    func testSameSeedSameModelOtherSeedOtherModel() throws {
        let thumbnails = randomThumbnails(64)
        func train(seed: UInt64) throws -> [UInt8] {
            var settings = smallSettings()
            settings.seed = seed
            return try DSCHTrainer(settings: settings, inputSize: 16).train(thumbnails: thumbnails) { _ in }.serialized()
        }
        let first = try train(seed: 1)
        XCTAssertEqual(first, try train(seed: 1))
        XCTAssertNotEqual(first, try train(seed: 2))
    }

    func testReportsEveryEpochWithLossesAndRunsEStepsAfterWarmup() throws {
        var reports: [DSCHEpochReport] = []
        var settings = smallSettings(epochs: 3)
        settings.quantizationWeight = 0.1
        let trainer = DSCHTrainer(settings: settings, inputSize: 16)
        _ = try trainer.train(thumbnails: randomThumbnails(64)) { reports.append($0) }
        XCTAssertEqual(reports.map(\.epoch), [1, 2, 3])
        XCTAssertEqual(reports.map(\.ranExpectationStep), [false, true, true])
        XCTAssertEqual(Set(reports[0].losses.keys), ["instance", "quantization", "total"])
        XCTAssertEqual(Set(reports[2].losses.keys), ["instance", "fine", "coarse", "quantization", "total"])
        XCTAssertTrue(reports.allSatisfy { $0.losses.values.allSatisfy(\.isFinite) && $0.seconds > 0 })
        XCTAssertEqual(reports.last?.etaSeconds, 0)
        XCTAssertEqual(trainer.components?.fineCount, 8)
    }

    /// With an averaged encoder the E-steps see other codes, so the components and the trained model
    /// change; the result stays reproducible, and the setting's range is checked.
    func testAveragedEncoderFeedsTheEStepsReproducibly() throws {
        func train(momentum: Double) throws -> (model: [UInt8], fineMeans: [Float]) {
            var settings = smallSettings(epochs: 3)
            settings.averagedEncoderMomentum = momentum
            let trainer = DSCHTrainer(settings: settings, inputSize: 16)
            let model = try trainer.train(thumbnails: randomThumbnails(64)) { _ in }.serialized()
            return (model, try XCTUnwrap(trainer.components).fineMeans)
        }
        let plain = try train(momentum: 0), averaged = try train(momentum: 0.9)
        XCTAssertNotEqual(plain.fineMeans, averaged.fineMeans)
        XCTAssertNotEqual(plain.model, averaged.model)
        XCTAssertEqual(averaged.model, try train(momentum: 0.9).model)
        for bad in [-0.1, 1.0] {
            var settings = DSCHSettings()
            settings.averagedEncoderMomentum = bad
            XCTAssertThrowsError(try settings.validate())
        }
    }

    func testProgressErrorCancelsTraining() {
        struct Cancelled: Error {}
        var calls = 0
        XCTAssertThrowsError(try DSCHTrainer(settings: smallSettings(epochs: 3), inputSize: 16).train(thumbnails: randomThumbnails(64)) { _ in
            calls += 1
            throw Cancelled()
        }) { XCTAssertTrue($0 is Cancelled) }
        XCTAssertEqual(calls, 1)
    }

    func testTooFewImagesAndBadThumbnailsAreTypedErrors() {
        var settings = smallSettings()
        settings.fineComponents = 100
        settings.coarseComponents = 10
        XCTAssertThrowsError(try DSCHTrainer(settings: settings, inputSize: 16).train(thumbnails: randomThumbnails(40)) { _ in }) { error in
            XCTAssertEqual(error as? DSCHTrainingError, .tooFewImagesForComponents(images: 40, fineComponents: 100))
            XCTAssertTrue("\(error)".contains("fineComponents to at most 40"))
        }
        // Plain contrastive training needs no components, so the same count is fine there.
        XCTAssertNoThrow(try DSCHTrainer(settings: settings.applying(.plain), inputSize: 16).train(thumbnails: randomThumbnails(40)) { _ in })
        XCTAssertThrowsError(try DSCHTrainer(settings: smallSettings(), inputSize: 16).train(thumbnails: [[1, 2, 3]] + randomThumbnails(40)) { _ in }) { error in
            XCTAssertEqual(error as? DSCHTrainingError, .badThumbnail(index: 0, bytes: 3, expected: 768))
        }
    }
}

final class DSCHEncoderTests: XCTestCase {
    /// Where a DSCH model file's flags word starts: after the magic and seven header words.
    private let flagsOffset = 4 + 7 * 4

    func testSaveLoadRoundTripGivesIdenticalCodes() throws {
        try checkSaveLoadRoundTrip(codeBatchNorm: false, headGrid: 1, mirrorAveraged: false, outputWidth: 0)
        try checkSaveLoadRoundTrip(codeBatchNorm: true, headGrid: 1, mirrorAveraged: true, outputWidth: 0)
        try checkSaveLoadRoundTrip(codeBatchNorm: true, headGrid: 2, mirrorAveraged: false, outputWidth: 0)
        try checkSaveLoadRoundTrip(codeBatchNorm: true, headGrid: 2, mirrorAveraged: true, outputWidth: 24)
    }

    /// A projected encoder's codes are its projection applied to the network's outputs: the same file
    /// without the projection block encodes the outputs, and projecting them gives the codes.
    func testProjectedCodesAreTheProjectionOfTheNetworksOutputs() throws {
        var settings = smallSettings(epochs: 2)
        settings.outputWidth = 32
        let training = randomThumbnails(64)
        let encoder = try DSCHTrainer(settings: settings, inputSize: 16).train(thumbnails: training) { _ in }
        let projection = try XCTUnwrap(encoder.projection)
        XCTAssertEqual(encoder.bits, 16)
        XCTAssertEqual(encoder.configuration.bits, 32)
        XCTAssertEqual(projection.dimension, 32)
        let bytes = try encoder.serialized()
        XCTAssertEqual(bytes[flagsOffset] & 4, 4, "the projected flag")
        let blockBytes = 4 + 4 * 32 * (1 + 16)
        XCTAssertEqual(bytes[4], 3, "format version 3")
        var unprojectedBytes = Array(bytes[0..<(flagsOffset + 4)]) + Array(bytes[(flagsOffset + 4 + blockBytes)...])
        unprojectedBytes[flagsOffset] &= ~4
        let unprojected = try DSCHEncoder.load(unprojectedBytes)
        XCTAssertNil(unprojected.projection)
        XCTAssertEqual(unprojected.bits, 32)
        let probe = randomThumbnails(25, seed: 17)
        let outputs = unprojected.encode(thumbnails: probe)
        let expected = projection.apply(features: outputs.flatMap { $0 }, count: probe.count)
        XCTAssertEqual(encoder.encode(thumbnails: probe).flatMap { $0 }, expected)
        // The codes are not simply the first 16 outputs' signs: the projection mixes them.
        XCTAssertNotEqual(encoder.encode(thumbnails: probe).map { $0.map { $0 > 0 } }, outputs.map { $0.prefix(16).map { $0 > 0 } })
        // Projecting the same network again, to the same or another length, refits on the training images' outputs.
        XCTAssertEqual(try encoder.projected(toBits: 16, fittedOn: training).encode(thumbnails: probe), encoder.encode(thumbnails: probe))
        let eight = try unprojected.projected(toBits: 8, fittedOn: training)
        XCTAssertEqual(eight.bits, 8)
        XCTAssertEqual(eight.configuration, encoder.configuration)
        let eightProjection = try XCTUnwrap(eight.projection)
        XCTAssertEqual(eight.encode(thumbnails: probe).flatMap { $0 }, eightProjection.apply(features: outputs.flatMap { $0 }, count: probe.count))
    }

    /// `outputWidth` 0 trains the code itself; a width below `bits` is raised to `bits` (a rotation).
    func testOutputWidthDecidesTheNetworkAndTheProjection() throws {
        func train(outputWidth: Int) throws -> DSCHEncoder {
            var settings = smallSettings(epochs: 1)
            settings.outputWidth = outputWidth
            return try DSCHTrainer(settings: settings, inputSize: 16).train(thumbnails: randomThumbnails(40)) { _ in }
        }
        let unprojected = try train(outputWidth: 0)
        XCTAssertNil(unprojected.projection)
        XCTAssertEqual(unprojected.configuration.bits, 16)
        let rotated = try train(outputWidth: 8)
        XCTAssertEqual(rotated.configuration.bits, 16)
        XCTAssertEqual(rotated.projection?.dimension, 16)
        XCTAssertEqual(rotated.bits, 16)
        for bad in [-1, 1025] {
            var settings = DSCHSettings()
            settings.outputWidth = bad
            XCTAssertThrowsError(try settings.validate())
        }
    }

    /// A projection needs more training images than bits: with fewer, the codes are trained directly,
    /// and the settings the trainer reports say so.
    func testCollectionsOfAtMostBitsImagesTrainWithoutAProjection() throws {
        for (images, projected) in [(16, false), (17, true)] {
            let trainer = DSCHTrainer(settings: smallSettings(epochs: 1), inputSize: 16)
            let encoder = try trainer.train(thumbnails: randomThumbnails(images)) { _ in }
            XCTAssertEqual(encoder.bits, 16)
            XCTAssertEqual(encoder.projection != nil, projected, "\(images) images")
            XCTAssertEqual(trainer.trainedSettings.outputWidth, projected ? 128 : 0)
        }
    }

    /// Mirror-averaged codes are the same for an image and its mirror image; the plain codes of the same
    /// network are not, so the flag changes what is computed.
    func testMirrorAveragedCodesIgnoreLeftAndRight() throws {
        var settings = smallSettings(epochs: 1)
        settings.mirrorAveragedCodes = false
        settings.outputWidth = 0  // the network's own outputs, so that their mean is exact
        let plain = try DSCHTrainer(settings: settings, inputSize: 16).train(thumbnails: randomThumbnails(40)) { _ in }
        XCTAssertFalse(plain.averagesMirrorImages)
        var bytes = try plain.serialized()
        bytes[flagsOffset] |= 2  // the flag bit of mirror averaging
        let averaged = try DSCHEncoder.load(bytes)
        XCTAssertTrue(averaged.averagesMirrorImages)
        let probe = randomThumbnails(30, seed: 13)
        let mirrors = probe.map { image -> [UInt8] in
            var mirror = image
            for y in 0..<16 {
                for x in 0..<16 {
                    for channel in 0..<3 { mirror[(y * 16 + x) * 3 + channel] = image[(y * 16 + 15 - x) * 3 + channel] }
                }
            }
            return mirror
        }
        XCTAssertEqual(averaged.encode(thumbnails: probe), averaged.encode(thumbnails: mirrors))
        XCTAssertNotEqual(plain.encode(thumbnails: probe), plain.encode(thumbnails: mirrors))
        // The mean of the two outputs, exactly.
        let means = zip(plain.encode(thumbnails: probe), plain.encode(thumbnails: mirrors)).map { zip($0, $1).map { ($0 + $1) * 0.5 } }
        XCTAssertEqual(averaged.encode(thumbnails: probe), means)
    }

    /// Files written before the flags word (format version 1) still load, as encoders without the code
    /// batch norm and with global average pooling.
    func testVersionOneModelFilesStillLoad() throws {
        var settings = smallSettings(epochs: 1)
        settings.codeBatchNorm = false  // version 1 had no way to record any of these
        settings.headGrid = 1
        settings.mirrorAveragedCodes = false
        settings.outputWidth = 0
        let encoder = try DSCHTrainer(settings: settings, inputSize: 16).train(thumbnails: randomThumbnails(40)) { _ in }
        let bytes = try encoder.serialized()
        let versionOne = Array(bytes[0..<4]) + [1, 0, 0, 0] + Array(bytes[8..<flagsOffset]) + Array(bytes[(flagsOffset + 4)...])
        let loaded = try DSCHEncoder.load(versionOne)
        XCTAssertEqual(loaded.configuration, encoder.configuration)
        let probe = randomThumbnails(20, seed: 5)
        XCTAssertEqual(loaded.encode(thumbnails: probe), encoder.encode(thumbnails: probe))
    }

    /// Format-2 files written before the head grid was recorded have 0 in its flag bits: global average pooling.
    func testFormatTwoFilesWithoutAHeadGridLoadWithGlobalPooling() throws {
        var settings = smallSettings(epochs: 1)
        settings.headGrid = 1
        settings.outputWidth = 0  // format 2 had no projection
        let encoder = try DSCHTrainer(settings: settings, inputSize: 16).train(thumbnails: randomThumbnails(40)) { _ in }
        var bytes = try encoder.serialized()
        XCTAssertEqual(bytes[flagsOffset + 1], 1, "the head grid sits in the flags word's second byte")
        bytes[flagsOffset + 1] = 0
        let loaded = try DSCHEncoder.load(bytes)
        XCTAssertEqual(loaded.configuration.headGrid, 1)
        let probe = randomThumbnails(20, seed: 7)
        XCTAssertEqual(loaded.encode(thumbnails: probe), encoder.encode(thumbnails: probe))
    }

    private func checkSaveLoadRoundTrip(codeBatchNorm: Bool, headGrid: Int, mirrorAveraged: Bool, outputWidth: Int) throws {
        var settings = smallSettings(epochs: 1)
        settings.codeBatchNorm = codeBatchNorm
        settings.headGrid = headGrid
        settings.mirrorAveragedCodes = mirrorAveraged
        settings.outputWidth = outputWidth
        let encoder = try DSCHTrainer(settings: settings, inputSize: 16).train(thumbnails: randomThumbnails(64)) { _ in }
        XCTAssertEqual(encoder.configuration.codeBatchNorm, codeBatchNorm)
        XCTAssertEqual(encoder.configuration.headGrid, headGrid)
        XCTAssertEqual(encoder.averagesMirrorImages, mirrorAveraged)
        let bytes = try encoder.serialized()
        let loaded = try DSCHEncoder.load(bytes)
        XCTAssertEqual(loaded.kind, .dsch)
        XCTAssertEqual(loaded.bits, 16)
        XCTAssertEqual(loaded.inputSize, 16)
        XCTAssertEqual(loaded.configuration, encoder.configuration)
        XCTAssertEqual(loaded.averagesMirrorImages, mirrorAveraged)
        XCTAssertEqual(loaded.projection?.projection, encoder.projection?.projection)
        XCTAssertEqual(loaded.projection?.mean, encoder.projection?.mean)
        let probe = randomThumbnails(300, seed: 11)
        let codes = encoder.encode(thumbnails: probe)
        XCTAssertEqual(codes.count, 300)
        XCTAssertEqual(loaded.encode(thumbnails: probe), codes)
        XCTAssertEqual(try loaded.serialized(), bytes)
        // Unprojected outputs are tanh values, and encoding is per image: a batch of one agrees with the big batch.
        XCTAssertTrue(codes.allSatisfy { $0.count == 16 && (outputWidth > 0 || $0.allSatisfy { abs($0) <= 1 }) })
        XCTAssertEqual(encoder.encode(thumbnails: [probe[5]])[0].map { $0 > 0 }, codes[5].map { $0 > 0 })
    }

    func testDamagedModelsAreRejected() throws {
        let encoder = try DSCHTrainer(settings: smallSettings(epochs: 1), inputSize: 16).train(thumbnails: randomThumbnails(40)) { _ in }
        var bytes = try encoder.serialized()
        XCTAssertThrowsError(try DSCHEncoder.load(Array("ITQ1".utf8) + bytes.dropFirst(4)))
        XCTAssertThrowsError(try DSCHEncoder.load(Array(bytes.dropLast(10))))
        // A projection block whose code bits are 0 or more than the network's outputs, and a file cut inside the block.
        XCTAssertNotNil(encoder.projection)
        let codeBitsOffset = flagsOffset + 4
        for codeBits: UInt32 in [0, 129, 1 << 30] {
            var damaged = bytes
            withUnsafeBytes(of: codeBits.littleEndian) { damaged.replaceSubrange(codeBitsOffset..<(codeBitsOffset + 4), with: $0) }
            XCTAssertThrowsError(try DSCHEncoder.load(damaged)) { error in XCTAssertTrue(error is HashEncoderError, "\(error)") }
        }
        XCTAssertThrowsError(try DSCHEncoder.load(Array(bytes.prefix(codeBitsOffset + 100))))
        bytes[bytes.count / 2] ^= 0xff
        XCTAssertThrowsError(try DSCHEncoder.load(bytes)) { error in
            XCTAssertTrue(error is HashEncoderError, "\(error)")
        }
    }

    func testConcurrentEncodingMatchesSerialEncoding() throws {
        let encoder = try DSCHTrainer(settings: smallSettings(epochs: 1), inputSize: 16).train(thumbnails: randomThumbnails(40)) { _ in }
        let probe = randomThumbnails(40, seed: 3)
        let expected = encoder.encode(thumbnails: probe)
        let results = UnsafeMutableBufferPointer<[[Float]]>.allocate(capacity: 4)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { results[$0] = encoder.encode(thumbnails: probe) }
        for result in results { XCTAssertEqual(result, expected) }
    }
}
