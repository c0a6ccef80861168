import ArgumentParser
import Foundation
import SynodCheck
import SynodCluster
#if canImport(Glibc)
import Glibc
#endif

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a local three-node cluster, crash its leader under load, and check what the clients saw.",
        discussion: """
            Starts three `synod serve` processes on loopback with temporary data directories, runs \
            clients through the HTTP API, kills the leader with SIGKILL, shows the new election, \
            restarts the old leader and shows it catch up, then checks the recorded history with \
            the linearizability checker and cleans up. Exit 0 when the history is linearizable.
            """
    )

    @Option(help: "Protocol: \(ProtocolRegistry.names.joined(separator: ", ")).")
    var `protocol` = "raft"

    @Option(help: "Concurrent clients.")
    var clients = 4

    @Option(help: "Seconds of load before the crash, and again after it.")
    var seconds = 2.0

    @Flag(help: "Keep the data directories and logs instead of removing them.")
    var keep = false

    @Flag(name: .customLong("insecure-peers"), help: "Plain TCP between the nodes instead of mutual TLS.")
    var insecurePeers = false

    func validate() throws {
        _ = try ProtocolRegistry.lookUpLinearizableService(self.protocol)
        guard (1...64).contains(self.clients) else { throw ValidationError("--clients must lie in 1...64") }
        guard self.seconds > 0 && self.seconds <= 60 else { throw ValidationError("--seconds must lie in (0, 60]") }
    }

    static func executablePath() -> String {
        let link = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        if FileManager.default.isExecutableFile(atPath: link) && link != "/proc/self/exe" { return link }
        return Bundle.main.executablePath ?? CommandLine.arguments[0]
    }

    func say(_ text: String) { Console.out((text + "\n")) }

    func elapsed(since start: ContinuousClock.Instant) -> String {
        let duration = ContinuousClock.now - start
        let milliseconds = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return "\(Int(milliseconds.rounded())) ms"
    }

    func run() async throws {
        let cluster = try LocalCluster(executable: Self.executablePath(), protocolName: self.protocol, peerTLS: !self.insecurePeers)
        defer {
            cluster.shutdown(keepFiles: self.keep)
            if self.keep { self.say("data and logs kept in \(cluster.directory)") }
        }
        self.say("Synod demo: a three-node \(self.protocol) cluster on loopback, data in \(cluster.directory)")
        if let certificates = cluster.certificates {
            self.say("  peers speak mutual TLS 1.3 with certificates from `synod certs` in \(certificates) (CA, one per member)")
        } else {
            self.say("  peers speak plain TCP (--insecure-peers)")
        }
        try cluster.startAll()
        for member in cluster.members {
            self.say("  n\(member.id): pid \(cluster.pid(member.id) ?? 0), peers on 127.0.0.1:\(member.peerPort), clients on http://127.0.0.1:\(member.clientPort)")
        }
        // A leader-based protocol's victim is its leader; a leaderless one's, the member that
        // first reaches a majority (every member orders writes there).
        let leaderless = try ProtocolRegistry.lookUp(self.protocol).coordination == .leaderless
        func serving(_ id: Int, since: ContinuousClock.Instant) async -> String {
            let status = await cluster.status(id)
            if leaderless {
                return "n\(id) serves (no leader: every member orders writes; \(status?["reachable"] as? Int ?? 0) of 3 members reachable) \(self.elapsed(since: since))"
            }
            return "n\(id) was elected leader (epoch \(status?["epoch"] as? Int ?? 0)) \(self.elapsed(since: since))"
        }
        var start = ContinuousClock.now
        let leader = try await cluster.waitForService()
        self.say("1. \(await serving(leader, since: start)) after start.")

        let workload = KVWorkload(endpoints: cluster.members.map { ("127.0.0.1", $0.clientPort) })
        let load = Task { await workload.run(clients: self.clients) }
        try await Task.sleep(for: .seconds(self.seconds))
        self.say("2. \(self.clients) clients put and get 4 keys through every node's HTTP API: \(workload.history.count) operations so far, \(workload.acknowledgedPuts) puts acknowledged.")

        start = ContinuousClock.now
        let pid = cluster.pid(leader) ?? 0
        cluster.stop(leader, signal: SIGKILL)
        self.say("3. Killed \(leaderless ? "" : "the leader ")n\(leader) (pid \(pid)) with SIGKILL, under load.")
        let newLeader = try await cluster.waitForService(excluding: [leader])
        self.say("4. \(await serving(newLeader, since: start)) after the crash; clients carried on.")

        try await Task.sleep(for: .seconds(self.seconds))
        start = ContinuousClock.now
        try cluster.start(leader)
        let target = (await cluster.status(newLeader))?["appliedPosition"] as? Int ?? 0
        try await cluster.waitForApplied(target)
        let restarted = await cluster.status(leader)
        self.say("5. Restarted n\(leader): it recovered its log, rejoined as \(restarted?["role"] as? String ?? "?") and applied up to position \(restarted?["appliedPosition"] as? Int ?? 0) in \(self.elapsed(since: start)).")

        workload.stop()
        await load.value
        let history = workload.history
        let unknown = history.filter(\.unknown).count
        self.say("6. Load stopped: \(history.count) operations recorded, \(workload.acknowledgedPuts) puts acknowledged, \(unknown) with unknown outcome\(unknown > 0 ? " (their answers were lost in the crash)" : "").")
        let checkStart = ContinuousClock.now
        let result = LinearizabilityChecker().check(history)
        switch result.verdict {
        case .linearizable:
            self.say("7. The linearizability checker accepts the history (\(result.keys) keys, \(self.elapsed(since: checkStart))): no acknowledged write was lost, no read went back in time.")
        case .notLinearizable:
            self.say("7. NOT linearizable:\n\(result.violation.map { "\($0)" } ?? result.reason ?? "")")
        case .unknown:
            self.say("7. The checker ran out of time: unknown.")
        }
        self.say("Cleaning up: stopping the nodes\(self.keep ? "" : " and removing their data").")
        if result.verdict != .linearizable { throw ExitCode(1) }
    }
}
