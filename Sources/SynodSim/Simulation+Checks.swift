import SynodCheck
import SynodCore

extension Simulation {
    var remainingOperations: Int {
        self.clients.reduce(0) { $0 + $1.remainingOperations + ($1.currentOperation == nil ? 0 : 1) }
    }

    /// Moves between phases and enforces the liveness bound.
    func checkProgress() {
        if self.faultPhaseEnd == nil {
            // A fixed partition ends the fault phase when it heals, not before.
            guard self.options.fixedPartition == nil else { return }
            let mostDone = self.completedOperations * 10 >= self.options.operations * 8
            if mostDone || self.now >= self.options.maximumFaultPhaseNanoseconds || self.remainingOperations == 0 {
                self.endFaultPhase()
            }
            return
        }
        let deadline = self.faultPhaseEnd! + self.options.livenessBoundNanoseconds
        if self.remainingOperations == 0 && self.allReplicasCaughtUp(), let found = self.settle() {
            self.violations += found
            self.finished = true
        } else if self.now > deadline {
            self.finished = true
            let pending = self.remainingOperations
            if pending == 0 && self.allReplicasCaughtUp() {
                self.violations.append(InvariantViolation(
                    invariant: "liveness", node: nil,
                    detail: "the replicas did not settle (converge) within \(self.options.livenessBoundNanoseconds / 1_000_000) ms after faults stopped"))
            } else if pending > 0 {
                self.violations.append(InvariantViolation(
                    invariant: "liveness", node: nil,
                    detail: "\(pending) operations still pending \(self.options.livenessBoundNanoseconds / 1_000_000) ms after faults stopped"))
            } else {
                let behind = self.memberPositions.filter { self.nodes[$0].lastAppliedPosition < self.highestAckedPosition }
                self.violations.append(InvariantViolation(
                    invariant: "liveness", node: nil,
                    detail: "replicas \(behind.map { self.members[$0] }) did not apply up to position \(self.highestAckedPosition) within the bound"))
            }
        }
    }

    /// Asks the monitor whether the replicas, every one of them up, reached the state the
    /// protocol promises once faults stop (`nil`: not yet).
    func settle() -> [InvariantViolation]? {
        var replicas: [(node: NodeID, replica: R)] = []
        for position in self.nodes.indices {
            guard let driver = self.nodes[position].driver else { return nil }
            replicas.append((self.members[position], driver.core))
        }
        return self.monitor.settled(replicas)
    }

    func allReplicasCaughtUp() -> Bool {
        // An unordered protocol applies writes only where operations complete (a quorum
        // register keeps each at a majority; an eventual store converges on its own state):
        // its monitor says when it has settled.
        guard R.executionOrder != .unordered else { return true }
        return self.memberPositions.allSatisfy {
            self.nodes[$0].driver != nil && self.nodes[$0].lastAppliedPosition >= self.highestAckedPosition
        }
    }

    /// The replicas that must hold every acknowledged write: all of them, or for a protocol
    /// whose membership changes, the members of the configuration the leader (or else the
    /// replica furthest ahead) works with. Replicas removed from it no longer receive the log.
    var memberPositions: [Int] {
        let live = self.nodes.indices.filter { self.nodes[$0].driver != nil }
        let reference = self.believedLeader.flatMap { live.contains($0) ? $0 : nil }
            ?? live.max { (self.nodes[$0].driver!.core.committedThrough, $1) < (self.nodes[$1].driver!.core.committedThrough, $0) }
        guard let reference, let membership = self.nodes[reference].driver!.core.membership else { return Array(self.nodes.indices) }
        return self.nodes.indices.filter { membership.contains(self.members[$0]) }
    }

    /// Every acknowledged write is applied on every live replica (every member's, when the
    /// membership changes).
    func finalChecks() {
        // An unordered protocol's replicas apply only what their own operations return; its
        // monitor checks what the replicas hold (ABD: a majority; the eventual store: one
        // converged state).
        guard R.executionOrder != .unordered else { return }
        for position in self.memberPositions where self.nodes[position].driver != nil {
            let missing = self.ackedWrites.subtracting(self.nodes[position].appliedCommands)
            if let first = missing.min() {
                self.violations.append(InvariantViolation(
                    invariant: "acknowledged-write-applied", node: self.members[position],
                    detail: "\(missing.count) acknowledged writes not applied, first \(first)"))
            }
        }
    }

    func report() -> SimulationReport {
        var statistics = self.statistics
        for node in self.nodes { if let driver = node.driver { statistics.add(driver.core.counters) } }
        statistics.virtualNanoseconds = self.now
        statistics.completedOperations = self.completedOperations
        statistics.acknowledgedWrites = self.ackedWrites.count
        // Linearizability of what the clients saw, judged only when no invariant broke (a
        // broken invariant already condemns the run, and may have cut the history short).
        var linearizability: CheckResult?
        if self.violations.isEmpty && self.options.checkLinearizability {
            var checkerOptions = LinearizabilityChecker.Options()
            checkerOptions.timeout = self.options.linearizabilityTimeout
            linearizability = LinearizabilityChecker(options: checkerOptions).check(self.history)
        }
        var report = SimulationReport(
            seed: self.seed, fingerprint: self.hasher.value, violations: self.violations, statistics: statistics,
            history: self.history, linearizability: linearizability)
        report.promisesLinearizability = R.consistency == .linearizable
        if var trace = self.trace {
            trace.endTime = self.now
            report.trace = trace
        }
        return report
    }
}

