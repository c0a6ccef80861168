import SynodCore

/// A pure, deterministic Multi-Paxos replica: proposer, acceptor and learner of a log of slots
/// (Lamport, "Paxos Made Simple" §3; Chandra et al., "Paxos Made Live").
///
/// - **Leader election is phase 1.** A replica that hears no leader for a randomized timeout
///   picks a ballot above every round it has seen (the round is durable before the prepare
///   leaves, so ballots never repeat) and runs phase 1 once for every slot from its chosen
///   prefix on. From the promises it takes, per slot, the value of the highest accepted ballot,
///   fills slots nobody reported with no-ops, and proposes all of them again in its ballot.
/// - **Then phase 2 only**, batched: one accept per `ready()` carries every slot proposed since
///   the previous one. Acceptors make accepts durable before they answer; the leader counts
///   itself like any acceptor (its own accept comes back through the driver after the sync),
///   so it writes its log in parallel with replicating it.
/// - **Learning**: accepts and heartbeats carry the leader's chosen prefix; an acceptor learns a
///   slot it accepted in that same ballot at once, and a replica that lags is sent the chosen
///   values it is missing (catch-up).
/// - **Reads** are ReadIndex-style: a read waits until every slot the leader had assigned when
///   it arrived is executed and a phase-2-sized quorum has acknowledged a heartbeat sent after
///   it (no newer ballot can have completed phase 1 before that).
public struct MultiPaxosReplica: Replica {
    public typealias Message = MultiPaxosMessage
    public typealias Record = MultiPaxosRecord
    public typealias Options = MultiPaxosOptions
    public typealias Session = LeaderFollowingSession
    public typealias Monitor = MultiPaxosMonitor

    public static let protocolName = "multipaxos"
    public static let coordination = Coordination.leader

    /// The role of a replica.
    public enum Role: String, Sendable {
        case follower
        /// Asking whether a quorum would promise it a higher ballot (Pre-Vote).
        case preCandidate
        case candidate
        case leader
    }

    struct Acceptance: Sendable {
        var ballot: Ballot
        var value: SlotValue
    }

    struct Proposal: Sendable {
        var value: SlotValue
        /// Acceptors that accepted it in the current ballot, one bit per member position.
        var acknowledged: UInt64
        var sentTick: Int
    }

    struct PromisePages: Sendable {
        var accepted: [SlotAcceptance]
        var complete: Bool
        var nextFrom: UInt64
    }

    struct PendingRead: Sendable {
        var request: ReadRequest
        var readIndex: UInt64
        var context: UInt64
    }

    /// This replica.
    public let id: NodeID
    /// Every member, sorted.
    public let members: [NodeID]
    let options: MultiPaxosOptions
    let quorum: QuorumSystem
    let selfPosition: Int
    var random: DeterministicRandom

    // Durable.
    /// The highest round seen or started (durable for rounds this replica started).
    public internal(set) var maxRound: UInt64 = 0
    /// The acceptor's promise.
    public internal(set) var promised = Ballot.zero
    var acceptances: [UInt64: Acceptance] = [:]

    // Learner.
    var chosen: ChosenSlots
    var executedThrough: UInt64 = 0

    // Proposer.
    /// The current role.
    public internal(set) var role = Role.follower
    /// The leader this replica follows (itself when leading), if known.
    public internal(set) var leader: NodeID?
    /// The ballot this replica campaigns or leads with.
    public internal(set) var ballot = Ballot.zero
    var phase1From: UInt64 = 1
    /// Per acceptor: the acceptances received so far in this phase 1, whether they are all of
    /// them, and the slot the next page starts at. `nil` until its first page arrives.
    var promisesReceived: [PromisePages?]
    var proposals: [UInt64: Proposal] = [:]
    var nextSlot: UInt64 = 1
    var unsentFrom: UInt64 = 1
    var peerLearned: [UInt64?]
    var announcedThrough: UInt64 = 0
    var pendingReads: [PendingRead] = []
    var readContextCounter: UInt64 = 0
    var readContextSent: UInt64 = 0
    var readAcknowledged: [UInt64]

