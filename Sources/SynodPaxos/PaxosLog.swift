import SynodCore

/// Messages of the leaderless Paxos log: one single-decree instance per slot, plus learning.
public enum PaxosLogMessage: Sendable, Equatable {
    /// A message of the single-decree instance deciding `slot`.
    case instance(slot: UInt64, PaxosMessage)
    /// "What is chosen from `fromSlot` on?", sent now and then to a random peer.
    case learn(fromSlot: UInt64)
    /// Chosen values from `firstSlot` on.
    case decided(firstSlot: UInt64, values: [SlotValue])
}

/// A durable fact of one slot's instance.
public struct PaxosLogRecord: Sendable, Equatable {
    public var slot: UInt64
    public var record: PaxosRecord

    public init(slot: UInt64, record: PaxosRecord) {
        self.slot = slot
        self.record = record
    }
}

/// Tuning of the leaderless Paxos log.
public struct PaxosLogOptions: ReplicaOptions, Equatable {
    /// Ticks without a decision before an instance's proposer tries a higher ballot.
    public var retryTicks = 20
    /// Randomized, doubling backoff after a refusal (off: dueling proposers can livelock).
    public var randomizedBackoff = true
    /// Ticks the lowest undecided slot may stay undecided, while later slots are in use,
    /// before this replica proposes a no-op there (which learns the chosen value, if any).
    public var gapTicks = 30
    /// Ticks between questions to a random peer about chosen values this replica lacks.
    public var learnIntervalTicks = 5
    /// Most chosen values in one answer.
    public var maxSlotsPerMessage = 1024
    /// Most commands waiting at one replica before it answers `overloaded`.
    public var maxQueuedCommands = 10_000
    /// Most linearizable reads waiting at one replica.
    public var maxPendingReads = 10_000
    /// Test-only switch for deliberately unsafe variants (of every instance).
    @_spi(Testing) public var mutation: PaxosMutation?

    public init() {}

    public func validate() throws {
        guard self.retryTicks >= 1 else { throw ConfigurationError("retryTicks must be positive") }
        guard self.gapTicks >= 1 else { throw ConfigurationError("gapTicks must be positive") }
        guard self.learnIntervalTicks >= 1 else { throw ConfigurationError("learnIntervalTicks must be positive") }
        guard self.maxSlotsPerMessage >= 1 && self.maxSlotsPerMessage <= maximumDecodedPaxosSlots else {
            throw ConfigurationError("maxSlotsPerMessage must lie in 1...\(maximumDecodedPaxosSlots)")
        }
        guard self.maxQueuedCommands >= 1 else { throw ConfigurationError("maxQueuedCommands must be positive") }
        guard self.maxPendingReads >= 1 else { throw ConfigurationError("maxPendingReads must be positive") }
    }

    var instanceOptions: SingleDecreePaxos.Options {
        var options = SingleDecreePaxos.Options()
        options.retryTicks = self.retryTicks
        options.randomizedBackoff = self.randomizedBackoff
        options.mutation = self.mutation
        return options
    }
}

/// A log of independent Basic Paxos decrees, with no leader: every slot is decided by its own
/// single-decree instance (`SingleDecreePaxos`: both phases, every time), and any replica
/// proposes the commands its clients send.
///
/// A replica proposes its oldest waiting value into the slot after the highest it has seen in
/// use; if another value wins that slot, it tries the next. A slot left undecided below slots in
/// use (its proposer crashed) is filled after `gapTicks` by proposing a no-op there, which
/// decides the slot's value if one was already chosen. Replicas ask random peers for chosen
/// values they lack. Reads go through the log: a read waits for a barrier (a no-op only this
/// replica can propose, created after the read arrived) to be chosen and executed; every
/// write acknowledged before the read sits in a slot chosen before the barrier existed, hence
/// below it.
///
/// This is the text's Basic Paxos run once per command: two round trips per slot and dueling
/// proposers under contention, the costs Multi-Paxos's stable leader removes.
public struct PaxosLogReplica: Replica {
    public typealias Message = PaxosLogMessage
    public typealias Record = PaxosLogRecord
    public typealias Options = PaxosLogOptions
    public typealias Session = LeaderFollowingSession
    public typealias Monitor = PaxosLogMonitor

