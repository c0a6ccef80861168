import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SynodCluster
import SynodCore
import SynodRaft
import SynodRuntime
import SynodStorage
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What came back on a connection to a peer port that claimed to be a member.
struct ImpersonationOutcome {
    /// The connection was still open after the wait.
    var stillOpen: Bool
    /// The node answered with its own hello frame (it accepted the claim).
    var answered: Bool
}

/// Collects whether anything arrives, and the first error.
final class Listener: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let received = Mutex<[UInt8]>([])
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        self.received.withLock { $0 += bytes }
    }
    /// A length-prefixed hello frame (tag 1) arrived; a TLS alert to a plain connection is not one.
    var receivedHello: Bool {
        self.received.withLock { bytes in
            guard bytes.count >= 5 else { return false }
            let length = bytes[0..<4].reduce(0) { $0 << 8 | Int($1) }
            return bytes[4] == 1 && bytes.count >= 4 + length
        }
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// Dials a member's peer port, over TLS presenting `certificate` (or plain TCP without), sends
/// a hello claiming to be `claim` of `cluster`, and reports after `wait` whether the node
/// kept the connection and answered.
func impersonate(port: Int, claim: NodeID, cluster: ClusterIdentity, certificate: TLSFiles?,
                 wait: TimeAmount = .milliseconds(700)) async throws -> ImpersonationOutcome {
    let listener = Listener()
    // The impostor does not care who answers.
    let context = try certificate?.clientContext(verifyServer: false)
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if let context { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil)) }
                try channel.pipeline.syncOperations.addHandler(listener)
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    let hello = PeerFrame<RaftMessage>.hello(PeerHello(node: claim, cluster: cluster)).encoded()
    var buffer = channel.allocator.buffer(capacity: hello.count + 4)
    buffer.writeInteger(UInt32(hello.count))
    buffer.writeBytes(hello)
    try? await channel.writeAndFlush(buffer).get()
    try await Task.sleep(nanoseconds: UInt64(wait.nanoseconds))
    let outcome = ImpersonationOutcome(stillOpen: channel.isActive, answered: listener.receivedHello)
    try? await channel.close().get()
    return outcome
}

/// Runs `synod` with `arguments` to completion; standard error to `stderrPath` (or captured).
func runSynod(_ arguments: [String], stderrPath: String? = nil, timeout: TimeInterval = 20) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: synodExecutable())
    process.arguments = arguments
    let pipe = Pipe()
    if let stderrPath {
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
    } else {
        process.standardError = pipe
    }
    process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    let output = stderrPath == nil ? String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) : ""
    return (process.terminationStatus, output)
}

func epoch(_ cluster: LocalCluster, _ id: Int) async -> Int? {
    (await cluster.status(id))?["epoch"] as? Int
}

/// Issue 11: one test per finding of the probe, each failing on the code before it.
@Suite("Hardening: only members speak on the peer port; no input bricks, splits or crashes a cluster", .serialized)
struct HardeningTests {
    /// The cluster identity a LocalCluster's members run with.
    static func identity(_ cluster: LocalCluster) -> ClusterIdentity {
        let members = Dictionary(uniqueKeysWithValues: cluster.members.map { (NodeID(UInt16($0.id)), PeerAddress(host: "127.0.0.1", port: $0.peerPort)) })
        // As the members' own configuration derives it (default token).
        return NodeConfiguration(id: NodeID(1), peers: members, dataDirectory: "").cluster(protocolName: cluster.protocolName)
    }

    @Test("finding 1: without a member's certificate no one becomes a member's link; a flood of forged hellos changes nothing")
    func peerAuthentication() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let certificates = try #require(cluster.certificates)
        let identity = Self.identity(cluster)
        let target = cluster.member(2).peerPort  // node 2 accepts node 1's connection
        let before = await epoch(cluster, leader)

