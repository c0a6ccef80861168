@_spi(Testing) import SynodCausal
import SynodCheck
import SynodClocks
import SynodCore
@_spi(Testing) import SynodEventual
import SynodRaft
@_spi(Testing) import SynodSim
import Testing

/// The eventually consistent store: the causal register's algebra over random executions, the
/// replica's rules, its codecs, and the store under every fault in the simulator, with the
/// last-writer-wins mutation the convergence check must catch.
@Suite("The eventually consistent store")
struct EventualTests {
    static let nodes = [NodeID(1), NodeID(2), NodeID(3)]

    // MARK: The causal register

    /// A random execution: replicas accept writes with the context their client last read
    /// (from any replica) and merge each other's states in random order.
    struct Execution {
        var states: [CausalRegister]
        /// Every write: its dot and the context its client had read.
        var writes: [(dot: Dot, seen: VectorClock)] = []

        init(seed: UInt64, steps: Int) {
            var random = DeterministicRandom(seed: seed)
            self.states = Array(repeating: CausalRegister(), count: EventualTests.nodes.count)
            var client: ClientID = 0
            for _ in 0..<steps {
                let at = random.integer(in: 0..<self.states.count)
                if random.chance(0.5) {
                    // A client read some replica (maybe long ago: an older state) and writes here.
                    let read = random.integer(in: 0..<self.states.count)
                    let seen = random.chance(0.2) ? VectorClock() : self.states[read].context
                    client += 1
                    let dot = self.states[at].write(
                        Array("v\(client)".utf8), seen: seen, at: EventualTests.nodes[at], command: CommandID(client: client, sequence: 1))
                    self.writes.append((dot, seen))
                } else {
                    let from = random.integer(in: 0..<self.states.count)
                    self.states[at].merge(self.states[from])
                }
            }
        }
    }

    @Test("merge is commutative, associative and idempotent, over 10,000 random executions")
    func semilattice() {
        for seed in UInt64(1)...10_000 {
            let execution = Execution(seed: seed, steps: 12)
            let (a, b, c) = (execution.states[0], execution.states[1], execution.states[2])
            #expect(a.merging(b) == b.merging(a), "seed \(seed)")
            #expect(a.merging(b).merging(c) == a.merging(b.merging(c)), "seed \(seed)")
            #expect(a.merging(a) == a && a.merging(b).merging(b) == a.merging(b), "seed \(seed)")
            if a.merging(b) != b.merging(a) { return }
        }
    }

    @Test("once states are merged, every write is a sibling or was overwritten by a write that saw it; concurrent writes stay siblings")
    func noWriteSilentlyDropped() {
        var siblingsSeen = 0
        for seed in UInt64(1)...10_000 {
            let execution = Execution(seed: seed, steps: 16)
            let all = execution.states.reduce(CausalRegister()) { $0.merging($1) }
            siblingsSeen = max(siblingsSeen, all.siblings.count)
            for write in execution.writes {
                #expect(all.covers(write.dot), "seed \(seed): \(write.dot) lost from the context")
                let present = all.siblings.contains { $0.dot == write.dot }
                let overwritten = execution.writes.contains { $0.seen[write.dot.node] >= write.dot.counter }
                #expect(present || overwritten, "seed \(seed): \(write.dot) dropped though no write saw it")
                #expect(!(present && overwritten), "seed \(seed): \(write.dot) survived a write that saw it")
            }
        }
        #expect(siblingsSeen >= 3, "concurrent writes were kept side by side")
    }

    @Test("the last-writer-wins variant drops a concurrent write, which the same check catches")
    func lastWriterWinsDrops() {
        var a = CausalRegister()
        var b = CausalRegister()
        a.write(Array("a".utf8), seen: VectorClock(), at: NodeID(1), command: CommandID(client: 1, sequence: 1))
        b.write(Array("b".utf8), seen: VectorClock(), at: NodeID(2), command: CommandID(client: 2, sequence: 1))
        #expect(a.merging(b).siblings.count == 2, "concurrent: both kept")
        var lww = a.merging(b)
        lww.keepOnlyLastWriter()
        #expect(lww.siblings.count == 1 && lww.covers(Dot(node: NodeID(1), counter: 1)), "one is gone, though covered")
        // A client that read both resolves them: one value replaces both.
        var resolved = a.merging(b)
        resolved.write(Array("ab".utf8), seen: a.merging(b).context, at: NodeID(3), command: CommandID(client: 3, sequence: 1))
        #expect(resolved.siblings.map(\.value) == [Array("ab".utf8)])
    }