    public static let protocolName = "paxos"

    public let id: NodeID
    public let members: [NodeID]
    let options: PaxosLogOptions
    let selfPosition: Int
    var random: DeterministicRandom

    var instances: [UInt64: SingleDecreePaxos] = [:]
    /// Instances this replica is proposing in.
    var active: Set<UInt64> = []
    var chosenPrefix: [SlotValue] = []
    var chosenAhead: [UInt64: SlotValue] = [:]
    var executedThrough: UInt64 = 0
    /// The highest slot seen in use (any message or record of it).
    public internal(set) var highestSlotSeen: UInt64 = 0

    /// Values waiting to be chosen, oldest first; the first is in flight at `currentSlot`.
    var queue: [SlotValue] = []
    var queueStart = 0
    var currentSlot: UInt64?
    /// Reads waiting for the barrier of the given nonce to be chosen.
    var readsByBarrier: [UInt64: [ReadRequest]] = [:]
    /// The newest barrier not yet proposed, which new reads may join.
    var openBarrier: UInt64?
    /// Reads whose barrier is chosen, waiting for its slot to be executed.
    var readsAtSlot: [(slot: UInt64, reads: [ReadRequest])] = []
    var pendingReadCount = 0

    var ticks = 0
    var gapSlot: UInt64 = 0
    var gapSinceTick = 0
    var output = Ready<PaxosLogMessage, PaxosLogRecord>()

    /// Every slot up to here is chosen and known to this replica.
    public var chosenThrough: UInt64 { UInt64(self.chosenPrefix.count) }

    /// The chosen value of `slot`, if this replica knows it.
    public func chosenValue(at slot: UInt64) -> SlotValue? {
        guard slot >= 1 else { return nil }
        if slot <= self.chosenThrough { return self.chosenPrefix[Int(slot - 1)] }
        return self.chosenAhead[slot]
    }

    /// The instance of `slot`, if this replica has one.
    public func instance(at slot: UInt64) -> SingleDecreePaxos? { self.instances[slot] }

    /// Each slot's records restore when no value is accepted in a ballot above the promise
    /// recorded before it (an acceptance records its promise first).
    public static func problem(restoring recovered: Recovered<PaxosLogRecord>) -> String? {
        var promised: [UInt64: Ballot] = [:]
        for (position, record) in recovered.records.enumerated() {
            switch record.record {
            case .round: continue
            case .promised(let ballot): promised[record.slot] = max(promised[record.slot] ?? .zero, ballot)
            case .accepted(let value):
                guard value.ballot <= promised[record.slot] ?? .zero else {
                    return "record \(position): slot \(record.slot) accepted in \(value.ballot) above its promise"
                }
            }
        }
        return nil
    }

    public init(config: ReplicaConfig<PaxosLogOptions>, restoring: Recovered<PaxosLogRecord>, randomSeed: UInt64) {
        precondition((try? config.validate()) != nil, "invalid Paxos configuration")
        self.id = config.id
        self.members = config.members
        self.options = config.options
        self.selfPosition = config.members.firstIndex(of: config.id)!
        self.random = DeterministicRandom(seed: randomSeed)
        var records: [UInt64: [PaxosRecord]] = [:]
        for record in restoring.records { records[record.slot, default: []].append(record.record) }
        // In slot order: each instance forks the seeded randomness.
        for (slot, slotRecords) in records.sorted(by: { $0.key < $1.key }) {
            self.instances[slot] = SingleDecreePaxos(
                id: self.id, members: self.members, options: self.options.instanceOptions, restoring: slotRecords,
                randomSeed: self.random.fork())
            self.highestSlotSeen = max(self.highestSlotSeen, slot)
        }
    }

