import HeapModule
import SynodCheck
import SynodCore

/// A deterministic, single-threaded simulation of one cluster running protocol `R`, driven
/// through virtual time by one seeded event queue.
///
/// The same `seed` and options replay the same run event for event (`fingerprint` folds the
/// whole trace). The run has three phases:
///
/// 1. **faults**: clients run their workload while the nemesis crashes and restarts replicas,
///    tears unsynced writes, partitions and heals the network, and the network loses,
///    duplicates, delays and reorders messages; invariants are checked after every event;
/// 2. **liveness**: faults stop (partitions heal, crashed replicas restart, no more loss); every
///    pending and remaining operation must complete within `livenessBoundNanoseconds`;
/// 3. **settle**: every live replica must apply every acknowledged write within the same bound.
public final class Simulation<R: Replica> {
    public let seed: UInt64
    public let options: SimulationOptions
    let replicaOptions: R.Options
    let members: [NodeID]

    var random: DeterministicRandom
    var queue = Heap<ScheduledEvent>()
    /// What each scheduled event does, by slot; freed slots are reused.
    var eventKinds: [SimulationEventKind<R>?] = []
    var freeSlots: [Int] = []
    var now: UInt64 = 0
    var sequence: UInt64 = 0
    var hasher = StableHasher()
    var nodes: [SimulatedNode<R>] = []
    var clients: [SimulatedClient<R.Session>] = []
    var monitor: R.Monitor
    /// `blocked[from * n + to]`: the link from → to is cut.
    var blocked: [Bool]
    var activePartition: UInt64 = 0
    var faultsActive: Bool
    var faultPhaseEnd: UInt64?
    var completedOperations = 0
    /// The replica that most recently announced leadership (by `ReplicaEvent`), the nemesis's
    /// favourite target: faults at the leader are where consensus protocols break.
    var believedLeader: Int?
    var finished = false

    /// The command applied at each position, as first seen on any replica.
    var positionHistory: [CommandID?] = []
    /// The commands executed on each key, in order, as first seen on any replica: conflicting
    /// commands execute in the same order everywhere, whatever the protocol's `ExecutionOrder`.
    var keyHistory: [String: [CommandID]] = [:]
    /// The last few values written to each key: candidates for a cas's expected value.
    var recentValues: [UInt8: [String]] = [:]
    /// Where each write first took effect.
    var writePositions: [CommandID: UInt64] = [:]
    /// Writes acknowledged to their client.
    var ackedWrites: Set<CommandID> = []
    var highestAckedPosition: UInt64 = 0
    /// Every snapshot taken, by the number its bytes encode.
    var snapshotStates: [SnapshotState] = []

    public internal(set) var history: [HistoryOperation] = []
    public internal(set) var violations: [InvariantViolation] = []
    public internal(set) var statistics = SimulationStatistics()

    /// Creates a run; nothing happens until `run()`.
    public init(seed: UInt64, options: SimulationOptions, replicaOptions: R.Options = R.Options()) throws {
        try options.validate()
        try replicaOptions.validate()
        self.seed = seed
        self.options = options
        self.replicaOptions = replicaOptions
        self.members = (1...options.nodes).map { NodeID(UInt16($0)) }
        self.random = DeterministicRandom(seed: seed)
        self.monitor = R.Monitor(members: self.members)
        self.blocked = Array(repeating: false, count: options.nodes * options.nodes)
        self.faultsActive = !options.faults.isEmpty
        self.hasher.combine(seed)
    }

    /// Runs to completion and returns the report.
    public func run() -> SimulationReport {
        self.start()
        while !self.finished, let event = self.queue.popMin() {
            self.now = event.time
            self.statistics.events += 1
            let kind = self.eventKinds[event.slot].take()!
            self.freeSlots.append(event.slot)
            self.handle(kind)
            if !self.violations.isEmpty { break }
            self.checkProgress()
        }
        if self.violations.isEmpty { self.finalChecks() }
        return self.report()
    }

