import ArgumentParser
import Foundation
import SynodCheck
import SynodCore
import SynodPaxos
import SynodRaft
import SynodSim

/// An inclusive range of seeds written `A..B` (or a single seed `A`).
struct SeedRange: ExpressibleByArgument, CustomStringConvertible {
    var range: ClosedRange<UInt64>

    init?(argument: String) {
        let parts = argument.components(separatedBy: "..")
        if parts.count == 1, let seed = UInt64(parts[0]) {
            self.range = seed...seed
        } else if parts.count == 2, let low = UInt64(parts[0]), let high = UInt64(parts[1]), low <= high {
            self.range = low...high
        } else {
            return nil
        }
    }

    var description: String { "\(self.range.lowerBound)..\(self.range.upperBound)" }
}

struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run seeded deterministic simulations of a protocol under faults.",
        discussion: """
            Each seed runs one cluster through a fault phase (crashes, torn writes, partitions, \
            message loss, duplication and reordering), then checks liveness once faults stop. \
            Invariants are checked after every event. The same seed replays the same run; a \
            failing seed prints the command that replays it.
            """
    )

    @Option(help: "Protocol to simulate: \(ProtocolRegistry.names.joined(separator: ", ")).")
    var `protocol` = "raft"

    @Option(help: "Replicas in the cluster.")
    var nodes = 5

    @Option(help: "Seeds to run, as A..B (inclusive) or a single seed.")
    var seeds = SeedRange(argument: "1..100")!

    @Option(help: "Faults: all, none, or a comma-separated list (see --list-faults).")
    var faults = "all"

    @Option(help: "Client operations per seed.")
    var ops = 200

    @Option(
        name: .customLong("workload"),
        help: "Workload: register (get, put, append on registers), kv (get, put, cas, delete on the etcd-semantics store) or eventual (get, put with the context read, on the eventually consistent store). Default: eventual for --protocol eventual, register otherwise.")
    var workloadName: String?

    /// The workload asked for, or the protocol's natural one.
    var workload: String {
        if let name = self.workloadName { return name }
        return ProtocolRegistry.named(self.protocol)?.commandSupport == .causalStore ? "eventual" : "register"
    }

    @Option(help: "Distinct keys the clients touch (1 to 256; fewer keys, more contention).")
    var keys = 4

    @Option(help: "Fraction of operations that are reads, 0 to 1.")
    var readFraction = 0.3

    @Option(help: "Concurrent clients.")
    var clients = 5

    @Option(name: .customLong("value-bytes"), help: "Bytes per written value (unique values padded to this size; 0: a few bytes; at most 1048576).")
    var valueBytes = 0

    @Option(help: ArgumentHelp(
        "Fraction of the clients that are plain clients of a node's gateway, 0 to 1.",
        discussion: "A gateway's client sends each operation to one node, whose driver runs the protocol's session for it (as `synod serve` does for HTTP clients); when that node crashes, the operation's outcome is unknown. The other clients run the session themselves and talk to the replicas directly."))
    var gatewayFraction = SimulationOptions().gatewayFraction

    @Option(help: ArgumentHelp(
        "Log compaction: snapshot each replica's state machine every N applied positions (0: never).",
        discussion: "Protocols that compact then discard their log behind the snapshot and send it to replicas that fall behind."))
    var snapshotEvery = 0

    @Option(help: ArgumentHelp(
        "Write the client history (JSON Lines, the format `synod check` reads) to this file.",
        discussion: "With several seeds, the first failing seed's history, or else the last seed's."))
    var history: String?

    @Option(help: ArgumentHelp(
        "Draw the run (one seed) as a space-time diagram in this self-contained HTML file.",
        discussion: "One lane per replica and per client, virtual time across: messages as arrows (lost, cut, duplicated and held-back ones marked), crashes, torn writes, partitions, roles, syncs and commits, client operations coloured by outcome; a broken invariant and the checker's explanation are marked. Opens from disk, no network. See docs/trace.md."))
    var trace: String?

    @Option(name: .customLong("trace-window"), help: "Draw only virtual milliseconds FROM..TO of the run, e.g. 200..900 (with --trace).")
    var traceWindow: String?

    @Option(help: "Run a named scenario instead of seeded sweeps: dueling-proposers (single-decree Paxos, FLP made visible), or cap (Raft and the eventual store under one 3 | 2 partition, CAP made visible; the first of --seeds).")
    var scenario: String?

    @Option(help: ArgumentHelp(
        "Run the same seeds, workload and faults on several protocols and print one table, e.g. raft,multipaxos.",
        discussion: "Columns: messages between replicas per completed operation; median request-to-reply message delays (fault-free, one client, instant disk); completed operations per simulated second; p50/p99 simulated latency."))
    var compare: String?

    @Option(name: .customLong("option"), help: ArgumentHelp(
        "Set a protocol option, as NAME=VALUE (repeatable), e.g. --option pre-vote=off.",
        discussion: "Raft: pre-vote, check-quorum, follower-reads (on or off; on by default), lease-reads (off by default), max-clock-drift (a fraction, 0.25), max-inflight (pipelining window, 64; 1 turns pipelining off), max-inflight-bytes (16777216), max-uncommitted-bytes (67108864), snapshot-chunk-bytes (1048576, at most 8388608); Multi-Paxos: pre-vote (on by default); Paxos log: max-batch (values per slot, 256; 1 turns batching off), max-batch-bytes (262144), prepare-ahead (phase 1 for the next slot ahead of its value; on by default)."))
    var protocolOptions: [String] = []

    @Flag(help: "Print one JSON object on stdout instead of the human summary.")
    var json = false

    @Flag(help: "List the faults the simulator can inject, and exit.")
    var listFaults = false

    @Flag(help: "Stop at the first failing seed.")
    var failFast = false

    func validate() throws {
        guard self.listFaults || ProtocolRegistry.named(self.protocol) != nil else {
            throw ValidationError("unknown protocol '\(self.protocol)'; known: \(ProtocolRegistry.names.joined(separator: ", "))")
        }
        if let compare = self.compare {
            let names = compare.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !names.isEmpty, names.allSatisfy({ ProtocolRegistry.named($0) != nil }) else {
                throw ValidationError("--compare takes protocols from: \(ProtocolRegistry.names.joined(separator: ", ")), separated by commas; got '\(compare)'")
            }
        }
        if let scenario = self.scenario, scenario != "dueling-proposers" && scenario != "cap" {
            throw ValidationError("unknown scenario '\(scenario)'; known: dueling-proposers, cap")
        }
        do { _ = try FaultSet(parsing: self.faults) } catch { throw ValidationError("\(error)") }
        if self.trace != nil && self.seeds.range.count != 1 {
            throw ValidationError("--trace draws one run: give one seed (--seeds N), got \(self.seeds.range.count)")
        }
        if let window = self.traceWindow {
            guard self.trace != nil else { throw ValidationError("--trace-window needs --trace FILE.html") }
            guard Self.parseWindow(window) != nil else {
                throw ValidationError("--trace-window takes virtual milliseconds FROM..TO with FROM < TO, e.g. 200..900; got '\(window)'")
            }
        }
        guard SimulationWorkload(rawValue: self.workload) != nil else {
            throw ValidationError("unknown workload '\(self.workload)'; known: \(SimulationWorkload.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        do { try self.simulationOptions().validate() } catch { throw ValidationError("\(error)") }
        if !self.listFaults, ProtocolRegistry.named(self.protocol) != nil {
            do { _ = try ProtocolRegistry.with(self.protocol, CheckOptions(settings: self.protocolOptions)) } catch {
                throw ValidationError("\(error)")
            }
        }
    }

    /// The protocol's options with every `--option` applied.
    static func replicaOptions<R: Replica>(_ type: R.Type, _ settings: [String]) throws -> R.Options {
        var options = R.Options()
        for setting in settings {
            let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ConfigurationError("--option takes NAME=VALUE, got '\(setting)'")
            }
            try options.set(parts[0], to: parts[1])
        }
        try options.validate()
        return options
    }

    /// Applies the settings to the protocol's options, to refuse bad ones before any run.
    struct CheckOptions: ProtocolBody {
        let settings: [String]
        func run<R: Replica>(_ type: R.Type) throws -> Bool {
            _ = try SimCommand.replicaOptions(type, self.settings)
            return true
        }
    }

    func simulationOptions() throws -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = self.nodes
        options.clients = self.clients
        options.operations = self.ops
        options.keys = self.keys
        options.readFraction = self.readFraction
        options.gatewayFraction = self.gatewayFraction
        options.valueBytes = self.valueBytes
        options.recordsTrace = self.trace != nil
        options.faults = try FaultSet(parsing: self.faults)
        options.workload = SimulationWorkload(rawValue: self.workload) ?? .register
        options.snapshotInterval = self.snapshotEvery
        return options
    }

    func run() throws {
        if self.listFaults {
            for entry in FaultSet.catalogue { print("\(entry.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(entry.summary)") }
            return
        }
        if self.scenario == "dueling-proposers" {
            try self.runDuelingProposers()
            return
        }
        if self.scenario == "cap" {
            try self.runCap()
            return
        }
        if let compare = self.compare {
            try self.runComparison(compare.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            return
        }
        let options = try self.simulationOptions()
        let reports: [SimulationReport]
        let started = ContinuousClock.now
        reports = try ProtocolRegistry.with(self.protocol, Sweep(command: self, options: options))
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let failed = reports.filter { !$0.isClean }
        if let path = self.history, let chosen = failed.first ?? reports.last {
            do {
                try HistoryCodec.encode(chosen.history).write(toFile: path, atomically: true, encoding: .utf8)
                Console.error("history of seed \(chosen.seed) written to \(path)\n")
            } catch {
                Console.error("error: cannot write the history to \(path): \(error.localizedDescription)\n")
                throw ExitCode(1)
            }
        }
        if let path = self.trace, let report = reports.first {
            let title = TraceRenderer.Title(protocolName: self.protocol, seed: report.seed, command: self.replayCommand(seed: report.seed))
            let window = self.traceWindow.flatMap(Self.parseWindow)
            let page = TraceRenderer.html(report, title: title, window: window)
            do {
                try page.write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                Console.error("error: cannot write the trace to \(path): \(error.localizedDescription)\n")
                throw ExitCode(1)
            }
            let trace = report.trace
            Console.error("trace of seed \(report.seed) written to \(path): \(page.utf8.count / 1024) KiB, \(trace?.messages.count ?? 0) messages, \(trace?.marks.count ?? 0) marks, \(report.history.count) operations\n")
        }
        if self.json {
            print(self.jsonSummary(reports, seconds: seconds))
        } else {
            print(self.humanSummary(reports, seconds: seconds))
        }
        if !failed.isEmpty {
            Console.error("\(failed.count) seed(s) failed; replay the first with:\n  \(self.replayCommand(seed: failed[0].seed))\n")
            throw ExitCode(1)
        }
    }

    func sweep<R: Replica>(_ type: R.Type, options: SimulationOptions) throws -> [SimulationReport] {
        let total = self.seeds.range.count
        var done = 0
        var failures = 0
        var lastPrinted = ContinuousClock.now
        let replicaOptions = try Self.replicaOptions(type, self.protocolOptions)
        return try SimulationSweep<R>(options: options, replicaOptions: replicaOptions).run(
            seeds: self.seeds.range, stopAfterFailures: self.failFast ? 1 : nil
        ) { report in
            done += 1
            if let problem = report.firstProblem {
                failures += 1
                Console.error("seed \(report.seed): \(problem)\n  replay: \(self.replayCommand(seed: report.seed))\n")
            }
            if ContinuousClock.now - lastPrinted > .milliseconds(500) || done == total {
                lastPrinted = ContinuousClock.now
                Console.error("\r[\(done)/\(total)] seeds, \(failures) failing   ")
                if done == total { Console.error("\n") }
            }
        }
    }

    /// The sweep of the protocol `with` opens.
    struct Sweep: ProtocolBody {
        let command: SimCommand
        let options: SimulationOptions
        func run<R: Replica>(_ type: R.Type) throws -> [SimulationReport] { try self.command.sweep(type, options: self.options) }
    }

    /// One protocol's row of the comparison.
    struct Measure: ProtocolBody {
        let command: SimCommand
        let options: SimulationOptions
        func run<R: Replica>(_ type: R.Type) throws -> ProtocolFigures {
            try ProtocolFigures.measure(
                type, options: self.options, seeds: self.command.seeds.range,
                replicaOptions: try SimCommand.replicaOptions(type, self.command.protocolOptions))
        }
    }

    /// One row per protocol, same seeds and options; exits 1 if any seed failed.
    func runComparison(_ names: [String]) throws {
        let options = try self.simulationOptions()
        var rows: [ProtocolFigures] = []
        for name in names {
            Console.error("running \(name) on seeds \(self.seeds)...\n")
            rows.append(try ProtocolRegistry.with(name, option: "--compare", Measure(command: self, options: options)))
        }
        if self.json {
            let objects: [[String: Any]] = rows.map { row in
                [
                    "protocol": row.protocolName, "seeds": row.seeds, "failingSeeds": row.failingSeeds,
                    "completedOperations": row.completedOperations, "messagesPerOperation": row.messagesPerOperation,
                    "messageDelays": row.messageDelays, "operationsPerSimulatedSecond": row.operationsPerSimulatedSecond,
                    "p50Milliseconds": row.p50Milliseconds, "p99Milliseconds": row.p99Milliseconds,
                ]
            }
            let object: [String: Any] = [
                "nodes": self.nodes, "faults": self.faults, "workload": self.workload, "clients": self.clients,
                "operationsPerSeed": self.ops, "readFraction": self.readFraction, "protocols": objects,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("\(self.nodes) nodes, \(self.clients) clients, workload \(self.workload) (read fraction \(self.readFraction)), faults \(self.faults), seeds \(self.seeds), \(self.ops) operations per seed")
            print(ProtocolFigures.table(rows))
            print("msgs/op: replica-to-replica messages per completed operation, faults included; delays: median")
            print("request-to-reply time in one-way network delays (no faults, one client, instant disk);")
            print("ops/sim-s: completed operations per simulated second; p50/p99: simulated latency with the faults.")
        }
        if rows.contains(where: { $0.failingSeeds > 0 }) {
            Console.error("some seeds failed; run the protocol alone to see which\n")
            throw ExitCode(1)
        }
    }

    /// Both halves of the FLP scenario; exits 1 unless the first never decides and the second does.
    func runDuelingProposers() throws {
        let bound = 20_000
        let stuck = PaxosWorld.duelingProposers(backoff: false, stepBound: bound)
        let resolved = PaxosWorld.duelingProposers(backoff: true, stepBound: bound)
        let expected = stuck.decided == nil && resolved.decided != nil && stuck.violations.isEmpty && resolved.violations.isEmpty
        if self.json {
            let object: [String: Any] = [
                "scenario": "dueling-proposers",
                "withoutBackoff": ["decided": stuck.decided != nil, "rounds": stuck.rounds, "steps": stuck.steps],
                "withBackoff": ["decided": resolved.decided != nil, "rounds": resolved.rounds, "steps": resolved.steps],
                "asExpected": expected,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("dueling proposers, single-decree Paxos, 3 nodes, adversarial schedule (phase 1 first):")
            print(stuck.decided == nil
                ? "  without backoff: no decision after \(stuck.rounds) rounds (\(stuck.steps) steps, stopped at the bound)"
                : "  without backoff: decided after \(stuck.rounds) rounds (unexpected)")
            print(resolved.decided != nil
                ? "  with randomized backoff: decided \"\(String(decoding: resolved.decided!, as: UTF8.self))\" after \(resolved.rounds) rounds (\(resolved.steps) steps)"
                : "  with randomized backoff: no decision after \(resolved.rounds) rounds (unexpected)")
        }
        if !expected { throw ExitCode(1) }
    }

    /// `FROM..TO` in virtual milliseconds, as nanoseconds.
    static func parseWindow(_ text: String) -> ClosedRange<UInt64>? {
        let parts = text.components(separatedBy: "..")
        guard parts.count == 2, let from = Double(parts[0]), let to = Double(parts[1]), from.isFinite, to.isFinite,
              from >= 0, from < to, to < 1e12
        else { return nil }
        return UInt64(from * 1e6)...UInt64(to * 1e6)
    }

    func replayCommand(seed: UInt64) -> String {
        "swift run -c release synod sim --protocol \(self.protocol) --nodes \(self.nodes) --seeds \(seed)..\(seed) --faults \(self.faults) --ops \(self.ops) --clients \(self.clients) --workload \(self.workload) --keys \(self.keys) --read-fraction \(self.readFraction) --gateway-fraction \(self.gatewayFraction) --snapshot-every \(self.snapshotEvery)"
            + (self.valueBytes > 0 ? " --value-bytes \(self.valueBytes)" : "")
            + self.protocolOptions.map { " --option \($0)" }.joined()
    }

    func humanSummary(_ reports: [SimulationReport], seconds: Double) -> String {
        let events = reports.reduce(0) { $0 + $1.statistics.events }
        let failed = reports.filter { !$0.isClean }
        let nonLinearizable = reports.filter(\.linearizabilityFailed).count
        let completed = reports.reduce(0) { $0 + $1.statistics.completedOperations }
        let unknown = reports.reduce(0) { $0 + $1.statistics.unknownOperations }
        let crashes = reports.reduce(0) { $0 + $1.statistics.crashes }
        let torn = reports.reduce(0) { $0 + $1.statistics.tornRecords }
        let partitions = reports.reduce(0) { $0 + $1.statistics.partitions }
        let snapshots = reports.reduce(0) { $0 + $1.statistics.snapshots }
        let installs = reports.reduce(0) { $0 + $1.statistics.snapshotInstalls }
        let started = reports.reduce(0) { $0 + $1.statistics.transfersStarted }
        let completedTransfers = reports.reduce(0) { $0 + $1.statistics.transfersCompleted }
        let transferTime = reports.reduce(0) { $0 + $1.statistics.transferNanoseconds }
        let rejoins = reports.reduce(0) { $0 + $1.statistics.rejoins }
        let disruptions = reports.reduce(0) { $0 + $1.statistics.rejoinDisruptions }
        let membershipChanges = reports.reduce(0) { $0 + $1.statistics.membershipChanges }
        let slowdowns = reports.reduce(0) { $0 + $1.statistics.slowdowns }
        let counters = SimulationStatistics.protocolCounters(of: reports)
        let reads = counters.isEmpty ? "" : "\n" + "counters:         "
            + counters.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let meanTransfer = completedTransfers == 0 ? "" : String(format: ", mean %.1f ms", Double(transferTime) / Double(completedTransfers) / 1e6)
        var lines = [
            "protocol \(self.protocol), \(self.nodes) nodes, workload \(self.workload), faults \(self.faults), seeds \(self.seeds)",
            "seeds run:        \(reports.count), failing: \(failed.count) (\(nonLinearizable) not linearizable)",
            "operations:       \(completed) completed, \(unknown) unknown outcome",
            "faults injected:  \(crashes) crashes, \(torn) torn records, \(partitions) partitions, \(rejoins) rejoins, \(slowdowns) slow followers",
            "leadership:       \(started) transfers started, \(completedTransfers) completed\(meanTransfer); \(disruptions) leaders deposed after a rejoin",
            "membership:       \(membershipChanges) changes accepted by a leader" + reads,
            "snapshots:        \(snapshots) made durable, \(installs) of them sent by another replica (--snapshot-every \(self.snapshotEvery))",
            "log:              \(reports.reduce(0) { $0 + $1.statistics.recordsWritten }) records written, "
                + "\(reports.reduce(0) { $0 + $1.statistics.recordsDiscarded }) discarded behind checkpoints",
            "events:           \(events) in \(String(format: "%.2f", seconds)) s (\(Int(Double(events) / max(seconds, 1e-9))) events/s)",
        ]
        for report in failed.prefix(10) {
            lines.append("FAIL seed \(report.seed): \(report.firstProblem ?? "")")
        }
        return lines.joined(separator: "\n")
    }

    func jsonSummary(_ reports: [SimulationReport], seconds: Double) -> String {
        let events = reports.reduce(0) { $0 + $1.statistics.events }
        let runs: [[String: Any]] = reports.map { report in
            [
                "seed": report.seed,
                "fingerprint": report.fingerprintHex,
                "violations": report.violations.map { violation -> [String: Any] in
                    var entry: [String: Any] = ["invariant": violation.invariant, "detail": violation.detail]
                    if let node = violation.node { entry["node"] = Int(node.rawValue) }
                    return entry
                },
                "linearizability": report.linearizability?.verdict.rawValue ?? "not checked",
                "events": report.statistics.events,
                "virtualMilliseconds": report.statistics.virtualNanoseconds / 1_000_000,
                "completedOperations": report.statistics.completedOperations,
                "unknownOperations": report.statistics.unknownOperations,
                "duplicateCommits": report.statistics.duplicateCommits,
                "crashes": report.statistics.crashes,
                "partitions": report.statistics.partitions,
                "transfersStarted": report.statistics.transfersStarted,
                "transfersCompleted": report.statistics.transfersCompleted,
                "transferMilliseconds": Double(report.statistics.transferNanoseconds) / 1e6,
                "rejoins": report.statistics.rejoins,
                "rejoinDisruptions": report.statistics.rejoinDisruptions,
                "membershipChanges": report.statistics.membershipChanges,
                "slowFollowers": report.statistics.slowdowns,
                "counters": report.statistics.protocolCounters,
                "snapshots": report.statistics.snapshots,
                "snapshotInstalls": report.statistics.snapshotInstalls,
            ]
        }
        let summary: [String: Any] = [
            "protocol": self.protocol,
            "nodes": self.nodes,
            "faults": self.faults,
            "workload": self.workload,
            "snapshotEvery": self.snapshotEvery,
            "seeds": reports.count,
            "options": self.protocolOptions,
            "transfersStarted": reports.reduce(0) { $0 + $1.statistics.transfersStarted },
            "transfersCompleted": reports.reduce(0) { $0 + $1.statistics.transfersCompleted },
            "rejoins": reports.reduce(0) { $0 + $1.statistics.rejoins },
            "rejoinDisruptions": reports.reduce(0) { $0 + $1.statistics.rejoinDisruptions },
            "membershipChanges": reports.reduce(0) { $0 + $1.statistics.membershipChanges },
            "slowFollowers": reports.reduce(0) { $0 + $1.statistics.slowdowns },
            "counters": SimulationStatistics.protocolCounters(of: reports),
            "violations": reports.filter { !$0.violations.isEmpty }.count,
            "nonLinearizable": reports.filter(\.linearizabilityFailed).count,
            "events": events,
            "eventsPerSecond": Int(Double(events) / max(seconds, 1e-9)),
            "seconds": seconds,
            "runs": runs,
        ]
        let data = try! JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
