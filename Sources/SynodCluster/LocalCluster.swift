import Foundation
import SynodCore
import NIOSSL
import SynodRuntime
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A cluster of `synod serve` processes on loopback, with temporary data directories and free
/// ports: what `synod demo` and the process tests run. Every process it starts is killed, by
/// its pid, when the cluster is shut down or deallocated.
public final class LocalCluster: Sendable {
    /// One member.
    public struct Member: Sendable {
        public var id: Int
        public var peerPort: Int
        public var clientPort: Int
        public var dataDirectory: String
    }

    public let executable: String
    public let protocolName: String
    public let directory: String
    public let members: [Member]
    /// Members `1...initialSize` form the cluster's first configuration (`--peers`); the
    /// others join it later (`--join`, once added with `/v3/cluster/member/add`).
    public let initialSize: Int
    let extraArguments: [String]
    /// The `synod certs` output every member uses for mutual TLS on the peer port; nil when the
    /// cluster runs with `--insecure-peers`.
    public let certificates: String?
    /// Each member runs under this limit on open descriptors (soft and hard), when set.
    let descriptorLimit: Int?
    /// With `clientTLS`: the client side of the client port's TLS (the cluster CA trusted, the
    /// client certificate presented).
    public let clientTLSContext: NIOSSLContext?
    /// The processes started, by member id (`Process` is thread-safe for what is used here:
    /// pid, running state, waiting and signals).
    private let processes = Mutex<[Int: ProcessBox]>([:])

    final class ProcessBox: @unchecked Sendable {
        let process: Process
        init(_ process: Process) { self.process = process }
    }