    // MARK: Setup

    func start() {
        for position in self.members.indices {
            let drift = self.options.faults.contains(.clockDrift) ? self.random.integer(in: 80...120) : 100
            var node = SimulatedNode<R>(
                tickNanoseconds: self.options.tickNanoseconds * UInt64(drift) / 100, workload: self.options.workload)
            node.replica = self.makeReplica(position: position, recovered: .empty)
            self.nodes.append(node)
            self.schedule(after: UInt64(self.random.integer(in: 0..<Int(node.tickNanoseconds))) + 1,
                          .nodeTick(node: position, incarnation: 0))
        }
        let perClient = self.options.operations / self.options.clients
        let extra = self.options.operations % self.options.clients
        for client in 0..<self.options.clients {
            let session = R.Session(
                client: ClientID(client + 1), members: self.members, randomSeed: self.random.fork())
            self.clients.append(SimulatedClient(session: session, remainingOperations: perClient + (client < extra ? 1 : 0)))
            self.schedule(after: self.options.tickNanoseconds, .clientTick(client: client))
            self.startNextOperation(client: client)
        }
        if self.faultsActive {
            self.schedule(after: self.random.uniform(self.options.nemesisIntervalNanoseconds), .nemesis)
        }
    }

    func makeReplica(position: Int, recovered: Recovered<R.Record>) -> R {
        R(config: ReplicaConfig(id: self.members[position], members: self.members, options: self.replicaOptions),
          restoring: recovered, randomSeed: self.random.fork())
    }

    func schedule(after delay: UInt64, _ kind: SimulationEventKind<R>) {
        self.sequence += 1
        let slot: Int
        if let free = self.freeSlots.popLast() {
            slot = free
            self.eventKinds[slot] = kind
        } else {
            slot = self.eventKinds.count
            self.eventKinds.append(kind)
        }
        self.queue.insert(ScheduledEvent(time: self.now + delay, sequence: self.sequence, slot: slot))
    }

    // MARK: Event handling

    func handle(_ kind: SimulationEventKind<R>) {
        self.hasher.combine(self.now)
        switch kind {
        case .nodeTick(let position, let incarnation):
            self.hasher.combine(1)
            self.hasher.combine(position)
            guard self.nodes[position].incarnation == incarnation, self.nodes[position].replica != nil else { return }
            self.nodes[position].replica!.tick()
            self.drain(position)
            self.schedule(after: self.nodes[position].tickNanoseconds, .nodeTick(node: position, incarnation: incarnation))
        case .deliver(let from, let to, let message):
            self.hasher.combine(2)
            self.hasher.combine(from)
            self.hasher.combine(to)
            message.digest(into: &self.hasher)
            guard self.nodes[to].replica != nil else { return }
            if from != to && self.blocked[from * self.options.nodes + to] {
                self.statistics.messagesDropped += 1
                return
            }
            self.nodes[to].replica!.receive(message, from: self.members[from])
            self.drain(to)
        case .syncDone(let position, let incarnation):
            self.hasher.combine(3)
            self.hasher.combine(position)
            guard self.nodes[position].incarnation == incarnation else { return }
            self.completeSync(position)
        case .clientTick(let client):
            self.hasher.combine(4)
            self.hasher.combine(client)
            self.clientTick(client)
        case .clientStart(let client):
            self.hasher.combine(10)
            self.hasher.combine(client)
            self.startNextOperation(client: client)
        case .clientRequest(let client, let position, let request):
            self.hasher.combine(5)
            self.hasher.combine(client)
            self.hasher.combine(position)
            self.hasher.combine(request.command.sequence)
            self.nodeReceivesClientRequest(position, client: client, request: request)
        case .clientReply(let client, let position, let reply):
            self.hasher.combine(6)
            self.hasher.combine(client)
            self.hasher.combine(position)
            self.clientReceives(client, reply: reply, from: position)
        case .nemesis:
            self.hasher.combine(7)
            self.nemesis()
        case .restart(let position):
            self.hasher.combine(8)
            self.hasher.combine(position)
            self.restart(position)
        case .heal(let partition):
            self.hasher.combine(9)
            if partition == self.activePartition { self.healPartition() }
        }
    }

