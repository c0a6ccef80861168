import SynodCore

/// A pure, deterministic Raft replica (Ongaro & Ousterhout, "In Search of an Understandable
/// Consensus Algorithm", §5), with batching, pipelined replication and ReadIndex reads.
///
/// Every transition goes through a `become*` function; input handlers are split by message.
/// Durability follows the paper's rule that a server persists before it responds:
/// - term and vote are written (`RaftRecord.hardState`) before a vote reply leaves,
/// - entries are written (`RaftRecord.entries`) before an append acknowledgement leaves,
/// - a leader counts itself toward a commit only after its own entries are synced, learned
///   through an `appendResponse` it sends to itself with `afterSync` (so the leader writes its
///   log in parallel with replicating it),
/// - a candidate counts its own vote only after that vote is synced, in the same way.
public struct RaftReplica: Replica {
    public typealias Message = RaftMessage
    public typealias Record = RaftRecord
    public typealias Options = RaftOptions
    public typealias Session = LeaderFollowingSession
    public typealias Monitor = RaftMonitor

    public static let protocolName = "raft"
    public static let coordination = Coordination.leader

    /// This replica.
    public let id: NodeID
    /// Every replica this one knows of (the members of every configuration it has seen, and
    /// whoever sent it a message), in the order it learnt of them: per-replica state is kept
    /// by position in this list, and positions never change.
    public internal(set) var known: [NodeID]
    let options: RaftOptions
    let selfPosition: Int
    /// The configuration in effect: the log's newest (see `RaftLog.membership`).
    var configuration = Membership(voters: [])
    /// Positions (in `known`) of the voters, of the outgoing voters while joint, and of every
    /// member but this replica (whom a leader replicates to).
    var voterPositions: [Int] = []
    var outgoingPositions: [Int] = []
    var replicationPositions: [Int] = []
    /// A leader outside its committed configuration is handing leadership over.
    var handingOver = false
    /// Leader: command bytes of its own term's entries after the commit index (bounded by
    /// `maxUncommittedBytes`).
    var uncommittedBytes = 0
    var random: DeterministicRandom

    /// The current term (durable).
    public internal(set) var term: Term = .zero
    /// The candidate voted for in the current term (durable).
    public internal(set) var votedFor: NodeID?
    /// The log (durable).
    public internal(set) var log: RaftLog
    /// The highest index known to be committed.
    public internal(set) var commitIndex: LogIndex = .zero
    public var committedThrough: UInt64 { self.commitIndex.rawValue }
    /// The current role.
    public internal(set) var role: RaftRole = .follower
    /// The leader of the current term, if known.
    public internal(set) var leader: NodeID?

    var emittedCommitIndex: LogIndex = .zero
    var electionElapsedTicks = 0
    var electionTimeoutTicks = 0
    var heartbeatElapsedTicks = 0
    var votesGranted: [Bool]
    var progress: [FollowerProgress]
    /// Index of the first entry of the leader's own term (its no-op).
    var termStartIndex: LogIndex = .zero
    var pendingReads: [PendingRead] = []
    var readContextCounter: UInt64 = 0
    var readContextSent: UInt64 = 0
    var lastReadAcknowledgement: [UInt64]
    /// Ticks since this replica started (its own clock).
    var ticksElapsed: UInt64 = 0
    /// With leases, a replica restored with a term refuses to help elect anyone until here.
    var quietUntilTick: UInt64 = 0
    /// A leader's read contexts sent, with the tick each was sent at (lease reads), oldest first.
    var contextSentAt: [(context: UInt64, tick: UInt64)] = []
    /// This leader sent TimeoutNow in its term: its lease no longer protects it.
    var leaseForfeited = false
    /// A follower's reads waiting for the leader's read index, then for it to be applied.
    var followerReads: [FollowerRead] = []
    var nextFollowerReadID: UInt64 = 0
    /// Reads served, by how (for the simulator's figures).
    var leaseReadsServed: UInt64 = 0
    /// Follower: the chunks received so far of a snapshot being sent to it.
    var receivingSnapshot: PartialSnapshot?
    /// Follower: chunks kept since the last `ready()`, to be written as records.
    var receivedChunkRecords: [InstallSnapshot] = []
    /// Follower: snapshot transfers continued from chunks a restart kept.
    var snapshotTransfersResumedAfterRestart: UInt64 = 0
    /// Leader: the checksum of its snapshot's bytes, once computed.
    var snapshotChecksum: (position: UInt64, bytes: Int, value: UInt64)?
    /// Snapshot chunks sent, and those sent again from where a follower stopped (not from the
    /// start): a lost chunk, or a follower that already held part of it.
    var snapshotChunksSent: UInt64 = 0
    var snapshotChunksResumed: UInt64 = 0
    var followerReadsServed: UInt64 = 0
    /// Check-quorum: the members a leader heard from (in its term) since its last check.
    var recentlyActive: [Bool]
    var quorumCheckElapsedTicks = 0
    /// The replica this leader is handing leadership to, if a transfer is under way.
    public internal(set) var transferee: NodeID?
    var transferElapsedTicks = 0
    var timeoutNowSent = false

