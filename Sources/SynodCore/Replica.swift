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
    /// Whether clients go through a leader, and so what makes a replica able to serve them
    /// (its health): every protocol states it.
    static var coordination: Coordination { get }
    /// Which commands the protocol can order (default: `.any`); the core refuses the others
    /// with `Rejection.Reason.unsupported`, and the simulator's workloads leave them out.
    static var commandSupport: CommandSupport { get }
    /// What the protocol promises its clients (default: `.linearizable`).
    static var consistency: Consistency { get }

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
    /// Proposes a client command that arrived with `authenticator` (its sender's signature or
    /// MAC, if any). A core that authenticates its clients (PBFT) checks it here and ignores a
    /// command it cannot verify; the default proposes the command and ignores the authenticator.
    mutating func propose(_ command: Command, authenticator: Authenticator?)
    /// The authenticator for a request this node's gateway sends on behalf of its clients
    /// (default: none).
    func authenticate(_ request: ClientRequest) -> Authenticator?
    /// The authenticator for a reply this replica sends to another node's gateway or to a
    /// directly connected client (default: none).
    func authenticate(_ reply: ClientReply) -> Authenticator?
    /// Whether this node's gateway may believe `reply`, received from `sender` with
    /// `authenticator`: the driver drops replies that fail, before the session sees them
    /// (default: believe every reply; the transport authenticates its links).
    func verify(_ reply: ClientReply, from sender: NodeID, authenticator: Authenticator?) -> Bool
    /// Asks for a linearizable read; the replica answers in `Ready.reads` or `Ready.rejected`.
    mutating func read(_ request: ReadRequest)
    /// Drains everything the replica wants done since the last call.
    mutating func ready() -> Ready<Message, Record>

    /// Every position up to here is known to this replica to be committed (Raft's commit
    /// index, a Paxos log's chosen prefix), whether or not it was handed out in `ready()` yet:
    /// for status reports.
    var committedThrough: UInt64 { get }

    /// Log compaction: the driver has applied every committed command up to `position` (a
    /// `Committed.position` it applied, or 0 for none) and `state` is its serialised state
    /// machine at that point. A core that compacts discards its log up to `position`, keeps the
    /// snapshot to send to replicas that fall behind it, and hands it back in the next
    /// `Ready.snapshot` with a checkpoint (see `Ready`). A core may ignore the call (the
    /// default: no compaction) or a position it cannot compact at.
    mutating func compact(through position: UInt64, state: [UInt8])

    /// The `Snapshot.tag` a compaction through `position` would carry, or `nil` when the core
    /// would ignore it (not compacting, already compacted there, or not executed yet). A driver
    /// that writes its snapshot before calling `compact(through:state:)` (off its event loop)
    /// stamps the file with it.
    func snapshotTag(at position: UInt64) -> UInt64?

    /// The `Snapshot.identity` of a compaction through `position` (see `snapshotTag(at:)`):
    /// what else the protocol identifies the checkpoint by. Default: nothing.
    func snapshotIdentity(at position: UInt64) -> [UInt8]

    /// Asks this replica, if it leads, to hand leadership to `target` (Raft's leadership
    /// transfer, etcd's MoveLeader). `nil` means the transfer started (or there is nothing to
    /// do: `target` is this leader); its outcome shows in `Ready.events`, as the target's
    /// `becameLeader`. Default: refused as `.unsupported`.
    mutating func transferLeadership(to target: NodeID) -> LeadershipTransferRefusal?

    /// The configuration this replica works with now (the newest in its log, committed or
    /// not), or `nil` when the protocol's membership is fixed at `ReplicaConfig.members`
    /// (the default).
    var membership: Membership? { get }

    /// Asks this replica, if it leads, to move the cluster to `voters` and `learners` (any
    /// change at once: add, remove, replace several, promote a learner, demote a voter).
    /// `nil` means the change started; it completes on its own (Raft: through a joint
    /// configuration, left once committed), and shows in `membership`. `addresses` adds or
    /// replaces members' peer addresses (kept with the configuration; the others stay).
    /// Default: refused as `.unsupported`.
    mutating func changeMembership(voters: [NodeID], learners: [NodeID], addresses: [NodeID: String]) -> MembershipChangeRefusal?

    /// Whether `membership` is committed (a change asked for has then taken effect for good,
    /// once it is also not joint). Default: true (a fixed membership).
    var membershipIsCommitted: Bool { get }

    /// Whether this replica serves linearizable reads itself now (a leader; a Raft follower
    /// with follower reads, which asks the leader for a read index): a gateway on this node
    /// then hands its clients' reads to it rather than to the leader. Default: false.
    var readsLocally: Bool { get }

    /// Protocol-specific counters since this replica started, for reports (Raft: reads served
    /// under a lease and as a follower). Default: none.
    var counters: [String: UInt64] { get }
}

