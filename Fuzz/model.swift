// libFuzzer target: loading model files. A corrupt model must be a typed error: never a trap, and never
// an allocation sized by a length field instead of by the bytes present (run with -malloc_limit_mb).
// The first byte picks the loader (modulo 6), the rest is the file:
//   0 LSHEncoder.load   1 ITQEncoder.load   2 DSCHEncoder.load   3 DSCHEncoder.load with the network's CRC fixed
//   4 Sequential.load   5 Sequential.load with the CRC fixed
// Fixing the CRC lets the fuzzer past the checksum to the tensor headers and values.
import CZlib
import Foundation
import Hashing
import NeuralNet

/// The network the Sequential modes load into (the architecture of Fuzz/corpus/model's network seeds).
private let network = try! Sequential.dschEncoder(
    EncoderConfiguration(bits: 8, widths: [2, 2, 2], hiddenWidth: 4, inputSize: 8, codeBatchNorm: true, headGrid: 2), seed: 0)

/// `bytes` with its last four bytes replaced by the CRC-32 of the bytes from `start` on (before those four).
private func fixingCRC(_ bytes: [UInt8], from start: Int) -> [UInt8] {
    guard bytes.count >= start + 4 else { return bytes }
    var fixed = bytes
    let end = bytes.count - 4
    let crc = bytes[start..<end].withUnsafeBytes { UInt32(crc32(0, $0.bindMemory(to: Bytef.self).baseAddress, uInt($0.count))) }
    withUnsafeBytes(of: crc.littleEndian) { for (offset, byte) in $0.enumerated() { fixed[end + offset] = byte } }
    return fixed
}

/// Whether LSH parameters are ones `LSHEncoder.load` accepts but that generate more projection weights
/// than the fuzzer's malloc limit allows (an LSH model is three numbers; its projection is generated).
/// Parameters past `maxProjectionWeights` are not skipped: load must refuse them without allocating.
private func isLegitimatelyHugeLSH(_ bytes: [UInt8]) -> Bool {
    struct Parameters: Decodable { let bits: Int; let inputSize: Int }
    guard let parameters = try? JSONDecoder().decode(Parameters.self, from: Data(bytes)),
          parameters.bits > 0, (1...(1 << 16)).contains(parameters.inputSize) else { return false }
    let (weights, overflow) = parameters.bits.multipliedReportingOverflow(by: parameters.inputSize * parameters.inputSize * 3)
    return !overflow && weights > 1 << 25 && weights <= LSHEncoder.maxProjectionWeights
}

/// Where the network file starts in a DSCH model: after the header (no flags word in version 1) and,
/// in version 3 with the projected flag, after the projection block (code bits, mean, matrix).
private func dschNetworkStart(_ bytes: [UInt8]) -> Int {
    var reader = ModelFileReader(bytes)
    guard (try? reader.bytes(4)) != nil, let version = try? reader.int() else { return bytes.count }
    guard version >= 3, let outputs = try? reader.int(), (try? reader.bytes(5 * 4)) != nil,
          let flags = try? reader.int(), flags & 4 != 0, let codeBits = try? reader.int() else { return version == 1 ? 32 : 36 }
    let (floats, overflow) = outputs.multipliedReportingOverflow(by: codeBits + 1)
    return overflow || floats > bytes.count ? bytes.count : 40 + 4 * floats
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModel(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let mode = data[0] % 6
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch mode {
    case 0:
        if isLegitimatelyHugeLSH(bytes) { return 0 }
        if let encoder = try? LSHEncoder.load(bytes) { precondition(encoder.bits > 0 && encoder.inputSize > 0) }
    case 1:
        _ = try? ITQEncoder.load(bytes)
    case 2, 3:
        let file = mode == 3 ? fixingCRC(bytes, from: dschNetworkStart(bytes)) : bytes
        _ = try? DSCHEncoder.load(file)
    default:
        let file = mode == 5 ? fixingCRC(bytes, from: 0) : bytes
        do { try network.load(from: file) } catch is NeuralNetError {} catch { fatalError("Sequential.load threw \(error)") }
    }
    return 0
}