    /// The snapshot holding the compacted prefix of the log (`log.base`), if any.
    public internal(set) var snapshot: Snapshot?
    /// The next `ready()` hands `snapshot` to the driver and begins its records with a
    /// checkpoint (hard state and the whole log after the base).
    var snapshotHandOver: SnapshotOrigin?
    var hardStateDirty = false
    var dirtyFromIndex: LogIndex?
    var output = Ready<RaftMessage, RaftRecord>()

    /// Raft's records restore when every `entries` record starts inside the log or right
    /// after it, no entry is newer than the term recorded before it, and no checkpoint lies
    /// beyond the snapshot (which is made durable before its checkpoint).
    public static func problem(restoring recovered: Recovered<RaftRecord>) -> String? {
        if let identity = recovered.snapshot?.identity, !identity.isEmpty, (try? Membership.decode(identity)) == nil {
            return "the snapshot's configuration does not decode"
        }
        let base: UInt64 = recovered.snapshot?.position ?? 0
        var last = base
        var term = Term.zero
        for (position, record) in recovered.records.enumerated() {
            switch record {
            case .hardState(let recordedTerm, _):
                guard recordedTerm >= term else { return "record \(position): term \(recordedTerm) goes back from \(term)" }
                term = recordedTerm
            case .entries(let first, let entries):
                guard first.rawValue >= 1 && first.rawValue <= last + 1 else {
                    return "record \(position): entries at \(first) leave a gap after i\(last)"
                }
                if let newest = entries.map(\.term).max(), newest > term {
                    return "record \(position): an entry of \(newest) before any record of that term"
                }
                last = max(base, first.rawValue - 1 + UInt64(entries.count))
            case .checkpoint(let checkpointBase, _):
                guard checkpointBase.rawValue <= base else {
                    return "record \(position): a checkpoint at \(checkpointBase) beyond the snapshot at i\(base)"
                }
                last = base
            case .snapshotChunk:
                break  // a chunk that continues nothing is ignored on restore
            }
        }
        return nil
    }

