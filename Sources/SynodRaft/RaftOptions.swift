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
    }
}
