@_spi(Testing) import SynodABD
import SynodCheck
import SynodCore
import SynodDriver
@_spi(Testing) import SynodSim
import Testing

/// The ABD quorum register: its core's rules one by one, its codecs, its monitor, and the
/// register under every fault in the simulator, with the mutations the checks must catch.
@Suite("ABD: a linearizable register without consensus")
struct ABDTests {
    static let members = [NodeID(1), NodeID(2), NodeID(3)]

    static func replica(_ id: UInt16 = 1, records: [ABDRecord] = [], options: ABDOptions = ABDOptions()) -> ABDReplica {
        let config = ReplicaConfig<ABDOptions>(
            id: NodeID(id), members: Self.members, options: options, footprint: { RegisterStore.footprint(of: $0) })
        return ABDReplica(config: config, restoring: Recovered(records: records), randomSeed: 7)
    }

    static func put(_ client: ClientID, _ sequence: UInt64, key: UInt8 = 0, _ value: String) -> Command {
        Command(client: client, sequence: sequence, payload: RegisterStore.put(key: key, value: Array(value.utf8)))
    }

    static func stores(_ ready: Ready<ABDMessage, ABDRecord>) -> [(to: NodeID, tag: ABDTag, afterSync: Bool)] {
        ready.messages.compactMap { envelope in
            guard case .store(_, _, let tag, _) = envelope.message else { return nil }
            return (envelope.to, tag, envelope.afterSync)
        }
    }

    // MARK: The core

    @Test("a write takes the highest tag a majority reports plus one, is recorded here first, and stores wait for the sync")
    func writeTakesNextTag() throws {
        var replica = Self.replica()
        replica.propose(Self.put(9, 1, "a"))
        var ready = replica.ready()
        let queries = ready.messages.filter { if case .query = $0.message { true } else { false } }
        #expect(queries.map(\.to) == [NodeID(2), NodeID(3)], "phase 1 asks the others; this replica answers itself")
        guard case .query(let operation, _) = queries[0].message else { return }
        let older = ABDRegister(tag: ABDTag(counter: 4, writer: 3), write: Self.put(8, 1, "x"))
        replica.receive(.current(operation: operation, register: older), from: NodeID(2))
        ready = replica.ready()
        #expect(ready.records.map(\.tag) == [ABDTag(counter: 5, writer: 1)], "4.3 is the newest of a majority: the write is 5.1")
        let stores = Self.stores(ready)
        #expect(stores.count == 3 && stores.allSatisfy { $0.tag == ABDTag(counter: 5, writer: 1) })
        #expect(stores.filter { $0.to != NodeID(1) }.allSatisfy { $0.afterSync }, "no other replica sees the tag before it is durable here")
        #expect(ready.committed.isEmpty, "not complete before a majority stored it")
        // This replica's own store comes back through the sync; with n2's, a majority holds it.
        replica.receive(.stored(operation: operation), from: NodeID(1))
        #expect(replica.ready().committed.isEmpty)
        replica.receive(.stored(operation: operation), from: NodeID(2))
        ready = replica.ready()
        #expect(ready.committed.map(\.command.id) == [CommandID(client: 9, sequence: 1)])
        #expect(replica.completions.map(\.tag) == [ABDTag(counter: 5, writer: 1)])
    }

    @Test("a retried write keeps its tag, even after the coordinator restarts; an older command is ignored")
    func retryKeepsTag() {
        let write = Self.put(9, 4, "a")
        let record = ABDRecord(key: [0], tag: ABDTag(counter: 12, writer: 1), write: write)
        var replica = Self.replica(records: [record])
        replica.propose(write)
        var ready = replica.ready()
        #expect(ready.messages.allSatisfy { if case .query = $0.message { false } else { true } }, "no new phase 1")
        #expect(Self.stores(ready).map(\.tag) == Array(repeating: ABDTag(counter: 12, writer: 1), count: 3))
        replica.propose(Self.put(9, 3, "older"))
        ready = replica.ready()
        #expect(ready.messages.isEmpty && ready.records.isEmpty, "the client moved on from sequence 3")
        #expect(ready.rejected.count == 1, "refused, so the driver lets go of it")
        // A new write of another client starts above the restored tag even if nobody answers higher.
        replica.propose(Self.put(10, 1, "b"))
        ready = replica.ready()
        guard case .query(let operation, _)? = ready.messages.first?.message else {
            Issue.record("expected a query")
            return
        }
        replica.receive(.current(operation: operation, register: .empty), from: NodeID(3))
        #expect(replica.ready().records.map(\.tag) == [ABDTag(counter: 13, writer: 1)])
    }