    public init(config: ReplicaConfig<RaftOptions>, restoring: Recovered<RaftRecord>, randomSeed: UInt64) {
        precondition((try? config.validate()) != nil, "invalid Raft configuration")
        self.id = config.id
        // A joining replica is not in the first configuration; it knows itself all the same.
        let known = config.joining ? config.members + [config.id] : config.members
        self.known = known
        self.options = config.options
        self.selfPosition = known.firstIndex(of: config.id)!
        self.random = DeterministicRandom(seed: randomSeed)
        self.votesGranted = Array(repeating: false, count: known.count)
        self.progress = Array(repeating: FollowerProgress(), count: known.count)
        self.lastReadAcknowledgement = Array(repeating: 0, count: known.count)
        self.recentlyActive = Array(repeating: false, count: known.count)
        // `members` seeds the first configuration; the log and snapshot hold every later one.
        self.log = RaftLog(membership: Membership(voters: config.members))
        if let snapshot = restoring.snapshot {
            let membership = snapshot.identity.isEmpty ? nil : try? Membership.decode(snapshot.identity)
            self.log.install(base: LogIndex(snapshot.position), term: Term(snapshot.tag), membership: membership)
            self.snapshot = snapshot
            self.commitIndex = self.log.base
            self.emittedCommitIndex = self.log.base
        }
        // The entries after the snapshot are kept only if the records agree with it at its
        // base, as `install` does: records older than the snapshot's checkpoint (a crash
        // before the checkpoint was durable) may hold another history there.
        var termAtBase: Term? = self.log.base == .zero ? .zero : nil
        var partial: PartialSnapshot?
        for record in restoring.records {
            switch record {
            case .hardState(let term, let votedFor):
                self.term = term
                self.votedFor = votedFor
            case .entries(let first, let entries):
                let base = self.log.base
                if first <= base && base > .zero {
                    let covered = first.rawValue - 1 + UInt64(entries.count) >= base.rawValue
                    termAtBase = covered ? entries[Int(base.rawValue - first.rawValue)].term : nil
                }
                self.log.apply(first: first, entries)
            case .checkpoint(let base, let term):
                // The records that follow rewrite everything after `base`.
                termAtBase = base == self.log.base ? term : nil
                self.log.truncate(after: self.log.base)
                partial = nil  // a checkpoint writes again the chunks it keeps
            case .snapshotChunk(let chunk):
                if chunk.offset == 0 {
                    partial = PartialSnapshot(
                        position: chunk.snapshot.position, tag: chunk.snapshot.tag, identity: chunk.snapshot.identity,
                        totalBytes: chunk.totalBytes, checksum: chunk.checksum, data: chunk.snapshot.data)
                } else if var held = partial, held.matches(chunk), UInt64(held.data.count) == chunk.offset {
                    held.data += chunk.snapshot.data
                    partial = held
                }
            }
        }
        if var partial, partial.position > self.log.base.rawValue, UInt64(partial.data.count) < partial.totalBytes {
            // The transfer resumes from these bytes: the leader hears how many this follower holds.
            partial.restored = true
            self.receivingSnapshot = partial
        }
        if termAtBase != self.log.baseTerm { self.log.truncate(after: self.log.base) }
        if self.log.lastTerm > self.term {
            // The snapshot covers committed entries of a term whose record was lost (applied
            // before this replica's own records were durable): entering that term is safe,
            // this replica cast no vote in it that anyone heard.
            self.term = self.log.lastTerm
            self.votedFor = nil
            self.hardStateDirty = true
        }
        self.refreshMembership()
        self.resetElectionTimeout()
        if self.options.leaseReads && self.term > .zero { self.quietUntilTick = UInt64(self.options.electionTimeoutTicksMin) }
    }

    // MARK: Inputs

    public mutating func tick() {
        self.ticksElapsed += 1
        if !self.followerReads.isEmpty { self.expireFollowerReads() }
        switch self.role {
        case .follower, .preCandidate, .candidate:
            self.electionElapsedTicks += 1
            if self.electionElapsedTicks >= self.electionTimeoutTicks {
                self.campaign()
            }
        case .leader:
            self.heartbeatElapsedTicks += 1
            if self.heartbeatElapsedTicks >= self.options.heartbeatIntervalTicks {
                self.heartbeatElapsedTicks = 0
                self.heartbeat()
            }
            if self.transferee != nil {
                self.transferElapsedTicks += 1
                // The target did not win within an election timeout: the transfer is over,
                // and this leader takes proposals again (or, outside the configuration, steps
                // down).
                if self.transferElapsedTicks >= self.options.electionTimeoutTicksMax {
                    self.transferee = nil
                    if self.handingOver { self.becomeFollower(term: self.term, leader: nil) }
                }
            }
            if self.options.checkQuorum {
                self.quorumCheckElapsedTicks += 1
                if self.quorumCheckElapsedTicks >= self.options.electionTimeoutTicksMin {
                    self.checkQuorum()
                }
            }
        }
    }

