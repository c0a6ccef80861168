import SynodCore

/// A message between Raft replicas. The sender is carried by the transport.
public enum RaftMessage: Sendable, Equatable {
    /// A candidate asks for a vote (§5.2, §5.4.1).
    case requestVote(RequestVote)
    /// The answer to a vote request.
    case voteResponse(VoteResponse)
    /// A leader replicates entries or sends a heartbeat (§5.3).
    case appendEntries(AppendEntries)
    /// The answer to an AppendEntries or an InstallSnapshot; also a leader's own sync
    /// acknowledgement.
    case appendResponse(AppendResponse)
    /// A leader sends its snapshot to a follower that needs entries it has compacted (§7).
    case installSnapshot(InstallSnapshot)
    /// A replica asks whether it could win an election in `term` (Pre-Vote, thesis §9.6); the
    /// receiver's term does not change.
    case preVote(RequestVote)
    /// The answer to a pre-vote: granted ones carry the term asked about, refusals the
    /// responder's own term.
    case preVoteResponse(VoteResponse)
    /// A leader tells its chosen successor, caught up with its log, to campaign at once
    /// (leadership transfer, thesis §3.10).
    case timeoutNow(TimeoutNow)
    /// A follower asks the leader of `term` for a read index (ReadIndex on a follower,
    /// thesis §6.4): the leader answers once it has confirmed that it still leads.
    case readIndex(ReadIndexMessage)
    /// The leader's answer: `index` when `granted`, or a refusal (not the leader of `term`).
    case readIndexResponse(ReadIndexMessage)
    /// A follower's report of how much of a snapshot it holds (chunked InstallSnapshot).
    case snapshotAck(SnapshotAck)

    /// The term the message was sent in.
    public var term: Term {
        switch self {
        case .requestVote(let message): return message.term
        case .voteResponse(let message): return message.term
        case .appendEntries(let message): return message.term
        case .appendResponse(let message): return message.term
        case .installSnapshot(let message): return message.term
        case .snapshotAck(let message): return message.term
        case .preVote(let message): return message.term
        case .preVoteResponse(let message): return message.term
        case .timeoutNow(let message): return message.term
        case .readIndex(let message), .readIndexResponse(let message): return message.term
        }
    }
}

/// A follower's read-index request, or the leader's answer to it.
public struct ReadIndexMessage: Sendable, Equatable {
    /// The term of the leader asked.
    public var term: Term
    /// The follower's number for the read, echoed in the answer.
    public var id: UInt64
    /// In an answer: the index the follower must have applied before serving the read.
    public var index: LogIndex
    /// In an answer: whether the leader confirmed its leadership.
    public var granted: Bool

    /// Creates a read-index request or answer.
    public init(term: Term, id: UInt64, index: LogIndex = .zero, granted: Bool = false) {
        self.term = term
        self.id = id
        self.index = index
        self.granted = granted
    }
}

/// TimeoutNow: the leader of `term` hands leadership to the receiver.
public struct TimeoutNow: Sendable, Equatable {
    /// The leader's term.
    public var term: Term

    /// Creates a TimeoutNow request.
    public init(term: Term) { self.term = term }
}

/// InstallSnapshot arguments (§7), one chunk of the snapshot's bytes per message: the state up
/// to `snapshot.position`, whose entry has term `snapshot.tag`. `snapshot.data` holds the
/// bytes from `offset` on; the whole is `totalBytes` long and hashes to `checksum`. The
/// follower answers each chunk but the last with a `SnapshotAck` (how much it holds), and the
/// last, once the whole snapshot is durable, with an `AppendResponse` whose `matchIndex` is that
/// position. A follower keeps the chunks it received across lost messages and leader changes
/// (a snapshot is known by position, tag, size and checksum), so a transfer resumes where it
/// stopped instead of starting over.
public struct InstallSnapshot: Sendable, Equatable {
    /// The leader's term.
    public var term: Term
    /// The leader's snapshot: its position, tag and identity, and the chunk's bytes.
    public var snapshot: Snapshot
    /// Where the chunk starts in the snapshot's bytes.
    public var offset: UInt64
    /// The length of the snapshot's bytes.
    public var totalBytes: UInt64
    /// `InstallSnapshot.checksum(of:)` of the snapshot's bytes.
    public var checksum: UInt64

    /// A whole snapshot in one message.
    public init(term: Term, snapshot: Snapshot) {
        self.init(term: term, snapshot: snapshot, offset: 0, totalBytes: UInt64(snapshot.data.count),
                  checksum: Self.checksum(of: snapshot.data))
    }

    /// One chunk.
    public init(term: Term, snapshot: Snapshot, offset: UInt64, totalBytes: UInt64, checksum: UInt64) {
        self.term = term
        self.snapshot = snapshot
        self.offset = offset
        self.totalBytes = totalBytes
        self.checksum = checksum
    }

    /// Whether the chunk ends the snapshot.
    public var isLast: Bool { self.offset + UInt64(self.snapshot.data.count) == self.totalBytes }

    /// The checksum a snapshot's bytes travel with (a stable 64-bit hash).
    public static func checksum(of data: [UInt8]) -> UInt64 {
        var hasher = StableHasher()
        hasher.combine(bytes: data)
        return hasher.value
    }
}

/// How much of the snapshot at `position` a follower holds: the leader sends the next chunk
/// from `received` (0: the follower holds none of it, after a restart, or the leader's
/// snapshot changed).
public struct SnapshotAck: Sendable, Equatable {
    public var term: Term
    public var position: UInt64
    public var received: UInt64

    public init(term: Term, position: UInt64, received: UInt64) {
        self.term = term
        self.position = position
        self.received = received
    }
}