    @Test("states, requests and messages round-trip; truncated and random bytes are refused, never a trap")
    func codecs() throws {
        let execution = Execution(seed: 3, steps: 20)
        let state = execution.states.reduce(CausalRegister()) { $0.merging($1) }
        #expect(try CausalRegister.decode(state.encoded()) == state)
        let messages: [EventualMessage] = [
            .push(key: [1], state: state), .fetch(key: [2]), .digest([1, 2, 3]), .want(buckets: [0, 5]), .synced(operation: 9),
        ]
        for message in messages {
            let bytes = message.encoded()
            #expect(try EventualMessage.decode(bytes) == message)
            for cut in 0..<bytes.count { #expect(throws: WireError.self) { try EventualMessage.decode(Array(bytes[..<cut])) } }
        }
        let requests: [CausalRequest] = [
            .get(key: [1]), .put(key: [1], value: nil, context: state.context), .put(key: [], value: [9], context: VectorClock()),
            .install(key: [3], state: state),
        ]
        for request in requests { #expect(try CausalRequest.decode(request.encoded()) == request) }
        #expect(try EventualRecord.decode(EventualRecord.state(key: [4], state: state).encoded()) == .state(key: [4], state: state))
        let table = EventualRecord.accepted([9: 4, 3: 7])
        #expect(try EventualRecord.decode(table.encoded()) == table)
        for record in [table, EventualRecord.state(key: [4], state: state)] {
            let bytes = record.encoded()
            for cut in 0..<bytes.count { #expect(throws: WireError.self) { try EventualRecord.decode(Array(bytes[..<cut])) } }
        }
        var random = DeterministicRandom(seed: 5)
        for _ in 0..<20_000 {
            let bytes = (0..<random.integer(in: 0..<48)).map { _ in UInt8(random.integer(in: 0..<256)) }
            _ = try? EventualMessage.decode(bytes)
            _ = try? CausalRegister.decode(bytes)
            _ = try? CausalRequest.decode(bytes)
            _ = try? EventualRecord.decode(bytes)
        }
    }

    // MARK: The replica

    static func replica(_ id: UInt16 = 1, records: [EventualRecord] = [], options: EventualOptions = EventualOptions()) -> EventualReplica {
        EventualReplica(config: ReplicaConfig(id: NodeID(id), members: Self.nodes, options: options), restoring: Recovered(records: records), randomSeed: 3)
    }

    static func put(_ client: ClientID, _ sequence: UInt64, _ value: String, context: VectorClock = VectorClock()) -> Command {
        Command(client: client, sequence: sequence, payload: CausalRequest.put(key: [7], value: Array(value.utf8), context: context).encoded())
    }

    @Test("a write is answered after its sync, and pushed to every peer only once durable; a retry is not written twice")
    func writePath() {
        var replica = Self.replica()
        replica.propose(Self.put(4, 1, "x"))
        var ready = replica.ready()
        #expect(ready.records.count == 1 && ready.committed.isEmpty)
        #expect(ready.messages.allSatisfy(\.afterSync) && ready.messages.count == 3)
        #expect(replica.acceptedWrites.map(\.dot) == [Dot(node: NodeID(1), counter: 1)])
        replica.propose(Self.put(4, 1, "x"))
        let early = replica.ready()
        #expect(early.committed.isEmpty && early.records.isEmpty, "a retry before the sync is neither answered early nor written")
        guard case .synced(let operation)? = ready.messages.first(where: { $0.to == NodeID(1) })?.message else {
            Issue.record("no sync acknowledgement")
            return
        }
        replica.receive(.synced(operation: operation), from: NodeID(1))
        ready = replica.ready()
        #expect(ready.committed.map(\.command.id) == [CommandID(client: 4, sequence: 1)])
        guard case .install(_, let state)? = try? CausalRequest.decode(ready.committed[0].command.payload) else { return }
        #expect(state.siblings.map(\.value) == [Array("x".utf8)])
        replica.propose(Self.put(4, 1, "x"))
        ready = replica.ready()
        #expect(ready.records.isEmpty && ready.committed.count == 1, "a retry is answered from the state")
        // Restarted from its records, it still knows the write was taken.
        var restarted = Self.replica(records: [.state(key: [7], state: state)])
        restarted.propose(Self.put(4, 1, "x"))
        #expect(restarted.ready().records.isEmpty)
        restarted.propose(Self.put(4, 2, "y"))
        _ = restarted.ready()
        restarted.propose(Self.put(4, 1, "x"))
        let stale = restarted.ready()
        #expect(stale.records.isEmpty && stale.committed.isEmpty && stale.rejected.count == 1, "a stale duplicate is refused")
        restarted.propose(Command(client: 4, sequence: 2, payload: RegisterStore.put(key: 0, value: [1])))
        #expect(restarted.ready().rejected.count == 1, "a payload that is not the store's is refused")
    }

    @Test("a read is answered at once, and repairs: peers' states are fetched and merged, and a peer behind gets the merge")
    func readRepair() {
        var replica = Self.replica()
        replica.read(ReadRequest(id: 1, footprint: CausalStore.footprint(of: CausalRequest.get(key: [7]).encoded())))
        var ready = replica.ready()
        #expect(ready.reads.map(\.id) == [1] && ready.committed.count == 1)
        #expect(ready.messages.filter { $0.message == .fetch(key: [7]) }.count == 2)
        var theirs = CausalRegister()
        theirs.write(Array("p".utf8), seen: VectorClock(), at: NodeID(2), command: CommandID(client: 9, sequence: 1))
        replica.receive(.push(key: [7], state: theirs), from: NodeID(2))
        ready = replica.ready()
        #expect(ready.records.count == 1 && replica.registers[[7]] == theirs)
        #expect(ready.messages.isEmpty, "n2 holds everything this replica holds")
        replica.receive(.push(key: [7], state: CausalRegister()), from: NodeID(3))
        ready = replica.ready()
        #expect(ready.messages.map(\.message) == [.push(key: [7], state: theirs)], "n3 lacked n2's write")
    }

    @Test("anti-entropy: replicas that differ in some bucket exchange exactly that bucket's keys")
    func antiEntropy() {
        var options = EventualOptions()
        options.antiEntropyTicks = 1
        var a = Self.replica(1, options: options)
        var b = Self.replica(2, options: options)
        a.propose(Command(client: 1, sequence: 1, payload: CausalRequest.put(key: [1], value: [1], context: VectorClock()).encoded()))
        _ = a.ready()
        a.tick()
        var digest: [UInt64] = []
        for envelope in a.ready().messages { if case .digest(let digests) = envelope.message { digest = digests } }
        #expect(digest.count == options.digestBuckets)
        b.receive(.digest(digest), from: NodeID(1))
        let answer = b.ready().messages
        #expect(answer.contains { if case .want(let buckets) = $0.message { buckets.count == 1 } else { false } })
        guard case .want(let buckets)? = answer.first(where: { if case .want = $0.message { true } else { false } })?.message else { return }
        a.receive(.want(buckets: buckets), from: NodeID(2))
        let pushes = a.ready().messages
        #expect(pushes.count == 1)
        if case .push(let key, let state)? = pushes.first?.message { b.receive(.push(key: key, state: state), from: NodeID(1)) }
        _ = b.ready()
        #expect(b.registers == a.registers)
        b.receive(.digest(digest), from: NodeID(1))
        #expect(b.ready().messages.isEmpty, "equal digests: nothing to exchange")
    }

    // MARK: The simulator

    @Test("every seed under all faults converges, and keeps every write or its overwrite", arguments: [3, 5])
    func sweep(nodes: Int) throws {
        var options = SimulationOptions()
        options.nodes = nodes
        options.workload = .eventual
        let reports = try SimulationSweep<EventualReplica>(options: options).run(seeds: 1...40)
        for report in reports where !report.isClean { Issue.record("seed \(report.seed): \(report.firstProblem ?? "")") }
        #expect(reports.reduce(0) { $0 + $1.statistics.crashes } > 0 && reports.reduce(0) { $0 + $1.statistics.partitions } > 0)
        #expect(reports.reduce(0) { $0 + $1.statistics.acknowledgedWrites } > 4000)
    }

    @Test("mutation: a last-writer-wins store drops concurrent writes; the convergence check catches it")
    func lastWriterWinsIsCaught() throws {
        var options = SimulationOptions()
        options.nodes = 5
        options.workload = .eventual
        var store = EventualOptions()
        store.unsafeLastWriterWins = true
        let reports = try SimulationSweep<EventualReplica>(options: options, replicaOptions: store).run(seeds: 1...20, stopAfterFailures: 1)
        let caught = try #require(reports.last)
        #expect(caught.violations.first?.invariant == "convergence", "seed \(caught.seed): \(caught.firstProblem ?? "clean")")
        #expect(caught.violations.first?.detail.contains("dropped, not overwritten") == true)
        let correct = try SimulationSweep<EventualReplica>(options: options).run(seeds: 1...caught.seed)
        #expect(correct.allSatisfy { $0.isClean })
    }

    @Test("the register workload is refused with the reason; so is the eventual workload for another protocol")
    func workloadsChecked() {
        var options = SimulationOptions()
        options.nodes = 3
        #expect(throws: SimulationError.self) { try Simulation<EventualReplica>(seed: 1, options: options) }
    }

    // MARK: CAP

    @Test("CAP made visible: under one 3 | 2 partition Raft's minority refuses and stays linearizable; the eventual store answers on both sides, is not linearizable, and converges",
          arguments: [UInt64(1), 2, 3])
    func cap(seed: UInt64) throws {
        let raftOptions = SimulationOptions.capScenario(workload: .register)
        let raft = try Simulation<RaftReplica>(seed: seed, options: raftOptions).run()
        let raftSides = raft.partitionSides(raftOptions)
        #expect(raft.violations.isEmpty && raft.linearizability?.verdict == .linearizable)
        #expect(raftSides[0].writesAccepted > 100 && raftSides[0].readsAnswered > 50, "the majority side goes on: \(raftSides[0])")
        #expect(raftSides[1].writesAccepted == 0 && raftSides[1].readsAnswered == 0, "the minority answers nothing: \(raftSides[1])")
        #expect(raftSides[1].writesRefused > 0 && raftSides.allSatisfy { $0.staleReads == 0 })

        let eventualOptions = SimulationOptions.capScenario(workload: .eventual)
        let eventual = try Simulation<EventualReplica>(seed: seed, options: eventualOptions).run()
        let sides = eventual.partitionSides(eventualOptions)
        #expect(sides.allSatisfy { $0.writesAccepted > 50 && $0.writesRefused == 0 && $0.readsRefused == 0 }, "\(sides)")
        #expect(sides[1].staleReads > 0, "the minority reads values the majority overwrote")
        #expect(eventual.violations.isEmpty, "converged after the healing: \(eventual.firstProblem ?? "")")
        #expect(eventual.linearizability?.verdict == .notLinearizable && eventual.linearizability?.violation != nil)
        #expect(eventual.isClean, "the store promises no linearizability: the verdict is reported, not a failure")
    }

    @Test("stale reads are counted only where a write overwrote the value before the read began")
    func staleReadCount() {
        var options = SimulationOptions.capScenario(workload: .eventual)
        options.fixedPartition = FixedPartition(minority: [3, 4], from: 0, until: 1_000, minorityClients: 4)
        func op(_ client: Int, _ kind: HistoryOperation.Kind, _ value: String?, _ call: UInt64, _ end: UInt64) -> HistoryOperation {
            var operation = HistoryOperation(client: client, kind: kind, key: "k", call: call, returnTime: end)
            if kind == .put { operation.value = value } else { operation.output = .value(value) }
            return operation
        }
        let history = [
            op(1, .put, "a", 0, 10), op(2, .put, "b", 20, 30),
            op(10, .get, "a", 40, 50),  // stale: b overwrote a before the read began
            op(9, .get, "a", 25, 35),   // concurrent with b: not stale
            op(8, .get, nil, 5, 8),     // nothing acknowledged yet: not stale
            op(7, .get, nil, 60, 70),   // absent after a and b were acknowledged: stale
        ]
        let sides = PartitionSide.sides(of: history, options)
        #expect(sides[0].staleReads == 0 && sides[1].staleReads == 2, "\(sides)")
        #expect(sides[1].readsAnswered == 4 && sides[0].writesAccepted == 2)
    }
}
