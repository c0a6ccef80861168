import Benchmark
import SynodCheck
import SynodCore
import SynodRaft
import SynodSim

/// Three Raft replicas in one process, messages delivered in rounds and syncs instant: the
/// cost of the protocol core alone, without disk or network.
struct InProcessRaftCluster {
    var replicas: [RaftReplica]
    var inbox: [(from: Int, envelope: Envelope<RaftMessage>)] = []
    var committedAtLeader = 0
    var sequence: UInt64 = 0

    init(size: Int) {
        let members = (1...size).map { NodeID(UInt16($0)) }
        self.replicas = members.map {
            RaftReplica(config: ReplicaConfig(id: $0, members: members), restoring: .empty, randomSeed: UInt64($0.rawValue))
        }
        // Elect replica 1: tick it alone until it campaigns, then let the votes flow.
        for _ in 0..<1_000 where self.replicas[0].role != .candidate { self.replicas[0].tick() }
        self.drain(0)
        self.deliverAll()
        precondition(self.replicas[0].role == .leader, "replica 1 did not win the election")
    }

    mutating func drain(_ position: Int) {
        let ready = self.replicas[position].ready()
        if position == 0 { self.committedAtLeader += ready.committed.count }
        for envelope in ready.messages { self.inbox.append((position, envelope)) }
    }

    /// Delivers messages round by round until none is left.
    mutating func deliverAll() {
        while !self.inbox.isEmpty {
            let round = self.inbox
            self.inbox.removeAll(keepingCapacity: true)
            for (from, envelope) in round {
                let to = Int(envelope.to.rawValue) - 1
                self.replicas[to].receive(envelope.message, from: self.replicas[from].id)
                self.drain(to)
            }
        }
    }

    /// Proposes `count` 64-byte commands in batches of `batch`, and runs until all are committed.
    mutating func commit(count: Int, batch: Int) {
        let target = self.committedAtLeader + count
        var proposed = 0
        while proposed < count {
            for _ in 0..<min(batch, count - proposed) {
                self.sequence += 1
                let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: self.sequence), count: 64)
                self.replicas[0].propose(Command(client: 1, sequence: self.sequence, payload: payload))
            }
            proposed += min(batch, count - proposed)
            self.drain(0)
            self.deliverAll()
        }
        // Followers learn the commit index with the next heartbeat; the leader knows it now.
        precondition(self.committedAtLeader >= target, "only \(self.committedAtLeader) of \(target) committed")
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 1,
        maxDuration: .seconds(10),
        maxIterations: 50
    )

    // One iteration commits 1,000,000 entries into a fresh cluster (scaling factor mega), so the
    // figure includes the log's growth; throughput reads in M entries/s.
    Benchmark("Raft core: 3 replicas, batches of 1024, 64-byte commands",
              configuration: .init(scalingFactor: .mega, maxIterations: 20)) { benchmark in
        var cluster = InProcessRaftCluster(size: 3)
        benchmark.startMeasurement()
        cluster.commit(count: benchmark.scaledIterations.count, batch: 1024)
        benchmark.stopMeasurement()
        blackHole(cluster.committedAtLeader)
    }

    // One iteration is one seeded run (seed 1, the same work every time) of 5 Raft replicas
    // under every fault; the custom metric is simulated events per second of wall time.
    let eventsPerSecond = BenchmarkMetric.custom("simulated events/s", polarity: .prefersLarger, useScalingFactor: false)
    Benchmark("Simulator: Raft, 5 nodes, all faults, 200 ops per seed",
              configuration: .init(metrics: [.wallClock, .throughput, eventsPerSecond], maxIterations: 30)) { benchmark in
        let seed: UInt64 = 1
        for _ in benchmark.scaledIterations {
            let start = ContinuousClock.now
            let report = try Simulation<RaftReplica>(seed: seed, options: SimulationOptions()).run()
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            precondition(report.violations.isEmpty, "seed \(seed): \(report.violations)")
            benchmark.measurement(eventsPerSecond, Int(Double(report.statistics.events) / seconds))
        }
    }

    // The linearizability checker on histories linearizable by construction (every kind of
    // operation: get, put, append, cas, delete; a tenth of the writes with unknown outcome).
    let manyKeys = HistoryGenerator.linearizable(operations: 100_000, keys: 100, clients: 10, seed: 1)
    Benchmark("Checker: 100,000 operations, 100 keys, 10 clients",
              configuration: .init(metrics: [.wallClock, .peakMemoryResident], maxIterations: 10)) { benchmark in
        let result = LinearizabilityChecker().check(manyKeys)
        precondition(result.verdict == .linearizable, "verdict \(result.verdict)")
    }

    let oneKey = HistoryGenerator.linearizable(operations: 10_000, keys: 1, clients: 10, seed: 1)
    let cachedStates = BenchmarkMetric.custom("memoised states", polarity: .prefersSmaller, useScalingFactor: false)
    Benchmark("Checker: 10,000 operations, 1 key, 10 clients",
              configuration: .init(metrics: [.wallClock, .peakMemoryResident, cachedStates], maxIterations: 10)) { benchmark in
        let result = LinearizabilityChecker().check(oneKey)
        precondition(result.verdict == .linearizable, "verdict \(result.verdict)")
        benchmark.measurement(cachedStates, result.cachedStates)
    }

    let registerHistory = HistoryGenerator.linearizable(
        operations: 1_000, keys: 1, clients: 10, seed: 1, kinds: [.get, .get, .put, .delete])
    let corrupted = HistoryGenerator.corruptOneRead(registerHistory, seed: 1)!
    Benchmark("Checker: reject 1,000 register operations on 1 key, 10 clients, one corrupted read",
              configuration: .init(metrics: [.wallClock, .peakMemoryResident, cachedStates], maxIterations: 5)) { benchmark in
        let result = LinearizabilityChecker().check(corrupted)
        precondition(result.verdict == .notLinearizable, "verdict \(result.verdict)")
        benchmark.measurement(cachedStates, result.cachedStates)
    }
}