/// RequestVote arguments.
public struct RequestVote: Sendable, Equatable {
    /// The candidate's term.
    public var term: Term
    /// The index of the candidate's last log entry.
    public var lastLogIndex: LogIndex
    /// The term of the candidate's last log entry.
    public var lastLogTerm: Term
    /// The election follows the leader's TimeoutNow: replicas that still hear from that leader
    /// answer it anyway (check-quorum would have them ignore it).
    public var transfer: Bool

    /// Creates a vote request.
    public init(term: Term, lastLogIndex: LogIndex, lastLogTerm: Term, transfer: Bool = false) {
        self.term = term
        self.lastLogIndex = lastLogIndex
        self.lastLogTerm = lastLogTerm
        self.transfer = transfer
    }
}

/// RequestVote results.
public struct VoteResponse: Sendable, Equatable {
    /// The voter's term.
    public var term: Term
    /// True when the vote is granted.
    public var granted: Bool

    /// Creates a vote response.
    public init(term: Term, granted: Bool) {
        self.term = term
        self.granted = granted
    }
}

/// AppendEntries arguments.
public struct AppendEntries: Sendable, Equatable {
    /// The leader's term.
    public var term: Term
    /// The index of the entry just before `entries`.
    public var prevLogIndex: LogIndex
    /// The term of the entry at `prevLogIndex`.
    public var prevLogTerm: Term
    /// The entries to store (empty for a heartbeat).
    public var entries: [RaftEntry]
    /// The leader's commit index.
    public var leaderCommit: LogIndex
    /// The leader's read context when it sent the message; the response echoes it, which
    /// confirms the leadership for every read registered at or before it.
    public var readContext: UInt64

    /// Creates an AppendEntries request.
    public init(
        term: Term, prevLogIndex: LogIndex, prevLogTerm: Term, entries: [RaftEntry], leaderCommit: LogIndex,
        readContext: UInt64
    ) {
        self.term = term
        self.prevLogIndex = prevLogIndex
        self.prevLogTerm = prevLogTerm
        self.entries = entries
        self.leaderCommit = leaderCommit
        self.readContext = readContext
    }
}

/// AppendEntries results.
public struct AppendResponse: Sendable, Equatable {
    /// The responder's term.
    public var term: Term
    /// True when the entries were stored.
    public var success: Bool
    /// On success, the last index known to match the leader's log.
    public var matchIndex: LogIndex
    /// On rejection, the `prevLogIndex` that did not match.
    public var rejectedIndex: LogIndex
    /// On rejection, an index below which the follower's log may still match.
    public var hintIndex: LogIndex
    /// Echo of the request's `readContext`.
    public var readContext: UInt64

    /// Creates an AppendEntries response.
    public init(
        term: Term, success: Bool, matchIndex: LogIndex, rejectedIndex: LogIndex, hintIndex: LogIndex, readContext: UInt64
    ) {
        self.term = term
        self.success = success
        self.matchIndex = matchIndex
        self.rejectedIndex = rejectedIndex
        self.hintIndex = hintIndex
        self.readContext = readContext
    }
}

extension RaftMessage: TraceDigestible {
    public func digest(into hasher: inout StableHasher) {
        switch self {
        case .requestVote(let message):
            hasher.combine(1)
            hasher.combine(message.term.rawValue)
            hasher.combine(message.lastLogIndex.rawValue)
            hasher.combine(message.lastLogTerm.rawValue)
            hasher.combine(message.transfer ? 1 : 0)
        case .voteResponse(let message):
            hasher.combine(2)
            hasher.combine(message.term.rawValue)
            hasher.combine(message.granted ? 1 : 0)
        case .preVote(let message):
            hasher.combine(6)
            hasher.combine(message.term.rawValue)
            hasher.combine(message.lastLogIndex.rawValue)
            hasher.combine(message.lastLogTerm.rawValue)
        case .preVoteResponse(let message):
            hasher.combine(7)
            hasher.combine(message.term.rawValue)
            hasher.combine(message.granted ? 1 : 0)
        case .timeoutNow(let message):
            hasher.combine(8)
            hasher.combine(message.term.rawValue)
        case .readIndex(let message), .readIndexResponse(let message):
            if case .readIndex = self { hasher.combine(9) } else { hasher.combine(10) }
            hasher.combine(message.term.rawValue)
            hasher.combine(message.id)
            hasher.combine(message.index.rawValue)
            hasher.combine(message.granted ? 1 : 0)
        case .appendEntries(let message):
            hasher.combine(3)
            hasher.combine(message.term.rawValue)
            hasher.combine(message.prevLogIndex.rawValue)
            hasher.combine(message.prevLogTerm.rawValue)
            hasher.combine(message.entries.count)
            hasher.combine(message.leaderCommit.rawValue)
            hasher.combine(message.readContext)
        case .appendResponse(let message):
            hasher.combine(4)
            hasher.combine(message.term.rawValue)
            hasher.combine(message.success ? 1 : 0)
            hasher.combine(message.matchIndex.rawValue)
            hasher.combine(message.rejectedIndex.rawValue)
            hasher.combine(message.hintIndex.rawValue)
            hasher.combine(message.readContext)
        case .installSnapshot(let message):
            hasher.combine(5)
            hasher.combine(message.term.rawValue)
            hasher.combine(message.snapshot.position)
            hasher.combine(message.snapshot.tag)
            hasher.combine(message.snapshot.data.count)
            hasher.combine(message.offset)
        case .snapshotAck(let message):
            hasher.combine(11)
            hasher.combine(message.term.rawValue)
            hasher.combine(message.position)
            hasher.combine(message.received)
        }
    }
}