    @Test("a replica answers a query only once what it reveals is durable, and keeps only newer stores")
    func replicaSide() {
        var replica = Self.replica(2)
        let newer = Self.put(5, 1, "n")
        replica.receive(.store(operation: 1, key: [0], tag: ABDTag(counter: 7, writer: 3), write: newer), from: NodeID(3))
        var ready = replica.ready()
        #expect(ready.records.map(\.tag) == [ABDTag(counter: 7, writer: 3)])
        #expect(ready.messages.count == 1 && ready.messages[0].afterSync)
        replica.receive(.store(operation: 2, key: [0], tag: ABDTag(counter: 6, writer: 1), write: Self.put(6, 1, "o")), from: NodeID(1))
        ready = replica.ready()
        #expect(ready.records.isEmpty, "6.1 is older than 7.3")
        #expect(replica.register(for: [0]).write == newer)
        replica.receive(.query(operation: 3, key: [0]), from: NodeID(1))
        ready = replica.ready()
        #expect(ready.messages.count == 1 && ready.messages[0].afterSync)
        #expect(ready.messages.first?.message == .current(operation: 3, register: ABDRegister(tag: ABDTag(counter: 7, writer: 3), write: newer)))
        replica.receive(.query(operation: 4, key: [0]), from: NodeID(9))
        #expect(replica.ready().messages.isEmpty, "a stranger gets no answer")
    }

    @Test("a read writes back the newest register before it returns; a read of a key nobody wrote returns at once")
    func readWritesBack() {
        var replica = Self.replica()
        replica.read(ReadRequest(id: 1, footprint: RegisterStore.footprint(of: RegisterStore.get(key: 0))))
        var ready = replica.ready()
        guard case .query(let operation, _)? = ready.messages.first?.message else {
            Issue.record("expected a query")
            return
        }
        let newest = ABDRegister(tag: ABDTag(counter: 3, writer: 2), write: Self.put(4, 1, "v"))
        replica.receive(.current(operation: operation, register: newest), from: NodeID(2))
        ready = replica.ready()
        #expect(ready.reads.isEmpty && Self.stores(ready).map(\.tag) == Array(repeating: newest.tag, count: 3))
        replica.receive(.stored(operation: operation), from: NodeID(3))
        replica.receive(.stored(operation: operation), from: NodeID(2))
        ready = replica.ready()
        #expect(ready.committed.map(\.command) == [newest.write!], "the driver applies the write the read returns")
        #expect(ready.reads.map(\.id) == [1])

        var fresh = Self.replica()
        fresh.read(ReadRequest(id: 2, footprint: RegisterStore.footprint(of: RegisterStore.get(key: 1))))
        guard case .query(let second, _)? = fresh.ready().messages.first?.message else { return }
        fresh.receive(.current(operation: second, register: .empty), from: NodeID(3))
        ready = fresh.ready()
        #expect(ready.reads.map(\.id) == [2] && ready.committed.isEmpty && ready.messages.isEmpty)
    }

    @Test("what a quorum register cannot order is refused with the reason: an append, a read of every key")
    func refusals() {
        var replica = Self.replica()
        replica.propose(Command(client: 1, sequence: 1, payload: RegisterStore.append(key: 0, value: [1])))
        replica.read(ReadRequest(id: 1))
        let ready = replica.ready()
        #expect(ready.rejected.count == 2)
        for rejection in ready.rejected {
            guard case .unsupported(let reason) = rejection.reason else {
                Issue.record("expected unsupported, got \(rejection.reason)")
                continue
            }
            #expect(reason.contains("quorum register"))
        }
    }

    @Test("the node driver answers a refused append as a failure with the reason, not a retry")
    func driverRefusal() throws {
        var driver = try NodeDriver<ABDReplica, RegisterStore>(
            config: ReplicaConfig(id: NodeID(1), members: [NodeID(1)]), recovered: .empty, clientBase: 1 << 20, randomSeed: 1,
            empty: RegisterStore(), restore: { _ in ExactlyOnce(RegisterStore()) })
        driver.submit(.write, payload: RegisterStore.append(key: 0, value: [1]), token: 5)
        let actions = driver.drain()
        let failures = actions.compactMap { action -> String? in
            guard case .complete(5, _, .failure(.refused(let reason))) = action else { return nil }
            return reason
        }
        #expect(failures.count == 1 && failures[0].contains("single-key writes that overwrite"))
    }

