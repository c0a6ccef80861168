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
    /// Most waiting values (commands and read barriers) a proposer puts in one slot; 1 turns
    /// batching off.
    public var maxBatchValues = 256
    /// Most command payload bytes in one slot's batch (a larger command goes alone).
    public var maxBatchBytes = 256 << 10
    /// A proposer runs phase 1 for its next slot while its current slot is decided, so the next
    /// value needs phase 2 only (off: both phases for every value).
    public var prepareAhead = true
    /// Ticks before a snapshot is sent to the same replica again.
    public var snapshotResendTicks = 10
    /// Test-only switch for deliberately unsafe variants (of every instance).
    @_spi(Testing) public var mutation: PaxosMutation?

    public init() {}

    /// The options settable by name: `max-batch` (values per slot; 1 turns batching off),
    /// `max-batch-bytes` (command bytes per slot) and `prepare-ahead` (on or off).
    public mutating func set(_ name: String, to value: String) throws {
        switch name {
        case "prepare-ahead":
            switch value {
            case "on": self.prepareAhead = true
            case "off": self.prepareAhead = false
            default: throw ConfigurationError("option 'prepare-ahead' takes on or off, got '\(value)'")
            }
        case "max-batch", "max-batch-bytes":
            guard let number = Int(value), number >= 1 else {
                throw ConfigurationError("option '\(name)' takes a positive number, got '\(value)'")
            }
            if name == "max-batch" { self.maxBatchValues = number } else { self.maxBatchBytes = number }
        default: throw ConfigurationError("unknown Paxos log option '\(name)'; known: max-batch, max-batch-bytes, prepare-ahead")
        }
    }

    public func validate() throws {
        guard self.retryTicks >= 1 else { throw ConfigurationError("retryTicks must be positive") }
        guard self.gapTicks >= 1 else { throw ConfigurationError("gapTicks must be positive") }
        guard self.learnIntervalTicks >= 1 else { throw ConfigurationError("learnIntervalTicks must be positive") }
        guard self.maxSlotsPerMessage >= 1 && self.maxSlotsPerMessage <= maximumDecodedPaxosSlots else {
            throw ConfigurationError("maxSlotsPerMessage must lie in 1...\(maximumDecodedPaxosSlots)")
        }
        guard self.maxQueuedCommands >= 1 else { throw ConfigurationError("maxQueuedCommands must be positive") }
        guard self.maxPendingReads >= 1 else { throw ConfigurationError("maxPendingReads must be positive") }
        guard self.maxBatchValues >= 1 && self.maxBatchValues <= maximumBatchValues else {
            throw ConfigurationError("maxBatchValues must lie in 1...\(maximumBatchValues)")
        }
        guard self.maxBatchBytes >= 1 else { throw ConfigurationError("maxBatchBytes must be positive") }
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
