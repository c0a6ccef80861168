import SynodCore
import SynodDriver
import Testing

/// A trivial leaderless core for one node: a proposal becomes a durable record and a note to
/// itself that may leave only after the record is synced; the note commits the command. Reads
/// are served at once. Enough to watch every step of the driver's `Ready` handling.
struct LocalLogReplica: Replica {
    struct Message: Sendable, TraceDigestible, WireCodable {
        var command: Command
        func digest(into hasher: inout StableHasher) { hasher.combine(self.command.sequence) }
        func encode(into writer: inout WireWriter) { self.command.encode(into: &writer) }
        static func decode(from reader: inout WireReader) throws(WireError) -> Message {
            Message(command: try Command.decode(from: &reader))
        }
    }

    typealias Options = NoOptions
    typealias Monitor = NoMonitor<LocalLogReplica>

    typealias Session = LeaderFollowingSession
    static var protocolName: String { "local-log" }
    static var coordination: Coordination { .leaderless }

    let id: NodeID
    var committed: UInt64 = 0
    var compactedThrough: UInt64 = 0
    var output = Ready<Message, Command>()

    init(config: ReplicaConfig<Options>, restoring: Recovered<Command>, randomSeed: UInt64) {
        self.id = config.id
        self.committed = restoring.snapshot?.position ?? 0
    }

    mutating func tick() {}
    mutating func receive(_ message: Message, from sender: NodeID) {
        self.committed += 1
        self.output.committed.append(Committed(position: self.committed, command: message.command))
    }
    mutating func propose(_ command: Command) {
        self.output.records.append(command)
        self.output.messages.append(Envelope(to: self.id, message: Message(command: command), afterSync: true))
    }
    mutating func read(_ request: ReadRequest) { self.output.reads.append(request) }
    mutating func ready() -> Ready<Message, Command> {
        defer { self.output = Ready() }
        return self.output
    }
    var committedThrough: UInt64 { self.committed }
    mutating func compact(through position: UInt64, state: [UInt8]) { self.compactedThrough = position }
    func snapshotTag(at position: UInt64) -> UInt64? { 0 }
}

/// A state machine that counts what it applied: replies with the count after each write.
struct CountingMachine: StateMachine {
    var applied: [[UInt8]] = []
    mutating func apply(_ payload: [UInt8]) -> [UInt8] {
        self.applied.append(payload)
        return [UInt8(self.applied.count)]
    }
    func query(_ payload: [UInt8]) -> [UInt8] { [UInt8(self.applied.count)] }
}

@Suite("The node driver: one node's Ready contract, as a pure state machine")
struct NodeDriverTests {
    typealias Driver = NodeDriver<LocalLogReplica, CountingMachine>

    static func driver(_ configure: (inout NodeDriverOptions) -> Void = { _ in }) throws -> Driver {
        var options = NodeDriverOptions()
        configure(&options)
        return try Driver(
            config: ReplicaConfig(id: NodeID(1), members: [NodeID(1)]), recovered: .empty, options: options,
            clientBase: 1 << 20, randomSeed: 7, empty: CountingMachine(),
            restore: { _ in throw ConfigurationError("no snapshots here") })
    }

    /// Delivers every self-addressed message back, draining after each, until nothing is left;
    /// returns every action seen.
    static func loopBack(_ driver: inout Driver, _ actions: [Driver.Action]) -> [Driver.Action] {
        var all = actions
        var pending = actions
        while !pending.isEmpty {
            var next: [Driver.Action] = []
            for case .send(let to, let message) in pending where to == driver.id {
                driver.receive(message, from: to)
                next += driver.drain()
            }
            all += next
            pending = next
        }
        return all
    }

    static func completions(_ actions: [Driver.Action]) -> [(UInt64, Result<[UInt8], RequestFailure>)] {
        actions.compactMap { if case .complete(let token, _, let result) = $0 { (token, result) } else { nil } }
    }

    @Test("a write is answered only after its record is durable, and applied once")
    func writeWaitsForSync() throws {
        var driver = try Self.driver()
        driver.submit(.write, payload: [42], token: 1)
        let first = driver.drain()
        // One persist with the record, and nothing sent yet: the note to itself waits.
        let persists = first.compactMap { if case .persist(let steps) = $0 { steps } else { nil } }
        #expect(persists.count == 1)
        #expect(!first.contains { if case .send = $0 { true } else { false } })
        #expect(Self.completions(Self.loopBack(&driver, first)).isEmpty)
        driver.persisted()
        let answered = Self.completions(Self.loopBack(&driver, driver.drain()))
        #expect(answered.count == 1 && answered[0].0 == 1)
        #expect(try answered[0].1.get() == [1])
        #expect(driver.machine.machine.applied == [[42]])
    }

