// libFuzzer target: the IDX dataset reader, on plain and gzip-compressed files.
// The input is written to a file and read as images and as labels. Unless it already is gzip data, it is
// also gzip-compressed into a second file, which must read exactly like the plain one.
import CZlib
import Foundation
import Evaluation

private let directory: String = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return base + "/dsch-fuzz-idx-\(getpid())"
}()
private let plainPath = directory + ".idx"
private let gzipPath = directory + ".idx.gz"

/// The outcome of reading one file, with the file's path left out of errors so two files compare.
private enum Outcome: Equatable {
    case images(count: Int, rows: Int, columns: Int, pixels: [UInt8])
    case labels([UInt8])
    case failed(String)
}

private func read(_ path: String) -> [Outcome] {
    func failed(_ error: Error) -> Outcome { .failed("\(error)".replacingOccurrences(of: path, with: "FILE")) }
    var outcomes: [Outcome] = []
    do {
        let images = try IDXReader.readImages(path: path)
        precondition(images.pixels.count == images.count * images.rows * images.columns, "pixel count disagrees with the header")
        if images.count > 0 && images.rows * images.columns > 0 { _ = images.image(images.count - 1) }
        outcomes.append(.images(count: images.count, rows: images.rows, columns: images.columns, pixels: images.pixels))
    } catch { outcomes.append(failed(error)) }
    do { outcomes.append(.labels(try IDXReader.readLabels(path: path))) } catch { outcomes.append(failed(error)) }
    return outcomes
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard FileManager.default.createFile(atPath: plainPath, contents: Data(bytes)) else { fatalError("cannot write \(plainPath)") }
    let plain = read(plainPath)
    if !bytes.starts(with: [0x1F, 0x8B]) {
        guard let file = gzopen(gzipPath, "wb") else { fatalError("cannot write \(gzipPath)") }
        if !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
            precondition(written == Int32(bytes.count), "gzwrite failed")
        }
        gzclose(file)
        let compressed = read(gzipPath)
        if plain != compressed { fatalError("plain and gzipped reads differ:\n  plain: \(plain)\n  gzip:  \(compressed)") }
    }
    return 0
}