    @Test("records that give one tag of a key to two writes are refused at restart, with the reason")
    func conflictingRecords() {
        let tag = ABDTag(counter: 2, writer: 1)
        let records = [ABDRecord(key: [0], tag: tag, write: Self.put(1, 1, "a")), ABDRecord(key: [0], tag: tag, write: Self.put(2, 1, "b"))]
        #expect(ABDReplica.problem(restoring: Recovered(records: records))?.contains("tag 2.1") == true)
        #expect(ABDReplica.problem(restoring: Recovered(records: [records[0], records[0]])) == nil)
    }

    // MARK: Codecs

    @Test("messages and records round-trip; random and truncated bytes are refused, never a trap")
    func codecs() throws {
        let write = Self.put(3, 2, "value")
        let messages: [ABDMessage] = [
            .query(operation: 1 << 40, key: [1, 2]), .current(operation: 2, register: .empty),
            .current(operation: 3, register: ABDRegister(tag: ABDTag(counter: 9, writer: 2), write: write)),
            .store(operation: 4, key: [], tag: ABDTag(counter: 1, writer: 1), write: write), .stored(operation: 5),
        ]
        for message in messages {
            let bytes = message.encoded()
            #expect(try ABDMessage.decode(bytes) == message)
            for cut in 0..<bytes.count { #expect(throws: WireError.self) { try ABDMessage.decode(Array(bytes[..<cut])) } }
        }
        let record = ABDRecord(key: [7], tag: ABDTag(counter: 3, writer: 2), write: write)
        #expect(try ABDRecord.decode(record.encoded()) == record)
        #expect(throws: WireError.self) { try ABDRecord.decode(ABDRecord(key: [7], tag: .zero, write: write).encoded()) }
        var random = DeterministicRandom(seed: 11)
        var decoded = 0
        for _ in 0..<20_000 {
            let bytes = (0..<random.integer(in: 0..<40)).map { _ in UInt8(random.integer(in: 0..<256)) }
            if (try? ABDMessage.decode(bytes)) != nil { decoded += 1 }
            _ = try? ABDRecord.decode(bytes)
        }
        #expect(decoded < 20_000, "random bytes are mostly refused")
    }

    // MARK: The monitor

    @Test("the monitor catches one tag given to two writes, and a completed write a majority no longer holds")
    func monitorCatches() {
        var monitor = ABDMonitor(members: Self.members)
        let tag = ABDTag(counter: 1, writer: 1)
        var ready = Ready<ABDMessage, ABDRecord>()
        ready.records = [ABDRecord(key: [0], tag: tag, write: Self.put(1, 1, "a"))]
        #expect(monitor.observe(node: NodeID(1), replica: Self.replica(1), ready: ready).isEmpty)
        ready.records = [ABDRecord(key: [0], tag: tag, write: Self.put(2, 1, "b"))]
        #expect(monitor.observe(node: NodeID(2), replica: Self.replica(2), ready: ready).map(\.invariant) == ["tag-uniqueness"])

        // A record a crash took back before it was durable, held nowhere else, frees its tag.
        var freed = ABDMonitor(members: Self.members)
        ready.records = [ABDRecord(key: [0], tag: tag, write: Self.put(1, 1, "a"))]
        #expect(freed.observe(node: NodeID(1), replica: Self.replica(1), ready: ready).isEmpty)
        freed.restarted(node: NodeID(1), replica: Self.replica(1), recovered: .empty)
        ready.records = [ABDRecord(key: [0], tag: tag, write: Self.put(2, 1, "b"))]
        #expect(freed.observe(node: NodeID(1), replica: Self.replica(1), ready: ready).isEmpty)

        // A write completes at n1 held by n1 and n2; n2 restarts without it.
        var coordinator = Self.replica(1)
        coordinator.propose(Self.put(3, 1, "c"))
        var fresh = ABDMonitor(members: Self.members)
        var step = coordinator.ready()
        guard case .query(let operation, _)? = step.messages.first?.message else { return }
        coordinator.receive(.current(operation: operation, register: .empty), from: NodeID(2))
        step = coordinator.ready()
        #expect(fresh.observe(node: NodeID(1), replica: coordinator, ready: step).isEmpty)
        let stored = step.records[0]
        var follower = Self.replica(2)
        follower.receive(.store(operation: operation, key: stored.key, tag: stored.tag, write: stored.write), from: NodeID(1))
        #expect(fresh.observe(node: NodeID(2), replica: follower, ready: follower.ready()).isEmpty)
        coordinator.receive(.stored(operation: operation), from: NodeID(1))
        coordinator.receive(.stored(operation: operation), from: NodeID(2))
        step = coordinator.ready()
        #expect(coordinator.completions.count == 1)
        #expect(fresh.observe(node: NodeID(1), replica: coordinator, ready: step).isEmpty, "held by n1 and n2")
        fresh.restarted(node: NodeID(2), replica: Self.replica(2), recovered: .empty)
        #expect(fresh.observe(node: NodeID(3), replica: Self.replica(3), ready: Ready()).map(\.invariant) == ["completed-at-majority"])
    }

    // MARK: The simulator

    static func options(nodes: Int) -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = nodes
        options.operations = 200
        return options
    }