    public mutating func receive(_ message: RaftMessage, from sender: NodeID) {
        let senderPosition = self.learn(sender)
        if message.term > self.term {
            switch message {
            case .requestVote(let request) where self.options.checkQuorum && self.refusesElections && !request.transfer:
                // A leader is alive as far as this replica knows: a higher term from a
                // replica that lost touch with it must not depose it (thesis §4.2.3).
                return
            case .preVote:
                // Asking costs the receiver nothing: its term stays.
                break
            case .preVoteResponse(let response) where response.granted:
                break
            default:
                // §5.1: a newer term makes any replica a follower of that term.
                let leader: NodeID? = if case .appendEntries = message { sender } else { nil }
                self.becomeFollower(term: message.term, leader: leader)
            }
        }
        if self.role == .leader && message.term == self.term { self.recentlyActive[senderPosition] = true }
        switch message {
        case .requestVote(let request):
            self.handleRequestVote(request, from: sender)
        case .voteResponse(let response):
            self.handleVoteResponse(response, from: senderPosition)
        case .appendEntries(let request):
            self.handleAppendEntries(request, from: sender)
        case .appendResponse(let response):
            self.handleAppendResponse(response, from: senderPosition)
        case .installSnapshot(let request):
            self.handleInstallSnapshot(request, from: sender)
        case .preVote(let request):
            self.handlePreVote(request, from: sender)
        case .preVoteResponse(let response):
            self.handlePreVoteResponse(response, from: senderPosition)
        case .timeoutNow(let request):
            self.handleTimeoutNow(request, from: sender)
        case .readIndex(let request):
            self.handleReadIndex(request, from: sender)
        case .readIndexResponse(let response):
            self.handleReadIndexResponse(response, from: sender)
        case .snapshotAck(let ack):
            self.handleSnapshotAck(ack, from: senderPosition)
        }
    }

    /// Leadership transfer (thesis §3.10): replicate to `target` until its log matches this
    /// leader's, then tell it to campaign at once. Proposals are refused (`overloaded`, so
    /// clients retry) until the target wins or an election timeout passes.
    public mutating func transferLeadership(to target: NodeID) -> LeadershipTransferRefusal? {
        guard self.role == .leader else { return .notLeader(hint: self.leader) }
        guard self.configuration.voters.contains(target), let position = self.position(of: target) else {
            return .unknownTarget(target)
        }
        if target == self.id { return nil }
        if let transferee = self.transferee {
            return transferee == target ? nil : .inProgress(to: transferee)
        }
        self.transferee = target
        self.transferElapsedTicks = 0
        self.timeoutNowSent = false
        if self.progress[position].matchIndex == self.log.lastIndex {
            self.sendTimeoutNow(to: position)
        } else {
            // Probe the target now rather than at the next heartbeat (a snapshot in flight
            // keeps its own pace).
            if self.progress[position].state == .probe { self.progress[position].probeSent = false }
            self.sendAppend(to: position, allowEmpty: true)
        }
        return nil
    }

    public mutating func propose(_ command: Command) {
        guard self.role == .leader else {
            self.output.rejected.append(Rejection(request: .proposal(command), reason: .notLeader(hint: self.leader)))
            return
        }
        let bytes = command.payload.count
        guard self.transferee == nil, !self.handingOver,
              self.log.lastIndex.rawValue - self.commitIndex.rawValue < UInt64(self.options.maxUncommittedEntries),
              self.uncommittedBytes == 0 || self.uncommittedBytes + bytes <= self.options.maxUncommittedBytes
        else {
            self.output.rejected.append(Rejection(request: .proposal(command), reason: .overloaded))
            return
        }
        self.appendToOwnLog(command)
    }

    /// §7: the driver's state machine holds every command up to `position`; the log before it
    /// is dropped. Positions not yet emitted as committed, or already compacted, are ignored.
    public mutating func compact(through position: UInt64, state: [UInt8]) {
        guard let tag = self.snapshotTag(at: position) else { return }
        let index = LogIndex(position)
        let snapshot = Snapshot(position: position, tag: tag, data: state, identity: self.snapshotIdentity(at: position))
        self.log.compact(through: index)
        self.snapshot = snapshot
        self.snapshotHandOver = .compacted
    }

    /// The term of the entry at `position`, if it is applied and not compacted (committed, so
    /// it never changes).
    public func snapshotTag(at position: UInt64) -> UInt64? {
        let index = LogIndex(position)
        guard index > self.log.base, index <= self.emittedCommitIndex else { return nil }
        return self.log.term(at: index)?.rawValue
    }

