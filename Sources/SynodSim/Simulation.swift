import HeapModule
import SynodCheck
import SynodCore
import SynodDriver

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
    var tokenCounter: UInt64 = 0
    var monitor: R.Monitor
    /// `blocked[from * n + to]`: the link from → to is cut.
    var blocked: [Bool]
    var activePartition: UInt64 = 0
    /// The replica the `rejoin` fault cut off, the leader when it was cut off, and whether
    /// only the links between those two are cut (the replica still reaches the others).
    var isolated: (node: Int, leader: Int?, fromLeaderOnly: Bool)?
    /// The replica the `slow-follower` fault slowed down, and until when.
    var slowReplica: (node: Int, until: UInt64)?
    var rejoinWatch: RejoinWatch?
    /// The leadership transfer under way: its target and when it was asked for.
    var pendingTransfer: (target: Int, since: UInt64)?
    var faultsActive: Bool
    var faultPhaseEnd: UInt64?
    var completedOperations = 0
    /// The replica that most recently announced leadership (by `ReplicaEvent`), the nemesis's
    /// favourite target: faults at the leader are where consensus protocols break.
    var believedLeader: Int?
    var finished = false

    /// The commands applied at each position (by `Committed.index`), as first seen on any replica.
    var positionHistory: [[CommandID?]] = []
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

    /// The run's picture, when `options.recordsTrace`; which scheduled delivery (by event
    /// sequence) carries which traced message; the sequence of the event being handled.
    var trace: SimulationTrace?
    var tracedDeliveries: [UInt64: Int] = [:]
    var currentSequence: UInt64 = 0

    public internal(set) var history: [HistoryOperation] = []
    public internal(set) var violations: [InvariantViolation] = []
    public internal(set) var statistics = SimulationStatistics()

    /// Creates a run; nothing happens until `run()`.
    public init(seed: UInt64, options: SimulationOptions, replicaOptions: R.Options = R.Options()) throws {
        try options.validate()
        try replicaOptions.validate()
        if (R.commandSupport == .causalStore) != (options.workload == .eventual) {
            throw SimulationError(R.commandSupport == .causalStore
                ? "\(R.protocolName) takes the eventual store's requests: use the eventual workload"
                : "the eventual workload's requests (puts with a causal context) are for the eventual store, not \(R.protocolName)")
        }
        if R.commandSupport == .singleKeyOverwrites && options.workload == .kv {
            throw SimulationError(
                "\(R.protocolName) orders single-key overwrites only, and the kv workload's etcd semantics (one revision for the "
                    + "whole store, cas) need a total order: use the register workload")
        }
        self.seed = seed
        self.options = options
        self.replicaOptions = Self.withSmallWindow(
            Self.withLeases(replicaOptions, if: options.faults.contains(.lease)), if: options.faults.contains(.slowFollower))
        self.members = (1...options.nodes).map { NodeID(UInt16($0)) }
        self.random = DeterministicRandom(seed: seed)
        self.monitor = R.Monitor(members: self.members)
        self.blocked = Array(repeating: false, count: options.nodes * options.nodes)
        self.faultsActive = !options.faults.isEmpty
        self.hasher.combine(seed)
        if options.recordsTrace { self.trace = SimulationTrace(nodes: options.nodes) }
    }

    /// `options` with lease reads on, when `enabled` and the protocol has them (a `lease-reads`
    /// option) and they are valid with its other options (Raft's need check-quorum).
    static func withLeases(_ options: R.Options, if enabled: Bool) -> R.Options {
        guard enabled else { return options }
        var leased = options
        guard (try? leased.set("lease-reads", to: "on")) != nil, (try? leased.validate()) != nil else { return options }
        return leased
    }

    /// The window in bytes the `slow-follower` fault gives a protocol that has one: a few
    /// of the simulation's commands.
    static var slowFollowerWindowBytes: Int { 256 }

    /// `options` with a small pipelining window in bytes, when `enabled` and the protocol has
    /// one (a `max-inflight-bytes` option).
    static func withSmallWindow(_ options: R.Options, if enabled: Bool) -> R.Options {
        guard enabled else { return options }
        var small = options
        guard (try? small.set("max-inflight-bytes", to: "\(Self.slowFollowerWindowBytes)")) != nil, (try? small.validate()) != nil
        else { return options }
        return small
    }

    /// How many times slower the `slow-follower` fault makes a replica's disk and links.
    static var slowFactor: UInt64 { 100 }

    /// Whether replica `position` is slowed down now (the `slow-follower` fault).
    func isSlow(_ position: Int) -> Bool {
        guard self.faultsActive, let slow = self.slowReplica else { return false }
        return slow.node == position && self.now < slow.until
    }

    /// Runs to completion and returns the report.
    public func run() -> SimulationReport {
        self.start()
        while !self.finished, let event = self.queue.popMin() {
            self.now = event.time
            self.statistics.events += 1
            let kind = self.eventKinds[event.slot].take()!
            self.freeSlots.append(event.slot)
            self.currentSequence = event.sequence
            self.handle(kind)
            if !self.violations.isEmpty {
                for violation in self.violations {
                    self.mark("violation", node: violation.node.flatMap { self.members.firstIndex(of: $0) }, violation.description)
                }
                break
            }
            self.checkProgress()
        }
        if self.violations.isEmpty { self.finalChecks() }
        return self.report()
    }

    // MARK: Setup

    func start() {
        // Clocks up to 20% fast or slow, never beyond what the protocol's options assume.
        let spread = min(20, Int(((self.replicaOptions.clockDriftBound ?? 1) * 100).rounded(.down)))
        for position in self.members.indices {
            let drift = self.options.faults.contains(.clockDrift) ? self.random.integer(in: (100 - spread)...(100 + spread)) : 100
            self.nodes.append(SimulatedNode<R>(tickNanoseconds: self.options.tickNanoseconds * UInt64(drift) / 100))
            self.startDriver(position, recovered: .empty)
            self.schedule(after: UInt64(self.random.integer(in: 0..<Int(self.nodes[position].tickNanoseconds))) + 1,
                          .nodeTick(node: position, incarnation: 0))
        }
        let perClient = self.options.operations / self.options.clients
        let extra = self.options.operations % self.options.clients
        for client in 0..<self.options.clients {
            let direct = Double(client) >= self.options.gatewayFraction * Double(self.options.clients)
            let session = direct ? R.Session(client: ClientID(client + 1), members: self.members, randomSeed: self.random.fork()) : nil
            self.clients.append(SimulatedClient(session: session, remainingOperations: perClient + (client < extra ? 1 : 0)))
            self.schedule(after: self.options.tickNanoseconds, .clientTick(client: client))
            self.startNextOperation(client: client)
        }
        if self.faultsActive {
            self.schedule(after: self.random.uniform(self.options.nemesisIntervalNanoseconds), .nemesis)
        }
        if let partition = self.options.fixedPartition {
            self.schedule(after: partition.from, .fixedPartition(begin: true))
            self.schedule(after: partition.until, .fixedPartition(begin: false))
        }
    }

    /// The driver options every node runs with: the production defaults, with the checks'
    /// observations on and the gateway's own timeout out of the way (the simulated client
    /// gives up first, and cancels).
    var driverOptions: NodeDriverOptions {
        var options = NodeDriverOptions()
        options.snapshotInterval = UInt64(self.options.snapshotInterval)
        options.requestTimeoutTicks = 1 << 40
        options.observe = true
        options.unsafeSendBeforeSync = self.options.unsafeSendBeforeSync
        options.unsafeApplyRetriesAgain = self.options.unsafeApplyRetriesAgain
        return options
    }

    /// Starts (or restarts) the driver of node `position` from what its disk holds.
    func startDriver(_ position: Int, recovered: Recovered<R.Record>) {
        let incarnation = self.nodes[position].incarnation
        do {
            let driver = try NodeDriver<R, SimulatedMachine>(
                config: ReplicaConfig(id: self.members[position], members: self.members, options: self.replicaOptions),
                recovered: recovered, options: self.driverOptions,
                clientBase: UInt64(position + 1) << 40 | UInt64(incarnation) << 20, randomSeed: self.random.fork(),
                empty: SimulatedMachine(self.options.workload),
                restore: { [unowned self] snapshot in try self.restoreMachine(snapshot) })
            self.nodes[position].driver = driver
        } catch {
            self.violations.append(InvariantViolation(
                invariant: "state-machine-safety", node: self.members[position], detail: "cannot restart: \(error)"))
        }
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
            guard self.nodes[position].incarnation == incarnation, self.nodes[position].driver != nil else { return }
            self.nodes[position].driver!.tick()
            self.drain(position)
            self.schedule(after: self.nodes[position].tickNanoseconds, .nodeTick(node: position, incarnation: incarnation))
        case .deliver(let from, let to, let message):
            self.hasher.combine(2)
            self.hasher.combine(from)
            self.hasher.combine(to)
            switch message {
            case .replica(let message): message.digest(into: &self.hasher)
            case .request(let request):
                self.hasher.combine(100)
                self.hasher.combine(request.command.client)
                self.hasher.combine(request.command.sequence)
            case .reply(let reply, _):
                self.hasher.combine(101)
                self.hasher.combine(reply.commandID.client)
                self.hasher.combine(reply.commandID.sequence)
            }
            let traced = self.trace == nil ? nil : self.tracedDeliveries.removeValue(forKey: self.currentSequence)
            guard self.nodes[to].driver != nil else {
                if let traced { self.trace!.messages[traced].fate = .down }
                return
            }
            if from != to && (self.blocked[from * self.options.nodes + to] || self.cutOff(from, to)) {
                self.statistics.messagesDropped += 1
                if let traced { self.trace!.messages[traced].fate = .cut }
                return
            }
            if let traced { self.trace!.messages[traced].fate = .delivered }
            self.nodes[to].driver!.receive(message, from: self.members[from])
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
            self.hasher.combine(11)
            self.hasher.combine(client)
            self.hasher.combine(position)
            self.hasher.combine(request.command.sequence)
            guard self.nodes[position].driver != nil else { return }
            self.nodes[position].driver!.serve(request, connection: UInt64(client))
            self.drain(position)
        case .clientReply(let client, let position, let reply):
            self.hasher.combine(12)
            self.hasher.combine(client)
            self.hasher.combine(position)
            self.directClientReceives(client, reply: reply, from: position)
        case .submit(let client, let token, let kind, let payload):
            self.hasher.combine(5)
            self.hasher.combine(client)
            self.hasher.combine(token)
            self.gatewayReceives(client: client, token: token, kind: kind, payload: payload)
        case .completed(let client, let token, let command, let result):
            self.hasher.combine(6)
            self.hasher.combine(client)
            self.hasher.combine(token)
            self.clientReceives(client, token: token, command: command, result: result)
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
        case .fixedPartition(let begin):
            self.hasher.combine(15)
            if begin { self.splitFixed() } else { self.endFaultPhase() }
        case .rejoin(let position):
            self.hasher.combine(13)
            self.hasher.combine(position)
            self.letBack(position)
        }
    }

    /// Drains node `position`'s driver and carries out its actions.
    func drain(_ position: Int) {
        guard let actions = self.nodes[position].driver?.drain(), !actions.isEmpty else { return }
        self.execute(actions, at: position)
    }

    /// The simulator's executor: carries out a driver's actions on the virtual disk and
    /// network, and feeds the checks from its observations. It adds nothing to the `Ready`
    /// contract, which is the driver's.
    func execute(_ actions: [NodeDriver<R, SimulatedMachine>.Action], at position: Int) {
        if self.nodes[position].crashAtNextWrite, let write = actions.firstIndex(where: { action in
            if case .persist(let steps) = action { return steps.contains { if case .checkpoint = $0 { false } else { true } } }
            return false
        }) {
            self.crashDuringWrite(actions, write: write, at: position)
            return
        }
        var fedBack = false
        for action in actions {
            switch action {
            case .send(let to, let message): self.send(message, to: Int(to.rawValue) - 1, from: position)
            case .persist(let steps): self.persist(steps, at: position)
            case .saveSnapshot(let snapshotPosition, _, _, let machine):
                let number = UInt64(self.snapshotStates.count)
                let node = self.nodes[position]
                self.snapshotStates.append(SnapshotState(
                    position: snapshotPosition, machine: machine, appliedCommands: node.appliedCommands, appliedPerKey: node.appliedPerKey))
                let data = (0..<8).map { UInt8(truncatingIfNeeded: number >> ($0 * 8)) }
                self.nodes[position].driver!.snapshotSaved(position: snapshotPosition, data: data)
                fedBack = true
            case .answer(let connection, let reply, _):
                if self.clientLinkDrops() { continue }
                self.schedule(after: self.latency([]), .clientReply(client: Int(connection), node: position, reply: reply))
            case .complete(let token, let command, let result):
                // A lost answer is a broken connection: the client sees a failure, not silence.
                let delivered = self.clientLinkDrops() ? .failure(.refused("the connection to the gateway broke")) : result
                self.schedule(after: self.latency([]), .completed(client: Int(token >> 40), token: token, command: command, result: delivered))
            case .stop(let reason):
                self.violations.append(InvariantViolation(invariant: "state-machine-safety", node: self.members[position], detail: reason))
            case .event(let event):
                switch event {
                case .becameLeader(let epoch):
                    self.mark("leader", node: position, "\(self.members[position]) leads epoch \(epoch)")
                    self.believedLeader = position
                    // A transfer completes when its target is the next leader, within 40 ticks.
                    if let transfer = self.pendingTransfer {
                        if transfer.target == position && self.now - transfer.since <= 40 * self.options.tickNanoseconds {
                            self.statistics.transfersCompleted += 1
                            self.statistics.transferNanoseconds += self.now - transfer.since
                        }
                        self.pendingTransfer = nil
                    }
                case .becameFollower, .becameCandidate:
                    if self.trace != nil {
                        if case .becameFollower(let epoch, let leader) = event {
                            self.mark("follower", node: position, "\(self.members[position]) follows \(leader.map(\.description) ?? "no known leader") in epoch \(epoch)")
                        } else if case .becameCandidate(let epoch) = event {
                            self.mark("candidate", node: position, "\(self.members[position]) campaigns for epoch \(epoch)")
                        }
                    }
                    if self.believedLeader == position { self.believedLeader = nil }
                    self.leaderLostLeadership(position)
                }
            case .installed(let snapshot): self.installed(snapshot, at: position)
            case .applied(let committed, let outcome): self.applied(committed, outcome, at: position)
            case .observed(let ready): self.observe(position, ready)
            }
        }
        if fedBack { self.drain(position) }
    }

    /// The crash the nemesis armed interrupts this write. The node sends in parallel with
    /// writing, so some of the messages before it may be out: a random prefix. The write
    /// itself lands unsynced (a crash keeps a random part of it).
    func crashDuringWrite(_ actions: [NodeDriver<R, SimulatedMachine>.Action], write: Int, at position: Int) {
        let sends = actions[..<write].compactMap { action -> (Int, PeerMessage<R.Message>)? in
            if case .send(let to, let message) = action { return (Int(to.rawValue) - 1, message) }
            return nil
        }
        for (to, message) in sends.prefix(self.random.integer(in: 0...sends.count)) { self.send(message, to: to, from: position) }
        if case .persist(let steps) = actions[write] { self.persist(steps, at: position) }
        for action in actions {
            switch action {
            case .applied(let committed, let outcome): self.applied(committed, outcome, at: position)
            case .installed(let snapshot): self.installed(snapshot, at: position)
            case .observed(let ready): self.observe(position, ready)
            default: break
            }
        }
        self.mark("mid-write", node: position, "\(self.members[position]) crashes in the middle of a disk write")
        self.crash(position)
    }

    // MARK: Snapshots

    /// The driver's `restore`: the state a snapshot's bytes name, checked against its label.
    func restoreMachine(_ snapshot: Snapshot) throws -> ExactlyOnce<SimulatedMachine> {
        let state = self.snapshotState(snapshot)
        guard snapshot.position == state.position else {
            throw SimulationError("a snapshot labelled position \(snapshot.position) holds the state at position \(state.position)")
        }
        return state.machine
    }

    func snapshotState(_ snapshot: Snapshot) -> SnapshotState {
        precondition(snapshot.data.count == 8, "a simulated snapshot names its state by number")
        let number = snapshot.data.enumerated().reduce(0) { $0 | UInt64($1.element) << ($1.offset * 8) }
        return self.snapshotStates[Int(number)]
    }

    /// A node's state machine became a snapshot's (received from another replica, or
    /// recovered): what the checks know of it follows.
    func installed(_ snapshot: Snapshot, at position: Int) {
        if snapshot.position < self.nodes[position].lastAppliedPosition {
            self.violations.append(InvariantViolation(
                invariant: "state-machine-safety", node: self.members[position],
                detail: "installed a snapshot at position \(snapshot.position) after applying \(self.nodes[position].lastAppliedPosition)"))
            return
        }
        self.adoptSnapshotState(snapshot, at: position)
        self.statistics.snapshotInstalls += 1
    }

    /// What the checks know of a node's state machine becomes what they knew at `snapshot`.
    func adoptSnapshotState(_ snapshot: Snapshot, at position: Int) {
        let state = self.snapshotState(snapshot)
        self.nodes[position].appliedCommands = state.appliedCommands
        self.nodes[position].appliedPerKey = state.appliedPerKey
        self.nodes[position].lastAppliedPosition = snapshot.position
        self.nodes[position].lastAppliedIndex = Int.max
    }

    func observe(_ position: Int, _ ready: Ready<R.Message, R.Record>) {
        guard let driver = self.nodes[position].driver, !self.options.skipsMonitor else { return }
        let found = self.monitor.observe(node: self.members[position], replica: driver.core, ready: ready)
        if !found.isEmpty { self.violations += found }
    }

    // MARK: Disk

    /// Carries out a driver's storage steps on the virtual disk (unsynced) and starts their sync.
    func persist(_ steps: [StorageStep<R.Record>], at position: Int) {
        var node = self.nodes[position]
        var checkpointStart: Int?
        node.syncingSnapshot = nil
        for step in steps {
            switch step {
            case .snapshot(let snapshot):
                node.syncingSnapshot = (node.snapshot, node.disk.count)
                node.snapshot = snapshot
                self.statistics.snapshots += 1
            case .checkpoint:
                checkpointStart = node.disk.count
            case .records(let records):
                node.disk.append(contentsOf: records)
                self.statistics.recordsWritten += records.count
            }
        }
        if let checkpointStart { node.checkpoint = checkpointStart..<node.disk.count }
        node.syncInFlight = true
        node.syncingCount = node.disk.count
        // Syncs complete in order.
        let duration = self.random.uniform(self.options.syncRangeNanoseconds) * (self.isSlow(position) ? Self.slowFactor : 1)
        let done = max(self.now + duration, node.lastSyncDoneTime)
        node.lastSyncDoneTime = done
        self.nodes[position] = node
        self.statistics.syncs += 1
        self.schedule(after: done - self.now, .syncDone(node: position, incarnation: node.incarnation))
    }

    func completeSync(_ position: Int) {
        if self.trace != nil {
            self.mark("sync", node: position, "sync done: \(self.nodes[position].syncingCount) records durable")
        }
        self.nodes[position].syncInFlight = false
        self.nodes[position].syncingSnapshot = nil
        self.nodes[position].syncedCount = self.nodes[position].syncingCount
        if let checkpoint = self.nodes[position].checkpoint, self.nodes[position].syncedCount >= checkpoint.upperBound {
            // The checkpoint is durable: discard the records before it, newest first, and
            // sometimes stop part way (a crash in the middle of deleting old segments).
            let kept = self.random.chance(0.1) ? self.random.integer(in: 0...checkpoint.lowerBound) : 0
            self.nodes[position].disk.removeSubrange(kept..<checkpoint.lowerBound)
            let removed = checkpoint.lowerBound - kept
            self.statistics.recordsDiscarded += removed
            self.nodes[position].syncedCount -= removed
            self.nodes[position].checkpoint = nil
        }
        self.nodes[position].driver?.persisted()
        self.drain(position)
    }

    /// Crashes a replica: its unsynced writes vanish, except a random prefix the disk happened
    /// to write; with torn writes the last of those may be torn and is discarded by recovery.
    /// A snapshot written by the unfinished sync may not have made it (and then neither did
    /// the records after it). The operations its gateway carried end without an answer.
    func crash(_ position: Int) {
        var node = self.nodes[position]
        guard node.driver != nil else { return }
        self.statistics.add(node.driver!.core.counters)
        if let (previous, firstRecord) = node.syncingSnapshot, self.random.chance(0.5) {
            node.snapshot = previous
            node.disk.removeSubrange(max(firstRecord, node.syncedCount)...)
        }
        let unsynced = node.disk.count - node.syncedCount
        var survivors = self.random.integer(in: 0...unsynced)
        var torn = false
        if survivors > 0 && self.options.faults.contains(.tornWrite) && self.random.chance(0.5) {
            survivors -= 1
            self.statistics.tornRecords += 1
            torn = true
        }
        if self.trace != nil {
            self.mark("crash", node: position, "\(self.members[position]) crashed: \(unsynced) unsynced records, \(survivors) survived")
            if torn { self.mark("torn-write", node: position, "the last unsynced record that reached the disk was torn (recovery discards it)") }
        }
        node.disk.removeSubrange((node.syncedCount + survivors)...)
        node.syncedCount = node.disk.count
        node.checkpoint = nil
        node.driver = nil
        if self.believedLeader == position { self.believedLeader = nil }
        node.crashAtNextWrite = false
        node.incarnation += 1
        node.syncInFlight = false
        node.syncingSnapshot = nil
        self.nodes[position] = node
        self.statistics.crashes += 1
        for client in self.clients.indices
        where self.clients[client].session == nil && self.clients[client].currentOperation != nil
            && self.clients[client].gateway == position
        {
            self.abandon(client)  // the connection to the gateway broke
        }
        // Half the crashes are quick reboots (FoundationDB's "reboot" beside its "kill"): the
        // replica is back while the election or round it took part in is still running.
        let downtime = self.random.chance(0.5)
            ? self.random.uniform(1_000_000...20_000_000) : self.random.uniform(self.options.faultDurationNanoseconds)
        self.schedule(after: downtime, .restart(node: position))
    }

    func restart(_ position: Int) {
        guard self.nodes[position].driver == nil else { return }
        self.closeMark("crash", node: position)
        let recovered = Recovered(snapshot: self.nodes[position].snapshot, records: self.nodes[position].disk)
        if let problem = R.problem(restoring: recovered) {
            self.violations.append(InvariantViolation(
                invariant: "recoverable-records", node: self.members[position], detail: problem))
            return
        }
        self.nodes[position].lastAppliedPosition = 0
        self.nodes[position].lastAppliedIndex = -1
        self.nodes[position].appliedCommands = []
        self.nodes[position].appliedPerKey = [:]
        if let snapshot = recovered.snapshot { self.adoptSnapshotState(snapshot, at: position) }
        self.startDriver(position, recovered: recovered)
        guard let driver = self.nodes[position].driver else { return }
        self.monitor.restarted(node: self.members[position], replica: driver.core, recovered: recovered)
        self.schedule(after: self.nodes[position].tickNanoseconds,
                      .nodeTick(node: position, incarnation: self.nodes[position].incarnation))
        self.statistics.restarts += 1
    }

    // MARK: Network

    func send(_ message: PeerMessage<R.Message>, to destination: Int, from position: Int) {
        if case .replica = message { self.statistics.messagesSent += 1 }
        if destination == position {
            // Loopback: a node's note to itself (after a sync); no network in between.
            self.schedule(after: 0, .deliver(from: position, to: destination, message: message))
            return
        }
        let faults = self.faultsActive ? self.options.faults : []
        if faults.contains(.loss) && self.random.chance(self.options.lossProbability) {
            self.statistics.messagesDropped += 1
            self.traceMessage(message, from: position, to: destination, after: self.options.baseLatencyNanoseconds, fate: .lost)
            return
        }
        var copies = 1
        if faults.contains(.duplication) && self.random.chance(self.options.duplicationProbability) { copies = 2 }
        let slowdown = self.isSlow(position) || self.isSlow(destination) ? Self.slowFactor : 1
        for copy in 0..<copies {
            let delay = self.latency(faults) * slowdown
            self.schedule(after: delay, .deliver(from: position, to: destination, message: message))
            self.traceMessage(message, from: position, to: destination, after: delay, fate: .inFlight, duplicate: copy > 0)
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

// MARK: Trace

extension Simulation {
    /// Records a message just sent (its delivery, if any, is the event scheduled last).
    func traceMessage(
        _ message: PeerMessage<R.Message>, from: Int, to: Int, after delay: UInt64, fate: SimulationTrace.Fate, duplicate: Bool = false
    ) {
        guard self.trace != nil else { return }
        let normal = self.options.faults.contains(.latency) ? self.options.latencyRangeNanoseconds.upperBound : self.options.baseLatencyNanoseconds
        let summary: String
        switch message {
        case .replica(let message):
            var text = String(describing: message)
            for module in ["SynodRaft.", "SynodPaxos.", "SynodCore.", "SynodKV.", "SynodSim."] { text = text.replacing(module, with: "") }
            summary = SimulationTrace.summary(text)
        case .request(let request): summary = "gateway request \(request.command.id) (\(request.kind))"
        case .reply(let reply, _): summary = "gateway reply to \(reply.commandID)"
        }
        if fate == .inFlight { self.tracedDeliveries[self.sequence] = self.trace!.messages.count }
        self.trace!.messages.append(SimulationTrace.Message(
            from: from, to: to, sent: self.now, arrives: self.now + delay, fate: fate, duplicate: duplicate,
            delayed: delay > normal && !self.isSlow(from) && !self.isSlow(to), summary: summary))
    }

    /// Records a moment (or the start of an interval) at replica `node`, or cluster-wide.
    func mark(_ kind: String, node: Int?, _ detail: @autoclosure () -> String, end: UInt64? = nil) {
        guard self.trace != nil else { return }
        self.trace!.marks.append(SimulationTrace.Mark(time: self.now, end: end, node: node, kind: kind, detail: detail()))
    }

    /// Closes the open interval of `kind` at `node` (or cluster-wide).
    func closeMark(_ kind: String, node: Int?) {
        guard self.trace != nil else { return }
        self.trace!.close(kind, node: node, at: self.now)
    }
}
