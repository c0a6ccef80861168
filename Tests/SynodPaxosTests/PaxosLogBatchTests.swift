import SynodCore
import SynodPaxos
import SynodSim
import Testing

/// The leaderless log's proposers batch what waits: one slot, two phases, many commands.
@Suite("Paxos log batching")
struct PaxosLogBatchTests {
    static let members = [NodeID(1), NodeID(2), NodeID(3)]

    static func replicas(maxBatch: Int) -> [PaxosLogReplica] {
        var options = PaxosLogOptions()
        options.maxBatchValues = maxBatch
        return Self.members.map { id in
            PaxosLogReplica(config: ReplicaConfig(id: id, members: Self.members, options: options), restoring: .empty,
                            randomSeed: UInt64(id.rawValue))
        }
    }

    /// Delivers every message, in order and without loss, until none is left (records count as
    /// durable at once: this test is about what is proposed, not about disks); returns what each
    /// replica committed. `observe` sees each replica's every `ready()` (by position) first.
    @discardableResult
    static func settle(
        _ replicas: inout [PaxosLogReplica], observe: (Int, Ready<PaxosLogMessage, PaxosLogRecord>) -> Void = { _, _ in }
    ) -> [[Committed]] {
        var committed = Array(repeating: [Committed](), count: replicas.count)
        var network: [(from: NodeID, envelope: Envelope<PaxosLogMessage>)] = []
        while true {
            for index in replicas.indices {
                let ready = replicas[index].ready()
                observe(index, ready)
                committed[index] += ready.committed
                network += ready.messages.map { (replicas[index].id, $0) }
            }
            if network.isEmpty { return committed }
            let batch = network
            network = []
            for (from, envelope) in batch {
                replicas[Int(envelope.to.rawValue) - 1].receive(envelope.message, from: from)
            }
        }
    }

    static func command(_ sequence: UInt64) -> Command {
        Command(client: sequence, sequence: 1, payload: Array("put k\(sequence) v".utf8))
    }

    @Test("commands that wait while a slot is decided go together into the next slot, executed in order at one position")
    func batchesWhatWaits() {
        var replicas = Self.replicas(maxBatch: 256)
        // The first command goes out alone at once; the next four wait for its slot.
        for sequence: UInt64 in 1...5 { replicas[0].propose(Self.command(sequence)) }
        let committed = Self.settle(&replicas)
        #expect(replicas[0].chosenValue(at: 1) == .command(Self.command(1)))
        #expect(replicas[0].chosenValue(at: 2) == .batch((2...5).map { .command(Self.command($0)) }))
        for applied in committed {
            #expect(applied.map(\.command) == (1...5).map(Self.command))
            #expect(applied.map(\.position) == [1, 2, 2, 2, 2])
            #expect(applied.map(\.index) == [0, 0, 1, 2, 3])
        }
        #expect(replicas[0].counters["proposedValues"] == 5 && replicas[0].counters["proposedSlots"] == 2)
    }

    @Test("a batch is bounded by max-batch, and max-batch 1 proposes one value per slot")
    func bounded() {
        var replicas = Self.replicas(maxBatch: 2)
        for sequence: UInt64 in 1...5 { replicas[0].propose(Self.command(sequence)) }
        Self.settle(&replicas)
        #expect(replicas[0].chosenValue(at: 2) == .batch([.command(Self.command(2)), .command(Self.command(3))]))
        #expect(replicas[0].chosenValue(at: 3) == .batch([.command(Self.command(4)), .command(Self.command(5))]))

        var single = Self.replicas(maxBatch: 1)
        for sequence: UInt64 in 1...3 { single[0].propose(Self.command(sequence)) }
        let committed = Self.settle(&single)
        #expect(committed[0].map(\.position) == [1, 2, 3])
        #expect((1...3).allSatisfy { single[0].chosenValue(at: $0) == .command(Self.command($0)) })
    }

    @Test("a read's barrier rides in a batch; the read is answered once the whole slot is executed")
    func barrierInBatch() {
        var replicas = Self.replicas(maxBatch: 256)
        replicas[0].propose(Self.command(1))
        replicas[0].propose(Self.command(2))
        let read = ReadRequest(id: 99)
        replicas[0].read(read)
        replicas[0].propose(Self.command(3))
        var answered: [ReadRequest] = []
        var committed: [Committed] = []
        Self.settle(&replicas) { index, ready in
            guard index == 0 else { return }
            committed += ready.committed
            // Served after this ready's commands: the whole batch, read's barrier included.
            if !ready.reads.isEmpty { #expect(committed.count == 3) }
            answered += ready.reads
        }
        #expect(answered.map(\.id) == [read.id])
        guard case .batch(let values) = replicas[0].chosenValue(at: 2) else {
            Issue.record("slot 2 holds \(String(describing: replicas[0].chosenValue(at: 2)))")
            return
        }
        #expect(values.count == 3)
        #expect(values[0] == .command(Self.command(2)) && values[2] == .command(Self.command(3)))
        if case .barrier = values[1] {} else { Issue.record("the read's barrier is not in the batch: \(values)") }
    }

    @Test("many clients on three and five nodes under all faults, compacting every 5 slots: batches form, and every run is safe, live and linearizable",
          arguments: [3, 5])
    func sweep(nodes: Int) throws {
        var options = SimulationOptions()
        options.nodes = nodes
        options.clients = 16
        options.operations = 300
        options.snapshotInterval = 5
        let reports = try SimulationSweep<PaxosLogReplica>(options: options).run(seeds: 1...20)
        _ = PaxosLogSimulationTests.expectClean(reports)
        let values = reports.reduce(0) { $0 + ($1.statistics.protocolCounters["proposedValues"] ?? 0) }
        let slots = reports.reduce(0) { $0 + ($1.statistics.protocolCounters["proposedSlots"] ?? 0) }
        #expect(slots > 0 && values > slots + slots / 2, "a mean batch above 1.5 values: \(values) values in \(slots) slots")
    }
}
