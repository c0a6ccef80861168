import Foundation
import SynodCheck
import SynodCluster
import SynodCore
import SynodRaft
import SynodRuntime
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The `synod` executable next to this test binary (`swift build` builds both), or the one
/// `SYNOD_EXECUTABLE` names.
func synodExecutable() -> String {
    if let path = ProcessInfo.processInfo.environment["SYNOD_EXECUTABLE"] { return path }
    let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    var directory = testBinary.deletingLastPathComponent()
    // On macOS the tests run inside an .xctest bundle, three levels deeper.
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("synod").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return testBinary.deletingLastPathComponent().appendingPathComponent("synod").path
}

/// Opens a TCP connection to a loopback port; returns the descriptor and whether `connect`
/// succeeded. Without `blocking` the connection is only started (a full accept queue must not
/// block the test).
func loopbackConnection(port: Int, blocking: Bool = true) -> (fd: Int32, connected: Bool) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | (blocking ? 0 : Int32(SOCK_NONBLOCK.rawValue)), 0)
    guard fd >= 0 else { return (fd, false) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return (fd, result == 0)
}

/// Opens a TCP connection to a loopback port and sends nothing; returns the descriptor.
func connectSilently(port: Int) -> Int32 { loopbackConnection(port: port).fd }

/// Sends raw bytes to a loopback port, then closes the connection (after a pause, unless not
/// `pausing`).
func sendGarbage(port: Int, bytes: [UInt8], pausing: Bool = true) {
    let (fd, connected) = loopbackConnection(port: port)
    guard fd >= 0 else { return }
    defer { close(fd) }
    guard connected else { return }
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    if pausing { usleep(100_000) }
}

/// Established TCP connections (IPv4, from `/proc/net/tcp`) whose local port is one of `ports`:
/// the accepting ends of connections to those listeners.
func establishedConnections(toLocalPorts ports: Set<Int>) -> Int {
    // /proc files report a size of 0: read to the end rather than by size.
    guard let handle = FileHandle(forReadingAtPath: "/proc/net/tcp") else { return -1 }
    defer { try? handle.close() }
    let table = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    return table.split(separator: "\n").dropFirst().filter { line in
        let fields = line.split(separator: " ")
        guard fields.count > 3, fields[3] == "01", let colon = fields[1].lastIndex(of: ":"),
              let port = Int(fields[1][fields[1].index(after: colon)...], radix: 16)
        else { return false }
        return ports.contains(port)
    }.count
}

func put(_ connection: HTTPConnection, _ key: String, _ value: String) async throws -> Int {
    try await connection.post("/v3/kv/put", json: [
        "key": Data(key.utf8).base64EncodedString(), "value": Data(value.utf8).base64EncodedString(),
    ]).status
}

func get(_ connection: HTTPConnection, _ key: String, serializable: Bool = false) async throws -> String? {
    let reply = try await connection.post("/v3/kv/range", json: ["key": Data(key.utf8).base64EncodedString(), "serializable": serializable])
    #expect(reply.status == 200, "range answered \(reply.status): \(String(decoding: reply.body, as: UTF8.self))")
    return (reply.json?["kvs"] as? [[String: Any]])?.first.flatMap { $0["value"] as? String }
        .flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
}

