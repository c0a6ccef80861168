import SynodCore

/// A Raft term: the epoch of at most one leader.
public struct Term: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The term number; 0 before any election.
    public var rawValue: UInt64
    /// Creates a term.
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Creates a term.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    /// The term before any election.
    public static let zero = Term(0)
    /// The next term.
    public var next: Term { Term(self.rawValue + 1) }
    public static func < (lhs: Term, rhs: Term) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "t\(self.rawValue)" }
}

/// A position in the Raft log; the first entry has index 1, index 0 is the empty prefix.
public struct LogIndex: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The index.
    public var rawValue: UInt64
    /// Creates an index.
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Creates an index.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    /// The empty prefix.
    public static let zero = LogIndex(0)
    /// The index after this one.
    public var next: LogIndex { LogIndex(self.rawValue + 1) }
    /// The index before this one (zero stays zero).
    public var previous: LogIndex { LogIndex(self.rawValue == 0 ? 0 : self.rawValue - 1) }
    /// This index moved by `count` positions.
    public func advanced(by count: Int) -> LogIndex { LogIndex(UInt64(Int64(self.rawValue) + Int64(count))) }
    public static func < (lhs: LogIndex, rhs: LogIndex) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "i\(self.rawValue)" }
}

/// One log entry: the term it was created in and what it carries: a client command, a new
/// configuration (membership changes), or nothing (a new leader's no-op).
public struct RaftEntry: Sendable, Equatable {
    /// The term of the leader that created the entry.
    public var term: Term
    /// The client command, if the entry carries one.
    public var command: Command?
    /// The configuration this entry moves the cluster to, if it is a membership change: it
    /// takes effect on a replica as soon as the entry is in its log (§6), committed or not.
    public var configuration: Membership?

    /// Creates an entry carrying `command` (`nil`: a no-op).
    public init(term: Term, command: Command?) {
        self.term = term
        self.command = command
        self.configuration = nil
    }

    /// Creates a membership-change entry.
    public init(term: Term, configuration: Membership) {
        self.term = term
        self.command = nil
        self.configuration = configuration
    }
}

/// A durable Raft fact. Replaying records in order rebuilds term, vote and log.
public enum RaftRecord: Sendable, Equatable {
    /// The current term and the vote cast in it.
    case hardState(term: Term, votedFor: NodeID?)
    /// Log entries starting at `first`; everything at or after `first` is replaced.
    case entries(first: LogIndex, [RaftEntry])
    /// A checkpoint begins: the log's compacted prefix ends at `base`, whose entry has `term`
    /// (the snapshot's), and the records that follow rewrite everything after it.
    case checkpoint(base: LogIndex, term: Term)
    /// A chunk of a leader's snapshot this follower holds (not its last: a complete snapshot is
    /// installed and written as a snapshot). A chunk at offset 0 begins a new partial snapshot;
    /// a later one continues it. A restarted follower resumes the transfer from what these hold.
    case snapshotChunk(InstallSnapshot)
}

/// The role of a Raft replica.
public enum RaftRole: String, Sendable {
    case follower
    /// Asking whether it could win an election (Pre-Vote), its term unchanged.
    case preCandidate
    case candidate
    case leader
}

/// Deliberately unsafe variants of Raft, for mutation tests that prove the simulator's checks
/// can fail. Never set outside tests.
@_spi(Testing)
public enum RaftMutation: String, Sendable, CaseIterable {
    /// Commit an entry of a previous term by counting replicas (breaks Figure 8's rule), and
    /// start a term without a no-op, as the paper's Figure 8 scenario does.
    case commitPreviousTermByCounting
    /// Grant votes without making them durable, and reply before any sync.
    case volatileVotes
    /// Serve a read at once from what this leader has applied, without confirming that it
    /// still leads or waiting for the commit index: a deposed or new leader serves stale reads.
    /// Breaks no protocol invariant; only the linearizability checker can catch it.
    case readsWithoutQuorumCheck
    /// Write a compaction's checkpoint without the entries after the snapshot (only the hard
    /// state): once the older records are discarded, a restart forgets entries this replica
    /// acknowledged. Needs the simulator's `snapshotInterval`.
    case checkpointWithoutEntries
    /// Grant a pre-vote while hearing from a leader (only the log is compared): a replica
    /// coming back from a partition with an up-to-date log raises its term and deposes the
    /// healthy leader. Breaks no safety property; the simulator's rejoin check catches it.
    case preVoteIgnoresLeader
    /// Count only the new voters of a joint configuration toward commits (as if the change
    /// took effect at once): the old voters can still elect a leader of their own that never
    /// saw those entries, and two configurations decide independently.
    case jointCommitByNewVoters
    /// Lease reads without check-quorum (which validation otherwise refuses): followers that
    /// hear from the leader still vote for another at once, so the lease protects nothing.
    case leaseWithoutCheckQuorum
    /// Bound the pipelining window by messages only, not by bytes: a slow follower's window
    /// holds up to `maxInflightMessages` full messages. Breaks no safety property; the
    /// monitor's flow-control check catches it.
    case inflightWithoutByteBound
}