    @Test("every seed under all faults keeps the invariants, completes, and is linearizable", arguments: [3, 5])
    func sweep(nodes: Int) throws {
        let reports = try SimulationSweep<ABDReplica>(options: Self.options(nodes: nodes)).run(seeds: 1...40)
        for report in reports where !report.isClean || report.linearizability?.verdict != .linearizable {
            Issue.record("seed \(report.seed): \(report.firstProblem ?? "verdict \(String(describing: report.linearizability?.verdict))")")
        }
        #expect(reports.reduce(0) { $0 + $1.statistics.crashes } > 0 && reports.reduce(0) { $0 + $1.statistics.partitions } > 0)
        let reads = reports.reduce(0) { $0 + $1.history.filter { $0.kind == .get && $0.returnTime != nil }.count }
        let writes = reports.reduce(0) { $0 + $1.statistics.acknowledgedWrites }
        #expect(reads > 1000 && writes > 3000, "reads \(reads), acknowledged writes \(writes)")
        #expect(reports.allSatisfy { $0.history.allSatisfy { $0.kind == .get || $0.kind == .put } }, "no appends are asked of a register")
    }

    @Test("the same seed gives the same run")
    func deterministic() throws {
        let first = try Simulation<ABDReplica>(seed: 17, options: Self.options(nodes: 5)).run()
        let second = try Simulation<ABDReplica>(seed: 17, options: Self.options(nodes: 5)).run()
        #expect(first.fingerprint == second.fingerprint && first.history == second.history)
    }

    @Test("the kv workload is refused with the reason")
    func kvRefused() {
        var options = Self.options(nodes: 3)
        options.workload = .kv
        #expect(throws: SimulationError.self) { try Simulation<ABDReplica>(seed: 1, options: options) }
    }

