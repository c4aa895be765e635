import Foundation
import XCTest

/// Keeps every service test on both stores. Each test a base class declares must be named in its
/// PostgreSQL subclass, run there or skipped with a reason: discovery on Linux would miss a subclass
/// that declares none, and an inherited SQLite-only test would otherwise fail there. This reads the
/// test sources and fails when a class or a test is left out.
final class StoreCoverageTests: XCTestCase {
    /// Test classes that run on one store on purpose, and why.
    static let singleStore = [
        "ConfigurationTests": "parses settings and never opens a store",
        "APIDocumentTests": "compares the API document with the router and reads no data",
        "WebPageTests": "the browser reads the JSON routes ServerTests and UserFeatureTests check on both stores; each page costs a chromium start",
        "ReplicaTests": "replicas exist only on PostgreSQL",
        "StoreCoverageTests": "reads source files",
        "JSONValueTests": "writes response bytes and never opens a store",
        "BatchIngestTests": "the service's batch path over ServiceStore.insertImages, which StoreConformanceTests checks on both stores",
        "ImportKillTests": "has a test for each store itself",
    ]

    /// A top-level class in a test file: its superclass and the text up to the next top-level class.
    struct TestClass {
        var name: String
        var superclass: String
        var body: String
    }

    /// Every top-level class of the files beside this one.
    static func testClasses() throws -> [TestClass] {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let declaration = try NSRegularExpression(pattern: #"^(?:final )?class (\w+): (\w+)"#, options: [.anchorsMatchLines])
        var classes: [TestClass] = []
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where file.hasSuffix(".swift") {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8) as NSString
            let matches = declaration.matches(in: text as String, range: NSRange(location: 0, length: text.length))
            for (index, match) in matches.enumerated() {
                let end = index + 1 < matches.count ? matches[index + 1].range.location : text.length
                classes.append(TestClass(name: text.substring(with: match.range(at: 1)), superclass: text.substring(with: match.range(at: 2)),
                                         body: text.substring(with: NSRange(location: match.range.location, length: end - match.range.location))))
            }
        }
        return classes
    }

    /// The names `pattern`'s first group finds in `text`.
    static func names(_ pattern: String, in text: String) throws -> Set<String> {
        let expression = try NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines])
        let string = text as NSString
        return Set(expression.matches(in: text, range: NSRange(location: 0, length: string.length)).map { string.substring(with: $0.range(at: 1)) })
    }

    func testEveryServiceTestRunsOnBothStores() throws {
        let classes = try Self.testClasses()
        let bases = classes.filter { ["XCTestCase", "ServiceTestCase"].contains($0.superclass) }
        XCTAssertTrue(bases.contains { $0.name == "ServerTests" }, "the test sources are readable beside the tests")
        for base in bases where Self.singleStore[base.name] == nil && base.name != "ServiceTestCase" {
            guard base.superclass == "ServiceTestCase",
                  let postgres = classes.first(where: { $0.superclass == base.name && $0.name.hasSuffix("PostgresTests") }) else {
                XCTFail("\(base.name) runs on SQLite only: derive it from ServiceTestCase and add a PostgreSQL subclass, or list it in singleStore with a reason")
                continue
            }
            let declared = try Self.names(#"^    func (test\w+)\("#, in: base.body)
            let repeated = try Self.names(#"^    override func (test\w+)\("#, in: postgres.body)
            XCTAssertFalse(declared.isEmpty, base.name)
            for test in declared.subtracting(repeated).sorted() {
                XCTFail("\(base.name).\(test) is not named in \(postgres.name): run it there (try super.\(test)()) or skip it with sqliteOnly and a reason")
            }
            for name in repeated.subtracting(declared).sorted() {
                XCTFail("\(postgres.name) names \(name), which \(base.name) does not declare")
            }
        }
    }
}
