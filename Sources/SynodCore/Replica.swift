/// A pure, deterministic consensus protocol core: one replica of a replicated state machine.
///
/// A core does no I/O, reads no clock, starts no task, draws no system randomness and takes no
/// lock. Time enters through `tick()`, randomness from the seed handed to `init`. It speaks only
/// through `ready()` (see `Ready` for the driver's contract). Two drivers run every core
/// unchanged: the simulator (virtual disk and network) and the server runtime (real ones).
public protocol Replica: Sendable {
    /// A message between replicas, with its wire encoding (the transport's frames).
    associatedtype Message: Sendable & TraceDigestible & WireCodable
    /// A durable fact, with its wire encoding (the write-ahead log's records); replaying a
    /// replica's records in order rebuilds its durable state.
    associatedtype Record: WireCodable
    /// Protocol-specific tuning (timeouts, batch sizes), with validated defaults.
    associatedtype Options: ReplicaOptions
    /// The client-side logic that talks to this protocol (find the leader, broadcast, …).
    associatedtype Session: ClientSession
    /// The protocol's invariant checker, run by the simulator after every step.
    associatedtype Monitor: SafetyMonitor where Monitor.Observed == Self

    /// The protocol's name on the command line (`raft`, `multipaxos`, …).
    static var protocolName: String { get }
    /// What replicas agree on about the order of committed commands (default: `.total`).
    static var executionOrder: ExecutionOrder { get }

    /// Why `recovered` cannot be restored (records that contradict each other: damage that
    /// passed the storage checksums, or a bug), or `nil` when it can. A driver calls this before
    /// `init(config:restoring:randomSeed:)`, which may trap on such records, and refuses to
    /// start with the reason instead.
    static func problem(restoring recovered: Recovered<Record>) -> String?

    /// Creates a replica, restoring its durable state from `restoring`.
    ///
    /// - Parameters:
    ///   - config: identity, membership and options.
    ///   - restoring: the records this replica made durable before (empty on first start).
    ///   - randomSeed: the seed of all the replica's randomness.
    init(config: ReplicaConfig<Options>, restoring: Recovered<Record>, randomSeed: UInt64)

    /// Advances the replica's logical clock by one tick.
    mutating func tick()
    /// Handles a message from another replica, or from itself (a sync acknowledgement).
    mutating func receive(_ message: Message, from sender: NodeID)
    /// Proposes a client command. A replica that cannot order it answers with a `Rejection`.
    mutating func propose(_ command: Command)
    /// Asks for a linearizable read; the replica answers in `Ready.reads` or `Ready.rejected`.
    mutating func read(_ request: ReadRequest)
    /// Drains everything the replica wants done since the last call.
    mutating func ready() -> Ready<Message, Record>
}

extension Replica {
    /// Total order, the common case (Raft, Multi-Paxos, PBFT).
    public static var executionOrder: ExecutionOrder { .total }

    /// By default every sequence of records can be restored.
    public static func problem(restoring recovered: Recovered<Record>) -> String? { nil }
}

/// What replicas agree on about the order in which they execute committed commands; the
/// simulator checks state-machine safety accordingly.
public enum ExecutionOrder: Sendable, Equatable {
    /// Every replica executes one sequence: `Committed.position` names the same command on
    /// every replica (Raft log index, Paxos slot, PBFT sequence number).
    case total
    /// Replicas agree on the relative order of conflicting commands only (EPaxos: commands on
    /// the same key); non-conflicting commands may execute in different orders, and
    /// `Committed.position` is local to the replica (it only increases).
    case conflicting
}

/// Protocol-specific options: every field has a sensible default and `validate()` checks bounds.
public protocol ReplicaOptions: Sendable {
    /// The default options.
    init()
    /// Throws a `ConfigurationError` naming the field when an option is out of range.
    func validate() throws
}

/// Identity, membership and options of one replica.
public struct ReplicaConfig<Options: ReplicaOptions>: Sendable {
    /// This replica.
    public var id: NodeID
    /// Every member of the cluster, this replica included, sorted.
    public var members: [NodeID]
    /// Protocol-specific options.
    public var options: Options

    /// Creates a configuration; `members` is sorted and must contain `id` without duplicates.
    public init(id: NodeID, members: [NodeID], options: Options = Options()) {
        self.id = id
        self.members = members.sorted()
        self.options = options
    }

    /// Checks membership and options.
    public func validate() throws {
        guard !self.members.isEmpty else { throw ConfigurationError("members must not be empty") }
        guard self.members.contains(self.id) else {
            throw ConfigurationError("members \(self.members) do not contain this replica \(self.id)")
        }
        guard Set(self.members).count == self.members.count else {
            throw ConfigurationError("members \(self.members) contain a duplicate")
        }
        try self.options.validate()
    }
}

/// The durable records a replica wrote before, in the order it wrote them.
public struct Recovered<Record: Sendable>: Sendable {
    /// The records, oldest first. A torn final record has already been discarded by storage.
    public var records: [Record]

    /// Creates a recovered state.
    public init(records: [Record] = []) { self.records = records }

    /// Nothing recovered: a first start.
    public static var empty: Recovered { Recovered() }
}

/// A configuration value out of range.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, naming the field.
    public var description: String

    /// Creates an error.
    public init(_ description: String) { self.description = description }
}
