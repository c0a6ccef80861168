import SynodCore

/// A Paxos ballot: a round number and the proposer that owns it. Ballots of different
/// proposers never collide, and a proposer's rounds are durable, so they never repeat across
/// restarts (the reference sketch's proposal numbers could).
public struct Ballot: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// The round, durable at its proposer before the ballot is used.
    public var round: UInt64
    /// The proposer that owns the ballot.
    public var node: NodeID

    /// Creates a ballot.
    public init(round: UInt64, node: NodeID) {
        self.round = round
        self.node = node
    }

    /// Below every real ballot.
    public static let zero = Ballot(round: 0, node: NodeID(0))

    public static func < (lhs: Ballot, rhs: Ballot) -> Bool { (lhs.round, lhs.node) < (rhs.round, rhs.node) }
    public var description: String { "b\(self.round).\(self.node.rawValue)" }
}

/// A value an acceptor accepted, with the ballot it was accepted in.
public struct AcceptedValue: Sendable, Equatable {
    /// The ballot it was accepted in.
    public var ballot: Ballot
    /// The value.
    public var value: [UInt8]

    /// Creates an accepted value.
    public init(ballot: Ballot, value: [UInt8]) {
        self.ballot = ballot
        self.value = value
    }
}

/// Messages of single-decree Paxos (Lamport, "Paxos Made Simple", §2).
public enum PaxosMessage: Sendable, Equatable {
    /// Phase 1a.
    case prepare(Ballot)
    /// Phase 1b: the acceptor promises to ignore lower ballots, and reports what it accepted.
    case promise(Ballot, accepted: AcceptedValue?)
    /// Phase 2a.
    case accept(Ballot, value: [UInt8])
    /// Phase 2b.
    case accepted(Ballot)
    /// A refusal: the acceptor promised `promised`, above `ballot`.
    case nack(Ballot, promised: Ballot)
    /// A learner's notice: the value is chosen.
    case decided([UInt8])
}

/// Durable facts of one Paxos node.
public enum PaxosRecord: Sendable, Equatable {
    /// The highest round this node started as a proposer.
    case round(UInt64)
    /// The acceptor's promise.
    case promised(Ballot)
    /// The acceptor's accepted value.
    case accepted(AcceptedValue)
}

/// Deliberately unsafe variants, for tests that prove the checks can fail.
@_spi(Testing)
public enum PaxosMutation: String, Sendable, CaseIterable {
    /// An acceptor accepts a ballot lower than the one it promised.
    case acceptBelowPromise
    /// Phase 2 picks the most frequent accepted value instead of the highest-ballot one.
    case mostFrequentValue
    /// An acceptor replies before its promise or accepted value is durable.
    case replyBeforeDurable
    /// Multi-Paxos with log compaction: an acceptor whose log is compacted past a prepare's
    /// first slot answers with an ordinary promise (its compacted acceptances missing) instead
    /// of its snapshot, so the candidate fills chosen slots with no-ops. Needs the simulator's
    /// `snapshotInterval`; the other Paxos cores do not compact.
    case promiseOverCompactedSlots
}

/// One node of single-decree Paxos: proposer, acceptor and learner. Pure and deterministic,
/// like every Synod core: time is `tick()`, randomness comes from the seed, and everything to
/// do comes out of `ready()` (records to write; messages, some only after those records are
/// synced).
public struct SingleDecreePaxos: Sendable {
    /// Tuning.
    public struct Options: Sendable {
        /// Ticks without a decision before a proposer starts a higher ballot.
        public var retryTicks = 20
        /// After a refusal, wait a random number of ticks (doubling with each refusal) before
        /// retrying. Off, two proposers can preempt each other forever (FLP made visible).
        public var randomizedBackoff = true
        /// Unsafe variant, tests only.
        @_spi(Testing) public var mutation: PaxosMutation?

        public init() {}
    }

    /// What `ready()` returns.
    public struct Output: Sendable {
        public var records: [PaxosRecord] = []
        public var messages: [Envelope<PaxosMessage>] = []
    }

    public let id: NodeID
    public let members: [NodeID]
    public let options: Options
    let quorum: QuorumSystem
    var random: DeterministicRandom

    // Durable.
    public private(set) var maxRound: UInt64 = 0
    public private(set) var promised = Ballot.zero
    public private(set) var accepted: AcceptedValue?

    // Proposer (volatile).
    var proposal: [UInt8]?
    public private(set) var ballot = Ballot.zero
    var preparing = false
    var accepting = false
    /// Phase 1 of `ballot` completed before there was a value to propose (`prepare()`): the
    /// first `propose` goes straight to phase 2 with the promises gathered.
    var prepared = false
    var promises: [NodeID: AcceptedValue?] = [:]
    var acceptedBy: Set<NodeID> = []
    var phaseTwoValue: [UInt8] = []
    var waitTicks = 0
    var refusals = 0
    /// Ballots this node started: the rounds the FLP scenario counts.
    public private(set) var roundsStarted = 0