    var ticks = 0
    var electionElapsedTicks = 0
    var electionTimeoutTicks = 0
    var heartbeatElapsedTicks = 0
    /// Pre-Vote: the ballot asked about, and who said yes.
    var preBallot = Ballot.zero
    var preVotes: [Bool]
    var output = Ready<MultiPaxosMessage, MultiPaxosRecord>()

    /// Every slot up to here is chosen and known to this replica.
    public var chosenThrough: UInt64 { self.chosen.through }

    public var committedThrough: UInt64 { self.chosenThrough }

    /// Every slot up to here is compacted: chosen, executed, and held by `snapshot`.
    public var compactedThrough: UInt64 { self.chosen.compacted.through }
    /// The snapshot holding the compacted slots, if any.
    public var snapshot: Snapshot? { self.chosen.compacted.snapshot }

    /// The chosen value of `slot`, if this replica knows it (not for compacted slots).
    public func chosenValue(at slot: UInt64) -> SlotValue? { self.chosen.value(at: slot) }

    /// The acceptor's accepted value in `slot`, if any.
    public func accepted(at slot: UInt64) -> (ballot: Ballot, value: SlotValue)? {
        self.acceptances[slot].map { ($0.ballot, $0.value) }
    }

    /// Records restore when no value is accepted in a ballot above the promise recorded
    /// before it (the acceptor raises its promise, durably, before it accepts).
    public static func problem(restoring recovered: Recovered<MultiPaxosRecord>) -> String? {
        var promised = Ballot.zero
        for (position, record) in recovered.records.enumerated() {
            switch record {
            case .round: continue
            case .promised(let ballot):
                promised = max(promised, ballot)
            case .accepted(_, let ballot, _):
                guard ballot <= promised else {
                    return "record \(position): accepted in \(ballot) above the promise \(promised)"
                }
            }
        }
        return nil
    }

    public init(config: ReplicaConfig<MultiPaxosOptions>, restoring: Recovered<MultiPaxosRecord>, randomSeed: UInt64) {
        precondition((try? config.validate()) != nil, "invalid Multi-Paxos configuration")
        guard let quorum = try? config.options.quorum(memberCount: config.members.count) else {
            preconditionFailure("phase2QuorumSize does not fit \(config.members.count) members")
        }
        precondition(config.members.count <= 64, "Multi-Paxos tracks acknowledgements of at most 64 members")
        self.id = config.id
        self.members = config.members
        self.options = config.options
        self.quorum = quorum
        self.selfPosition = config.members.firstIndex(of: config.id)!
        self.random = DeterministicRandom(seed: randomSeed)
        self.promisesReceived = Array(repeating: nil, count: config.members.count)
        self.peerLearned = Array(repeating: nil, count: config.members.count)
        self.readAcknowledged = Array(repeating: 0, count: config.members.count)
        self.preVotes = Array(repeating: false, count: config.members.count)
        self.chosen = ChosenSlots(members: config.members.count, restoring: restoring.snapshot)
        self.executedThrough = self.chosen.compacted.through
        for record in restoring.records {
            switch record {
            case .round(let round):
                self.maxRound = max(self.maxRound, round)
            case .promised(let ballot):
                self.promised = max(self.promised, ballot)
            case .accepted(let first, let ballot, let values):
                // Acceptances of compacted slots are in the snapshot (records older than its checkpoint).
                for (offset, value) in values.enumerated() where first + UInt64(offset) > self.compactedThrough {
                    self.acceptances[first + UInt64(offset)] = Acceptance(ballot: ballot, value: value)
                }
            }
        }
        self.maxRound = max(self.maxRound, self.promised.round)
        self.resetElectionTimeout()
    }

    // MARK: Inputs

