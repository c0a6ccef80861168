import SynodCore

/// Raft's tuning knobs. Times are in ticks of the driver's clock.
public struct RaftOptions: ReplicaOptions, Equatable {
    /// Lower bound of the randomized election timeout.
    public var electionTimeoutTicksMin = 10
    /// Upper bound (inclusive) of the randomized election timeout.
    public var electionTimeoutTicksMax = 20
    /// Ticks between a leader's heartbeats.
    public var heartbeatIntervalTicks = 2
    /// Most entries in one AppendEntries message.
    public var maxEntriesPerMessage = 1024
    /// Most command bytes in one AppendEntries message (at least one entry is always sent), so
    /// that messages stay well below the transport's frame limit whatever the command sizes.
    public var maxPayloadBytesPerMessage = 2 << 20
    /// Most AppendEntries messages in flight to one follower (pipelining window).
    public var maxInflightMessages = 64
    /// Most uncommitted entries a leader accepts before answering `overloaded`.
    public var maxUncommittedEntries = 100_000
    /// Most linearizable reads waiting at a leader.
    public var maxPendingReads = 100_000
    /// Heartbeats a leader waits for a follower to acknowledge a snapshot before sending it
    /// again (a snapshot is large; a lost one is resent, a slow one is not resent at once).
    public var snapshotResendHeartbeats = 5
    /// Most entries a learner may lag behind the leader's log and still be promoted to voter
    /// (a voter far behind would leave the new configuration without a working majority).
    public var maxLearnerLagEntries = 1000

    /// Pre-Vote (Ongaro's thesis, §9.6): a replica whose election timer fires first asks
    /// whether it could win, without raising its term; replicas that heard from a leader within
    /// the minimum election timeout say no. A replica cut off by a partition therefore never
    /// raises its term, and cannot depose a healthy leader when it comes back.
    public var preVote = true
    /// Check-quorum: a leader that has not heard from a quorum within the minimum election
    /// timeout steps down, and a replica that heard from a leader within that time ignores
    /// vote requests of a higher term (unless they come from a leadership transfer).
    public var checkQuorum = true

    /// Test-only switch for deliberately unsafe variants.
    @_spi(Testing) public var mutation: RaftMutation?

    /// The default options.
    public init() {}

    public func validate() throws {
        guard self.electionTimeoutTicksMin >= 2 else {
            throw ConfigurationError("electionTimeoutTicksMin must be at least 2, got \(self.electionTimeoutTicksMin)")
        }
        guard self.electionTimeoutTicksMax >= self.electionTimeoutTicksMin else {
            throw ConfigurationError("electionTimeoutTicksMax must be at least electionTimeoutTicksMin")
        }
        guard self.heartbeatIntervalTicks >= 1, self.heartbeatIntervalTicks < self.electionTimeoutTicksMin else {
            throw ConfigurationError("heartbeatIntervalTicks must lie in 1..<electionTimeoutTicksMin")
        }
        guard self.maxEntriesPerMessage >= 1 && self.maxEntriesPerMessage <= maximumDecodedRaftEntries else {
            throw ConfigurationError("maxEntriesPerMessage must lie in 1...\(maximumDecodedRaftEntries)")
        }
        guard self.maxPayloadBytesPerMessage >= 1 else { throw ConfigurationError("maxPayloadBytesPerMessage must be positive") }
        guard self.maxInflightMessages >= 1 else { throw ConfigurationError("maxInflightMessages must be positive") }
        guard self.maxUncommittedEntries >= 1 else { throw ConfigurationError("maxUncommittedEntries must be positive") }
        guard self.maxPendingReads >= 1 else { throw ConfigurationError("maxPendingReads must be positive") }
        guard self.snapshotResendHeartbeats >= 1 else { throw ConfigurationError("snapshotResendHeartbeats must be positive") }
        guard self.maxLearnerLagEntries >= 0 else { throw ConfigurationError("maxLearnerLagEntries must not be negative") }
    }

    /// With Pre-Vote, a replica let back after a partition cannot depose a healthy leader.
    public var protectsLeaderFromRejoin: Bool { self.preVote }

    /// The options settable by name: `pre-vote` and `check-quorum` (on or off).
    public static let settable = ["pre-vote", "check-quorum"]

    public mutating func set(_ name: String, to value: String) throws {
        switch name {
        case "pre-vote": self.preVote = try ConfigurationError.flag(name, value)
        case "check-quorum": self.checkQuorum = try ConfigurationError.flag(name, value)
        default:
            throw ConfigurationError("unknown Raft option '\(name)'; known: \(Self.settable.joined(separator: ", "))")
        }
    }
}