    /// Handles everything a replica asked for after an input, then runs the safety monitor.
    func drain(_ position: Int) {
        guard let ready = self.nodes[position].replica?.ready() else { return }
        let firstRecord = self.nodes[position].disk.count
        if !ready.records.isEmpty {
            self.nodes[position].disk.append(contentsOf: ready.records)
            self.statistics.recordsWritten += ready.records.count
        }
        if self.nodes[position].crashAtNextWrite && (!ready.records.isEmpty || ready.snapshot != nil) {
            // The crash interrupts this write. The replica sends in parallel with writing, so
            // some of the messages that need no sync may already be out: a random prefix.
            let sent = self.random.integer(in: 0...ready.messages.count)
            for envelope in ready.messages.prefix(sent) where !envelope.afterSync { self.send(envelope, from: position) }
            if let snapshot = ready.snapshot {
                // The snapshot file is renamed into place before the records are written:
                // either it made it and some records may follow, or neither did.
                if self.random.chance(0.5) {
                    self.nodes[position].snapshot = snapshot
                } else {
                    self.nodes[position].disk.removeSubrange(firstRecord...)
                }
            }
            self.observe(position, ready)
            self.crash(position)
            return
        }
        if let snapshot = ready.snapshot {
            self.nodes[position].snapshot = snapshot
            self.statistics.snapshots += 1
            if ready.installsSnapshot {
                self.statistics.snapshotInstalls += 1
                self.install(snapshot, at: position)
            }
        }
        if ready.checkpoint {
            self.nodes[position].checkpoint = firstRecord..<self.nodes[position].disk.count
        }
        var needsSync = !ready.records.isEmpty
        for envelope in ready.messages {
            if envelope.afterSync {
                self.nodes[position].waitingMessages.append(envelope)
                needsSync = true
            } else {
                self.send(envelope, from: position)
            }
        }
        if needsSync && !self.nodes[position].syncInFlight { self.startSync(position) }
        for committed in ready.committed { self.apply(committed, at: position) }
        for read in ready.reads { self.serveRead(read, at: position) }
        for rejection in ready.rejected { self.answerRejection(rejection, at: position) }
        self.observe(position, ready)
        self.compactIfDue(position)
    }

    // MARK: Snapshots

    /// Every `snapshotInterval` applied positions, hands the replica its state machine.
    func compactIfDue(_ position: Int) {
        let node = self.nodes[position]
        guard self.options.snapshotInterval > 0, node.replica != nil,
              node.lastAppliedPosition >= node.lastCompactedPosition + UInt64(self.options.snapshotInterval)
        else { return }
        self.nodes[position].lastCompactedPosition = node.lastAppliedPosition
        let number = UInt64(self.snapshotStates.count)
        self.snapshotStates.append(SnapshotState(
            position: node.lastAppliedPosition, machine: node.machine, appliedCommands: node.appliedCommands, appliedPerKey: node.appliedPerKey))
        let data = (0..<8).map { UInt8(truncatingIfNeeded: number >> ($0 * 8)) }
        self.nodes[position].replica!.compact(through: node.lastAppliedPosition, state: data)
        self.drain(position)
    }

    func snapshotState(_ snapshot: Snapshot) -> SnapshotState {
        precondition(snapshot.data.count == 8, "a simulated snapshot names its state by number")
        let number = snapshot.data.enumerated().reduce(0) { $0 | UInt64($1.element) << ($1.offset * 8) }
        return self.snapshotStates[Int(number)]
    }