    // MARK: Inputs

    public mutating func tick() {
        self.ticks += 1
        for slot in self.active.sorted() {
            self.withInstance(slot) { $0.tick() }
        }
        self.fillGaps()
        if self.ticks % self.options.learnIntervalTicks == 0 && self.members.count > 1 {
            let peers = self.members.filter { $0 != self.id }
            let peer = peers[self.random.integer(in: 0..<peers.count)]
            self.send(.learn(fromSlot: self.chosenThrough + 1), to: peer)
        }
    }

    public mutating func receive(_ message: PaxosLogMessage, from sender: NodeID) {
        guard self.members.contains(sender) else { return }
        switch message {
        case .instance(let slot, let message):
            guard slot >= 1 else { return }
            self.highestSlotSeen = max(self.highestSlotSeen, slot)
            if let value = self.chosenValue(at: slot) {
                // Decided here already: tell the sender instead of running the instance again.
                switch message {
                case .prepare, .accept: self.send(.decided(firstSlot: slot, values: [value]), to: sender)
                default: break
                }
                return
            }
            self.withInstance(slot) { $0.receive(message, from: sender) }
        case .learn(let from):
            guard from >= 1, from <= self.chosenThrough else { return }
            let end = min(self.chosenThrough, from - 1 + UInt64(self.options.maxSlotsPerMessage))
            self.send(.decided(firstSlot: from, values: Array(self.chosenPrefix[Int(from - 1)..<Int(end)])), to: sender)
        case .decided(let first, let values):
            guard first >= 1, first <= UInt64.max - UInt64(values.count) else { return }
            for (offset, value) in values.enumerated() { self.learn(first + UInt64(offset), value) }
        }
        self.advance()
    }

    public mutating func propose(_ command: Command) {
        guard self.queue.count - self.queueStart < self.options.maxQueuedCommands else {
            self.output.rejected.append(Rejection(request: .proposal(command), reason: .overloaded))
            return
        }
        self.queue.append(.command(command))
        self.advance()
    }

    public mutating func read(_ request: ReadRequest) {
        guard self.pendingReadCount < self.options.maxPendingReads else {
            self.output.rejected.append(Rejection(request: .read(request), reason: .overloaded))
            return
        }
        self.pendingReadCount += 1
        if let nonce = self.openBarrier {
            self.readsByBarrier[nonce, default: []].append(request)
        } else {
            let nonce = self.random.next()
            self.openBarrier = nonce
            self.readsByBarrier[nonce] = [request]
            self.queue.append(.barrier(node: self.id, nonce: nonce))
        }
        self.advance()
    }

    public mutating func ready() -> Ready<PaxosLogMessage, PaxosLogRecord> {
        while self.executedThrough < self.chosenThrough {
            self.executedThrough += 1
            if let command = self.chosenPrefix[Int(self.executedThrough - 1)].command {
                self.output.committed.append(Committed(position: self.executedThrough, command: command))
            }
        }
        while let first = self.readsAtSlot.first, first.slot <= self.executedThrough {
            self.output.reads.append(contentsOf: first.reads)
            self.pendingReadCount -= first.reads.count
            self.readsAtSlot.removeFirst()
        }
        defer { self.output = Ready() }
        return self.output
    }

    // MARK: Proposing