    /// The chosen value, once learned.
    public private(set) var decided: [UInt8]?

    /// Records that restore this node's whole durable state (round, promise, accepted value):
    /// what a checkpoint writes for it.
    public var durableRecords: [PaxosRecord] {
        var records: [PaxosRecord] = []
        if self.maxRound > 0 { records.append(.round(self.maxRound)) }
        if self.promised > .zero { records.append(.promised(self.promised)) }
        if let accepted = self.accepted { records.append(.accepted(accepted)) }
        return records
    }

    var output = Output()

    /// Creates a node, restoring its durable state from `records`.
    public init(id: NodeID, members: [NodeID], options: Options = Options(), restoring records: [PaxosRecord] = [], randomSeed: UInt64) {
        self.id = id
        self.members = members.sorted()
        self.options = options
        self.quorum = .majority(of: members.count)
        self.random = DeterministicRandom(seed: randomSeed)
        for record in records {
            switch record {
            case .round(let round): self.maxRound = max(self.maxRound, round)
            case .promised(let ballot): self.promised = max(self.promised, ballot)
            case .accepted(let value):
                self.accepted = value
                // An acceptance implies the promise (records written before the promise
                // record was added restore safely too).
                self.promised = max(self.promised, value.ballot)
            }
        }
        self.maxRound = max(self.maxRound, self.promised.round)
    }

    /// Starts proposing `value` (a proposer learns the chosen value, which may be another's).
    /// After `prepare()`, it joins the ballot prepared: phase 2 at once when phase 1 is done
    /// (with the value the promises impose, if any), else when the promises arrive.
    public mutating func propose(_ value: [UInt8]) {
        guard self.decided == nil else { return }
        if self.proposal == nil && self.prepared {
            self.proposal = value
            self.prepared = false
            self.startPhaseTwo(own: value)
        } else if self.proposal == nil && self.preparing {
            self.proposal = value
        } else {
            self.proposal = value
            self.startRound()
        }
    }

    /// Runs phase 1 of a new ballot before there is a value to propose, so that a value
    /// proposed later needs phase 2 only. Safe as Paxos is: the phases of one ballot may lie
    /// any time apart, and an acceptor that promised a higher ballot meanwhile refuses the
    /// accept. Nothing is retried until a value is proposed; a refusal forgets the promises.
    public mutating func prepare() {
        guard self.decided == nil, self.proposal == nil, !self.preparing, !self.prepared else { return }
        self.startRound()
    }

    /// Whether this node runs or ran phase 1 ahead of a value (`prepare()`) and has none yet.
    public var isPreparedAhead: Bool { self.proposal == nil && self.decided == nil && (self.preparing || self.prepared) }

    /// Whether this node's proposal was refused (a higher ballot is at work) and it is waiting
    /// to try again.
    public var isBackingOff: Bool { self.proposal != nil && self.decided == nil && !self.preparing && !self.accepting }

    /// Stops proposing (always safe in Paxos); the node stays an acceptor and a learner.
    public mutating func withdraw() {
        self.proposal = nil
        self.preparing = false
        self.accepting = false
        self.prepared = false
    }

    public mutating func tick() {
        guard self.proposal != nil, self.decided == nil else { return }
        self.waitTicks -= 1
        if self.waitTicks <= 0 { self.startRound() }
    }

    /// Drains what to do.
    public mutating func ready() -> Output {
        defer { self.output = Output() }
        return self.output
    }

    mutating func send(_ message: PaxosMessage, to node: NodeID, afterSync: Bool) {
        self.output.messages.append(Envelope(to: node, message: message, afterSync: afterSync))
    }

    mutating func broadcast(_ message: PaxosMessage, afterSync: Bool) {
        for member in self.members { self.send(message, to: member, afterSync: afterSync) }
    }

    /// Phase 1a with a ballot above every round seen; the round is durable before the ballot
    /// leaves, so it is never reused after a restart.
    mutating func startRound() {
        self.maxRound += 1
        self.output.records.append(.round(self.maxRound))
        self.ballot = Ballot(round: self.maxRound, node: self.id)
        self.preparing = true
        self.accepting = false
        self.prepared = false
        self.promises = [:]
        self.acceptedBy = []
        self.roundsStarted += 1
        self.waitTicks = self.options.retryTicks
        self.broadcast(.prepare(self.ballot), afterSync: true)
    }

