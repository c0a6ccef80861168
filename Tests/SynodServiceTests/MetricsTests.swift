import Foundation
import SynodCluster
import SynodRuntime
import Testing

/// `GET /metrics` on real processes under load: the figures move, and Prometheus's own
/// checker (`promtool check metrics`, from Debian's prometheus package, which `.ci/run`
/// installs) accepts the page.
@Suite("GET /metrics: Prometheus text format", .serialized)
struct MetricsTests {
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var promtoolRequired: Bool { Self.promtool != nil || ProcessInfo.processInfo.environment["CI"] != nil }

    /// The samples of a page: `name{labels}` → value.
    static func samples(_ page: String) -> [String: Double] {
        var result: [String: Double] = [:]
        for line in page.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            result[String(line[..<space])] = value
        }
        return result
    }

    /// The sum of every sample of `name` whose labels contain all of `labels`.
    static func total(_ samples: [String: Double], _ name: String, _ labels: [String] = []) -> Double {
        samples.filter { key, _ in
            (key == name || key.hasPrefix(name + "{")) && labels.allSatisfy { key.contains($0) }
        }.values.reduce(0, +)
    }

    /// `promtool check metrics` on `page`: its exit status and what it said.
    static func promtoolCheck(_ page: String) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(Self.promtool, "promtool is not installed (.ci/run installs Debian's prometheus)"))
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = NSTemporaryDirectory() + "synod-promtool-\(getpid()).txt"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: output) }
        process.standardInput = input
        process.standardOutput = FileHandle(forWritingAtPath: output)
        process.standardError = FileHandle(forWritingAtPath: output)
        try process.run()
        input.fileHandleForWriting.write(Data(page.utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    static func metrics(_ cluster: LocalCluster, _ id: Int) async throws -> (status: Int, page: String) {
        let connection = try await cluster.connect(id)
        defer { Task { await connection.close() } }
        let reply = try await connection.request(.GET, "/metrics")
        return (reply.status, String(decoding: reply.body, as: UTF8.self))
    }

    @Test("a 3-node Raft cluster under load: requests, commits, syncs and their batches, leadership and peer links show; every page is valid for Prometheus")
    func underLoad() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForService()
        let workload = KVWorkload(endpoints: cluster.members.map { ("127.0.0.1", $0.clientPort) })
        await workload.run(clients: 4, operationsPerClient: 100)
        #expect(workload.acknowledgedPuts > 0)
        var pages: [Int: [String: Double]] = [:]
        for member in cluster.members {
            let (status, page) = try await Self.metrics(cluster, member.id)
            #expect(status == 200, "\(page)")
            for name in ["synod_client_requests_total", "synod_commit_position", "synod_wal_sync_seconds", "synod_wal_batch_records"] {
                #expect(page.contains("# HELP \(name) ") && page.contains("# TYPE \(name) "), "n\(member.id) lacks \(name)")
            }
            pages[member.id] = Self.samples(page)
            if Self.promtoolRequired {
                let (exit, said) = try Self.promtoolCheck(page)
                #expect(exit == 0, "promtool check metrics on n\(member.id): \(said)")
            }
        }
        let all = pages.values
        let writes = all.reduce(0) { $0 + Self.total($1, "synod_client_requests_total", ["kind=\"write\""]) }
        #expect(writes >= Double(workload.acknowledgedPuts), "\(writes) writes counted, \(workload.acknowledgedPuts) acknowledged")
        let leaderPage = try #require(pages[leader])
        #expect(Self.total(leaderPage, "synod_is_leader") == 1)
        #expect(all.filter { Self.total($0, "synod_is_leader") == 1 }.count == 1, "one leader")
        #expect(Self.total(leaderPage, "synod_commit_position") >= Double(workload.acknowledgedPuts))
        for (id, page) in pages.sorted(by: { $0.key < $1.key }) {
            #expect(Self.total(page, "synod_applied_position") > 0 && Self.total(page, "synod_epoch") >= 1)
            #expect(Self.total(page, "synod_wal_sync_seconds_count") > 0 && Self.total(page, "synod_wal_batch_records_count") > 0)
            #expect(Self.total(page, "synod_peer_connections_total") >= 2 && Self.total(page, "synod_peers_reachable") == 3)
            #expect(Self.total(page, "synod_peer_frames_sent_total") > 0 && Self.total(page, "synod_leader_changes_total") >= 1)
            for state in ["gateway", "replica_writes", "replica_reads"] {
                #expect(page.keys.contains { $0.hasPrefix("synod_client_requests_in_flight{") && $0.contains("state=\"\(state)\"") },
                        "in-flight requests at \(state)")
            }
            let peers = cluster.members.map(\.id).filter { $0 != id }
            #expect(peers.allSatisfy { peer in page.keys.contains { $0.hasPrefix("synod_peer_queued_bytes{") && $0.contains("peer=\"\(peer)\"") } },
                    "queued bytes for each peer of n\(id)")
        }
        let syncs = Self.total(leaderPage, "synod_wal_sync_seconds_count")
        let records = Self.total(leaderPage, "synod_wal_batch_records_sum")
        print("n\(leader) (leader): \(Int(syncs)) syncs for \(Int(records)) records (\(String(format: "%.1f", records / max(1, syncs))) per sync), sync time \(String(format: "%.3f", Self.total(leaderPage, "synod_wal_sync_seconds_sum") / max(1, syncs) * 1000)) ms on average")
    }

    @Test("promtool refuses a page that is not valid exposition (the check can fail)", .enabled(if: Self.promtoolRequired))
    func promtoolCatchesBadPage() throws {
        let (good, _) = try Self.promtoolCheck("# HELP x_total A count.\n# TYPE x_total counter\nx_total 1\n")
        #expect(good == 0)
        let (bad, said) = try Self.promtoolCheck("# HELP x_total A count.\n# TYPE x_total counter\nx_total{node=\"1\" 1\n")
        #expect(bad != 0, "\(said)")
    }

    @Test("synod serve --metrics off: no /metrics")
    func metricsOff() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft", size: 1, extraArguments: ["--metrics", "off"])
        defer { cluster.shutdown() }
        try cluster.startAll()
        _ = try await cluster.waitForService()
        let (status, page) = try await Self.metrics(cluster, 1)
        #expect(status == 404 && page.contains("metrics are off"), "\(status) \(page)")
    }
}

