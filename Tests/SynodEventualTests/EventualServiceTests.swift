@_spi(Testing) import SynodCausal
import SynodClocks
import SynodCore
@_spi(Testing) import SynodEventual
@_spi(Testing) import SynodSim
import Testing

/// What the eventual store needs to run as a service: contexts as text (the HTTP header),
/// snapshots of its state machine, a bound on what one key may hold, and checkpoints that let
/// its log be compacted.
@Suite struct EventualServiceTests {
    @Test("a context's text form round-trips; malformed text is refused with the reason")
    func contextText() throws {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var counters: [NodeID: UInt64] = [:]
            for _ in 0..<Int.random(in: 0...6, using: &random) {
                counters[NodeID(UInt16.random(in: 1...UInt16.max, using: &random))] = UInt64.random(in: 1...UInt64.max, using: &random)
            }
            let clock = VectorClock(counters)
            #expect(try VectorClock(text: clock.text) == clock)
        }
        #expect(try VectorClock(text: "") == VectorClock())
        #expect(try VectorClock(text: " 2:5, 1:3 ") == VectorClock([NodeID(1): 3, NodeID(2): 5]))
        #expect(VectorClock([NodeID(1): 3, NodeID(2): 5]).text == "1:3,2:5")
        for bad in ["1", "1:", ":3", "0:3", "65536:1", "1:0", "1:3,1:4", "1:3,,2:4", "a:b", "1:-3", "1:3:4", "1:18446744073709551616"] {
            #expect(throws: ClockTextError.self, "'\(bad)'") { try VectorClock(text: bad) }
        }
    }

    @Test("a snapshot of the store restores to the same store; truncated, extended or corrupted snapshots are refused, never a trap")
    func snapshots() throws {
        var store = CausalStore()
        var first = CausalRegister()
        first.write(Array("a".utf8), seen: VectorClock(), at: NodeID(1), command: CommandID(client: 5, sequence: 1))
        first.write(Array("b".utf8), seen: VectorClock(), at: NodeID(2), command: CommandID(client: 6, sequence: 1))
        var second = CausalRegister()
        second.write(nil, seen: VectorClock(), at: NodeID(3), command: CommandID(client: 7, sequence: 1))
        _ = store.apply(CausalRequest.install(key: Array("k2".utf8), state: second).encoded())
        _ = store.apply(CausalRequest.install(key: Array("k1".utf8), state: first).encoded())
        var service = ExactlyOnce(store)
        _ = service.apply(Command(client: 9, sequence: 4, payload: CausalRequest.install(key: [1], state: first).encoded()))
        let bytes = CausalStore.snapshot(of: service)
        let restored = try CausalStore.restore(bytes)
        #expect(restored.machine.registers == service.machine.registers)
        #expect(restored.sessions.map(\.client) == [9] && restored.sessions.map(\.sequence) == [4])
        #expect(CausalStore.snapshot(of: restored) == bytes, "canonical: the same bytes again")
        for length in 0..<bytes.count {
            #expect(throws: WireError.self) { try CausalStore.restore(Array(bytes.prefix(length))) }
        }
        #expect(throws: WireError.self) { try CausalStore.restore(bytes + [0]) }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            var noisy = bytes
            noisy[Int.random(in: 0..<noisy.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            _ = try? CausalStore.restore(noisy)  // must not trap
        }
    }

    @Test("blind writes pile up siblings until the replica's share is reached; then only a write with the context is taken")
    func siblingBound() {
        let members = [NodeID(1), NodeID(2), NodeID(3)]
        var replica = EventualReplica(
            config: ReplicaConfig(id: NodeID(1), members: members, options: EventualOptions()), restoring: Recovered(records: []), randomSeed: 1)
        let share = CausalLimits.replicaShare(members: members.count)
        let value = [UInt8](repeating: 0x61, count: 64 << 10)
        var accepted = 0
        var refusal: String?
        for sequence in 1...100 {
            replica.propose(Command(client: 4, sequence: UInt64(sequence), payload: CausalRequest.put(key: [7], value: value, context: VectorClock()).encoded()))
            let ready = replica.ready()
            if let rejection = ready.rejected.first {
                guard case .unsupported(let reason) = rejection.reason else { break }
                refusal = reason
                break
            }
            accepted += 1
        }
        #expect(accepted == share.bytes / (64 << 10) - 1 || accepted == share.bytes / (64 << 10), "accepted \(accepted) of share \(share)")
        #expect(refusal?.contains("write with the context read") == true, "\(refusal ?? "no refusal")")
        #expect(replica.registers[[7]]!.siblings.count == accepted)
        // A write that saw them all replaces them.
        let context = replica.registers[[7]]!.context
        replica.propose(Command(client: 4, sequence: 200, payload: CausalRequest.put(key: [7], value: [1], context: context).encoded()))
        let ready = replica.ready()
        #expect(ready.rejected.isEmpty && ready.records.count == 1)
        #expect(replica.registers[[7]]!.siblings.map(\.value) == [[1]])
    }

    static func put(_ replica: inout EventualReplica, client: ClientID, sequence: UInt64, key: UInt8, _ value: String) -> Ready<EventualMessage, EventualRecord> {
        replica.propose(Command(client: client, sequence: sequence, payload: CausalRequest.put(
            key: [key], value: Array(value.utf8), context: replica.registers[[key]]?.context ?? VectorClock()).encoded()))
        return replica.ready()
    }

    @Test("a checkpoint holds the whole state: restored from it alone, or from an oldest part of the log and it, a replica is the same")
    func checkpoints() {
        let members = [NodeID(1), NodeID(2), NodeID(3)]
        var options = EventualOptions()
        options.checkpointRecords = 6
        func replica(_ records: [EventualRecord]) -> EventualReplica {
            EventualReplica(config: ReplicaConfig(id: NodeID(1), members: members, options: options), restoring: Recovered(records: records), randomSeed: 1)
        }
        var live = replica([])
        var log: [EventualRecord] = []
        var checkpointAt: [Int] = []
        // Client 6 writes once, early; later writes overwrite it, so only the accepted table
        // remembers it once the records before a checkpoint are gone.
        log += Self.put(&live, client: 6, sequence: 1, key: 1, "early").records
        for sequence in 1...20 {
            // Writes from clients 4 and 5 to keys 1...3; a peer's state merged in now and then.
            let ready = Self.put(&live, client: 4 + UInt64(sequence % 2), sequence: UInt64(sequence), key: UInt8(1 + sequence % 3), "v\(sequence)")
            if ready.checkpoint { checkpointAt.append(log.count) }
            log += ready.records
            if sequence % 5 == 0 {
                var peer = CausalRegister()
                peer.write(Array("peer".utf8), seen: VectorClock(), at: NodeID(2), command: CommandID(client: 9, sequence: UInt64(sequence)))
                live.receive(.push(key: [9], state: peer), from: NodeID(2))
                let merged = live.ready()
                if merged.checkpoint { checkpointAt.append(log.count) }
                log += merged.records
            }
        }
        #expect(checkpointAt.count >= 2, "checkpoints at \(checkpointAt)")
        let last = checkpointAt.last!
        let full = replica(log)
        #expect(full.registers == live.registers)
        for kept in [0, last / 2, last] {
            let compacted = replica(Array(log[..<kept]) + Array(log[last...]))
            #expect(compacted.registers == live.registers, "keeping \(kept) records before the checkpoint at \(last)")
            // The accepted table survives: a retry of an overwritten write is answered, not written again.
            var retried = compacted
            retried.propose(Command(client: 4, sequence: 2, payload: CausalRequest.put(key: [3], value: [1], context: VectorClock()).encoded()))
            let ready = retried.ready()
            #expect(ready.rejected.count == 1 && retried.registers == compacted.registers,
                    "client 4's write 2 is older than its latest: refused as stale, nothing written")
            var again = compacted
            again.propose(Command(client: 6, sequence: 1, payload: CausalRequest.put(key: [1], value: Array("early".utf8), context: VectorClock()).encoded()))
            _ = again.ready()
            #expect(again.registers == compacted.registers, "client 6's overwritten write, retried, is not written again")
        }
        guard case .accepted(let table)? = log[last...].first(where: { if case .accepted = $0 { true } else { false } }) else {
            Issue.record("the checkpoint has no table of accepted writes")
            return
        }
        #expect(table[6] == 1 && table[4] != nil && table[5] != nil, "\(table)")
    }

    @Test("every seed under all faults, with a checkpoint every few records, stays clean; records are discarded and replicas restart from compacted logs")
    func sweepWithCheckpoints() throws {
        var options = SimulationOptions()
        options.nodes = 5
        options.workload = .eventual
        var store = EventualOptions()
        store.checkpointRecords = 8
        let reports = try SimulationSweep<EventualReplica>(options: options, replicaOptions: store).run(seeds: 1...40)
        for report in reports where !report.isClean { Issue.record("seed \(report.seed): \(report.firstProblem ?? "")") }
        #expect(reports.reduce(0) { $0 + $1.statistics.recordsDiscarded } > 1_000)
        #expect(reports.reduce(0) { $0 + $1.statistics.restarts } > 10)
    }

    @Test("mutation: checkpoints that leave keys out lose acknowledged writes at a restart; the durability check catches it")
    func lossyCheckpointIsCaught() throws {
        var options = SimulationOptions()
        options.nodes = 5
        options.workload = .eventual
        var store = EventualOptions()
        store.checkpointRecords = 8
        store.unsafeCheckpointSkipsKeys = true
        let reports = try SimulationSweep<EventualReplica>(options: options, replicaOptions: store).run(seeds: 1...20, stopAfterFailures: 1)
        let caught = try #require(reports.last)
        #expect(caught.violations.first?.invariant == "durability", "seed \(caught.seed): \(caught.firstProblem ?? "clean")")
    }
}
