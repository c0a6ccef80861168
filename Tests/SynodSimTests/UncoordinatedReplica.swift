import SynodCore
import SynodSim
import Testing

/// A replica with no consensus at all: it executes a proposal at once and tells the others,
/// who execute it when the message arrives. Under reordering and crashes the replicas execute
/// conflicting commands in different orders, which the simulator's generic state-machine
/// checks must catch, whatever the protocol's own monitor says.
struct UncoordinatedCore: Sendable {
    struct Message: Sendable, TraceDigestible, WireCodable {
        var command: Command
        func digest(into hasher: inout StableHasher) {
            hasher.combine(self.command.client)
            hasher.combine(self.command.sequence)
        }
        func encode(into writer: inout WireWriter) { self.command.encode(into: &writer) }
        static func decode(from reader: inout WireReader) throws(WireError) -> Message {
            Message(command: try Command.decode(from: &reader))
        }
    }

    struct Options: ReplicaOptions {
        init() {}
        func validate() throws {}
    }

    let id: NodeID
    let members: [NodeID]
    var executed: UInt64 = 0
    var output = Ready<Message, Command>()

    init(config: ReplicaConfig<Options>) {
        self.id = config.id
        self.members = config.members
    }

    mutating func execute(_ command: Command) {
        self.executed += 1
        self.output.committed.append(Committed(position: self.executed, command: command))
    }

    mutating func propose(_ command: Command) {
        self.execute(command)
        for member in self.members where member != self.id {
            self.output.messages.append(Envelope(to: member, message: Message(command: command), afterSync: false))
        }
    }

    mutating func read(_ request: ReadRequest) { self.output.reads.append(request) }

    mutating func ready() -> Ready<Message, Command> {
        defer { self.output = Ready() }
        return self.output
    }
}

/// Which `ExecutionOrder` an `UncoordinatedReplica` declares.
protocol DeclaredOrder: Sendable { static var order: ExecutionOrder { get } }
/// A total order: the per-position check applies.
enum TotalOrder: DeclaredOrder { static var order: ExecutionOrder { .total } }
/// EPaxos-like conflict order: only the per-key check applies.
enum ConflictOrder: DeclaredOrder { static var order: ExecutionOrder { .conflicting } }

/// `UncoordinatedCore` as a `Replica` declaring `Order`.
struct UncoordinatedReplica<Order: DeclaredOrder>: Replica {
    typealias Session = LeaderFollowingSession
    typealias Monitor = SilentMonitor<Self>
    static var protocolName: String { "uncoordinated" }
    static var coordination: Coordination { .leaderless }
    static var executionOrder: ExecutionOrder { Order.order }
    var core: UncoordinatedCore
    init(config: ReplicaConfig<UncoordinatedCore.Options>, restoring: Recovered<Command>, randomSeed: UInt64) {
        self.core = UncoordinatedCore(config: config)
    }
    mutating func tick() {}
    mutating func receive(_ message: UncoordinatedCore.Message, from sender: NodeID) { self.core.execute(message.command) }
    mutating func propose(_ command: Command) { self.core.propose(command) }
    mutating func read(_ request: ReadRequest) { self.core.read(request) }
    mutating func ready() -> Ready<UncoordinatedCore.Message, Command> { self.core.ready() }
    var committedThrough: UInt64 { self.core.executed }
}

/// A monitor that never objects: whatever is caught, the simulator's own checks caught it.
struct SilentMonitor<Observed: Replica>: SafetyMonitor {
    init(members: [NodeID]) {}
    mutating func observe(node: NodeID, replica: Observed, ready: Ready<Observed.Message, Observed.Record>)
        -> [InvariantViolation] { [] }
    mutating func restarted(node: NodeID, replica: Observed, recovered: Recovered<Observed.Record>) {}
}

@Suite("The simulator's generic state-machine checks can fail")
struct GenericCheckTests {
    static func options() -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = 3
        options.faults = [.reordering, .latency]
        options.operations = 100
        options.readFraction = 0
        return options
    }

    @Test("a total-order protocol whose replicas disagree on a position is caught")
    func positionDisagreementCaught() throws {
        let reports = try SimulationSweep<UncoordinatedReplica<TotalOrder>>(options: Self.options()).run(seeds: 1...5)
        let violations = reports.flatMap(\.violations)
        #expect(violations.contains { $0.invariant == "state-machine-safety" && $0.detail.contains("at position") })
    }

    @Test("a conflict-order protocol whose replicas order one key's commands differently is caught")
    func perKeyDisagreementCaught() throws {
        let reports = try SimulationSweep<UncoordinatedReplica<ConflictOrder>>(options: Self.options()).run(seeds: 1...5)
        let violations = reports.flatMap(\.violations)
        #expect(violations.contains { $0.invariant == "state-machine-safety" && $0.detail.contains("on key") })
        #expect(!violations.contains { $0.detail.contains("at position") }, "positions are local under .conflicting")
    }
}