    /// Replaces a replica's state machine with a snapshot's (received from another replica,
    /// or recovered), and answers the writes waiting here that it already holds.
    func install(_ snapshot: Snapshot, at position: Int) {
        let state = self.snapshotState(snapshot)
        if snapshot.position != state.position {
            self.violations.append(InvariantViolation(
                invariant: "state-machine-safety", node: self.members[position],
                detail: "a snapshot labelled position \(snapshot.position) holds the state at position \(state.position)"))
            return
        }
        if snapshot.position < self.nodes[position].lastAppliedPosition {
            self.violations.append(InvariantViolation(
                invariant: "state-machine-safety", node: self.members[position],
                detail: "installed a snapshot at position \(snapshot.position) after applying \(self.nodes[position].lastAppliedPosition)"))
            return
        }
        self.nodes[position].machine = state.machine
        self.nodes[position].appliedCommands = state.appliedCommands
        self.nodes[position].appliedPerKey = state.appliedPerKey
        self.nodes[position].lastAppliedPosition = snapshot.position
        self.nodes[position].lastCompactedPosition = snapshot.position
        for (client, sequence) in self.nodes[position].pendingWrites.sorted(by: { $0.key < $1.key }) {
            let id = CommandID(client: client, sequence: sequence)
            guard let reply = state.machine.cachedReply(for: id) else { continue }
            self.nodes[position].pendingWrites[client] = nil
            self.reply(.ok(id, result: reply), to: Int(client) - 1, from: position)
        }
    }

    func observe(_ position: Int, _ ready: Ready<R.Message, R.Record>) {
        for event in ready.events {
            switch event {
            case .becameLeader: self.believedLeader = position
            case .becameFollower, .becameCandidate:
                if self.believedLeader == position { self.believedLeader = nil }
            }
        }
        let found = self.monitor.observe(node: self.members[position], replica: self.nodes[position].replica!, ready: ready)
        if !found.isEmpty { self.violations += found }
    }

    // MARK: Disk

    func startSync(_ position: Int) {
        var node = self.nodes[position]
        node.syncInFlight = true
        node.syncingCount = node.disk.count
        node.syncingMessages = node.waitingMessages
        node.waitingMessages = []
        // Syncs complete in order.
        let done = max(self.now + self.random.uniform(self.options.syncRangeNanoseconds), node.lastSyncDoneTime)
        node.lastSyncDoneTime = done
        self.nodes[position] = node
        self.statistics.syncs += 1
        self.schedule(after: done - self.now, .syncDone(node: position, incarnation: node.incarnation))
    }

    func completeSync(_ position: Int) {
        self.nodes[position].syncInFlight = false
        self.nodes[position].syncedCount = self.nodes[position].syncingCount
        if let checkpoint = self.nodes[position].checkpoint, self.nodes[position].syncedCount >= checkpoint.upperBound {
            // The checkpoint is durable: discard the records before it, newest first, and
            // sometimes stop part way (a crash in the middle of deleting old segments).
            let kept = self.random.chance(0.1) ? self.random.integer(in: 0...checkpoint.lowerBound) : 0
            self.nodes[position].disk.removeSubrange(kept..<checkpoint.lowerBound)
            let removed = checkpoint.lowerBound - kept
            self.nodes[position].syncedCount -= removed
            self.nodes[position].checkpoint = nil
        }
        let messages = self.nodes[position].syncingMessages
        self.nodes[position].syncingMessages = []
        for envelope in messages { self.send(envelope, from: position) }
        if !self.nodes[position].waitingMessages.isEmpty
            || self.nodes[position].disk.count > self.nodes[position].syncedCount
        {
            self.startSync(position)
        }
    }

