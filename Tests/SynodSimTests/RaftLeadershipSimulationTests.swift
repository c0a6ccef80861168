@_spi(Testing) import SynodRaft
import SynodCore
import SynodPaxos
@_spi(Testing) import SynodSim
import Testing

/// Pre-Vote, check-quorum and leadership transfer in the simulator: the `rejoin` and
/// `transfer` faults, the rejoin check, and what each feature changes, counted.
@Suite("Raft leadership in the simulator: rejoining replicas and transfers")
struct RaftLeadershipSimulationTests {
    /// Only replicas cut off and let back, and mostly reads (which add nothing to Raft's log,
    /// so a replica cut off keeps a log as long as the leader's and could win votes): nothing
    /// else can explain a leader's fall, so the rejoin check is on.
    static func rejoinOptions(nodes: Int) -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = nodes
        options.faults = [.rejoin]
        options.operations = 100
        options.readFraction = 0.9
        options.thinkTimeNanoseconds = 0...100_000_000
        options.nemesisIntervalNanoseconds = 50_000_000...300_000_000
        options.faultDurationNanoseconds = 50_000_000...500_000_000
        return options
    }

    /// Twenty seeds of `rejoinOptions` with the protocol's defaults (Pre-Vote on): clean, and
    /// no leader deposed; then the same seeds with `withoutPreVote`: some leaders deposed,
    /// counted but not reported (those options claim no protection).
    static func checkRejoins<R: Replica>(_ type: R.Type, nodes: Int, withoutPreVote: R.Options) throws {
        let options = Self.rejoinOptions(nodes: nodes)
        let with = try SimulationSweep<R>(options: options).run(seeds: 1...20)
        for report in with where !report.isClean {
            Issue.record("seed \(report.seed): \(report.firstProblem ?? "")")
        }
        let rejoins = with.reduce(0) { $0 + $1.statistics.rejoins }
        #expect(rejoins >= 20, "the fault was injected (\(rejoins) rejoins)")
        #expect(with.reduce(0) { $0 + $1.statistics.rejoinDisruptions } == 0)
        let without = try SimulationSweep<R>(options: options, replicaOptions: withoutPreVote).run(seeds: 1...20)
        let disruptions = without.reduce(0) { $0 + $1.statistics.rejoinDisruptions }
        print("\(R.protocolName), \(nodes) nodes, 20 seeds: \(rejoins) rejoins, 0 disruptions with Pre-Vote, \(disruptions) without")
        #expect(disruptions > 0, "without Pre-Vote, replicas let back depose leaders")
        #expect(without.allSatisfy { $0.isClean })
    }

    @Test("Raft: with Pre-Vote, no replica let back deposes the leader; without it, some do", arguments: [3, 5])
    func raftRejoin(nodes: Int) throws {
        var withoutPreVote = RaftOptions()
        withoutPreVote.preVote = false
        try Self.checkRejoins(RaftReplica.self, nodes: nodes, withoutPreVote: withoutPreVote)
    }

    @Test("Multi-Paxos: with Pre-Vote, no replica let back deposes the leader; without it, some do", arguments: [3, 5])
    func multiPaxosRejoin(nodes: Int) throws {
        var withoutPreVote = MultiPaxosOptions()
        withoutPreVote.preVote = false
        try Self.checkRejoins(MultiPaxosReplica.self, nodes: nodes, withoutPreVote: withoutPreVote)
    }

    @Test("leadership transfers complete under every fault, and histories stay linearizable", arguments: [3, 5])
    func transfersUnderFaults(nodes: Int) throws {
        var options = SimulationOptions()
        options.nodes = nodes
        options.operations = 100
        let reports = try SimulationSweep<RaftReplica>(options: options).run(seeds: 1...12)
        for report in reports where !report.isClean {
            Issue.record("""
                seed \(report.seed): \(report.firstProblem ?? "")
                replay: swift run -c release synod sim --protocol raft --nodes \(nodes) --seeds \(report.seed)..\(report.seed) --ops 100
                """)
        }
        let quiet = try SimulationSweep<RaftReplica>(options: Self.transferOptions(nodes: nodes)).run(seeds: 1...10)
        let started = quiet.reduce(0) { $0 + $1.statistics.transfersStarted }
        let completed = quiet.reduce(0) { $0 + $1.statistics.transfersCompleted }
        #expect(quiet.allSatisfy { $0.isClean })
        print("\(nodes) nodes, 10 seeds, transfers only: \(completed) of \(started) transfers completed")
        #expect(started >= 10 && completed == started, "\(completed) of \(started) transfers completed without other faults")
    }

    static func transferOptions(nodes: Int) -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = nodes
        options.faults = [.transfer]
        options.operations = 100
        options.nemesisIntervalNanoseconds = 20_000_000...200_000_000
        options.thinkTimeNanoseconds = 0...50_000_000
        return options
    }

    @Test("a protocol without leadership transfer refuses it, and the simulator carries on")
    func transferUnsupported() throws {
        let reports = try SimulationSweep<PaxosLogReplica>(options: Self.transferOptions(nodes: 3)).run(seeds: 1...3)
        #expect(reports.allSatisfy { $0.isClean })
        #expect(reports.allSatisfy { $0.statistics.transfersStarted == 0 })
    }
}
