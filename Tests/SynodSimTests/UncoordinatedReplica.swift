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
    let pairs: Pairs
    var executed: UInt64 = 0
    var output = Ready<Message, Command>()

    /// How commands map to positions: one each, or two per position as a batching protocol
    /// hands them over (index 0, then 1), or two per position with their indices swapped.
    enum Pairs: Sendable { case none, batched, swapped }

    init(config: ReplicaConfig<Options>, pairs: Pairs = .none) {
        self.id = config.id
        self.members = config.members
        self.pairs = pairs
    }

    mutating func execute(_ command: Command) {
        self.executed += 1
        switch self.pairs {
        case .none:
            self.output.committed.append(Committed(position: self.executed, command: command))
        case .batched, .swapped:
            let index = Int((self.executed + 1) % 2)
            self.output.committed.append(Committed(
                position: (self.executed + 1) / 2, index: self.pairs == .batched ? index : 1 - index, command: command))
        }
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

/// Which `ExecutionOrder` an `UncoordinatedReplica` declares, and how it numbers positions.
protocol DeclaredOrder: Sendable {
    static var order: ExecutionOrder { get }
    static var pairs: UncoordinatedCore.Pairs { get }
}
extension DeclaredOrder { static var pairs: UncoordinatedCore.Pairs { .none } }
/// A total order: the per-position check applies.
enum TotalOrder: DeclaredOrder { static var order: ExecutionOrder { .total } }
/// A total order with two commands per position, as batches.
enum BatchedTotalOrder: DeclaredOrder {
    static var order: ExecutionOrder { .total }
    static var pairs: UncoordinatedCore.Pairs { .batched }
}
/// A total order with two commands per position whose indices go backwards.
enum SwappedTotalOrder: DeclaredOrder {
    static var order: ExecutionOrder { .total }
    static var pairs: UncoordinatedCore.Pairs { .swapped }
}
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
        self.core = UncoordinatedCore(config: config, pairs: Order.pairs)
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
    /// Reordering and latency; or, `agreeing`, one client and no faults, under which the
    /// uncoordinated replicas happen to agree.
    static func options(agreeing: Bool = false) -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = 3
        options.faults = agreeing ? [] : [.reordering, .latency]
        options.operations = agreeing ? 20 : 100
        if agreeing { options.clients = 1 }
        options.readFraction = 0
        return options
    }

    @Test("a total-order protocol whose replicas disagree on a position is caught")
    func positionDisagreementCaught() throws {
        let reports = try SimulationSweep<UncoordinatedReplica<TotalOrder>>(options: Self.options()).run(seeds: 1...5)
        let violations = reports.flatMap(\.violations)
        #expect(violations.contains { $0.invariant == "state-machine-safety" && $0.detail.contains("at position") })
    }

    @Test("with two commands per position (a batch): agreeing replicas pass, disagreeing ones are caught")
    func batchDisagreementCaught() throws {
        let agreeing = try SimulationSweep<UncoordinatedReplica<BatchedTotalOrder>>(options: Self.options(agreeing: true)).run(seeds: 1...2)
        #expect(agreeing.allSatisfy { $0.violations.isEmpty }, "\(agreeing.flatMap(\.violations))")
        let reports = try SimulationSweep<UncoordinatedReplica<BatchedTotalOrder>>(options: Self.options()).run(seeds: 1...5)
        let violations = reports.flatMap(\.violations)
        #expect(violations.contains { $0.invariant == "state-machine-safety" && $0.detail.contains("at position") }, "\(violations)")
        #expect(!violations.contains { $0.detail.contains("applied position") }, "indices that rise within a position are in order")
    }

    @Test("a command index that goes backwards within a position is caught")
    func indexOrderCaught() throws {
        let reports = try SimulationSweep<UncoordinatedReplica<SwappedTotalOrder>>(options: Self.options(agreeing: true)).run(seeds: 1...2)
        let violations = reports.flatMap(\.violations)
        #expect(violations.contains { $0.invariant == "state-machine-safety" && $0.detail.contains("applied position 1 after 1.1") },
                "\(violations)")
    }

    @Test("a conflict-order protocol whose replicas order one key's commands differently is caught")
    func perKeyDisagreementCaught() throws {
        let reports = try SimulationSweep<UncoordinatedReplica<ConflictOrder>>(options: Self.options()).run(seeds: 1...5)
        let violations = reports.flatMap(\.violations)
        #expect(violations.contains { $0.invariant == "state-machine-safety" && $0.detail.contains("on key") })
        #expect(!violations.contains { $0.detail.contains("at position") }, "positions are local under .conflicting")
    }
}