    @Test("mutation: reads that skip the write-back; the checker finds a history that is not linearizable, the monitor a read no majority holds")
    func readsSkippingWriteBackAreCaught() throws {
        var abd = ABDOptions()
        abd.unsafeReadsSkipWriteBack = true
        var options = SimulationOptions.harsh(nodes: 5)
        options.readFraction = 0.5
        options.skipsMonitor = true
        let unchecked = try SimulationSweep<ABDReplica>(options: options, replicaOptions: abd).run(seeds: 1...100, stopAfterFailures: 1)
        let caught = try #require(unchecked.last, "some seed")
        #expect(caught.violations.isEmpty && caught.linearizability?.verdict == .notLinearizable,
                "the checker alone condemns seed \(caught.seed) of \(unchecked.count)")
        options.skipsMonitor = false
        let monitored = try Simulation<ABDReplica>(seed: 1, options: options, replicaOptions: abd).run()
        #expect(monitored.violations.first?.invariant == "completed-at-majority")
        // Without the mutation the same seeds are clean.
        let correct = try SimulationSweep<ABDReplica>(options: options).run(seeds: 1...caught.seed)
        #expect(correct.allSatisfy { $0.isClean })
    }

    @Test("mutation: stores and answers sent before the sync; the invariants catch the acknowledged write a crash takes back")
    func sendBeforeSyncIsCaught() throws {
        var options = SimulationOptions.harsh(nodes: 3)
        options.unsafeSendBeforeSync = true
        let reports = try SimulationSweep<ABDReplica>(options: options).run(seeds: 1...200, stopAfterFailures: 1)
        let caught = try #require(reports.last)
        #expect(!caught.isClean, "within 200 seeds, seed \(caught.seed): \(caught.firstProblem ?? "clean")")
    }

    // MARK: Log compaction

    @Test("a checkpoint holds each key's newest write and each client's latest tag: restored from it, a retry keeps its tag")
    func checkpoint() {
        var options = ABDOptions()
        options.checkpointRecords = 4
        var replica = Self.replica(options: options)
        var log: [ABDRecord] = []
        var checkpointAt: Int?
        // Client 9 writes key 0 at tag 3.1; client 8 then overwrites key 0 at a higher tag
        // (from another replica); then writes to other keys fill the log.
        func write(_ command: Command, answeredWith register: ABDRegister) {
            replica.propose(command)
            var ready = replica.ready()
            if ready.checkpoint { checkpointAt = log.count }
            log += ready.records
            guard case .query(let operation, _)? = ready.messages.first?.message else { return }
            replica.receive(.current(operation: operation, register: register), from: NodeID(2))
            ready = replica.ready()
            if ready.checkpoint { checkpointAt = log.count }
            log += ready.records
        }
        write(Self.put(9, 1, key: 0, "mine"), answeredWith: ABDRegister(tag: ABDTag(counter: 2, writer: 2), write: Self.put(7, 1, "x")))
        replica.receive(.store(operation: 99, key: [0], tag: ABDTag(counter: 8, writer: 3), write: Self.put(8, 1, "theirs")), from: NodeID(3))
        let stored = replica.ready()
        log += stored.records
        for sequence in UInt64(1)...30 { write(Self.put(10, sequence, key: UInt8(1 + sequence % 6), "v\(sequence)"), answeredWith: .empty) }
        let last = try! #require(checkpointAt, "a checkpoint came")
        let compacted = Self.replica(records: Array(log[last...]), options: options)
        #expect((0...6).allSatisfy { compacted.register(for: [UInt8($0)]) == replica.register(for: [UInt8($0)]) })
        #expect(compacted.register(for: [0]).tag == ABDTag(counter: 8, writer: 3), "the newest write of key 0, not this replica's")
        // Client 9's write lives on only in the checkpoint's table: a retry stores it again at
        // tag 3.1, with no new phase 1.
        var retried = compacted
        retried.propose(Self.put(9, 1, key: 0, "mine"))
        let ready = retried.ready()
        #expect(Self.stores(ready).map(\.tag).allSatisfy { $0 == ABDTag(counter: 3, writer: 1) } && !Self.stores(ready).isEmpty,
                "\(Self.stores(ready))")
    }

    @Test("every seed under all faults, with a checkpoint every few records, is clean and linearizable; records are discarded")
    func sweepWithCheckpoints() throws {
        var abd = ABDOptions()
        abd.checkpointRecords = 8
        let reports = try SimulationSweep<ABDReplica>(options: Self.options(nodes: 5), replicaOptions: abd).run(seeds: 1...40)
        for report in reports where !report.isClean || report.linearizability?.verdict != .linearizable {
            Issue.record("seed \(report.seed): \(report.firstProblem ?? "verdict \(String(describing: report.linearizability?.verdict))")")
        }
        #expect(reports.reduce(0) { $0 + $1.statistics.recordsDiscarded } > 1_000)
        #expect(reports.reduce(0) { $0 + $1.statistics.restarts } > 10)
    }

    @Test("mutation: checkpoints that leave keys out forget completed writes at a restart; the monitor catches it")
    func lossyCheckpointIsCaught() throws {
        var abd = ABDOptions()
        abd.checkpointRecords = 8
        abd.unsafeCheckpointSkipsKeys = true
        let reports = try SimulationSweep<ABDReplica>(options: Self.options(nodes: 5), replicaOptions: abd).run(seeds: 1...20, stopAfterFailures: 1)
        let caught = try #require(reports.last)
        #expect(caught.violations.first?.invariant == "completed-at-majority", "seed \(caught.seed): \(caught.firstProblem ?? "clean")")
    }
}