    public mutating func tick() {
        self.ticks += 1
        switch self.role {
        case .follower, .preCandidate, .candidate:
            self.electionElapsedTicks += 1
            if self.electionElapsedTicks >= self.electionTimeoutTicks {
                if self.options.preVote { self.startPreVote() } else { self.startPhase1() }
            }
        case .leader:
            self.heartbeatElapsedTicks += 1
            if self.heartbeatElapsedTicks >= self.options.heartbeatIntervalTicks {
                self.heartbeatElapsedTicks = 0
                self.heartbeat()
            }
        }
    }

    public mutating func receive(_ message: MultiPaxosMessage, from sender: NodeID) {
        guard let senderPosition = self.members.firstIndex(of: sender) else { return }
        switch message {
        case .prepare(let ballot, let from):
            self.onPrepare(ballot, from: from, sender: sender)
        case .promise(let ballot, let from, let accepted, let complete):
            self.onPromise(ballot, from: from, accepted: accepted, complete: complete, position: senderPosition, sender: sender)
        case .accept(let request):
            self.onAccept(request, sender: sender)
        case .accepted(let reply):
            self.onAccepted(reply, position: senderPosition)
        case .nack(let ballot, let promised):
            self.onNack(ballot, promised: promised)
        case .chosen(let first, let values):
            for (offset, value) in values.enumerated() { self.learn(first + UInt64(offset), value) }
        case .snapshot(let snapshot):
            self.onSnapshot(snapshot)
        case .prePrepare(let ballot):
            self.onPrePrepare(ballot, sender: sender)
        case .prePrepareReply(let ballot, let granted):
            self.onPrePrepareReply(ballot, granted: granted, position: senderPosition)
        }
    }

    public mutating func propose(_ command: Command) {
        guard self.role == .leader else {
            self.output.rejected.append(Rejection(request: .proposal(command), reason: .notLeader(hint: self.leader)))
            return
        }
        // Never propose into a slot already known to be chosen (learned from a stale leader's
        // catch-up, say): the next free slot is past both ends.
        while self.nextSlot <= self.chosenThrough || self.chosen.ahead[self.nextSlot] != nil {
            self.nextSlot += 1
        }
        guard self.nextSlot - 1 - self.chosenThrough < UInt64(self.options.maxUncommittedSlots) else {
            self.output.rejected.append(Rejection(request: .proposal(command), reason: .overloaded))
            return
        }
        self.proposals[self.nextSlot] = Proposal(value: .command(command), acknowledged: 0, sentTick: self.ticks)
        self.nextSlot += 1
    }

    public mutating func read(_ request: ReadRequest) {
        guard self.role == .leader else {
            self.output.rejected.append(Rejection(request: .read(request), reason: .notLeader(hint: self.leader)))
            return
        }
        guard self.pendingReads.count < self.options.maxPendingReads else {
            self.output.rejected.append(Rejection(request: .read(request), reason: .overloaded))
            return
        }
        self.readContextCounter += 1
        self.pendingReads.append(PendingRead(request: request, readIndex: self.nextSlot - 1, context: self.readContextCounter))
    }

    /// Log compaction: every slot up to `position` is executed and held by the driver's state;
    /// the chosen values and acceptances up to it are dropped. Positions not executed yet, or
    /// already compacted, are ignored.
    public mutating func compact(through position: UInt64, state: [UInt8]) {
        guard self.snapshotTag(at: position) != nil else { return }
        self.acceptances = self.acceptances.filter { $0.key > position }
        self.chosen.compact(through: position, state: state)
    }

    /// Paxos snapshots carry no stamp (0); `nil` for positions not executed or compacted already.
    public func snapshotTag(at position: UInt64) -> UInt64? {
        position > self.compactedThrough && position <= self.executedThrough ? 0 : nil
    }

    public mutating func ready() -> Ready<MultiPaxosMessage, MultiPaxosRecord> {
        if self.role == .leader { self.flush() }
        self.chosen.compacted.handOver(into: &self.output, checkpoint: self.checkpointRecords)
        self.emitCommitted()
        self.emitReads()
        defer { self.output = Ready() }
        return self.output
    }
}