/// Real `synod serve` processes on loopback, killed with SIGKILL, restarted, fed garbage.
@Suite("synod serve: real processes", .serialized)
struct ServiceTests {
    @Test("SIGKILL the leader (leaderless: the first member serving) under load and restart it: every acknowledged write survives, the history is linearizable",
          arguments: ["raft", "multipaxos", "paxos"])
    func leaderCrashUnderLoad(protocolName: String) async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: protocolName)
        defer { cluster.shutdown() }
        do {
            try await self.leaderCrashUnderLoad(cluster)
        } catch {
            print("\(protocolName): \(error)\n\(cluster.logTails())")
            throw error
        }
    }

    func leaderCrashUnderLoad(_ cluster: LocalCluster) async throws {
        let protocolName = cluster.protocolName
        try cluster.startAll()
        let leader = try await cluster.waitForService()
        let workload = KVWorkload(endpoints: cluster.members.map { ("127.0.0.1", $0.clientPort) })
        let load = Task { await workload.run(clients: 4) }
        try await Task.sleep(for: .seconds(1))
        let before = workload.acknowledgedPuts
        cluster.stop(leader, signal: SIGKILL)
        let newLeader = try await cluster.waitForService(excluding: [leader])
        #expect(newLeader != leader)
        try await Task.sleep(for: .seconds(1))
        try cluster.start(leader)
        try await Task.sleep(for: .seconds(1))
        workload.stop()
        await load.value
        #expect(before > 0 && workload.acknowledgedPuts > before, "writes went on after the crash")

        // Every member, the restarted one included, catches up to the same state.
        let status = try #require(await cluster.status(try await cluster.waitForService()))
        try await cluster.waitForApplied(status["appliedPosition"] as! Int)
        var finals: [String: String?] = [:]
        for member in cluster.members {
            let connection = try await cluster.connect(member.id)
            for key in (0..<4).map({ "k\($0)" }) {
                let value = try await get(connection, key, serializable: true)
                if let seen = finals[key] { #expect(seen == value, "\(key) differs on n\(member.id)") } else { finals[key] = value }
            }
            await connection.close()
        }
        // The history, final reads included, is linearizable: no acknowledged write was lost.
        let history = workload.history
        let result = LinearizabilityChecker().check(history)
        #expect(result.verdict == .linearizable, "\(result.violation.map { "\($0)" } ?? result.reason ?? "")")
        print("\(protocolName): \(history.count) operations, \(workload.acknowledgedPuts) acknowledged puts, leader n\(leader) killed, n\(newLeader) took over: \(result.verdict)")
    }

    @Test("restart the whole cluster: the state is intact")
    func wholeClusterRestart() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let connection = try await cluster.connect(leader)
        for index in 0..<20 { #expect(try await put(connection, "key\(index)", "value\(index)") == 200) }
        await connection.close()
        for member in cluster.members { #expect(cluster.stop(member.id, signal: SIGTERM) == 0, "graceful exit on SIGTERM") }
        try cluster.startAll()
        let again = try await cluster.waitForLeader()
        let reader = try await cluster.connect(again)
        for index in 0..<20 { #expect(try await get(reader, "key\(index)") == "value\(index)") }
        // The cluster status, asked of any member, lists every member and the one leader, once
        // the third member has started too (a leader needs only two).
        var cluster1 = try await reader.request(.GET, "/v3/cluster").json
        let deadline = ContinuousClock.now + .seconds(15)
        while (cluster1?["members"] as? [[String: Any]] ?? []).contains(where: { $0["commitPosition"] == nil }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            cluster1 = try await reader.request(.GET, "/v3/cluster").json
        }
        #expect(cluster1?["leader"] as? Int == again)
        #expect((cluster1?["members"] as? [[String: Any]])?.count == 3)
        // Each member reports its commit and applied positions; the leader's commit covers the 20 puts.
        for member in cluster1?["members"] as? [[String: Any]] ?? [] {
            let commit = member["commitPosition"] as? Int ?? -1
            #expect(commit >= member["appliedPosition"] as? Int ?? Int.max, "\(member)")
            if member["id"] as? Int == again { #expect(commit >= 20, "\(member)") }
        }
        // One TCP connection per pair of members: three pairs, three accepted connections.
        let peerPorts = Set(cluster.members.map(\.peerPort))
        var connections = establishedConnections(toLocalPorts: peerPorts)
        for _ in 0..<50 where connections != 3 {
            try await Task.sleep(for: .milliseconds(100))
            connections = establishedConnections(toLocalPorts: peerPorts)
        }
        #expect(connections == 3)
        let follower = cluster.members.first { $0.id != again }!.id
        cluster.stop(follower, signal: SIGKILL)
        let members = try await reader.request(.GET, "/v3/cluster").json?["members"] as? [[String: Any]]
        #expect(members?.first { $0["id"] as? Int == follower }?["reachable"] as? Bool == false)
        await reader.close()
    }

    @Test("synod bench drives a cluster and reports throughput and percentiles as JSON")
    func bench() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "multipaxos")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: synodExecutable())
        process.arguments = ["bench", "--endpoints", "http://127.0.0.1:\(cluster.member(leader).clientPort)", "--concurrency", "4",
                             "--duration", "1", "--warmup", "0.2", "--json"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((json["operations"] as? Int ?? 0) > 0)
        #expect(json["errors"] as? Int == 0)
        #expect((json["p99Milliseconds"] as? Double ?? 0) >= (json["p50Milliseconds"] as? Double ?? 1))
    }

    @Test("a torn write at the end of the log is repaired on restart; a damaged record before it stops the node with a clear message")
    func tornAndCorruptLogs() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let connection = try await cluster.connect(leader)
        for index in 0..<10 { #expect(try await put(connection, "t\(index)", "v\(index)") == 200) }
        await connection.close()
        let victim = cluster.members.first { $0.id != leader }!
        cluster.stop(victim.id, signal: SIGKILL)
        let walDirectory = victim.dataDirectory + "/wal"
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: walDirectory).filter { $0.hasSuffix(".wal") }.sorted().last)
        let path = walDirectory + "/" + segment
        let original = try Data(contentsOf: URL(fileURLWithPath: path))

        // Torn: half of a frame header at the end of the file (after the space the segment
        // reserved, zeros; the records end before it).
        try (original + Data([0x20, 0x00])).write(to: URL(fileURLWithPath: path))
        try cluster.start(victim.id)
        let reader = try await cluster.connectWhenListening(victim.id)
        #expect(cluster.isRunning(victim.id))
        #expect(try await get(reader, "t9") == "v9")
        await reader.close()
        cluster.stop(victim.id, signal: SIGKILL)
        let log = try String(contentsOfFile: cluster.logPath(victim.id), encoding: .utf8)
        #expect(log.contains("repaired a torn write"))

        // Corrupt: one payload byte of the first record flipped.
        var damaged = try Data(contentsOf: URL(fileURLWithPath: path))
        damaged[14] ^= 0xFF
        try damaged.write(to: URL(fileURLWithPath: path))
        let (status, output) = try cluster.runToExit(victim.id)
        #expect(status == 1)
        #expect(output.contains("corrupt write-ahead log: \(path) at byte 0"), "\(output.suffix(400))")
    }

    @Test("log compaction: a node down while the others compact catches up by snapshot; restarts load the snapshot; a damaged snapshot stops the node with its path",
          arguments: ["raft", "multipaxos", "paxos"])
    func compaction(protocolName: String) async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: protocolName, extraArguments: ["--snapshot-every", "20"])
        defer { cluster.shutdown() }
        // The leaderless Paxos log has no leader: any member orders writes.
        func coordinator() async throws -> Int {
            guard protocolName == "paxos" else { return try await cluster.waitForLeader() }
            for _ in 0..<200 where await cluster.status(1) == nil { try await Task.sleep(for: .milliseconds(100)) }
            return 1
        }
        try cluster.startAll()
        let leader = try await coordinator()
        let lagging = cluster.members.first { $0.id != leader }!.id
        cluster.stop(lagging, signal: SIGKILL)
        let connection = try await cluster.connect(leader)
        for index in 0..<100 { #expect(try await put(connection, "c\(index)", "v\(index)") == 200) }
        await connection.close()
        // The leader compacted: a snapshot file, a start marker, and only the newest segments.
        let leaderWAL = cluster.member(leader).dataDirectory + "/wal"
        let files = try FileManager.default.contentsOfDirectory(atPath: leaderWAL)
        #expect(files.contains("snapshot") && files.contains("start"), "\(files)")
        #expect(!files.contains("0000000000000000.wal"), "the first segment was discarded: \(files.sorted())")

        // The lagging node needs entries the others discarded: it receives the snapshot.
        try cluster.start(lagging)
        for _ in 0..<100 where await cluster.status(lagging) == nil { try await Task.sleep(for: .milliseconds(100)) }
        let follower = try await cluster.connect(lagging)
        var caughtUp = false
        for _ in 0..<100 where !caughtUp {
            caughtUp = try await get(follower, "c99", serializable: true) == "v99"
            if !caughtUp { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(caughtUp, "n\(lagging) caught up\n\(cluster.logTails())")
        #expect(try await get(follower, "c0", serializable: true) == "v0")
        await follower.close()
        let laggingLog = try String(contentsOfFile: cluster.logPath(lagging), encoding: .utf8)
        #expect(laggingLog.contains("installed a snapshot"))
        // The operator sees both: the install (counted and timed) and the leader's saves.
        let laggingMetrics = MetricsTests.samples(try await MetricsTests.metrics(cluster, lagging).page)
        #expect(MetricsTests.total(laggingMetrics, "synod_snapshot_installs_total") >= 1)
        #expect(MetricsTests.total(laggingMetrics, "synod_snapshot_restore_seconds_count") >= 1)
        #expect(MetricsTests.total(laggingMetrics, "synod_snapshot_restore_seconds_sum") > 0)
        let leaderMetrics = MetricsTests.samples(try await MetricsTests.metrics(cluster, leader).page)
        #expect(MetricsTests.total(leaderMetrics, "synod_snapshot_save_seconds_count") >= 1)
        #expect(MetricsTests.total(leaderMetrics, "synod_snapshot_restore_seconds_count") == 0, "the leader never restored")

        // Every node restarts from its snapshot and the short log after it.
        for member in cluster.members { cluster.stop(member.id, signal: SIGKILL) }
        try cluster.startAll()
        let again = try await coordinator()
        let reader = try await cluster.connect(again)
        for index in 0..<100 { #expect(try await get(reader, "c\(index)") == "v\(index)") }
        await reader.close()
        let restartLog = try String(contentsOfFile: cluster.logPath(leader), encoding: .utf8)
        #expect(restartLog.contains("snapshot=position"), "the restart reports the snapshot it loaded")

        // A damaged snapshot file: the node refuses to start and names the file.
        let victim = cluster.members.first { $0.id != again }!
        cluster.stop(victim.id, signal: SIGKILL)
        let path = victim.dataDirectory + "/wal/snapshot"
        var damaged = try Data(contentsOf: URL(fileURLWithPath: path))
        damaged[damaged.count - 1] ^= 0xFF
        try damaged.write(to: URL(fileURLWithPath: path))
        let (status, output) = try cluster.runToExit(victim.id)
        #expect(status == 1)
        #expect(output.contains("corrupt snapshot: \(path) at byte 12: snapshot checksum mismatch"), "\(output.suffix(400))")
    }

    @Test("a snapshot larger than a frame (12 MiB of values) reaches a lagging node in fragments")
    func largeSnapshot() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft", extraArguments: ["--snapshot-every", "5"])
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let lagging = cluster.members.first { $0.id != leader }!.id
        cluster.stop(lagging, signal: SIGKILL)
        let connection = try await cluster.connect(leader)
        let value = String(repeating: "v", count: 1 << 20)
        for index in 0..<12 { #expect(try await put(connection, "big\(index)", value) == 200) }
        await connection.close()
        try cluster.start(lagging)
        for _ in 0..<100 where await cluster.status(lagging) == nil { try await Task.sleep(for: .milliseconds(100)) }
        let follower = try await cluster.connect(lagging)
        var caughtUp = false
        for _ in 0..<150 where !caughtUp {
            caughtUp = try await get(follower, "big11", serializable: true)?.count == 1 << 20
            if !caughtUp { try await Task.sleep(for: .milliseconds(100)) }
        }
        await follower.close()
        #expect(caughtUp, "n\(lagging) caught up\n\(cluster.logTails())")
        let log = try String(contentsOfFile: cluster.logPath(lagging), encoding: .utf8)
        let installed = log.split(separator: "\n").filter { $0.contains("installed a snapshot") }
        let sizes = installed.compactMap { line in line.split(separator: " ").first { $0.hasPrefix("bytes=") }.flatMap { Int($0.dropFirst(6)) } }
        #expect(sizes.contains { $0 > 8 << 20 }, "a snapshot above the 8 MiB frame limit was installed: \(installed)")
    }

    @Test("garbage on the peer port and on the HTTP port is refused without harm (plain TCP peers: the hello checks alone)")
    func garbage() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft", peerTLS: false)
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        // A connection that never says who it is gets closed after the hello timeout.
        let silent = connectSilently(port: cluster.member(leader).peerPort)
        defer { close(silent) }
        var random = SystemRandomNumberGenerator()
        for round in 0..<20 {
            let bytes = (0..<Int.random(in: 1...4096, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let member = cluster.members[round % 3]
            sendGarbage(port: member.peerPort, bytes: bytes)
            sendGarbage(port: member.clientPort, bytes: bytes)
        }
        // A frame header claiming 2 GiB, and a hello from a stranger.
        let identity = HardeningTests.identity(cluster)
        func hello(_ node: Int) -> [UInt8] {
            let frame = PeerFrame<RaftMessage>.hello(PeerHello(node: NodeID(UInt16(node)), cluster: identity)).encoded()
            return withUnsafeBytes(of: UInt32(frame.count).bigEndian) { Array($0) } + frame
        }
        sendGarbage(port: cluster.member(leader).peerPort, bytes: [0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3])
        sendGarbage(port: cluster.member(leader).peerPort, bytes: hello(99))
        // A hello from a member that this node dials itself (one connection per pair).
        let lowest = cluster.members.map(\.id).min()!
        sendGarbage(port: cluster.member(lowest).peerPort, bytes: hello(lowest + 1))
        // A hello claiming to be the node itself (two processes started with one --id): its
        // frames could pass for the node's own sync acknowledgements, so it is refused.
        sendGarbage(port: cluster.member(leader).peerPort, bytes: hello(leader))
        for member in cluster.members { #expect(cluster.isRunning(member.id), "n\(member.id) survived") }
        let connection = try await cluster.connect(leader)
        #expect(try await put(connection, "after", "garbage") == 200)
        #expect(try await get(connection, "after") == "garbage")
        // Bad requests get JSON errors with a status, not a crash.
        let badJSON = try await connection.request(.POST, "/v3/kv/put", body: Array("{not json".utf8))
        #expect(badJSON.status == 400 && badJSON.json?["error"] != nil)
        let badBase64 = try await connection.post("/v3/kv/put", json: ["key": "%%%"])
        #expect(badBase64.status == 400)
        let hugeKey = try await connection.post("/v3/kv/put", json: ["key": Data(repeating: 1, count: 5000).base64EncodedString()])
        #expect(hugeKey.status == 413)
        await connection.close()
        let log = try String(contentsOfFile: cluster.logPath(leader), encoding: .utf8)
        #expect(log.contains("closing peer connection"))
        #expect(log.contains("hello from n\(leader), which is not another member"))
        try await Task.sleep(for: .seconds(1.5))
        let later = try String(contentsOfFile: cluster.logPath(leader), encoding: .utf8)
        #expect(later.contains("no hello within 5 s"))
        let lowestLog = try String(contentsOfFile: cluster.logPath(lowest), encoding: .utf8)
        #expect(lowestLog.contains("which this node dials"))
    }
}
