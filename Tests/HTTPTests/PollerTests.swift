import XCTest
@testable import HTTP
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Both pollers against a real socket pair: what they report for readable, writable, silenced and closed.
final class PollerTests: XCTestCase {
    private var pollers: [(String, () -> Poller)] {
        var list: [(String, () -> Poller)] = [("portable", { PortablePoller() })]
        #if os(Linux)
        list.append(("epoll", { EpollPoller() }))
        #endif
        return list
    }

    private func socketPair() throws -> (Int32, Int32) {
        var ends: [Int32] = [0, 0]
        #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        guard socketpair(AF_UNIX, type, 0, &ends) == 0 else { throw XCTSkip("socketpair failed: errno \(errno)") }
        return (ends[0], ends[1])
    }

    func testReadinessIsReportedWithTheTokenAndOnlyForWhatIsWatched() throws {
        for (name, make) in pollers {
            let poller = make()
            let (local, remote) = try socketPair()
            // `remote` is closed below, to hang up.
            defer { close(local) }
            poller.watch(local, token: 42, interest: .readable)
            XCTAssertTrue(poller.wait(milliseconds: 10).isEmpty, "\(name): nothing to read yet")

            var byte: UInt8 = 7
            XCTAssertEqual(write(remote, &byte, 1), 1)
            let readable = poller.wait(milliseconds: 1000)
            XCTAssertEqual(readable.map(\.token), [42], name)
            XCTAssertEqual(readable.first?.readable, true, name)
            // Level-triggered: unread input is reported again.
            XCTAssertEqual(poller.wait(milliseconds: 1000).map(\.token), [42], "\(name): reported again until read")

            poller.watch(local, token: 43, interest: .writable)
            let writable = poller.wait(milliseconds: 1000)
            XCTAssertEqual(writable.map(\.token), [43], name)
            XCTAssertEqual(writable.first?.writable, true, name)

            // Silenced, even a hang-up is not reported; watched again, it is.
            poller.watch(local, token: 44, interest: .none)
            close(remote)
            XCTAssertTrue(poller.wait(milliseconds: 20).isEmpty, "\(name): a silenced descriptor reports nothing")
            poller.watch(local, token: 45, interest: .readable)
            let hungUp = poller.wait(milliseconds: 1000)
            XCTAssertEqual(hungUp.map(\.token), [45], name)
            XCTAssertEqual(hungUp.first?.readable, true, "\(name): a hang-up reads as readable so the read reports it")
            poller.watch(local, token: 45, interest: .none)
        }
    }
}
