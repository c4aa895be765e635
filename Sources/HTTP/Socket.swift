import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A socket call that failed, with the operation and the system's explanation.
public struct SocketError: Error, CustomStringConvertible {
    /// What was being attempted, such as `binding 0.0.0.0:8080`.
    public var operation: String
    /// The `errno` value the call left.
    public var errnoCode: Int32
    /// The operation and the system's message, for logs and start-up failures.
    public var description: String { "\(operation) failed: \(String(cString: strerror(errnoCode))) (errno \(errnoCode))" }
}

#if canImport(Glibc)
private let streamType = Int32(SOCK_STREAM.rawValue)
/// Writes to a peer that has gone must return EPIPE instead of raising SIGPIPE.
/// Sends never block (the deadline is kept with poll) and a peer that has gone gives EPIPE, not SIGPIPE.
private let sendFlags = Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)
#else
private let streamType = SOCK_STREAM
private let sendFlags = Int32(MSG_DONTWAIT)
#endif

/// Thin wrappers over the BSD socket calls the server needs.
enum Socket {
    /// Opens a listening TCP socket on `host:port` (port 0 lets the system choose).
    static func listen(host: String, port: Int, backlog: Int32 = 128) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = streamType
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw SocketError(operation: "resolving listen address \(host):\(port) (\(String(cString: gai_strerror(status))))", errnoCode: errno)
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, streamType, 0)
        guard fd >= 0 else { throw SocketError(operation: "socket", errnoCode: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let code = errno
            close(fd)
            throw SocketError(operation: "binding \(host):\(port)", errnoCode: code)
        }
        guard systemListen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw SocketError(operation: "listen", errnoCode: code)
        }
        return fd
    }

    /// The local port a socket is bound to.
    static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0 else { return 0 }
        let family = Int32(storage.ss_family)
        return withUnsafePointer(to: &storage) { pointer -> Int in
            if family == AF_INET6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    /// Prepares an accepted connection: no SIGPIPE, no Nagle delay. Sends are bounded by `sendAll`'s deadline.
    static func configureConnection(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        #if canImport(Darwin)
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    /// Accepts a connection and names its peer's IP address (empty if the system does not say); -1 on failure.
    static func accept(_ listenDescriptor: Int32) -> (descriptor: Int32, peer: String) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let descriptor = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { systemAccept(listenDescriptor, $0, &length) }
        }
        guard descriptor >= 0 else { return (descriptor, "") }
        return (descriptor, peerAddress(storage))
    }

    /// The numeric IP address in `storage` (an IPv4-mapped IPv6 address is reported as the IPv4 address).
    private static func peerAddress(_ storage: sockaddr_storage) -> String {
        var storage = storage
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = Int32(storage.ss_family)
        let written: UnsafePointer<CChar>? = withUnsafePointer(to: &storage) { pointer in
            if family == AF_INET {
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var raw = address.pointee.sin_addr
                    return inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
                }
            }
            if family == AF_INET6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var raw = address.pointee.sin6_addr
                    return inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
                }
            }
            return nil
        }
        guard written != nil else { return "" }
        let address = String(cString: text)
        return address.hasPrefix("::ffff:") && address.contains(".") ? String(address.dropFirst(7)) : address
    }

    /// Waits until `fd` is readable or `milliseconds` pass; true when readable (or in error, so the read reports it).
    static func waitReadable(_ fd: Int32, milliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let result = poll(&descriptor, 1, milliseconds)
        return result > 0
    }

    /// Reads what is available into `buffer`; 0 means the peer closed, negative an error.
    static func receive(_ fd: Int32, into buffer: inout [UInt8]) -> Int {
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            return count
        }
    }

    /// Sends what the socket takes now of `bytes` from `offset` without waiting; the count sent, or -1 with
    /// `errno` set (EAGAIN when the socket's buffer is full).
    static func sendSome(_ fd: Int32, _ bytes: [UInt8], from offset: Int) -> Int {
        bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, sendFlags) }
    }

    /// How long a connection closing after a final response keeps reading what the client still sends,
    /// and how much of it at most.
    static let drainSeconds = 0.5
    static let drainLimitBytes = 4 << 20

    /// Writes all of `bytes` by the monotonic `deadline` (nanoseconds); false when the peer is gone or the
    /// deadline passed. The deadline covers the whole write, so a client reading a byte at a time cannot
    /// stretch it: each wait is for the time that remains, not a fresh timeout per send.
    @discardableResult
    static func sendAll(_ fd: Int32, _ bytes: [UInt8], deadline: UInt64) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = sendSome(fd, bytes, from: offset)
            if written >= 0 {
                offset += written
                continue
            }
            let code = errno
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { return false }
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return false }
            let remaining = min((deadline - now) / 1_000_000 + 1, UInt64(Int32.max))
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            // A timeout here ends the loop at the deadline check; an error or hang-up makes the next send fail.
            if poll(&descriptor, 1, Int32(remaining)) < 0 && errno != EINTR { return false }
        }
        return true
    }

    /// Makes the coming close reset the connection: a response the client would not take is dropped at once,
    /// instead of the kernel holding it (and retrying) for a peer that does not read.
    static func discardUnsentOnClose(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }

    /// A deadline `seconds` from now, in the monotonic nanoseconds `sendAll` takes.
    static func deadline(after seconds: Double) -> UInt64 {
        DispatchTime.now().uptimeNanoseconds + UInt64(max(0, min(seconds, 1e9)) * 1e9)
    }

    /// Prepares a close after a final response: stop writing, then read and discard what the client is
    /// still sending for a moment, so closing with unread input does not reset the connection before the
    /// client reads the response. The caller closes the descriptor.
    static func drainBeforeClose(_ fd: Int32, milliseconds: Int = Int(drainSeconds * 1000)) {
        shutdown(fd, Int32(SHUT_WR))
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(milliseconds) * 1_000_000
        var discarded = 0
        while discarded < drainLimitBytes {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { break }
            let remaining = Int32((deadline - now) / 1_000_000) + 1
            guard waitReadable(fd, milliseconds: remaining) else { break }
            let count = receive(fd, into: &scratch)
            if count <= 0 { break }
            discarded += count
        }
    }
}

/// `accept` is shadowed inside `Socket` by the static method of the same name.
private func systemAccept(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>, _ length: UnsafeMutablePointer<socklen_t>) -> Int32 {
    #if canImport(Glibc)
    return Glibc.accept(fd, address, length)
    #else
    return Darwin.accept(fd, address, length)
    #endif
}

/// `listen` is shadowed inside `Socket` by the static method of the same name.
private func systemListen(_ fd: Int32, _ backlog: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.listen(fd, backlog)
    #else
    return Darwin.listen(fd, backlog)
    #endif
}