    /// Settles the value in flight once its slot is decided, and starts the next one.
    mutating func advance() {
        if let slot = self.currentSlot, let chosen = self.chosenValue(at: slot) {
            self.currentSlot = nil
            let mine = self.queue[self.queueStart]
            if chosen == mine {
                self.queueStart += 1
                if case .barrier(_, let nonce) = mine, let reads = self.readsByBarrier.removeValue(forKey: nonce) {
                    self.readsAtSlot.append((slot, reads))
                }
                if self.queueStart > 1024 && self.queueStart * 2 > self.queue.count {
                    self.queue.removeFirst(self.queueStart)
                    self.queueStart = 0
                }
            }
        }
        // A command already chosen (a client's retry of it reached this replica) is not
        // proposed again; it is answered when executed.
        while self.currentSlot == nil, self.queueStart < self.queue.count,
              case .command = self.queue[self.queueStart], self.chosenAhead.values.contains(self.queue[self.queueStart])
        {
            self.queueStart += 1
        }
        guard self.currentSlot == nil, self.queueStart < self.queue.count else { return }
        let value = self.queue[self.queueStart]
        if case .barrier(_, let nonce) = value, nonce == self.openBarrier { self.openBarrier = nil }
        var slot = max(self.highestSlotSeen, self.chosenThrough) + 1
        while self.chosenAhead[slot] != nil { slot += 1 }
        self.currentSlot = slot
        self.highestSlotSeen = max(self.highestSlotSeen, slot)
        self.active.insert(slot)
        var bytes = WireWriter()
        value.encode(into: &bytes)
        self.withInstance(slot) { $0.propose(bytes.bytes) }
    }

    /// When the lowest undecided slot has stayed undecided (while later slots are in use) for
    /// `gapTicks` times one plus this replica's rank for that slot, proposes no-ops in the
    /// undecided slots from there on (at most 64 at a time); each decides its slot's value if
    /// one was chosen already. Ranks stagger the replicas so that one fills a gap while the
    /// others learn the outcome instead of dueling with it.
    mutating func fillGaps() {
        let lowest = self.chosenThrough + 1
        guard lowest <= self.highestSlotSeen else { return }
        if lowest != self.gapSlot {
            self.gapSlot = lowest
            self.gapSinceTick = self.ticks
            return
        }
        let rank = Int((lowest + UInt64(self.selfPosition)) % UInt64(self.members.count))
        guard self.ticks - self.gapSinceTick >= self.options.gapTicks * (1 + rank) else { return }
        self.gapSinceTick = self.ticks
        var bytes = WireWriter()
        SlotValue.noop.encode(into: &bytes)
        var filled = 0
        var slot = lowest
        while slot <= self.highestSlotSeen && filled < 64 {
            if self.chosenAhead[slot] == nil && !self.active.contains(slot) {
                self.active.insert(slot)
                self.withInstance(slot) { $0.propose(bytes.bytes) }
                filled += 1
            }
            slot += 1
        }
    }

    // MARK: Instances

    /// Runs `body` on the instance of `slot` (created on first use), forwards what it asks
    /// for, and learns its decision.
    mutating func withInstance(_ slot: UInt64, _ body: (inout SingleDecreePaxos) -> Void) {
        var instance = self.instances.removeValue(forKey: slot) ?? SingleDecreePaxos(
            id: self.id, members: self.members, options: self.options.instanceOptions, randomSeed: self.random.fork())
        body(&instance)
        let output = instance.ready()
        for record in output.records { self.output.records.append(PaxosLogRecord(slot: slot, record: record)) }
        for envelope in output.messages {
            self.output.messages.append(Envelope(
                to: envelope.to, message: .instance(slot: slot, envelope.message), afterSync: envelope.afterSync))
        }
        let decided = instance.decided
        self.instances[slot] = instance
        if let decided {
            self.active.remove(slot)
            self.learn(slot, (try? SlotValue.decode(decided)) ?? .noop)
        }
    }

    mutating func learn(_ slot: UInt64, _ value: SlotValue) {
        guard slot > self.chosenThrough else { return }
        self.highestSlotSeen = max(self.highestSlotSeen, slot)
        if self.chosenAhead[slot] == nil { self.chosenAhead[slot] = value }
        while let next = self.chosenAhead.removeValue(forKey: self.chosenThrough + 1) {
            self.chosenPrefix.append(next)
            self.active.remove(self.chosenThrough)
        }
    }