    /// The configuration at `position`, which a snapshot there carries: a replica restored or
    /// brought up to date from it knows who the members were.
    public func snapshotIdentity(at position: UInt64) -> [UInt8] {
        let index = LogIndex(position)
        guard index >= self.log.base, index <= self.log.lastIndex else { return [] }
        return self.log.membership(at: index).encoded()
    }

    public mutating func ready() -> Ready<RaftMessage, RaftRecord> {
        if self.role == .leader {
            self.flushLeaderMessages()
        }
        self.emitRecords()
        self.emitCommitted()
        self.emitReads()
        defer { self.output = Ready() }
        return self.output
    }
}

/// What a leader knows of one follower's log (etcd-raft's `Progress`).
struct FollowerProgress: Sendable {
    enum State: Sendable {
        /// One message at a time until the match point is found.
        case probe
        /// Optimistic pipelining: several messages in flight, within the window.
        case replicate
        /// The follower needs entries this leader compacted: its snapshot is on the way (one
        /// at a time, resent only after `snapshotResendHeartbeats` unanswered heartbeats).
        case snapshot
    }

    /// One AppendEntries in flight.
    struct Inflight: Sendable {
        var lastIndex: LogIndex
        var bytes: Int
    }

    var state: State = .probe
    var matchIndex: LogIndex = .zero
    var nextIndex: LogIndex = .init(1)
    /// Probe: the probe is in flight. Snapshot: a chunk is.
    var probeSent = false
    /// Snapshot: the snapshot being sent (its position), and how many of its bytes the
    /// follower confirmed holding.
    var snapshotPosition: UInt64 = 0
    var snapshotOffset: UInt64 = 0
    /// Snapshot: the chunk in flight went unanswered; the next one is sent again.
    var snapshotResend = false
    /// Heartbeats since the snapshot in flight to this follower was sent.
    var heartbeatsSinceSnapshot = 0
    /// The AppendEntries in flight (replicate), oldest first, and their command bytes.
    var inflight: [Inflight] = []
    var inflightBytes = 0
    var progressedSinceHeartbeat = false
    var sentSinceHeartbeat = false

    /// Forgets every message in flight (they were lost, or answered by a rejection).
    mutating func clearInflight() {
        self.inflight.removeAll()
        self.inflightBytes = 0
    }

    /// Enters `state`, with nothing in flight.
    mutating func become(_ state: State) {
        self.state = state
        self.probeSent = false
        self.clearInflight()
        self.snapshotPosition = 0
        self.snapshotOffset = 0
    }

    /// The messages in flight up to `index` were received.
    mutating func acknowledge(through index: LogIndex) {
        while let first = self.inflight.first, first.lastIndex <= index {
            self.inflightBytes -= first.bytes
            self.inflight.removeFirst()
        }
    }
}

/// A snapshot arriving in chunks, known by position, tag, size and checksum.
struct PartialSnapshot: Sendable {
    var position: UInt64
    var tag: UInt64
    var identity: [UInt8]
    var totalBytes: UInt64
    var checksum: UInt64
    var data: [UInt8]
    /// Restored from records after a restart, and not yet continued.
    var restored = false

    func matches(_ message: InstallSnapshot) -> Bool {
        self.position == message.snapshot.position && self.tag == message.snapshot.tag
            && self.totalBytes == message.totalBytes && self.checksum == message.checksum
    }
}

/// Where the snapshot handed to the driver comes from.
enum SnapshotOrigin: Sendable {
    /// The driver's own state, after `compact(through:state:)`.
    case compacted
    /// The leader's, to install.
    case received
}

/// A linearizable read waiting at a leader for leadership confirmation and application.
struct PendingRead: Sendable {
    /// Who asked.
    enum Asker: Sendable {
        /// A read this leader serves, once confirmed and applied.
        case local(ReadRequest)
        /// A follower's read-index request (its number for the read), answered once confirmed.
        case follower(NodeID, id: UInt64)
    }

    var asker: Asker
    var readIndex: LogIndex
    var context: UInt64
}

/// A read a follower serves itself, once the leader gave its read index and it is applied.
struct FollowerRead: Sendable {
    var id: UInt64
    var request: ReadRequest
    var index: LogIndex?
    var askedAt: UInt64
}
