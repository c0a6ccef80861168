@_spi(Testing) import SynodPaxos
import SynodCore
import SynodSim
import Testing

/// Multi-Paxos and the leaderless Paxos log driven by the same simulator as Raft, unchanged.
@Suite("Multi-Paxos and the Paxos log in the simulator")
struct PaxosLogSimulationTests {
    static func options(nodes: Int, operations: Int = 150, workload: SimulationWorkload = .register) -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = nodes
        options.operations = operations
        options.workload = workload
        return options
    }

    /// Fails the test with every unclean report; returns the fault counts seen.
    static func expectClean(_ reports: [SimulationReport]) -> (crashes: Int, partitions: Int) {
        for report in reports where !report.isClean {
            Issue.record("seed \(report.seed): \(report.firstProblem ?? "")")
        }
        for report in reports where report.linearizability?.verdict != .linearizable {
            Issue.record("seed \(report.seed): verdict \(String(describing: report.linearizability?.verdict)), \(report.linearizability?.reason ?? "")")
        }
        return (reports.reduce(0) { $0 + $1.statistics.crashes }, reports.reduce(0) { $0 + $1.statistics.partitions })
    }

    @Test("Multi-Paxos with log compaction every 5 slots: safe, live, linearizable; laggards and candidates get snapshots",
          arguments: [3, 5])
    func multiPaxosCompactionSweep(nodes: Int) throws {
        var options = Self.options(nodes: nodes)
        options.snapshotInterval = 5
        let reports = try SimulationSweep<MultiPaxosReplica>(options: options).run(seeds: 1...30)
        _ = Self.expectClean(reports)
        #expect(reports.reduce(0) { $0 + $1.statistics.snapshotInstalls } > 0, "some replica needed another's snapshot")
    }

    @Test("the Paxos log with log compaction every 5 slots: safe, live, linearizable; laggards get snapshots", arguments: [3, 5])
    func paxosLogCompactionSweep(nodes: Int) throws {
        var options = Self.options(nodes: nodes)
        options.snapshotInterval = 5
        let reports = try SimulationSweep<PaxosLogReplica>(options: options).run(seeds: 1...20)
        _ = Self.expectClean(reports)
        #expect(reports.reduce(0) { $0 + $1.statistics.snapshotInstalls } > 0, "some replica needed another's snapshot")
    }

    @Test("Multi-Paxos: every seed under all faults is safe, live and linearizable", arguments: [3, 5])
    func multiPaxosSweep(nodes: Int) throws {
        let reports = try SimulationSweep<MultiPaxosReplica>(options: Self.options(nodes: nodes)).run(seeds: 1...30)
        let faults = Self.expectClean(reports)
        #expect(faults.crashes > 0 && faults.partitions > 0)
    }

    @Test("the Paxos log (one Basic Paxos instance per slot): every seed under all faults is safe, live and linearizable",
          arguments: [3, 5])
    func paxosLogSweep(nodes: Int) throws {
        let reports = try SimulationSweep<PaxosLogReplica>(options: Self.options(nodes: nodes)).run(seeds: 1...30)
        let faults = Self.expectClean(reports)
        #expect(faults.crashes > 0 && faults.partitions > 0)
    }

    @Test("Multi-Paxos with promise pages of 4 acceptances: phase 1 over many pages stays safe and live under all faults")
    func promisePaging() throws {
        var paxos = MultiPaxosOptions()
        paxos.maxPromiseSlots = 4
        let reports = try SimulationSweep<MultiPaxosReplica>(options: Self.options(nodes: 5), replicaOptions: paxos).run(seeds: 1...30)
        let faults = Self.expectClean(reports)
        #expect(faults.crashes > 0)
    }

    @Test("Multi-Paxos replicates the etcd-semantics key-value store")
    func multiPaxosKeyValue() throws {
        let reports = try SimulationSweep<MultiPaxosReplica>(options: Self.options(nodes: 5, workload: .kv)).run(seeds: 1...15)
        _ = Self.expectClean(reports)
    }

    @Test("flexible quorums: accept quorums of 2 out of 5 (phase 1 needs 4) stay safe under all faults")
    func flexibleQuorums() throws {
        var paxos = MultiPaxosOptions()
        paxos.phase2QuorumSize = 2
        let quorum = try paxos.quorum(memberCount: 5)
        #expect(quorum.phase1Size == 4 && quorum.phase2Size == 2)
        let reports = try SimulationSweep<MultiPaxosReplica>(options: Self.options(nodes: 5), replicaOptions: paxos)
            .run(seeds: 1...20)
        _ = Self.expectClean(reports)
        // A phase-2 quorum larger than the cluster cannot be configured.
        paxos.phase2QuorumSize = 6
        #expect(throws: ConfigurationError.self) { try paxos.quorum(memberCount: 5) }
    }

    @Test("the same seed replays the same run, for both protocols")
    func replay() throws {
        for seed: UInt64 in [3, 11] {
            let first = try Simulation<MultiPaxosReplica>(seed: seed, options: Self.options(nodes: 5)).run()
            let second = try Simulation<MultiPaxosReplica>(seed: seed, options: Self.options(nodes: 5)).run()
            #expect(first.fingerprint == second.fingerprint && first.statistics == second.statistics)
            let third = try Simulation<PaxosLogReplica>(seed: seed, options: Self.options(nodes: 5)).run()
            let fourth = try Simulation<PaxosLogReplica>(seed: seed, options: Self.options(nodes: 5)).run()
            #expect(third.fingerprint == fourth.fingerprint && third.statistics == fourth.statistics)
        }
    }
}