    mutating func send(_ message: PaxosLogMessage, to member: NodeID) {
        self.output.messages.append(Envelope(to: member, message: message, afterSync: false))
    }
}

/// The leaderless Paxos log's safety properties, checked after every step (see `SlotLedger`):
/// one value per ballot and slot, agreement, and Lemma 1. Proposals come from the phase-2
/// accepts instances send; a choice from a proposer's own announcement that its value is
/// chosen, made right after a quorum accepted it in its current ballot (the bound).
public struct PaxosLogMonitor: SafetyMonitor {
    public typealias Observed = PaxosLogReplica

    let members: [NodeID]
    var ledger = SlotLedger()
    var checkedThrough: [UInt64]

    public init(members: [NodeID]) {
        self.members = members.sorted()
        self.checkedThrough = Array(repeating: 0, count: members.count)
    }

    public mutating func observe(
        node: NodeID, replica: PaxosLogReplica, ready: Ready<PaxosLogMessage, PaxosLogRecord>
    ) -> [InvariantViolation] {
        var violations: [InvariantViolation] = []
        var announced: Set<UInt64> = []
        for envelope in ready.messages {
            guard case .instance(let slot, let message) = envelope.message else { continue }
            switch message {
            case .accept(let ballot, let bytes):
                self.ledger.proposal(slot: slot, ballot: ballot, value: Self.value(bytes), node: node, into: &violations)
            case .decided(let bytes):
                guard announced.insert(slot).inserted, let instance = replica.instance(at: slot) else { continue }
                self.ledger.choice(slot: slot, value: Self.value(bytes), bound: instance.ballot, node: node, into: &violations)
            default:
                continue
            }
        }
        let position = self.members.firstIndex(of: node)!
        while self.checkedThrough[position] < replica.chosenThrough {
            let slot = self.checkedThrough[position] + 1
            self.checkedThrough[position] = slot
            self.ledger.learned(slot: slot, value: replica.chosenValue(at: slot)!, node: node, into: &violations)
        }
        return violations
    }

    public mutating func restarted(node: NodeID, replica: PaxosLogReplica, recovered: Recovered<PaxosLogRecord>) {
        self.checkedThrough[self.members.firstIndex(of: node)!] = 0
    }

    static func value(_ bytes: [UInt8]) -> SlotValue { (try? SlotValue.decode(bytes)) ?? .noop }
}

// MARK: Codecs

extension PaxosMessage: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .prepare(let ballot):
            writer.byte(1)
            ballot.encode(into: &writer)
        case .promise(let ballot, let accepted):
            writer.byte(2)
            ballot.encode(into: &writer)
            writer.bool(accepted != nil)
            if let accepted {
                accepted.ballot.encode(into: &writer)
                writer.data(accepted.value)
            }
        case .accept(let ballot, let value):
            writer.byte(3)
            ballot.encode(into: &writer)
            writer.data(value)
        case .accepted(let ballot):
            writer.byte(4)
            ballot.encode(into: &writer)
        case .nack(let ballot, let promised):
            writer.byte(5)
            ballot.encode(into: &writer)
            promised.encode(into: &writer)
        case .decided(let value):
            writer.byte(6)
            writer.data(value)
        }
    }

    /// Largest value a decoded message may carry.
    public static let maximumValueBytes = Command.maximumPayloadBytes + 64

    public static func decode(from reader: inout WireReader) throws(WireError) -> PaxosMessage {
        func value() throws(WireError) -> [UInt8] { try reader.data(limit: Self.maximumValueBytes, what: "value") }
        switch try reader.byte() {
        case 1:
            return .prepare(try Ballot.decode(from: &reader))
        case 2:
            let ballot = try Ballot.decode(from: &reader)
            guard try reader.bool() else { return .promise(ballot, accepted: nil) }
            return .promise(ballot, accepted: AcceptedValue(ballot: try Ballot.decode(from: &reader), value: try value()))
        case 3:
            return .accept(try Ballot.decode(from: &reader), value: try value())
        case 4:
            return .accepted(try Ballot.decode(from: &reader))
        case 5:
            return .nack(try Ballot.decode(from: &reader), promised: try Ballot.decode(from: &reader))
        case 6:
            return .decided(try value())
        case let tag:
            throw .malformed("unknown Paxos message tag \(tag)")
        }
    }
}

