import Benchmark
import Foundation
import SynodCheck
import SynodCore
import SynodDriver
import SynodKV
import SynodRaft
import SynodRuntime
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

/// One Raft node's driver with the key-value store, as `synod serve` runs it, with the disk and
/// network taken away: requests submitted to its gateway, storage steps acknowledged at once.
/// The cost of the driver (sessions, routing, sync ordering, apply, replies) around the core.
struct SingleNodeDriver {
    let id = NodeID(1)
    var driver: NodeDriver<RaftReplica, KeyValueStore>
    var token: UInt64 = 0
    var completed = 0

    init() throws {
        self.driver = try NodeDriver(
            config: ReplicaConfig(id: NodeID(1), members: [NodeID(1)]), recovered: .empty, clientBase: 1 << 20, randomSeed: 1,
            empty: KeyValueStore(), restore: { try KeyValueStore.restore($0.data, limits: KVLimits()) })
        for _ in 0..<1_000 where self.driver.leader != self.id {
            self.driver.tick()
            self.run()
        }
        precondition(self.driver.leader == self.id, "the node did not elect itself")
    }

    /// Carries out the driver's actions until it has none: syncs done at once, notes to itself
    /// delivered.
    mutating func run() {
        while true {
            let actions = self.driver.drain()
            if actions.isEmpty { return }
            var persisted = false
            for action in actions {
                switch action {
                case .persist: persisted = true
                case .complete: self.completed += 1
                case .send(let to, let message) where to == self.id: self.driver.receive(message, from: self.id)
                default: break
                }
            }
            if persisted { self.driver.persisted() }
        }
    }

    /// Submits `count` puts of 256-byte values in batches of `batch`, and runs until every one
    /// is answered.
    mutating func put(count: Int, batch: Int, value: [UInt8]) {
        let target = self.completed + count
        var submitted = 0
        while submitted < count {
            for _ in 0..<min(batch, count - submitted) {
                self.token += 1
                let key = Array("k\(self.token & 1023)".utf8)
                self.driver.submit(.write, payload: KVRequest.put(key: key, value: value, previous: false).encoded(), token: self.token)
            }
            submitted += min(batch, count - submitted)
            self.run()
        }
        precondition(self.completed == target, "\(self.completed) of \(target) answered")
    }
}

let benchmarks: @Sendable () -> Void = {
    // Thresholds (Thresholds/, `swift package benchmark thresholds check`): time within 25% at
    // the median (the machine is shared and noisy), allocations exactly (they are repeatable).
    // Names carry no spaces: the benchmark tool writes threshold files with spaces turned into
    // underscores but looks them up by the name as given.
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 1,
        maxDuration: .seconds(10),
        maxIterations: 50,
        thresholds: [
            .wallClock: BenchmarkThresholds.relaxed, .throughput: BenchmarkThresholds.relaxed,
            .mallocCountTotal: BenchmarkThresholds.strict,
        ]
    )

    // One iteration commits 1,000,000 entries into a fresh cluster (scaling factor mega), so the
    // figure includes the log's growth; throughput reads in M entries/s.
    Benchmark("RaftCore.3replicas.batch1024.64B",
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
    Benchmark("Simulator.Raft.5nodes.allFaults.200ops",
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
    Benchmark("Checker.100kOps.100keys.10clients",
              configuration: .init(metrics: [.wallClock, .peakMemoryResident], maxIterations: 10)) { benchmark in
        let result = LinearizabilityChecker().check(manyKeys)
        precondition(result.verdict == .linearizable, "verdict \(result.verdict)")
    }

    let oneKey = HistoryGenerator.linearizable(operations: 10_000, keys: 1, clients: 10, seed: 1)
    let cachedStates = BenchmarkMetric.custom("memoised states", polarity: .prefersSmaller, useScalingFactor: false)
    Benchmark("Checker.10kOps.1key.10clients",
              configuration: .init(metrics: [.wallClock, .peakMemoryResident, cachedStates], maxIterations: 10)) { benchmark in
        let result = LinearizabilityChecker().check(oneKey)
        precondition(result.verdict == .linearizable, "verdict \(result.verdict)")
        benchmark.measurement(cachedStates, result.cachedStates)
    }

    let registerHistory = HistoryGenerator.linearizable(
        operations: 1_000, keys: 1, clients: 10, seed: 1, kinds: [.get, .get, .put, .delete])
    let corrupted = HistoryGenerator.corruptOneRead(registerHistory, seed: 1)!
    Benchmark("Checker.reject.1kOps.1key.corruptedRead",
              configuration: .init(metrics: [.wallClock, .peakMemoryResident, cachedStates], maxIterations: 5)) { benchmark in
        let result = LinearizabilityChecker().check(corrupted)
        precondition(result.verdict == .notLinearizable, "verdict \(result.verdict)")
        benchmark.measurement(cachedStates, result.cachedStates)
    }

    // The node driver around the Raft core, with the key-value store: one iteration puts
    // 1,000,000 values (256 bytes) through the gateway in batches of 64 (as 64 clients would),
    // syncs acknowledged at once; the starred figures are per put, throughput in M puts/s.
    let value = [UInt8](repeating: 0x61, count: 256)
    Benchmark("Driver.RaftNode.KV.256Bputs.batch64",
              configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .mega, maxIterations: 10)) { benchmark in
        var node = try SingleNodeDriver()
        benchmark.startMeasurement()
        node.put(count: benchmark.scaledIterations.count, batch: 64, value: value)
        benchmark.stopMeasurement()
        blackHole(node.completed)
    }

    // The HTTP API's codec: a put's JSON body (256-byte value, base64) to the bytes the node
    // orders, and a range's reply to the JSON answer, as every request pays before and after
    // consensus. One iteration handles 1,000 of each.
    let putBody = Data(#"{"key":"Zm9v","value":"\#(Data(value).base64EncodedString())"}"#.utf8)
    let rangeBody = Data(#"{"key":"Zm9v"}"#.utf8)
    var store = KeyValueStore()
    _ = store.apply(KVRequest.put(key: Array("foo".utf8), value: value, previous: false).encoded())
    let rangeReply = store.query(KVRequest.range(KeyRange(key: Array("foo".utf8)), limit: 0).encoded())
    Benchmark("HTTPCodec.putBody.rangeAnswer.256B",
              configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .kilo, maxIterations: 50)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try ClientAPI<RaftReplica>.benchmarkPut(body: putBody))
            blackHole(try ClientAPI<RaftReplica>.benchmarkRange(body: rangeBody))
            blackHole(try ClientAPI<RaftReplica>.benchmarkAnswer(reply: rangeReply, epoch: 3))
        }
    }
}