    public mutating func receive(_ message: PaxosMessage, from sender: NodeID) {
        switch message {
        case .prepare(let ballot): self.onPrepare(ballot, from: sender)
        case .promise(let ballot, let accepted): self.onPromise(ballot, accepted: accepted, from: sender)
        case .accept(let ballot, let value): self.onAccept(ballot, value: value, from: sender)
        case .accepted(let ballot): self.onAccepted(ballot, from: sender)
        case .nack(let ballot, let promised): self.onRefusal(ballot, promised: promised)
        case .decided(let value): if self.decided == nil { self.decided = value }
        }
    }

    // MARK: Acceptor

    mutating func onPrepare(_ ballot: Ballot, from sender: NodeID) {
        self.maxRound = max(self.maxRound, ballot.round)
        guard ballot >= self.promised else {
            self.send(.nack(ballot, promised: self.promised), to: sender, afterSync: false)
            return
        }
        // A repeated prepare (a duplicate, a retry) gets the same promise again.
        if ballot > self.promised {
            self.promised = ballot
            self.output.records.append(.promised(ballot))
        }
        self.send(.promise(ballot, accepted: self.accepted), to: sender, afterSync: self.options.mutation != .replyBeforeDurable)
    }

    mutating func onAccept(_ ballot: Ballot, value: [UInt8], from sender: NodeID) {
        self.maxRound = max(self.maxRound, ballot.round)
        guard ballot >= self.promised || self.options.mutation == .acceptBelowPromise else {
            self.send(.nack(ballot, promised: self.promised), to: sender, afterSync: false)
            return
        }
        // Accepting in a ballot is also a promise for it, and must survive a restart as one:
        // otherwise the restarted acceptor would take an older ballot's accept over this value.
        if ballot > self.promised {
            self.promised = ballot
            self.output.records.append(.promised(ballot))
        }
        self.accepted = AcceptedValue(ballot: ballot, value: value)
        self.output.records.append(.accepted(self.accepted!))
        self.send(.accepted(ballot), to: sender, afterSync: self.options.mutation != .replyBeforeDurable)
    }

    // MARK: Proposer

    mutating func onPromise(_ ballot: Ballot, accepted: AcceptedValue?, from sender: NodeID) {
        // Replies carry their ballot: a stale one never counts toward this ballot's quorum.
        guard self.preparing, ballot == self.ballot else { return }
        self.promises[sender] = accepted
        guard self.promises.count >= self.quorum.phase1Size else { return }
        self.preparing = false
        guard let proposal = self.proposal else {
            // Prepared ahead: phase 2 waits for a value (`propose`).
            self.prepared = true
            return
        }
        self.startPhaseTwo(own: proposal)
    }

    /// Phase 2 of `ballot`, whose phase 1 a quorum promised.
    mutating func startPhaseTwo(own proposal: [UInt8]) {
        self.accepting = true
        self.phaseTwoValue = self.chooseValue(own: proposal)
        self.broadcast(.accept(self.ballot, value: self.phaseTwoValue), afterSync: false)
    }

    /// Phase 2's value: the one accepted in the highest ballot among the promises, or our own
    /// when none accepted anything. Never the most frequent.
    func chooseValue(own: [UInt8]) -> [UInt8] {
        let reported = self.promises.values.compactMap { $0 }
        if self.options.mutation == .mostFrequentValue {
            var counts: [[UInt8]: Int] = [:]
            for value in reported { counts[value.value, default: 0] += 1 }
            let ranked = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.lexicographicallyPrecedes($1.key) }
            return ranked.first?.key ?? own
        }
        return reported.max { $0.ballot < $1.ballot }?.value ?? own
    }

    mutating func onAccepted(_ ballot: Ballot, from sender: NodeID) {
        guard self.accepting, ballot == self.ballot else { return }
        self.acceptedBy.insert(sender)
        guard self.acceptedBy.count >= self.quorum.phase2Size else { return }
        self.accepting = false
        self.decided = self.phaseTwoValue
        self.broadcast(.decided(self.phaseTwoValue), afterSync: false)
    }

    mutating func onRefusal(_ ballot: Ballot, promised: Ballot) {
        self.maxRound = max(self.maxRound, promised.round)
        guard ballot == self.ballot, self.preparing || self.accepting || self.prepared, self.decided == nil else { return }
        self.preparing = false
        self.accepting = false
        self.prepared = false
        // Prepared ahead with no value yet: nothing to retry; a later `propose` starts afresh.
        guard self.proposal != nil else { return }
        self.refusals += 1
        if self.options.randomizedBackoff {
            let limit = min(self.options.retryTicks << min(self.refusals, 6), 1 << 12)
            self.waitTicks = 1 + self.random.integer(in: 0..<limit)
        } else {
            self.startRound()
        }
    }
}