    /// Crashes a replica: its unsynced writes vanish, except a random prefix the disk happened
    /// to write; with torn writes the last of those may be torn and is discarded by recovery.
    func crash(_ position: Int) {
        var node = self.nodes[position]
        guard node.replica != nil else { return }
        let unsynced = node.disk.count - node.syncedCount
        var survivors = self.random.integer(in: 0...unsynced)
        if survivors > 0 && self.options.faults.contains(.tornWrite) && self.random.chance(0.5) {
            survivors -= 1
            self.statistics.tornRecords += 1
        }
        node.disk.removeSubrange((node.syncedCount + survivors)...)
        node.syncedCount = node.disk.count
        node.checkpoint = nil
        node.replica = nil
        if self.believedLeader == position { self.believedLeader = nil }
        node.crashAtNextWrite = false
        node.incarnation += 1
        node.syncInFlight = false
        node.syncingMessages = []
        node.waitingMessages = []
        node.pendingWrites = [:]
        node.pendingReads = [:]
        self.nodes[position] = node
        self.statistics.crashes += 1
        // Half the crashes are quick reboots (FoundationDB's "reboot" beside its "kill"): the
        // replica is back while the election or round it took part in is still running.
        let downtime = self.random.chance(0.5)
            ? self.random.uniform(1_000_000...20_000_000) : self.random.uniform(self.options.faultDurationNanoseconds)
        self.schedule(after: downtime, .restart(node: position))
    }

    func restart(_ position: Int) {
        guard self.nodes[position].replica == nil else { return }
        let recovered = Recovered(snapshot: self.nodes[position].snapshot, records: self.nodes[position].disk)
        if let problem = R.problem(restoring: recovered) {
            self.violations.append(InvariantViolation(
                invariant: "recoverable-records", node: self.members[position], detail: problem))
            return
        }
        let replica = self.makeReplica(position: position, recovered: recovered)
        var node = self.nodes[position]
        node.replica = replica
        node.machine = SimulatedStore(self.options.workload)
        node.lastAppliedPosition = 0
        node.lastCompactedPosition = 0
        node.appliedCommands = []
        node.appliedPerKey = [:]
        self.nodes[position] = node
        if let snapshot = recovered.snapshot { self.install(snapshot, at: position) }
        self.monitor.restarted(node: self.members[position], replica: replica, recovered: recovered)
        self.schedule(after: node.tickNanoseconds, .nodeTick(node: position, incarnation: node.incarnation))
        self.statistics.restarts += 1
    }

    // MARK: Network

    func send(_ envelope: Envelope<R.Message>, from position: Int) {
        let destination = Int(envelope.to.rawValue) - 1
        self.statistics.messagesSent += 1
        if destination == position {
            // Loopback: a replica's note to itself after a sync; no network in between.
            self.schedule(after: 0, .deliver(from: position, to: destination, message: envelope.message))
            return
        }
        let faults = self.faultsActive ? self.options.faults : []
        if faults.contains(.loss) && self.random.chance(self.options.lossProbability) {
            self.statistics.messagesDropped += 1
            return
        }
        var copies = 1
        if faults.contains(.duplication) && self.random.chance(self.options.duplicationProbability) { copies = 2 }
        for _ in 0..<copies {
            self.schedule(after: self.latency(faults), .deliver(from: position, to: destination, message: envelope.message))
        }
    }

    func latency(_ faults: FaultSet) -> UInt64 {
        var latency = self.options.faults.contains(.latency)
            ? self.random.uniform(self.options.latencyRangeNanoseconds) : self.options.baseLatencyNanoseconds
        if faults.contains(.reordering) && self.random.chance(self.options.reorderProbability) {
            latency += self.random.uniform(0...50_000_000)
        }
        return latency
    }

    func clientLinkDrops() -> Bool {
        self.faultsActive && self.options.faults.contains(.clientLoss)
            && self.random.chance(self.options.clientLossProbability)
    }
}

extension DeterministicRandom {
    /// A uniformly distributed value in `range`.
    mutating func uniform(_ range: ClosedRange<UInt64>) -> UInt64 {
        UInt64.random(in: range, using: &self)
    }
}