/// The issue's three unsafe acceptors and proposers, each caught by the simulator, with the
/// correct protocol passing the very seed that caught it (the control).
@Suite("Mutation tests: the simulator catches unsafe Paxos variants")
struct PaxosMutationSimulationTests {
    static let seedBudget: UInt64 = 300

    static func harshOptions(nodes: Int) -> SimulationOptions { .harsh(nodes: nodes) }

    /// Multi-Paxos. Picking the most frequent value is left out on three nodes: there a
    /// phase-1 quorum is two promises, a value reported twice is the only value reported, and
    /// the tie-break (highest ballot) makes the variant identical to the correct rule.
    @Test("Multi-Paxos: each unsafe variant is caught, and correct Multi-Paxos passes that seed",
          arguments: [
              (PaxosMutation.acceptBelowPromise, 3), (.acceptBelowPromise, 5), (.mostFrequentValue, 5),
              (.replyBeforeDurable, 3), (.replyBeforeDurable, 5),
              (.promiseOverCompactedSlots, 3), (.promiseOverCompactedSlots, 5),
          ])
    func multiPaxos(mutation: PaxosMutation, nodes: Int) throws {
        var paxos = MultiPaxosOptions()
        paxos.mutation = mutation
        try Self.expectCaught(
            MultiPaxosReplica.self, mutated: paxos, name: "\(mutation)", nodes: nodes,
            snapshotInterval: mutation == .promiseOverCompactedSlots ? 5 : 0)
    }

    /// Sweeps the unsafe variant until a seed fails, then runs that seed with the correct
    /// protocol (default options), which must pass.
    static func expectCaught<R: Replica>(
        _ type: R.Type, mutated: R.Options, name: String, nodes: Int, snapshotInterval: Int = 0
    ) throws {
        var options = Self.harshOptions(nodes: nodes)
        options.snapshotInterval = snapshotInterval
        let reports = try SimulationSweep<R>(options: options, replicaOptions: mutated)
            .run(seeds: 1...Self.seedBudget, stopAfterFailures: 1)
        let caught = try #require(reports.first { !$0.isClean }, "\(name) survived \(Self.seedBudget) seeds")
        print("\(R.protocolName) \(name), \(nodes) nodes: caught at seed \(caught.seed): \(caught.firstProblem ?? "")")
        let control = try Simulation<R>(seed: caught.seed, options: options).run()
        #expect(control.isClean, "correct \(R.protocolName) failed seed \(caught.seed): \(control.firstProblem ?? "")")
    }

    @Test("the Paxos log: each unsafe variant is caught, and the correct log passes that seed",
          arguments: PaxosMutation.allCases, [3, 5])
    func paxosLog(mutation: PaxosMutation, nodes: Int) throws {
        var paxos = PaxosLogOptions()
        paxos.mutation = mutation
        try Self.expectCaught(
            PaxosLogReplica.self, mutated: paxos, name: "\(mutation)", nodes: nodes,
            snapshotInterval: mutation == .promiseOverCompactedSlots ? 5 : 0)
    }
}
