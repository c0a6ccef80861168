import SynodKV
/// How one simulated run is shaped. Times are virtual nanoseconds.
public struct SimulationOptions: Sendable, Equatable {
    /// Replicas in the cluster.
    public var nodes = 5
    /// Concurrent clients.
    public var clients = 5
    /// Client operations in the whole run, shared among the clients.
    public var operations = 200
    /// Distinct keys the workload touches (few keys, much contention), at most 256.
    public var keys = 4
    /// Fraction of operations that are reads.
    public var readFraction = 0.3
    /// What the clients do and which state machine the replicas run.
    public var workload: SimulationWorkload = .register
    /// Fraction of the clients that are plain clients of a node's gateway (an HTTP client:
    /// the protocol's session runs in the node's driver, and an operation whose gateway
    /// crashes ends with an unknown outcome); the others run the session themselves (a client
    /// library) and talk to the replicas directly.
    public var gatewayFraction = 0.2
    /// Bytes per written value: unique values padded to this size (0: unpadded, a few bytes).
    /// Large values exercise the protocols' size limits and the checker's input limits.
    public var valueBytes = 0
    /// Fraction of writes that are appends (the rest are puts). Appends are not idempotent,
    /// so a retry applied twice shows up in the history.
    public var appendFraction = 0.5
    /// Test-only: apply a command again when its retry commits a second time, bypassing the
    /// exactly-once session table (a deliberately broken driver, for tests that show the
    /// linearizability checker catches it).
    @_spi(Testing) public var unsafeApplyRetriesAgain = false
    /// Test-only: the node driver sends messages that must wait for a sync before it is done
    /// (a deliberately broken driver, for the test that shows the simulator catches it).
    @_spi(Testing) public var unsafeSendBeforeSync = false
    /// Test-only: the protocol's monitor is not run, so that a mutation it would catch first is
    /// left to the linearizability checker (the test that shows the checker catches it too).
    @_spi(Testing) public var skipsMonitor = false
    /// Pause between one operation's end and the client's next (0...0: none). Pauses leave
    /// leaders idle, the state in which some bugs (committing old-term entries) show.
    public var thinkTimeNanoseconds: ClosedRange<UInt64> = 0...0
    /// Faults to inject.
    public var faults: FaultSet = .all
    /// Log compaction: each replica snapshots its state machine and calls
    /// `Replica.compact(through:state:)` every this many applied positions (0: never).
    public var snapshotInterval = 0

    /// Virtual time per replica and client tick.
    public var tickNanoseconds: UInt64 = 10_000_000
    /// Message latency when the `latency` fault is off.
    public var baseLatencyNanoseconds: UInt64 = 1_000_000
    /// Latency bounds when the `latency` fault is on.
    public var latencyRangeNanoseconds: ClosedRange<UInt64> = 200_000...15_000_000
    /// Probability a replica-to-replica message is lost (with `loss`).
    public var lossProbability = 0.05
    /// Probability a message is delivered twice (with `duplication`).
    public var duplicationProbability = 0.03
    /// Probability a message is held back (with `reordering`).
    public var reorderProbability = 0.05
    /// Probability a client request or reply is lost (with `client-loss`).
    public var clientLossProbability = 0.02
    /// Range of a disk sync's duration.
    public var syncRangeNanoseconds: ClosedRange<UInt64> = 100_000...2_000_000
    /// Range of the pause between two nemesis actions.
    public var nemesisIntervalNanoseconds: ClosedRange<UInt64> = 50_000_000...1_000_000_000
    /// Range of a crashed replica's downtime and of a partition's lifetime.
    public var faultDurationNanoseconds: ClosedRange<UInt64> = 50_000_000...3_000_000_000
    /// Faults stop at the latest after this long, or once 80% of the operations completed.
    public var maximumFaultPhaseNanoseconds: UInt64 = 30_000_000_000
    /// During the fault phase, a client gives up on an operation (outcome unknown) after this long.
    public var operationTimeoutNanoseconds: UInt64 = 5_000_000_000
    /// Once faults stop, every pending operation must complete, and every replica catch up,
    /// within this bound.
    public var livenessBoundNanoseconds: UInt64 = 30_000_000_000

    /// One partition at fixed times instead of random faults (the CAP scenario): `faults`
    /// must be empty; the fault phase is the partition, and clients stay on their side.
    public var fixedPartition: FixedPartition?

    /// Record what happened (messages, faults, roles, syncs, commits) for `synod sim --trace`.
    /// Changes nothing in the run.
    public var recordsTrace = false
    /// Check the linearizability of the client history at the end of each run.
    public var checkLinearizability = true
    /// Wall-clock budget of that check (the verdict is `unknown` past it).
    public var linearizabilityTimeout: Duration = .seconds(30)

    /// The defaults.
    public init() {}