        // Plain TCP with a perfect hello: the TLS handshake fails first.
        let plain = try await impersonate(port: target, claim: NodeID(1), cluster: identity, certificate: nil)
        #expect(!plain.stillOpen && !plain.answered, "plain TCP: \(plain)")
        // A certificate for member 1 from another CA.
        let foreign = cluster.directory + "/foreign-certs"
        _ = try ClusterCertificates.generate(nodes: [NodeID(1), NodeID(2), NodeID(3)], directory: foreign)
        let forged = try await impersonate(port: target, claim: NodeID(1), cluster: identity, certificate: TLSFiles.member(NodeID(1), in: foreign))
        #expect(!forged.stillOpen && !forged.answered, "another CA: \(forged)")
        // The cluster's client certificate: signed by the CA, but it names no member.
        let client = try await impersonate(port: target, claim: NodeID(1), cluster: identity, certificate: TLSFiles.client(in: certificates))
        #expect(!client.stillOpen && !client.answered, "client certificate: \(client)")
        // Member 3's own certificate claiming to be member 1.
        let other = try await impersonate(port: target, claim: NodeID(1), cluster: identity, certificate: TLSFiles.member(NodeID(3), in: certificates))
        #expect(!other.stillOpen && !other.answered, "member 3 claiming 1: \(other)")

        // A flood of forged hellos on every member's peer port (plain TCP, as the probe sent them).
        let hello = PeerFrame<RaftMessage>.hello(PeerHello(node: NodeID(1), cluster: identity)).encoded()
        let frame = withUnsafeBytes(of: UInt32(hello.count).bigEndian) { Array($0) } + hello
        for round in 0..<60 { sendGarbage(port: cluster.members[round % 3].peerPort, bytes: frame, pausing: false) }
        let connection = try await cluster.connect(leader)
        for index in 0..<20 { #expect(try await put(connection, "auth\(index)", "v\(index)") == 200) }
        #expect(try await get(connection, "auth19") == "v19")
        await connection.close()
        #expect(await epoch(cluster, leader) == before, "no election was caused\n\(cluster.logTails())")
        let log = try String(contentsOfFile: cluster.logPath(2), encoding: .utf8)
        #expect(log.contains("the TLS certificate names n3"), "\(log.suffix(2000))")
        #expect(log.contains("the TLS certificate names no member"))
        // The control, last (it replaces node 1's link at node 2 for a moment): member 1's own
        // certificate is accepted, node 2 answering with its hello, so the refusals above are
        // the checks' doing.
        let genuine = try await impersonate(port: target, claim: NodeID(1), cluster: identity, certificate: TLSFiles.member(NodeID(1), in: certificates))
        #expect(genuine.answered, "member 1's own certificate: \(genuine)")
    }