extension PaxosRecord: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .round(let round):
            writer.byte(1)
            writer.varint(round)
        case .promised(let ballot):
            writer.byte(2)
            ballot.encode(into: &writer)
        case .accepted(let accepted):
            writer.byte(3)
            accepted.ballot.encode(into: &writer)
            writer.data(accepted.value)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PaxosRecord {
        switch try reader.byte() {
        case 1: return .round(try reader.varint())
        case 2: return .promised(try Ballot.decode(from: &reader))
        case 3:
            return .accepted(AcceptedValue(
                ballot: try Ballot.decode(from: &reader),
                value: try reader.data(limit: PaxosMessage.maximumValueBytes, what: "value")))
        case let tag: throw .malformed("unknown Paxos record tag \(tag)")
        }
    }
}

extension PaxosLogMessage: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .instance(let slot, let message):
            writer.byte(1)
            writer.varint(slot)
            message.encode(into: &writer)
        case .learn(let from):
            writer.byte(2)
            writer.varint(from)
        case .decided(let first, let values):
            writer.byte(3)
            writer.varint(first)
            values.encode(into: &writer)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PaxosLogMessage {
        func slot() throws(WireError) -> UInt64 {
            let slot = try reader.varint()
            guard slot >= 1 && slot < maximumPaxosSlot else { throw .malformed("slot \(slot) out of range") }
            return slot
        }
        switch try reader.byte() {
        case 1: return .instance(slot: try slot(), try PaxosMessage.decode(from: &reader))
        case 2: return .learn(fromSlot: try slot())
        case 3:
            let first = try slot()
            let values = try [SlotValue].decode(from: &reader)
            guard first < maximumPaxosSlot - UInt64(values.count) else { throw .malformed("decided slots out of range") }
            return .decided(firstSlot: first, values: values)
        case let tag: throw .malformed("unknown Paxos log message tag \(tag)")
        }
    }
}

extension PaxosLogRecord: WireCodable {
    public func encode(into writer: inout WireWriter) {
        writer.varint(self.slot)
        self.record.encode(into: &writer)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PaxosLogRecord {
        let slot = try reader.varint()
        guard slot >= 1 && slot < maximumPaxosSlot else { throw .malformed("slot \(slot) out of range") }
        return PaxosLogRecord(slot: slot, record: try PaxosRecord.decode(from: &reader))
    }
}

extension PaxosLogMessage: TraceDigestible {
    public func digest(into hasher: inout StableHasher) {
        switch self {
        case .instance(let slot, let message):
            hasher.combine(1)
            hasher.combine(slot)
            switch message {
            case .prepare(let ballot): hasher.combine(1); ballot.digest(into: &hasher)
            case .promise(let ballot, let accepted):
                hasher.combine(2)
                ballot.digest(into: &hasher)
                hasher.combine(accepted == nil ? 0 : 1)
            case .accept(let ballot, let value): hasher.combine(3); ballot.digest(into: &hasher); hasher.combine(bytes: value)
            case .accepted(let ballot): hasher.combine(4); ballot.digest(into: &hasher)
            case .nack(let ballot, let promised): hasher.combine(5); ballot.digest(into: &hasher); promised.digest(into: &hasher)
            case .decided(let value): hasher.combine(6); hasher.combine(bytes: value)
            }
        case .learn(let from):
            hasher.combine(2)
            hasher.combine(from)
        case .decided(let first, let values):
            hasher.combine(3)
            hasher.combine(first)
            hasher.combine(values.count)
        }
    }
}