extension Replica {
    /// Total order, the common case (Raft, Multi-Paxos, PBFT).
    public static var executionOrder: ExecutionOrder { .total }

    /// Any command, the common case.
    public static var commandSupport: CommandSupport { .any }

    /// Linearizability, the common case.
    public static var consistency: Consistency { .linearizable }

    /// By default a core keeps its whole log.
    public mutating func compact(through position: UInt64, state: [UInt8]) {}

    /// By default a command's authenticator is not checked.
    public mutating func propose(_ command: Command, authenticator: Authenticator?) { self.propose(command) }

    /// By default requests carry no authenticator.
    public func authenticate(_ request: ClientRequest) -> Authenticator? { nil }

    /// By default replies carry no authenticator.
    public func authenticate(_ reply: ClientReply) -> Authenticator? { nil }

    /// By default every reply is believed.
    public func verify(_ reply: ClientReply, from sender: NodeID, authenticator: Authenticator?) -> Bool { true }

    /// By default a core does not compact.
    public func snapshotTag(at position: UInt64) -> UInt64? { nil }

    /// By default a checkpoint is identified by its position and tag alone.
    public func snapshotIdentity(at position: UInt64) -> [UInt8] { [] }

    /// By default every sequence of records can be restored.
    public static func problem(restoring recovered: Recovered<Record>) -> String? { nil }

    /// By default a protocol has no leadership to transfer.
    public mutating func transferLeadership(to target: NodeID) -> LeadershipTransferRefusal? { .unsupported }

    /// By default membership is fixed.
    public var membership: Membership? { nil }

    /// By default reads go where the client session sends them.
    public var readsLocally: Bool { false }

    /// By default a core counts nothing for reports.
    public var counters: [String: UInt64] { [:] }

    /// By default membership is fixed.
    public mutating func changeMembership(voters: [NodeID], learners: [NodeID], addresses: [NodeID: String]) -> MembershipChangeRefusal? {
        .unsupported
    }

    /// A change that leaves every member's address as it is.
    public mutating func changeMembership(voters: [NodeID], learners: [NodeID]) -> MembershipChangeRefusal? {
        self.changeMembership(voters: voters, learners: learners, addresses: [:])
    }

    /// By default membership is fixed, hence committed.
    public var membershipIsCommitted: Bool { true }
}

/// Why a replica did not start a leadership transfer.
public enum LeadershipTransferRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The protocol does not transfer leadership (it has no leader, or no transfer yet).
    case unsupported
    /// This replica does not lead; `hint` is the leader it knows of, if any.
    case notLeader(hint: NodeID?)
    /// The target is not a voting member.
    case unknownTarget(NodeID)
    /// A transfer to another replica is under way.
    case inProgress(to: NodeID)

    public var description: String {
        switch self {
        case .unsupported: return "this protocol does not transfer leadership"
        case .notLeader(let hint): return "this replica does not lead" + (hint.map { "; the leader is \($0)" } ?? "")
        case .unknownTarget(let target): return "\(target) is not a voting member"
        case .inProgress(let target): return "a transfer to \(target) is under way"
        }
    }
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
    /// Replicas agree on no order and need not execute every command: a quorum register
    /// (ABD) keeps each key's newest write, by version, at a majority; an eventually
    /// consistent store keeps each key's siblings and merges. The replica that coordinates an
    /// operation hands the driver, once the operation completes, what the state machine must
    /// hold to answer it (ABD: the write it completed, or the write a read returns, then the
    /// read itself): the driver applies it outside the exactly-once table (the protocol's
    /// versions, not sequence numbers, make each write take effect once) and answers the
    /// client from the state machine. The simulator checks such a protocol by its monitor and
    /// the clients' history, not by comparing replicas' state machines.
    case unordered
}

/// Which client commands a protocol can order.
public enum CommandSupport: String, Sendable, Equatable {
    /// Any command (state-machine replication).
    case any
    /// Single-key reads and single-key writes that overwrite (`Footprint.overwrites`): a put,
    /// a delete. A quorum register has no consensus, so no read-modify-write (cas, append).
    case singleKeyOverwrites = "single-key-overwrites"
    /// The eventually consistent store's own requests (`SynodCausal.CausalRequest`): a get,
    /// and a put carrying the causal context its client read.
    case causalStore = "causal-store"
}

/// What a protocol promises its clients, and so how the simulator judges their history.
public enum Consistency: String, Sendable, Equatable {
    /// Every history is linearizable: the checker's verdict decides a run.
    case linearizable
    /// Replicas accept operations on their own and converge once they can talk: the history
    /// is checked and reported, and the monitor's convergence check decides a run.
    case eventual
}

/// How a protocol orders clients' commands, which decides when a replica can serve them.
public enum Coordination: String, Sendable, Equatable {
    /// One replica leads (Raft's leader, Multi-Paxos's distinguished proposer, PBFT's primary):
    /// a replica can serve once it knows a leader, to which it forwards.
    case leader
    /// Any replica orders commands itself (the Paxos log, EPaxos): a replica can serve once it
    /// reaches a quorum of the members, itself included.
    case leaderless
}

