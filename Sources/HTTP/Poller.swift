import Foundation
import CEventPoll
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What an event loop waits for on one descriptor.
enum PollInterest: Equatable {
    /// Nothing, not even a hang-up (a handler is running for the descriptor; its end is noticed afterwards).
    case none
    case readable
    case writable
}

/// One descriptor that became ready: its token, and whether it can be read, written, or has failed.
/// A hang-up or error counts as both readable and writable, so the next read or write reports it.
struct PollEvent {
    var token: UInt64
    var readable: Bool
    var writable: Bool
}

/// Readiness notification for many descriptors from one thread: epoll on Linux, poll(2) elsewhere.
/// Level-triggered, so a descriptor whose bytes were not all read is reported again.
protocol Poller: AnyObject {
    /// Watches `descriptor` for `interest` from now on (`.none` stops watching it); events carry `token`.
    /// Call with `.none` before closing the descriptor.
    func watch(_ descriptor: Int32, token: UInt64, interest: PollInterest)
    /// Waits up to `milliseconds` (at least one event or the timeout) and returns the ready descriptors.
    func wait(milliseconds: Int32) -> [PollEvent]
}

/// The poller this platform does best.
func makePoller() -> Poller {
    #if os(Linux)
    return EpollPoller()
    #else
    return PortablePoller()
    #endif
}

#if os(Linux)
/// epoll: the kernel keeps the interest set, so one wait costs the same however many connections are idle.
final class EpollPoller: Poller {
    private let instance: Int32
    /// Descriptors in the kernel's interest set. `.none` takes a descriptor out rather than watching it for
    /// no events, because epoll reports a hang-up even then, and level-triggered it would repeat until handled.
    private var registered = Set<Int32>()
    private var tokens = [UInt64](repeating: 0, count: 256)
    private var readiness = [UInt32](repeating: 0, count: 256)

    init() {
        instance = dsch_epoll_create()
        precondition(instance >= 0, "epoll_create1 failed: \(String(cString: strerror(errno)))")
    }

    deinit { close(instance) }

    func watch(_ descriptor: Int32, token: UInt64, interest: PollInterest) {
        let bits: UInt32
        switch interest {
        case .none:
            if registered.remove(descriptor) != nil { _ = dsch_epoll_forget(instance, descriptor) }
            return
        case .readable: bits = UInt32(dsch_poll_readable)
        case .writable: bits = UInt32(dsch_poll_writable)
        }
        let add = registered.insert(descriptor).inserted
        _ = dsch_epoll_watch(instance, descriptor, add ? 1 : 0, bits, token)
    }

    func wait(milliseconds: Int32) -> [PollEvent] {
        let count = Int(dsch_epoll_wait(instance, &tokens, &readiness, Int32(tokens.count), milliseconds))
        let failed = UInt32(dsch_poll_failed)
        return (0..<count).map { index in
            let bits = readiness[index]
            return PollEvent(token: tokens[index], readable: bits & (UInt32(dsch_poll_readable) | failed) != 0,
                             writable: bits & (UInt32(dsch_poll_writable) | failed) != 0)
        }
    }
}
#endif

/// poll(2) over a table of descriptors: portable, and linear in the connections on every wait.
final class PortablePoller: Poller {
    private var watched: [Int32: (token: UInt64, interest: PollInterest)] = [:]

    func watch(_ descriptor: Int32, token: UInt64, interest: PollInterest) {
        watched[descriptor] = interest == .none ? nil : (token, interest)
    }

    func wait(milliseconds: Int32) -> [PollEvent] {
        var table = watched.map { entry in
            pollfd(fd: entry.key, events: Int16(entry.value.interest == .readable ? POLLIN : POLLOUT), revents: 0)
        }
        let count = table.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), milliseconds) }
        guard count > 0 else { return [] }
        let failure = Int16(POLLHUP | POLLERR | POLLNVAL)
        return table.compactMap { entry in
            guard entry.revents != 0, let token = watched[entry.fd]?.token else { return nil }
            return PollEvent(token: token, readable: entry.revents & (Int16(POLLIN) | failure) != 0,
                             writable: entry.revents & (Int16(POLLOUT) | failure) != 0)
        }
    }
}