    @Test("with the unsafe switch, the note leaves before the sync (what the simulator's mutation test relies on)")
    func unsafeSendBeforeSync() throws {
        var driver = try Self.driver { $0.unsafeSendBeforeSync = true }
        driver.submit(.write, payload: [42], token: 1)
        let actions = Self.loopBack(&driver, driver.drain())
        #expect(Self.completions(actions).count == 1, "answered before persisted()")
    }

    @Test("requests of one batch share one persist (group commit)")
    func groupCommit() throws {
        var driver = try Self.driver()
        for token in 1...5 { driver.submit(.write, payload: [UInt8(token)], token: UInt64(token)) }
        let actions = driver.drain()
        let persists = actions.compactMap { if case .persist(let steps) = $0 { steps } else { nil } }
        #expect(persists.count == 1)
        guard case .records(let records)? = persists.first?.first else {
            Issue.record("no records in \(persists)")
            return
        }
        #expect(records.count == 5)
        // A second batch while the first sync is in flight waits for it.
        driver.submit(.write, payload: [6], token: 6)
        #expect(!driver.drain().contains { if case .persist = $0 { true } else { false } })
        driver.persisted()
        let after = Self.loopBack(&driver, driver.drain())
        #expect(after.contains { if case .persist = $0 { true } else { false } })
        #expect(Self.completions(after).count == 5)
    }

    @Test("the gateway is bounded: a request beyond the bound fails overloaded at once, never traps")
    func boundedGateway() throws {
        var driver = try Self.driver { $0.maximumRequests = 2 }
        for token in 1...3 { driver.submit(.write, payload: [1], token: UInt64(token)) }
        let failed = Self.completions(driver.drain())
        #expect(failed.count == 1 && failed[0].0 == 3)
        #expect(failed.first.map { if case .failure(.overloaded) = $0.1 { true } else { false } } == true)
        #expect(driver.requestsInFlight == 2)
    }

    @Test("a request that gets no answer times out after its ticks, and frees its place")
    func timeout() throws {
        var driver = try Self.driver { $0.requestTimeoutTicks = 3 }
        driver.submit(.write, payload: [1], token: 9)
        _ = driver.drain()  // the sync is never reported done
        var failures: [(UInt64, Result<[UInt8], RequestFailure>)] = []
        for _ in 1...3 {
            driver.tick()
            failures += Self.completions(driver.drain())
        }
        #expect(failures.count == 1 && failures[0].0 == 9)
        #expect(failures.first.map { if case .failure(.timeout) = $0.1 { true } else { false } } == true)
        #expect(driver.requestsInFlight == 0)
    }

    @Test("a retried write from a direct client is answered from the session table, not applied again")
    func exactlyOnce() throws {
        var driver = try Self.driver()
        let request = ClientRequest(kind: .write, command: Command(client: 5, sequence: 1, payload: [7]))
        driver.serve(request, connection: 3)
        _ = driver.drain()
        driver.persisted()
        let first = Self.loopBack(&driver, driver.drain())
        driver.serve(request, connection: 3)
        let second = driver.drain()
        let answers = (first + second).compactMap { if case .answer(3, let reply, _) = $0 { reply } else { nil } }
        #expect(answers == [.ok(request.command.id, result: [1]), .ok(request.command.id, result: [1])])
        #expect(driver.machine.machine.applied == [[7]])
    }

    @Test("every snapshotInterval applied positions, a snapshot is saved, then the core compacts")
    func snapshots() throws {
        var driver = try Self.driver { $0.snapshotInterval = 2 }
        for token in 1...2 { driver.submit(.write, payload: [UInt8(token)], token: UInt64(token)) }
        _ = driver.drain()
        driver.persisted()
        let actions = Self.loopBack(&driver, driver.drain())
        let saves = actions.compactMap { if case .saveSnapshot(let position, _, _, let machine) = $0 { (position, machine) } else { nil } }
        #expect(saves.count == 1 && saves.first?.0 == 2 && saves.first?.1.machine.applied.count == 2)
        #expect(driver.core.compactedThrough == 0, "the core compacts only once the snapshot is durable")
        driver.snapshotSaved(position: 2, data: [1, 2])
        #expect(driver.core.compactedThrough == 2)
    }

    @Test("a leaderless gateway sends to its own replica first: reads need no network")
    func leaderlessReadsLocally() throws {
        var driver = try Self.driver()
        driver.submit(.read, payload: [], token: 4)
        let actions = driver.drain()
        #expect(!actions.contains { if case .send = $0 { true } else { false } })
        let answered = Self.completions(actions)
        #expect(answered.count == 1 && (try? answered[0].1.get()) == [0])
    }
}
