import SynodCore

/// A message between Raft replicas. The sender is carried by the transport.
public enum RaftMessage: Sendable, Equatable {
    /// A candidate asks for a vote (§5.2, §5.4.1).
    case requestVote(RequestVote)
    /// The answer to a vote request.
    case voteResponse(VoteResponse)
    /// A leader replicates entries or sends a heartbeat (§5.3).
    case appendEntries(AppendEntries)
    /// The answer to an AppendEntries; also a leader's own sync acknowledgement.
    case appendResponse(AppendResponse)

    /// The term the message was sent in.
    public var term: Term {
        switch self {
        case .requestVote(let message): return message.term
        case .voteResponse(let message): return message.term
        case .appendEntries(let message): return message.term
        case .appendResponse(let message): return message.term
        }
    }
}

/// RequestVote arguments.
public struct RequestVote: Sendable, Equatable {
    public var term: Term
    public var lastLogIndex: LogIndex
    public var lastLogTerm: Term
}

/// RequestVote results.
public struct VoteResponse: Sendable, Equatable {
    public var term: Term
    public var granted: Bool
}

/// AppendEntries arguments.
public struct AppendEntries: Sendable, Equatable {
    public var term: Term
    public var prevLogIndex: LogIndex
    public var prevLogTerm: Term
    public var entries: [RaftEntry]
    public var leaderCommit: LogIndex
    /// Non-zero when the message confirms leadership for pending linearizable reads.
    public var readContext: UInt64
}

/// AppendEntries results.
public struct AppendResponse: Sendable, Equatable {
    public var term: Term
    public var success: Bool
    /// On success, the last index known to match the leader's log.
    public var matchIndex: LogIndex
    /// On rejection, the `prevLogIndex` that did not match.
    public var rejectedIndex: LogIndex
    /// On rejection, an index below which the follower's log may still match.
    public var hintIndex: LogIndex
    /// Echo of the request's `readContext`.
    public var readContext: UInt64
}

extension RaftMessage: TraceDigestible {
    public func digest(into hasher: inout StableHasher) {
        switch self {
        case .requestVote(let message):
            hasher.combine(1)
            hasher.combine(message.term.rawValue)
            hasher.combine(message.lastLogIndex.rawValue)
            hasher.combine(message.lastLogTerm.rawValue)
        case .voteResponse(let message):
            hasher.combine(2)
            hasher.combine(message.term.rawValue)
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
        }
    }
}
