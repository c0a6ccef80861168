import SynodCore

/// Multi-Paxos's tuning knobs. Times are in ticks of the driver's clock.
public struct MultiPaxosOptions: ReplicaOptions, Equatable {
    /// Lower bound of the randomized timeout after which a replica that hears no leader runs
    /// phase 1 with a higher ballot.
    public var electionTimeoutTicksMin = 10
    /// Upper bound (inclusive) of that timeout.
    public var electionTimeoutTicksMax = 20
    /// Ticks between a leader's heartbeats (empty accepts carrying the chosen prefix).
    public var heartbeatIntervalTicks = 2
    /// Ticks after which a leader sends an unacknowledged accept again.
    public var resendTicks = 4
    /// Most slots in one accept or catch-up message (the batch size).
    public var maxSlotsPerMessage = 1024
    /// Most command bytes in one accept or catch-up message (at least one slot is always
    /// sent), so that messages stay well below the transport's frame limit.
    public var maxPayloadBytesPerMessage = 2 << 20
    /// Most acceptances in one promise; an acceptor with more sends them in pages, which the
    /// candidate asks for one after another (so phase 1 works however long the log).
    public var maxPromiseSlots = 4096
    /// Most slots a leader keeps in flight before answering `overloaded`.
    public var maxUncommittedSlots = 100_000
    /// Most linearizable reads waiting at a leader.
    public var maxPendingReads = 100_000
    /// Ticks before a snapshot is sent to the same replica again (a snapshot is large; one
    /// that was lost is resent, a slow one is not resent at once).
    public var snapshotResendTicks = 10
    /// Flexible quorums (Howard et al., "Flexible Paxos"): the phase-2 (accept) quorum size;
    /// `nil` is a majority. Phase-1 quorums grow to match, so that every phase-1 quorum meets
    /// every phase-2 quorum and every other phase-1 quorum.
    public var phase2QuorumSize: Int?
    /// Pre-Vote, as in Raft (thesis §9.6): a replica whose election timer fires first asks
    /// the others whether they would promise it a higher ballot, changing nothing durable;
    /// replicas that heard from a leader within the minimum election timeout say no. A
    /// replica that restarts or returns from a partition so cannot depose a healthy leader.
    public var preVote = true

    /// With Pre-Vote, a replica let back after a partition cannot depose a healthy leader.
    public var protectsLeaderFromRejoin: Bool { self.preVote }

    public mutating func set(_ name: String, to value: String) throws {
        switch name {
        case "pre-vote": self.preVote = try ConfigurationError.flag(name, value)
        default: throw ConfigurationError("unknown Multi-Paxos option '\(name)'; known: pre-vote")
        }
    }

    /// Test-only switch for deliberately unsafe variants.
    @_spi(Testing) public var mutation: PaxosMutation?

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
        guard self.resendTicks >= 1 else { throw ConfigurationError("resendTicks must be positive") }
        guard self.maxSlotsPerMessage >= 1 && self.maxSlotsPerMessage <= maximumDecodedPaxosSlots else {
            throw ConfigurationError("maxSlotsPerMessage must lie in 1...\(maximumDecodedPaxosSlots)")
        }
        guard self.maxPayloadBytesPerMessage >= 1 else { throw ConfigurationError("maxPayloadBytesPerMessage must be positive") }
        guard self.maxPromiseSlots >= 1 && self.maxPromiseSlots <= maximumDecodedPaxosSlots else {
            throw ConfigurationError("maxPromiseSlots must lie in 1...\(maximumDecodedPaxosSlots)")
        }
        guard self.maxUncommittedSlots >= 1 else { throw ConfigurationError("maxUncommittedSlots must be positive") }
        guard self.maxPendingReads >= 1 else { throw ConfigurationError("maxPendingReads must be positive") }
        guard self.snapshotResendTicks >= 1 else { throw ConfigurationError("snapshotResendTicks must be positive") }
        if let size = self.phase2QuorumSize, size < 1 {
            throw ConfigurationError("phase2QuorumSize must be positive, got \(size)")
        }
    }

    /// The quorum system for `memberCount` replicas.
    public func quorum(memberCount: Int) throws -> QuorumSystem {
        guard let phase2 = self.phase2QuorumSize else { return .majority(of: memberCount) }
        let phase1 = max(memberCount - phase2 + 1, memberCount / 2 + 1)
        return try .flexible(memberCount: memberCount, phase1Size: phase1, phase2Size: phase2)
    }
}
