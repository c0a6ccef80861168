import SynodCore

/// Tuning of the leaderless Paxos log.
public struct PaxosLogOptions: ReplicaOptions, Equatable {
    /// Ticks without a decision before an instance's proposer tries a higher ballot.
    public var retryTicks = 20
    /// Randomized, doubling backoff after a refusal (off: dueling proposers can livelock).
    public var randomizedBackoff = true
    /// Ticks the lowest undecided slot may stay undecided, while later slots are in use,
    /// before this replica proposes a no-op there (which learns the chosen value, if any).
    public var gapTicks = 30
    /// Ticks between questions to a random peer about chosen values this replica lacks.
    public var learnIntervalTicks = 5
    /// Most chosen values in one answer.
    public var maxSlotsPerMessage = 1024
    /// Most commands waiting at one replica before it answers `overloaded`.
    public var maxQueuedCommands = 10_000
    /// Most linearizable reads waiting at one replica.
    public var maxPendingReads = 10_000
    /// Test-only switch for deliberately unsafe variants (of every instance).
    /// Ticks before a snapshot is sent to the same replica again.
    public var snapshotResendTicks = 10
    @_spi(Testing) public var mutation: PaxosMutation?

    public init() {}

    public func validate() throws {
        guard self.retryTicks >= 1 else { throw ConfigurationError("retryTicks must be positive") }
        guard self.gapTicks >= 1 else { throw ConfigurationError("gapTicks must be positive") }
        guard self.learnIntervalTicks >= 1 else { throw ConfigurationError("learnIntervalTicks must be positive") }
        guard self.maxSlotsPerMessage >= 1 && self.maxSlotsPerMessage <= maximumDecodedPaxosSlots else {
            throw ConfigurationError("maxSlotsPerMessage must lie in 1...\(maximumDecodedPaxosSlots)")
        }
        guard self.maxQueuedCommands >= 1 else { throw ConfigurationError("maxQueuedCommands must be positive") }
        guard self.maxPendingReads >= 1 else { throw ConfigurationError("maxPendingReads must be positive") }
        guard self.snapshotResendTicks >= 1 else { throw ConfigurationError("snapshotResendTicks must be positive") }
    }

    var instanceOptions: SingleDecreePaxos.Options {
        var options = SingleDecreePaxos.Options()
        options.retryTicks = self.retryTicks
        options.randomizedBackoff = self.randomizedBackoff
        options.mutation = self.mutation
        return options
    }
}