    /// Checks every setting, naming the first one out of range.
    public func validate() throws {
        guard (1...64).contains(self.nodes) else { throw SimulationError("nodes must lie in 1...64, got \(self.nodes)") }
        guard (1...1000).contains(self.clients) else {
            throw SimulationError("clients must lie in 1...1000, got \(self.clients)")
        }
        guard self.operations >= 0 else { throw SimulationError("operations must not be negative") }
        guard (1...256).contains(self.keys) else { throw SimulationError("keys must lie in 1...256, got \(self.keys)") }
        guard (0...1).contains(self.readFraction) else { throw SimulationError("readFraction must lie in 0...1") }
        guard (0...1).contains(self.gatewayFraction) else { throw SimulationError("gatewayFraction must lie in 0...1") }
        guard (0...1).contains(self.appendFraction) else { throw SimulationError("appendFraction must lie in 0...1") }
        guard (0...(1 << 20)).contains(self.valueBytes) else {
            throw SimulationError("valueBytes must lie in 0...1048576 (the store's value limit), got \(self.valueBytes)")
        }
        // A kv cas carries its expected value and its new one; the store, like etcd, takes
        // requests up to 1.5 MiB.
        let casLimit = (KVLimits().maximumRequestBytes - 1024) / 2
        guard self.workload != .kv || self.valueBytes <= casLimit else {
            throw SimulationError(
                "valueBytes must be at most \(casLimit) with the kv workload (a cas request carries two values, and requests are "
                    + "limited to \(KVLimits().maximumRequestBytes) bytes); the register workload takes up to 1048576, got \(self.valueBytes)")
        }
        for (name, value) in [
            ("lossProbability", self.lossProbability), ("duplicationProbability", self.duplicationProbability),
            ("reorderProbability", self.reorderProbability), ("clientLossProbability", self.clientLossProbability),
        ] where !(0...0.5).contains(value) {
            throw SimulationError("\(name) must lie in 0...0.5, got \(value)")
        }
        if let partition = self.fixedPartition {
            guard self.faults.isEmpty else { throw SimulationError("a fixed partition runs without random faults (faults none)") }
            guard !partition.minority.isEmpty, partition.minority.count * 2 < self.nodes,
                  partition.minority.allSatisfy({ (0..<self.nodes).contains($0) }), Set(partition.minority).count == partition.minority.count
            else { throw SimulationError("a fixed partition's minority must be fewer than half the nodes, each once, got \(partition.minority)") }
            guard partition.from < partition.until else { throw SimulationError("a fixed partition must end after it begins") }
            guard (1..<self.clients).contains(partition.minorityClients) else {
                throw SimulationError("a fixed partition needs clients on both sides: minorityClients in 1..<\(self.clients)")
            }
        }
        guard self.snapshotInterval >= 0 else { throw SimulationError("snapshotInterval must not be negative") }
        guard self.tickNanoseconds > 0 else { throw SimulationError("tickNanoseconds must be positive") }
        guard self.livenessBoundNanoseconds > 0 else { throw SimulationError("livenessBoundNanoseconds must be positive") }
    }
}

/// A partition at fixed times: the minority's nodes cannot talk to the others from `from` to
/// `until` (virtual nanoseconds), and the last `minorityClients` clients talk only to the
/// minority's nodes (the others only to the majority's), throughout.
public struct FixedPartition: Sendable, Equatable {
    public var minority: [Int]
    public var from: UInt64
    public var until: UInt64
    public var minorityClients: Int

    public init(minority: [Int], from: UInt64, until: UInt64, minorityClients: Int) {
        self.minority = minority
        self.from = from
        self.until = until
        self.minorityClients = minorityClients
    }
}

extension SimulationOptions {
    /// The CAP scenario (`synod sim --scenario cap`): five nodes split 3 | 2 from 300 ms to
    /// 3.3 s, ten gateway clients (six on the majority's side, four on the minority's) doing
    /// puts and gets on four keys with short pauses, giving up on an operation after 500 ms.
    public static func capScenario(workload: SimulationWorkload) -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = 5
        options.clients = 10
        options.operations = 1200
        options.keys = 4
        options.readFraction = 0.4
        options.workload = workload
        options.gatewayFraction = 1
        options.faults = []
        options.thinkTimeNanoseconds = 10_000_000...30_000_000
        options.operationTimeoutNanoseconds = 500_000_000
        options.fixedPartition = FixedPartition(minority: [3, 4], from: 300_000_000, until: 3_300_000_000, minorityClients: 4)
        return options
    }

    /// The mutation tests' fault mix: faults every 5 to 100 ms, lasting 5 to 500 ms (half the
    /// crashes quick reboots), 200 operations: denser than the default, so that unsafe variants
    /// show within a few hundred seeds. Clients run their own sessions: at this crash rate
    /// most operations of a gateway's clients would end unknown with their gateway.
    public static func harsh(nodes: Int) -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = nodes
        options.gatewayFraction = 0
        options.operations = 200
        options.nemesisIntervalNanoseconds = 5_000_000...100_000_000
        options.faultDurationNanoseconds = 5_000_000...500_000_000
        return options
    }
}