/// Protocol-specific options: every field has a sensible default and `validate()` checks bounds.
public protocol ReplicaOptions: Sendable {
    /// The default options.
    init()
    /// Throws a `ConfigurationError` naming the field when an option is out of range.
    func validate() throws
    /// Sets the option called `name` (in kebab case, as on the command line:
    /// `--option pre-vote=off`) from its text, or throws a `ConfigurationError` naming the
    /// options that exist. Default: the protocol has no settable options.
    mutating func set(_ name: String, to value: String) throws
    /// Whether a replica cut off from the others and let back can never depose a leader that
    /// kept its majority meanwhile (Raft's Pre-Vote): the simulator's `rejoin` fault then
    /// checks it. Default: no such claim.
    var protectsLeaderFromRejoin: Bool { get }
    /// The most replicas' clocks may drift (a fraction of the nominal tick) for the options to
    /// stay safe, or `nil` when nothing depends on clocks (the default). Raft's lease reads set
    /// one; the simulator's `clock-drift` fault keeps within it.
    var clockDriftBound: Double? { get }
}

extension ReplicaOptions {
    public var protectsLeaderFromRejoin: Bool { false }

    public var clockDriftBound: Double? { nil }

    public mutating func set(_ name: String, to value: String) throws {
        throw ConfigurationError("unknown option '\(name)': this protocol has no settable options")
    }
}

extension ConfigurationError {
    /// Parses an option's on/off value.
    public static func flag(_ name: String, _ value: String) throws -> Bool {
        switch value.lowercased() {
        case "on", "true", "yes", "1": return true
        case "off", "false", "no", "0": return false
        default: throw ConfigurationError("option '\(name)' takes on or off, got '\(value)'")
        }
    }
}

/// Identity, membership and options of one replica.
public struct ReplicaConfig<Options: ReplicaOptions>: Sendable {
    /// This replica.
    public var id: NodeID
    /// Every member of the cluster, this replica included, sorted.
    public var members: [NodeID]
    /// Protocol-specific options.
    public var options: Options
    /// What a command's payload touches, as the application state machine says (the driver
    /// sets it from `StateMachine.footprint(of:)`): the conflict relation a core that orders
    /// only conflicting commands (EPaxos) computes dependencies with. Default: everything.
    public var footprint: @Sendable ([UInt8]) -> Footprint
    /// The keys of a protocol that authenticates its messages or its clients (PBFT); empty
    /// for crash-fault protocols, whose links are authenticated by the transport.
    public var keys: KeyRing
    /// This replica is not in `members` (the cluster's first configuration): it joins a
    /// running cluster, which added it by a membership change, and learns every later
    /// configuration from the log. Only for protocols whose membership changes.
    public var joining = false

    /// Creates a configuration; `members` is sorted and must contain `id` without duplicates.
    public init(
        id: NodeID, members: [NodeID], options: Options = Options(),
        footprint: @escaping @Sendable ([UInt8]) -> Footprint = { _ in .everything }, keys: KeyRing = KeyRing()
    ) {
        self.id = id
        self.members = members.sorted()
        self.options = options
        self.footprint = footprint
        self.keys = keys
    }

    /// Checks membership and options.
    public func validate() throws {
        guard !self.members.isEmpty else { throw ConfigurationError("members must not be empty") }
        if self.joining {
            guard !self.members.contains(self.id) else {
                throw ConfigurationError("replica \(self.id) joins, yet is in the first configuration \(self.members)")
            }
        } else {
            guard self.members.contains(self.id) else {
                throw ConfigurationError("members \(self.members) do not contain this replica \(self.id)")
            }
        }
        guard Set(self.members).count == self.members.count else {
            throw ConfigurationError("members \(self.members) contain a duplicate")
        }
        if let stranger = self.keys.verifying.keys.sorted().first(where: { !self.members.contains($0) }) {
            throw ConfigurationError("keys name \(stranger), which is not a member")
        }
        try self.options.validate()
    }
}

/// The durable state a replica wrote before: its newest snapshot, and its records in the order
/// it wrote them.
///
/// Records may begin before the snapshot (a crash between making a snapshot durable and
/// discarding the records it covers): a core restores from the snapshot and ignores what the
/// records say about positions at or below it.
public struct Recovered<Record: Sendable>: Sendable {
    /// The newest durable snapshot (`Ready.snapshot`), if any; the driver restored its state
    /// machine from it.
    public var snapshot: Snapshot?
    /// The records, oldest first. A torn final record has already been discarded by storage.
    public var records: [Record]

    /// Creates a recovered state.
    public init(snapshot: Snapshot? = nil, records: [Record] = []) {
        self.snapshot = snapshot
        self.records = records
    }

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
