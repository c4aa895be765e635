import Foundation
import XCTest

/// A throwaway PostgreSQL server for one test class: `initdb` in a temporary directory, `pg_ctl start`
/// on a free loopback port with its socket in that directory, removed again by `destroy()`.
/// PostgreSQL refuses to run as root, so under root (CI) every command runs as `nobody`, owner of the
/// directory. Tests call `TemporaryPostgres.start()` and get an `XCTSkip` saying why when the Debian
/// `postgresql` package is not installed.
public final class TemporaryPostgres: @unchecked Sendable {
    /// The server's `bin` directory (`/usr/lib/postgresql/<version>/bin`).
    public let binaries: URL
    public let directory: URL
    public let port: Int
    private var databases = 0

    /// Directory with `initdb`, `pg_ctl` and `createdb`, newest version first; nil when none is installed.
    public static func findBinaries() -> URL? {
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
            .map { root.appendingPathComponent($0).appendingPathComponent("bin") }
            .first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("initdb").path) }
    }

    /// Initialises and starts a server, or throws `XCTSkip` when PostgreSQL is not installed.
    public static func start() throws -> TemporaryPostgres {
        guard let binaries = findBinaries() else {
            throw XCTSkip("PostgreSQL is not installed (Debian package `postgresql`, binaries under /usr/lib/postgresql/*/bin); `.ci/run` installs it")
        }
        return try TemporaryPostgres(binaries: binaries)
    }

    private init(binaries: URL) throws {
        self.binaries = binaries
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("dsch-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        port = try TemporaryPostgres.freePort()
        if getuid() == 0 {
            guard let nobody = getpwnam("nobody") else { throw TemporaryPostgres.failure("no user `nobody` to run PostgreSQL as") }
            _ = chown(directory.path, nobody.pointee.pw_uid, nobody.pointee.pw_gid)
        }
        do {
            try run("initdb", ["-D", dataDirectory, "-U", "dsch", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"])
            try startServer()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    private var dataDirectory: String { directory.appendingPathComponent("data").path }

    /// A URI for `database`, as the service takes it.
    public func url(database: String) -> String { "postgresql://dsch@127.0.0.1:\(port)/\(database)" }

    /// Creates a fresh, empty database and returns its URI.
    public func createDatabase() throws -> String {
        databases += 1
        let name = "dsch_test_\(databases)_\(UUID().uuidString.prefix(6).lowercased())"
        try run("createdb", ["-h", "127.0.0.1", "-p", String(port), "-U", "dsch", name])
        return url(database: name)
    }

    /// Starts the (stopped) server again on the same port and data.
    public func startServer() throws {
        try run("pg_ctl", ["-D", dataDirectory, "-l", directory.appendingPathComponent("log").path, "-w", "-t", "60",
                           "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
                           "start"])
    }

    /// Stops the server: `fast` disconnects clients and shuts down cleanly, `immediate` is a crash.
    public func stopServer(mode: String = "fast") throws {
        try run("pg_ctl", ["-D", dataDirectory, "-m", mode, "-w", "stop"])
    }

    /// Stops the server and removes every file.
    public func destroy() {
        try? stopServer(mode: "immediate")
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs a PostgreSQL program, as `nobody` when this process is root; throws with its output on failure.
    /// `posix_spawn` and `waitpid` rather than `Process`: Foundation waits for the child's inherited
    /// descriptors to close, and the server `pg_ctl start` leaves behind keeps them open for its lifetime.
    private func run(_ program: String, _ arguments: [String]) throws {
        let executable = binaries.appendingPathComponent(program).path
        let command = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "nobody", "--", executable] + arguments : [executable] + arguments
        let output = directory.appendingPathComponent("command-output")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let savedDirectory = FileManager.default.currentDirectoryPath
        // The child starts in the data's parent, which `nobody` can enter (the test's directory may not be).
        _ = FileManager.default.changeCurrentDirectoryPath(directory.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(savedDirectory) }
        var argv = command.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, &argv, environ)
        guard spawned == 0 else { throw TemporaryPostgres.failure("cannot run \(command[0]): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: output)
        // WIFEXITED and WEXITSTATUS are macros: exited normally when the low seven bits are zero.
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw TemporaryPostgres.failure("\(program) \(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
        }
    }

    private static func failure(_ message: String) -> NSError {
        NSError(domain: "TemporaryPostgres", code: 1, userInfo: [NSLocalizedDescriptionKey: message])
    }

    /// A loopback port nothing listens on right now (the kernel's pick for port 0).
    public static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw failure("socket() failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Int32 in
                guard bind(descriptor, raw, length) == 0 else { return -1 }
                return getsockname(descriptor, raw, &length)
            }
        }
        guard bound == 0 else { throw failure("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// One throwaway server shared by a test class: started on first use, and a start-up failure (such as
/// PostgreSQL not being installed) remembered and thrown again rather than retried by every test.
public final class SharedTemporaryPostgres: @unchecked Sendable {
    private let lock = NSLock()
    private var server: TemporaryPostgres?
    private var startFailure: Error?

    public init() {}

    /// The server, started on the first call.
    public func get() throws -> TemporaryPostgres {
        lock.lock()
        defer { lock.unlock() }
        if let server { return server }
        if let startFailure { throw startFailure }
        do {
            let started = try TemporaryPostgres.start()
            server = started
            return started
        } catch {
            startFailure = error
            throw error
        }
    }

    /// Stops and removes the server, if one was started.
    public func destroy() {
        lock.lock()
        defer { lock.unlock() }
        server?.destroy()
        server = nil
    }
}
