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
    /// Most command bytes in flight to one follower: no message is sent while this many are
    /// unacknowledged (the last one sent may cross it, by at most one message). With
    /// `maxInflightMessages`, what bounds the leader's (and its transport's) memory for a slow
    /// follower.
    public var maxInflightBytes = 16 << 20
    /// Most uncommitted entries a leader accepts before answering `overloaded`.
    public var maxUncommittedEntries = 100_000
    /// Most command bytes a leader holds uncommitted from its own term before answering
    /// `overloaded` (a proposal is always accepted when nothing of its term is uncommitted, so a
    /// command larger than the bound still commits, alone).
    public var maxUncommittedBytes = 64 << 20
    /// Most linearizable reads waiting at a leader.
    public var maxPendingReads = 100_000
    /// Heartbeats a leader waits for a follower to acknowledge a snapshot before sending it
    /// again (a snapshot is large; a lost one is resent, a slow one is not resent at once).
    public var snapshotResendHeartbeats = 5
    /// Most snapshot bytes in one InstallSnapshot message: a snapshot travels in chunks, one
    /// in flight at a time, and a lost chunk is sent again from where the follower stopped.
    public var maxSnapshotChunkBytes = 1 << 20
    /// The largest chunk allowed: a follower writes each chunk it receives as one record, and
    /// the write-ahead log's records stay under 16 MiB.
    public static let maximumSnapshotChunkBytes = 8 << 20
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

    /// Lease reads (thesis §6.4.1): a leader that heard from a quorum recently serves
    /// linearizable reads without a heartbeat round, relying on check-quorum (followers that
    /// heard from it refuse to elect another for an election timeout) and on clocks that drift
    /// apart by at most `maxClockDrift`. Off by default; needs check-quorum.
    public var leaseReads = false
    /// The most a replica's clock may run fast or slow, as a fraction of the nominal tick
    /// (0.25: ticks last between 0.75 and 1.25 of nominal). A lease lasts
    /// (electionTimeoutTicksMin - 1) × (1 - drift) / (1 + drift) ticks from the heartbeat that
    /// confirmed it.
    public var maxClockDrift = 0.25
    /// Follower reads (ReadIndex on a follower, thesis §6.4): a follower asks the leader for a
    /// read index, which the leader gives once it has confirmed its leadership, and serves the
    /// read from its own state machine once applied that far. On by default.
    public var followerReads = true

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
        guard self.maxInflightBytes >= 1 else { throw ConfigurationError("maxInflightBytes must be positive") }
        guard self.maxUncommittedBytes >= 1 else { throw ConfigurationError("maxUncommittedBytes must be positive") }
        guard self.maxUncommittedEntries >= 1 else { throw ConfigurationError("maxUncommittedEntries must be positive") }
        guard self.maxPendingReads >= 1 else { throw ConfigurationError("maxPendingReads must be positive") }
        guard self.snapshotResendHeartbeats >= 1 else { throw ConfigurationError("snapshotResendHeartbeats must be positive") }
        guard self.maxSnapshotChunkBytes >= 1 && self.maxSnapshotChunkBytes <= Self.maximumSnapshotChunkBytes else {
            throw ConfigurationError("maxSnapshotChunkBytes must lie in 1...\(Self.maximumSnapshotChunkBytes) (a follower keeps each chunk as one WAL record)")
        }
        guard self.maxLearnerLagEntries >= 0 else { throw ConfigurationError("maxLearnerLagEntries must not be negative") }
        guard self.maxClockDrift >= 0 && self.maxClockDrift < 1 else {
            throw ConfigurationError("maxClockDrift must lie in 0..<1, got \(self.maxClockDrift)")
        }
        if self.leaseReads {
            guard self.checkQuorum || self.mutation == .leaseWithoutCheckQuorum else {
                throw ConfigurationError("leaseReads needs checkQuorum: without it a new leader may be elected while the lease runs")
            }
            guard self.leaseTicks >= 1 else {
                throw ConfigurationError("with maxClockDrift \(self.maxClockDrift) and electionTimeoutTicksMin \(self.electionTimeoutTicksMin) a lease lasts no tick")
            }
        }
    }

    /// With Pre-Vote, a replica let back after a partition cannot depose a healthy leader.
    public var protectsLeaderFromRejoin: Bool { self.preVote }

    /// Lease reads are safe while clocks drift by at most `maxClockDrift`.
    public var clockDriftBound: Double? { self.leaseReads ? self.maxClockDrift : nil }

    /// How many of its own ticks a lease lasts after the heartbeat that confirmed it: the
    /// followers that acknowledged it wait at least `electionTimeoutTicksMin - 1` of theirs
    /// before voting for anyone else, and the two clocks may differ by the drift bound.
    public var leaseTicks: Int {
        let drift = self.maxClockDrift
        return Int((Double(self.electionTimeoutTicksMin - 1) * (1 - drift) / (1 + drift)).rounded(.down))
    }

    /// The options settable by name: `pre-vote`, `check-quorum`, `lease-reads` and
    /// `follower-reads` (on or off), `max-clock-drift` (a fraction), `max-inflight` (the
    /// pipelining window in messages; 1 turns pipelining off), `max-inflight-bytes` (the window
    /// in command bytes), `max-uncommitted-bytes` and `snapshot-chunk-bytes`.
    public static let settable = [
        "pre-vote", "check-quorum", "lease-reads", "follower-reads", "max-clock-drift", "max-inflight", "max-inflight-bytes",
        "max-uncommitted-bytes", "snapshot-chunk-bytes",
    ]

    public mutating func set(_ name: String, to value: String) throws {
        switch name {
        case "pre-vote": self.preVote = try ConfigurationError.flag(name, value)
        case "check-quorum": self.checkQuorum = try ConfigurationError.flag(name, value)
        case "lease-reads": self.leaseReads = try ConfigurationError.flag(name, value)
        case "follower-reads": self.followerReads = try ConfigurationError.flag(name, value)
        case "max-clock-drift":
            guard let drift = Double(value), drift.isFinite else {
                throw ConfigurationError("option 'max-clock-drift' takes a fraction such as 0.25, got '\(value)'")
            }
            self.maxClockDrift = drift
        case "max-inflight":
            guard let window = Int(value), window >= 1 else {
                throw ConfigurationError("option 'max-inflight' takes a positive number of messages, got '\(value)'")
            }
            self.maxInflightMessages = window
        case "max-inflight-bytes", "max-uncommitted-bytes", "snapshot-chunk-bytes":
            guard let bytes = Int(value), bytes >= 1 else {
                throw ConfigurationError("option '\(name)' takes a positive number of bytes, got '\(value)'")
            }
            switch name {
            case "max-inflight-bytes": self.maxInflightBytes = bytes
            case "max-uncommitted-bytes": self.maxUncommittedBytes = bytes
            default: self.maxSnapshotChunkBytes = bytes
            }
        default:
            throw ConfigurationError("unknown Raft option '\(name)'; known: \(Self.settable.joined(separator: ", "))")
        }
    }
}