    @Test("finding 6: a member of another protocol, or with another member list, is refused with both sides' values; the cluster keeps its term")
    func clusterIdentity() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft")
        defer { cluster.shutdown() }
        try cluster.startAll()
        _ = try await cluster.waitForLeader()
        // Node 3 goes (whether it led or not); nodes 1 and 2 carry on.
        cluster.stop(3)
        let leader = try await cluster.waitForLeader(excluding: [3])
        // Finding 9: a raft data directory started as paxos names both protocols.
        let (status, output) = try cluster.runToExit(3, replacing: ["--protocol": "paxos"])
        #expect(status == 1)
        #expect(output.contains("it holds raft records, and this node runs paxos"), "\(output.suffix(600))")
        // A fresh node 3 running another protocol.
        try FileManager.default.removeItem(atPath: cluster.member(3).dataDirectory)
        let before = try #require(await epoch(cluster, leader))
        try cluster.start(3, replacing: ["--protocol": "multipaxos"])
        try await Task.sleep(for: .seconds(3))
        let log3 = try String(contentsOfFile: cluster.logPath(3), encoding: .utf8)
        #expect(log3.contains("protocol: theirs raft, ours multipaxos"), "\(log3.suffix(1500))")
        #expect(await epoch(cluster, leader) == before, "the raft members kept their term")
        cluster.stop(3)
        // A node 3 that believes in a fourth member.
        try FileManager.default.removeItem(atPath: cluster.member(3).dataDirectory)
        let extra = try LocalCluster.freePorts(1)[0]
        try cluster.start(3, replacing: ["--peers": cluster.peersArgument + ",4=127.0.0.1:\(extra)"])
        try await Task.sleep(for: .seconds(3))
        let log = try String(contentsOfFile: cluster.logPath(3), encoding: .utf8)
        #expect(log.contains("members: theirs 1=127.0.0.1:\(cluster.member(1).peerPort),2="), "\(log.suffix(1500))")
        #expect(log.contains(",4=127.0.0.1:\(extra)"))
        let connection = try await cluster.connect(leader)
        #expect(try await put(connection, "identity", "kept") == 200)
        await connection.close()
        #expect(await epoch(cluster, leader) == before)
    }

    @Test("findings 4, 5, 7, 9: one process per data directory; bad paths and deleted segments refused; errors exit with their code when stderr is full")
    func dataDirectory() async throws {
        // Small segments, so the log spans several and the last one can go missing alone.
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft", extraArguments: ["--wal-segment-bytes", "4096"])
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        // A second process on a running member's data directory (same arguments: the lock is
        // checked before any port is opened).
        let running = cluster.arguments(leader)
        let (second, secondOutput) = try runSynod(running)
        #expect(second == 1)
        #expect(secondOutput.contains("is in use by another synod process (pid \(cluster.pid(leader) ?? -1))"), "\(secondOutput)")
        #expect(cluster.isRunning(leader))
        // An empty path, and a file.
        let (empty, emptyOutput) = try runSynod(cluster.arguments(leader, replacing: ["--data-dir": ""]))
        #expect(empty == 64 && emptyOutput.contains("--data-dir is empty"), "\(empty) \(emptyOutput)")
        let file = cluster.directory + "/a-file"
        _ = FileManager.default.createFile(atPath: file, contents: Data([1]))
        let (onFile, fileOutput) = try runSynod(cluster.arguments(leader, replacing: ["--data-dir": file]))
        #expect(onFile == 1 && fileOutput.contains("is a file, not a directory"), "\(onFile) \(fileOutput)")
        // Finding 7: the same errors with standard error on a full disk keep their exit codes.
        #expect(try runSynod(cluster.arguments(leader, replacing: ["--data-dir": file]), stderrPath: "/dev/full").status == 1)
        #expect(try runSynod(["serve", "--id", "1", "--peers", "nonsense", "--client", "x", "--data-dir", "d"], stderrPath: "/dev/full").status == 64)
        #expect(try runSynod(["check", cluster.directory], stderrPath: "/dev/full").status == 3)
        let (check, checkOutput) = try runSynod(["check", cluster.directory])
        #expect(check == 3 && checkOutput.contains("it is a directory, not a history file"), "\(checkOutput)")

        // Finding 5: segments deleted behind a stopped node's back.
        let connection = try await cluster.connect(leader)
        for index in 0..<60 { #expect(try await put(connection, "d\(index)", String(repeating: "v", count: 200)) == 200) }
        await connection.close()
        let victim = cluster.members.first { $0.id != leader }!.id
        try await cluster.waitForApplied(60)
        cluster.stop(victim)
        let wal = cluster.member(victim).dataDirectory + "/wal"
        func segments() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: wal).filter { $0.hasSuffix(".wal") }.sorted() }
        let written = try segments()
        #expect(written.count >= 3, "several segments: \(written)")
        try FileManager.default.removeItem(atPath: wal + "/" + (try segments()).last!)
        let (lastGone, lastOutput) = try cluster.runToExit(victim)
        #expect(lastGone == 1, "\(lastOutput.suffix(500))")
        #expect(lastOutput.contains("the log's last segment was deleted"), "\(lastOutput.suffix(500))")
        // Every segment gone, a snapshot kept.
        for segment in try segments() { try FileManager.default.removeItem(atPath: wal + "/" + segment) }
        try SnapshotFile.write(Snapshot(position: 1, tag: 1, data: []), directory: wal)
        let (allGone, allOutput) = try cluster.runToExit(victim)
        #expect(allGone == 1 && allOutput.contains("were deleted"), "\(allOutput.suffix(500))")
        try FileManager.default.removeItem(atPath: wal)
        let (walGone, walOutput) = try cluster.runToExit(victim)
        #expect(walGone == 1 && walOutput.contains("no log segments, but this node has run before"), "\(walOutput.suffix(500))")
    }

    @Test("finding 3: idle connections past the descriptor limit wait in the queue; the node keeps snapshotting and serving, and idle ones are closed")
    func descriptorExhaustion() async throws {
        let cluster = try LocalCluster(
            executable: synodExecutable(), protocolName: "raft",
            extraArguments: ["--snapshot-every", "20", "--client-idle-timeout", "3"], descriptorLimit: 256)
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let victim = cluster.members.first { $0.id != leader }!.id
        // More idle connections than the node has descriptors.
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<300 { idle.append(loopbackConnection(port: cluster.member(victim).clientPort, blocking: false).fd) }
        let connection = try await cluster.connect(leader)
        for index in 0..<60 { #expect(try await put(connection, "fd\(index)", "v\(index)") == 200) }
        await connection.close()
        try await cluster.waitForApplied(60, timeout: 30)
        #expect(cluster.isRunning(victim), "\(cluster.logTails())")
        let log = try String(contentsOfFile: cluster.logPath(victim), encoding: .utf8)
        #expect(!log.contains("Too many open files"), "\(log.suffix(1500))")
        #expect(log.contains("maxClientConnections=128"), "the limit follows the 256 descriptors")
        // The idle timeout closes them (3 s); the queued ones are then served.
        try await Task.sleep(for: .seconds(4))
        for fd in idle { close(fd) }
        idle = []
        let after = try await cluster.connect(victim)
        #expect(try await get(after, "fd59", serializable: true) == "v59")
        await after.close()
    }

    @Test("finding 8: a transaction of 30,000 operations is refused by its shape, before it is parsed; deep nesting too")
    func heavyRequests() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let connection = try await cluster.connect(leader)
        let operation = #"{"request_put":{"key":"a2V5","value":"dg=="}}"#
        let body = #"{"success":["# + Array(repeating: operation, count: 30_000).joined(separator: ",") + "]}"
        let heavy = try await connection.request(.POST, "/v3/kv/txn", body: Array(body.utf8))
        #expect(heavy.status == 413)
        #expect(String(decoding: heavy.body, as: UTF8.self).contains("more than 128 entries"))
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        let nested = try await connection.request(.POST, "/v3/kv/txn", body: Array(#"{"success":"#.utf8) + Array(deep.utf8) + [UInt8(ascii: "}")])
        #expect(nested.status == 400 && String(decoding: nested.body, as: UTF8.self).contains("nests deeper"))
        let members = (0..<100_000).map { #""k\#($0)":0"# }.joined(separator: ",")
        let wide = try await connection.request(.POST, "/v3/kv/put", body: Array(("{" + members + "}").utf8))
        #expect(wide.status == 413 && String(decoding: wide.body, as: UTF8.self).contains("values and keys"), "\(wide.status)")
        #expect(try await put(connection, "after", "heavy") == 200)
        await connection.close()
    }

    @Test("TLS on the client port with --client-cert-auth: a client certificate is required")
    func clientCertificates() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft", clientTLS: true)
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let connection = try await cluster.connect(leader)
        #expect(try await put(connection, "tls", "on") == 200)
        #expect(try await get(connection, "tls") == "on")
        await connection.close()
        let certificates = try #require(cluster.certificates)
        let anonymous = try TLSFiles.client(in: certificates).clientContext(presentCertificate: false)
        var refused = false
        do {
            let stranger = try await HTTPConnection.connect(host: "127.0.0.1", port: cluster.member(leader).clientPort, tls: anonymous)
            _ = try await stranger.request(.GET, "/v3/status", timeout: .seconds(3))
        } catch {
            refused = true
        }
        #expect(refused, "a client without a certificate is refused")
        let plain = try await HTTPConnection.connect(host: "127.0.0.1", port: cluster.member(leader).clientPort)
        let answer = try? await plain.request(.GET, "/v3/status", timeout: .seconds(3))
        #expect(answer?.status != 200, "plain HTTP is not served on the TLS port")
        await plain.close()
    }
}