/// The server's lifetime (swift-service-lifecycle, through Hummingbird's service group): SIGTERM
/// stops new work, lets the requests already in flight finish, then stops the node.
@Suite("SIGTERM drains in-flight requests", .serialized)
struct GracefulShutdownTests {
    @Test("a put waiting for its quorum when the leader gets SIGTERM still commits and is answered; the leader then exits 0; every log line names its node")
    func drainsInFlight() async throws {
        // Check-quorum off: the leader keeps leading while its followers are frozen, so the test
        // turns on draining alone, not on how fast a loaded machine re-elects.
        let cluster = try LocalCluster(
            executable: synodExecutable(), protocolName: "raft", extraArguments: ["--option", "check-quorum=off"])
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let followers = cluster.members.map(\.id).filter { $0 != leader }
        // The followers freeze: the leader cannot commit, so the put waits in flight.
        for follower in followers { kill(try #require(cluster.pid(follower)), SIGSTOP) }
        let connection = try await cluster.connect(leader)
        let key = Data("drained".utf8).base64EncodedString()
        let put = Task { try await connection.post("/v3/kv/put", json: ["key": key, "value": key], timeout: .seconds(15)) }
        try await Task.sleep(for: .milliseconds(400))
        kill(try #require(cluster.pid(leader)), SIGTERM)
        try await Task.sleep(for: .milliseconds(400))
        #expect(cluster.isRunning(leader), "the leader waits for its request in flight")
        for follower in followers { kill(try #require(cluster.pid(follower)), SIGCONT) }
        let reply = try await put.value
        #expect(reply.status == 200, "the put in flight at SIGTERM was answered: \(reply.status) \(String(decoding: reply.body, as: UTF8.self))")
        await connection.close()
        #expect(cluster.stop(leader, signal: SIGTERM) == 0, "graceful exit")
        // The write is durable: a follower reads it back once it leads or follows the new leader.
        let survivor = try await cluster.waitForService(excluding: [leader])
        let reader = try await cluster.connect(survivor)
        let read = try await reader.post("/v3/kv/range", json: ["key": key], timeout: .seconds(10))
        await reader.close()
        let kvs = read.json?["kvs"] as? [[String: Any]]
        #expect(kvs?.first?["value"] as? String == key, "\(String(decoding: read.body, as: UTF8.self))")
        let log = try String(contentsOfFile: cluster.logPath(leader), encoding: .utf8)
        let lines = log.split(separator: "\n").filter { $0.contains("synod.n\(leader)") }
        #expect(!lines.isEmpty && lines.allSatisfy { $0.contains("node=\(leader)") }, "\(lines.prefix(3))")
    }
}
