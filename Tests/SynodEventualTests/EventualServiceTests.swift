@_spi(Testing) import SynodCausal
import SynodClocks
import SynodCore
@_spi(Testing) import SynodEventual
import Testing

/// What the eventual store needs to run as a service: contexts as text (the HTTP header),
/// snapshots of its state machine, and a bound on what one key may hold.
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
}