    /// Prepares (does not start) `size` members in a new temporary directory. With `peerTLS`
    /// (the default) a CA and member certificates are made there and the members speak mutual
    /// TLS on their peer ports; without it they run `--insecure-peers`. Members beyond
    /// `initialSize` (all of them by default) are not in the first configuration: they start
    /// with `--join` through member 1.
    public init(executable: String, protocolName: String, size: Int = 3, initialSize: Int? = nil, extraArguments: [String] = [],
                peerTLS: Bool = true, descriptorLimit: Int? = nil, clientTLS: Bool = false) throws {
        self.descriptorLimit = descriptorLimit
        self.initialSize = min(size, initialSize ?? size)
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw ClusterError("no synod executable at \(executable); build it first (swift build)")
        }
        self.executable = executable
        self.protocolName = protocolName
        var extraArguments = extraArguments
        let directory = NSTemporaryDirectory() + "synod-cluster-\(UUID().uuidString.prefix(8))"
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var certificates: String?
        if peerTLS {
            certificates = directory + "/certs"
            _ = try ClusterCertificates.generate(nodes: (1...size).map { NodeID(UInt16($0)) }, directory: certificates!)
        }
        self.certificates = certificates
        if clientTLS {
            guard let certificates else { throw ClusterError("client TLS uses the cluster's certificates: keep peerTLS") }
            self.clientTLSContext = try TLSFiles.client(in: certificates).clientContext()
            extraArguments += ["--client-tls", "--client-cert-auth"]
        } else {
            self.clientTLSContext = nil
        }
        self.extraArguments = extraArguments
        let ports = try Self.freePorts(2 * size)
        self.members = (1...size).map { id in
            Member(id: id, peerPort: ports[2 * (id - 1)], clientPort: ports[2 * (id - 1) + 1],
                   dataDirectory: "\(directory)/n\(id)")
        }
    }

    deinit {
        self.processes.withLock { processes in
            for box in processes.values where box.process.isRunning { kill(box.process.processIdentifier, SIGKILL) }
        }
    }

    /// Ports the kernel says are free now (bound to port 0, read back, released).
    public static func freePorts(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for socket in sockets { close(socket) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ClusterError("socket() failed: errno \(errno)") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            guard bound == 0 else { throw ClusterError("bind() failed: errno \(errno)") }
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }

    public var peersArgument: String {
        self.members.prefix(self.initialSize).map { "\($0.id)=127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
    }

    public func member(_ id: Int) -> Member { self.members[id - 1] }

    /// The log file of a member (its standard error, appended across restarts).
    public func logPath(_ id: Int) -> String { "\(self.directory)/n\(id).log" }

    /// The `synod serve` arguments of member `id`, with the values of the options in
    /// `replacing` (such as `--protocol`) replaced, and the options in `removing` left out
    /// (with their values).
    public func arguments(_ id: Int, replacing: [String: String] = [:], removing: Set<String> = []) -> [String] {
        let member = self.member(id)
        let cluster = id <= self.initialSize
            ? ["--peers", self.peersArgument] : ["--join", "http://127.0.0.1:\(self.member(1).clientPort)"]
        var arguments = [
            "serve", "--id", "\(id)"] + cluster + ["--client", "127.0.0.1:\(member.clientPort)",
            "--data-dir", member.dataDirectory, "--protocol", self.protocolName,
        ] + (self.certificates.map { ["--certs", $0] } ?? ["--insecure-peers"]) + self.extraArguments
        for option in removing {
            if let index = arguments.firstIndex(of: option), index + 1 < arguments.count { arguments.removeSubrange(index...(index + 1)) }
        }
        for (option, value) in replacing {
            if let index = arguments.firstIndex(of: option), index + 1 < arguments.count {
                arguments[index + 1] = value
            } else {
                arguments += [option, value]
            }
        }
        return arguments
    }

    /// Starts member `id` (see `arguments(_:replacing:)`).
    public func start(_ id: Int, replacing: [String: String] = [:], removing: Set<String> = []) throws {
        let process = Process()
        let arguments = self.arguments(id, replacing: replacing, removing: removing)
        if let limit = self.descriptorLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n \(limit) && exec \"$0\" \"$@\"", self.executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: self.executable)
            process.arguments = arguments
        }
        if !FileManager.default.fileExists(atPath: self.logPath(id)) {
            _ = FileManager.default.createFile(atPath: self.logPath(id), contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: self.logPath(id)))
        log.seekToEndOfFile()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        self.processes.withLock { $0[id] = ProcessBox(process) }
    }

    /// Starts the members of the first configuration.
    public func startAll() throws {
        for member in self.members.prefix(self.initialSize) { try self.start(member.id) }
    }

    public func pid(_ id: Int) -> Int32? {
        self.processes.withLock { $0[id].flatMap { $0.process.isRunning ? $0.process.processIdentifier : nil } }
    }

    public func isRunning(_ id: Int) -> Bool { self.pid(id) != nil }

    /// Sends `signal` to member `id` and waits for it to exit; returns its exit status.
    @discardableResult
    public func stop(_ id: Int, signal: Int32 = SIGKILL) -> Int32? {
        guard let process = self.processes.withLock({ $0[id]?.process }) else { return nil }
        if process.isRunning { kill(process.processIdentifier, signal) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Stops every member and, unless `keepFiles`, removes the data.
    public func shutdown(keepFiles: Bool = false) {
        for member in self.members { self.stop(member.id) }
        if !keepFiles { try? FileManager.default.removeItem(atPath: self.directory) }
    }

    /// Runs a member to completion (for a member that must refuse to start): exit status and log.
    public func runToExit(
        _ id: Int, timeout: TimeInterval = 20, replacing: [String: String] = [:], removing: Set<String> = []
    ) throws -> (status: Int32, log: String) {
        try self.start(id, replacing: replacing, removing: removing)
        let deadline = Date().addingTimeInterval(timeout)
        while self.isRunning(id) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let status = self.stop(id) ?? -1
        let log = (try? String(contentsOfFile: self.logPath(id), encoding: .utf8)) ?? ""
        return (status, log)
    }

    /// A connection to member `id`'s client API (over TLS with the client certificate, with
    /// `clientTLS`).
    public func connect(_ id: Int) async throws -> HTTPConnection {
        try await HTTPConnection.connect(host: "127.0.0.1", port: self.member(id).clientPort, tls: self.clientTLSContext)
    }

    /// A connection to member `id`, tried again while its process runs and does not take it
    /// yet (for up to `timeout`): one member answering does not mean the others listen already,
    /// least of all just after they started.
    public func connectWhenListening(_ id: Int, timeout: TimeInterval = 15) async throws -> HTTPConnection {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            do {
                return try await self.connect(id)
            } catch {
                guard self.isRunning(id), Date() < deadline else { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }


    /// Member `id`'s status, or nil if it does not answer.
    public func status(_ id: Int) async -> [String: Any]? {
        guard self.isRunning(id), let connection = try? await self.connect(id) else { return nil }
        defer { Task { await connection.close() } }
        return try? await connection.request(.GET, "/v3/status", timeout: .seconds(2)).json
    }

    /// Waits until the cluster can serve, as its protocol defines it: a member reports itself
    /// leader (leader-based protocols), or a member reports itself healthy, reaching a majority
    /// (leaderless ones). Returns that member's id: the leader, or the lowest healthy member.
    public func waitForService(timeout: TimeInterval = 20, excluding: Set<Int> = []) async throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        var seen: [Int: String] = [:]
        while Date() < deadline {
            for member in self.members where !excluding.contains(member.id) {
                let status = await self.status(member.id)
                seen[member.id] = status.map { "\($0["role"] ?? "?") in epoch \($0["epoch"] ?? "?"), \($0["reachable"] ?? "?") reachable" }
                    ?? (self.isRunning(member.id) ? "not answering" : "not running")
                if status?["role"] as? String == "leader" { return member.id }
                if status?["coordination"] as? String == "leaderless" && status?["healthy"] as? Bool == true { return member.id }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let states = seen.sorted { $0.key < $1.key }.map { "n\($0.key): \($0.value)" }.joined(separator: ", ")
        throw ClusterError("the cluster could not serve within \(Int(timeout)) s (\(states))")
    }

    /// Waits until a running member reports itself leader; returns its id.
    public func waitForLeader(timeout: TimeInterval = 20, excluding: Set<Int> = []) async throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        var seen: [Int: String] = [:]
        while Date() < deadline {
            for member in self.members where !excluding.contains(member.id) {
                let status = await self.status(member.id)
                seen[member.id] = status.map { "\($0["role"] ?? "?") in epoch \($0["epoch"] ?? "?")" }
                    ?? (self.isRunning(member.id) ? "not answering" : "not running")
                if status?["role"] as? String == "leader" { return member.id }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let states = seen.sorted { $0.key < $1.key }.map { "n\($0.key): \($0.value)" }.joined(separator: ", ")
        throw ClusterError("no leader within \(Int(timeout)) s (\(states))")
    }

    /// The last `lines` lines of every member's log, for a failure report.
    public func logTails(lines: Int = 15) -> String {
        self.members.map { member in
            let log = (try? String(contentsOfFile: self.logPath(member.id), encoding: .utf8)) ?? ""
            return "--- n\(member.id) ---\n" + log.split(separator: "\n").suffix(lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Waits until every running member has applied as far as `position`.
    public func waitForApplied(_ position: Int, timeout: TimeInterval = 20) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var behind = false
            for member in self.members where self.isRunning(member.id) {
                let applied = (await self.status(member.id))?["appliedPosition"] as? Int ?? -1
                if applied < position { behind = true }
            }
            if !behind { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ClusterError("members did not apply up to \(position) within \(Int(timeout)) s")
    }
}

/// A cluster operation that could not be done.
public struct ClusterError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
