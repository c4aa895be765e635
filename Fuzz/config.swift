// libFuzzer target: layering a JSON configuration file over the defaults (ConfigurationLoader.load).
// The input up to the first NUL byte is the file's text; after it, each line `key=value` is an override
// of a dotted key, layered over the file as `dsch`'s flags are (`--port 9000` is `server.port=9000`).
// No environment variables.
import Foundation
import Service

private let path: String = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return base + "/dsch-fuzz-config-\(getpid()).json"
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let nul = bytes.firstIndex(of: 0) ?? bytes.count
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes[..<nul])) else { fatalError("cannot write \(path)") }
    var overrides: [(key: String, value: String)] = []
    if nul < bytes.count {
        for line in String(decoding: bytes[(nul + 1)...], as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            overrides.append((String(line[..<equals]), String(line[line.index(after: equals)...])))
        }
    }
    if let configuration = try? ConfigurationLoader.load(file: path, environment: [:], overrides: overrides) {
        // What the loader accepted must survive a round trip through its own encoding.
        let data = try! JSONEncoder().encode(configuration)
        let again = try! JSONDecoder().decode(Configuration.self, from: data)
        precondition(again == configuration, "configuration does not survive an encode/decode round trip")
    }
    return 0
}