/// Counters of one run.
public struct SimulationStatistics: Sendable, Equatable {
    /// Events handled.
    public var events = 0
    /// Virtual time at the end of the run.
    public var virtualNanoseconds: UInt64 = 0
    /// Messages handed to the network (replica to replica).
    public var messagesSent = 0
    /// Messages lost, or cut by a partition.
    public var messagesDropped = 0
    /// Durable records written.
    public var recordsWritten = 0
    /// Records discarded once a checkpoint after them was durable (log compaction).
    public var recordsDiscarded = 0
    /// Disk syncs (group commits).
    public var syncs = 0
    /// Replica crashes.
    public var crashes = 0
    /// Replica restarts.
    public var restarts = 0
    /// Records torn by a crash (discarded at recovery).
    public var tornRecords = 0
    /// Snapshots made durable (compactions and installs).
    public var snapshots = 0
    /// Snapshots a replica received from another and installed.
    public var snapshotInstalls = 0
    /// Network partitions injected.
    public var partitions = 0
    /// Leadership transfers a leader accepted, and those whose target won.
    public var transfersStarted = 0
    public var transfersCompleted = 0
    /// Virtual time from request to the target's leadership, summed over completed transfers.
    public var transferNanoseconds: UInt64 = 0
    /// Replicas cut off and let back (the `rejoin` fault), and how many of those returns
    /// were followed by the leader that kept its majority losing leadership.
    public var rejoins = 0
    public var rejoinDisruptions = 0
    /// Membership changes a leader accepted.
    public var membershipChanges = 0
    /// Replicas slowed down (the `slow-follower` fault).
    public var slowdowns = 0
    /// The protocol's own counters (`Replica.counters`), summed over replicas and restarts:
    /// for Raft, reads served under a lease and by followers.
    public var protocolCounters: [String: UInt64] = [:]
    /// Client operations that completed.
    public var completedOperations = 0
    /// Client operations given up on (outcome unknown).
    public var unknownOperations = 0
    /// Writes acknowledged to their client.
    public var acknowledgedWrites = 0
    /// Commands committed again (client retries across leader changes) and suppressed by the
    /// exactly-once session table, summed over replicas.
    public var duplicateCommits = 0
    /// All zero.
    public init() {}
}

extension SimulationStatistics {
    /// Adds a replica's counters to `protocolCounters`.
    mutating func add(_ counters: [String: UInt64]) {
        for (name, value) in counters { self.protocolCounters[name, default: 0] += value }
    }

    /// The protocol counters of `reports`, summed.
    public static func protocolCounters(of reports: [SimulationReport]) -> [String: UInt64] {
        var total = SimulationStatistics()
        for report in reports { total.add(report.statistics.protocolCounters) }
        return total.protocolCounters
    }
}

/// The outcome of one seeded run.
public struct SimulationReport: Sendable {
    /// The seed that replays this run.
    public var seed: UInt64
    /// A hash of the whole event trace: equal seeds and options give equal fingerprints.
    public var fingerprint: UInt64
    /// Invariants broken (the run stops at the first step that breaks any).
    public var violations: [InvariantViolation]
    /// Counters of the run.
    public var statistics: SimulationStatistics
    /// Every client operation, in invocation order.
    public var history: [HistoryOperation]
    /// The checker's verdict on `history`; `nil` when not checked (an invariant broke first, or
    /// checking is off).
    public var linearizability: CheckResult?
    /// The run as drawn by `synod sim --trace` (`SimulationOptions.recordsTrace`).
    public var trace: SimulationTrace?

    /// Whether the protocol promises linearizability; when not (an eventually consistent
    /// store), the checker's verdict is reported but decides nothing.
    public var promisesLinearizability = true

    /// True when the protocol promises linearizability and the history was checked and is not
    /// linearizable, or the checker gave up.
    public var linearizabilityFailed: Bool {
        guard self.promisesLinearizability, let verdict = self.linearizability?.verdict else { return false }
        return verdict != .linearizable
    }

    /// No invariant broke and the history is linearizable (or was not checked).
    public var isClean: Bool { self.violations.isEmpty && !self.linearizabilityFailed }

    /// The first problem in one line, or `nil` when clean.
    public var firstProblem: String? {
        if let violation = self.violations.first { return violation.description }
        guard self.promisesLinearizability, let result = self.linearizability, result.verdict != .linearizable else { return nil }
        if let violation = result.violation {
            return "not linearizable on key \(violation.key): cannot place \(violation.unplaced.summary)"
        }
        return "linearizability unknown: \(result.reason ?? "budget spent")"
    }

    /// The fingerprint as 16 hex digits.
    public var fingerprintHex: String {
        let digits = String(self.fingerprint, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
