// Writes the seeds made with the project's own encoders: model files (mode byte + serialized model, see
// Fuzz/model.swift) and JPEG images. Run by `scripts/fuzz seeds`; the output is checked in under Fuzz/corpus.
import Foundation
import Hashing
import Imaging
import NeuralNet

let root = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Fuzz/corpus"

func write(_ bytes: [UInt8], _ target: String, _ name: String) throws {
    let directory = root + "/" + target
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + name))
}

// Models. Mode bytes: 0 LSH, 1 ITQ, 2/3 DSCH, 4/5 Sequential (the network architecture of Fuzz/model.swift).
try write([0] + LSHEncoder(bits: 16, inputSize: 4, seed: 7).serialized(), "model", "lsh-16-bits")
var generator = SplitMix64(seed: 1)
let thumbnails = (0..<40).map { _ in (0..<(4 * 4 * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) } }
try write([1] + ITQEncoder.train(thumbnails: thumbnails, bits: 8, inputSize: 4, iterations: 3, seed: 1).serialized(), "model", "itq-8-bits")
for (name, configuration, mirror) in [
    ("dsch-v2", EncoderConfiguration(bits: 8, widths: [2, 2, 2], hiddenWidth: 4, inputSize: 8, codeBatchNorm: true, headGrid: 2), true),
    ("dsch-v2-gap", EncoderConfiguration(bits: 4, widths: [1, 2, 1], hiddenWidth: 2, inputSize: 4), false),
] {
    let network = try Sequential.dschEncoder(configuration, seed: 3)
    let encoder = try DSCHEncoder(network: network, configuration: configuration, averagesMirrorImages: mirror)
    let file = try encoder.serialized()
    try write([2] + file, "model", name)
    try write([3] + file, "model", name + "-crc-fixed")
}
do {
    // Format 3: eight network outputs projected to four bits.
    let configuration = EncoderConfiguration(bits: 8, widths: [2, 2, 2], hiddenWidth: 4, inputSize: 8, codeBatchNorm: true, headGrid: 2)
    let outputs = (0..<(20 * 8)).map { _ in Float.random(in: -1...1, using: &generator) }
    let projection = try ITQProjection.train(features: outputs, count: 20, dimension: 8, bits: 4, iterations: 3)
    let encoder = try DSCHEncoder(
        network: try Sequential.dschEncoder(configuration, seed: 3), configuration: configuration, averagesMirrorImages: true, projection: projection)
    let file = try encoder.serialized()
    try write([2] + file, "model", "dsch-v3-projected")
    try write([3] + file, "model", "dsch-v3-projected-crc-fixed")
}
let network = try Sequential.dschEncoder(
    EncoderConfiguration(bits: 8, widths: [2, 2, 2], hiddenWidth: 4, inputSize: 8, codeBatchNorm: true, headGrid: 2), seed: 5)
try write([4] + network.serialized(), "model", "network")
try write([5] + network.serialized(), "model", "network-crc-fixed")

// JPEG images: baseline and progressive, several sizes and qualities.
func gradient(_ width: Int, _ height: Int) -> RGBImage {
    var pixels: [UInt8] = []
    for y in 0..<height { for x in 0..<width { pixels += [UInt8(x * 255 / max(1, width - 1)), UInt8(y * 255 / max(1, height - 1)), UInt8((x ^ y) & 0xff)] } }
    return RGBImage(width: width, height: height, pixels: pixels)
}
try write(ImageEncoder.jpeg(gradient(8, 8), quality: 90), "image", "baseline-8x8.jpg")
try write(ImageEncoder.jpeg(gradient(17, 5), quality: 30), "image", "baseline-17x5-q30.jpg")
try write(ImageEncoder.jpeg(gradient(16, 16), quality: 75, progressive: true), "image", "progressive-16x16.jpg")
try write(ImageEncoder.jpeg(gradient(3, 40), quality: 100, progressive: true), "image", "progressive-3x40-q100.jpg")
try write(ImageEncoder.png(gradient(9, 7)), "image", "rgb-9x7.png")
