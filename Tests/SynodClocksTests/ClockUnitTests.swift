import SynodClocks
import SynodCore
import Testing

@Suite("Clocks: rules and encodings")
struct ClockUnitTests {
    let a = NodeID(1)
    let b = NodeID(2)
    let c = NodeID(3)

    @Test("Lamport: events advance by one; a receive moves past the message's stamp")
    func lamport() {
        var clock = LamportClock()
        #expect(clock.tick() == 1)
        #expect(clock.send() == 2)
        #expect(clock.receive(10) == 11)
        #expect(clock.receive(3) == 12, "an older stamp still advances the clock")
        #expect(clock.time == 12 && clock > LamportClock(time: 11))
    }

    @Test("a shared Lamport clock used from many threads at once returns every stamp once, each above all before it")
    func sharedLamportUnderContention() async {
        let clock = SharedLamportClock()
        let perTask = 20_000
        let stamps = await withTaskGroup(of: [UInt64].self) { group in
            for task in 0..<4 {
                group.addTask {
                    var mine: [UInt64] = []
                    mine.reserveCapacity(perTask)
                    for step in 0..<perTask {
                        // Receives of stamps near the clock's time race with ticks on other threads.
                        if (step + task) % 3 == 0 { mine.append(clock.receive(clock.time)) } else { mine.append(clock.tick()) }
                    }
                    return mine
                }
            }
            var all: [UInt64] = []
            for await stamps in group { all += stamps }
            return all
        }
        #expect(stamps.count == 4 * perTask)
        #expect(Set(stamps).count == stamps.count, "no two calls returned the same stamp (no lost update)")
        #expect(clock.time == stamps.max())
        // Each call advanced the clock by exactly one: the stamps are 1...n.
        #expect(stamps.max() == UInt64(stamps.count))
    }

    @Test("vector clocks: before, after, equal and concurrent; merge is the pointwise maximum")
    func vectorCompare() {
        let x = VectorClock([a: 1, b: 2])
        let y = VectorClock([a: 2, b: 2])
        let z = VectorClock([a: 0, c: 1])
        #expect(x.compare(y) == .before && y.compare(x) == .after)
        #expect(x.compare(VectorClock([b: 2, a: 1])) == .equal)
        #expect(x.compare(z) == .concurrent && z.compare(x) == .concurrent)
        #expect(VectorClock().compare(z) == .before)
        #expect(x.merging(z) == VectorClock([a: 1, b: 2, c: 1]))
        #expect(z[a] == 0 && z[c] == 1 && z.entries.count == 1, "zeros are not kept")
        var sender = VectorClock()
        let sent = sender.send(from: a)
        var receiver = VectorClock([b: 5])
        let received = receiver.receive(sent, at: b)
        #expect(received == VectorClock([a: 1, b: 6]) && sent.happenedBefore(received))
    }

    @Test("vector clocks encode compactly and canonically; bad encodings are refused")
    func vectorEncoding() throws {
        var built = VectorClock()
        for node in [c, a, b, a] { built.increment(node) }
        let literal = VectorClock([a: 2, b: 1, c: 1])
        #expect(built == literal && built.encoded() == literal.encoded(), "one encoding per clock, whatever the order of events")
        #expect(built.encoded() == [3, 1, 2, 0, 1, 0, 1], "count, then node gaps and counters")
        #expect(try VectorClock.decode(built.encoded()) == built)
        let wide = VectorClock([NodeID(0): 1, NodeID(UInt16.max): 300])
        #expect(try VectorClock.decode(wide.encoded()) == wide)
        let bytes = built.encoded()
        for length in 0..<bytes.count { #expect(throws: WireError.self) { try VectorClock.decode(Array(bytes.prefix(length))) } }
        #expect(throws: WireError.self, "a zero counter") { try VectorClock.decode([1, 1, 0]) }
        #expect(throws: WireError.self, "a node beyond 16 bits") { try VectorClock.decode([2, 0xFF, 0xFF, 0x03, 1, 0, 1]) }
        #expect(throws: WireError.self, "more entries than bytes") { try VectorClock.decode([100, 1, 1]) }
        #expect(throws: WireError.self, "bytes after the clock") { try VectorClock.decode(built.encoded() + [0]) }
    }

    @Test("HLC: follows physical time; counts when the wall clock stands still or jumps back; stays monotonic")
    func hybridMonotonic() {
        var clock = HybridLogicalClock(maxDrift: 1_000)
        #expect(clock.now(physical: 100) == HLCTimestamp(wallTime: 100))
        #expect(clock.now(physical: 100) == HLCTimestamp(wallTime: 100, logical: 1))
        #expect(clock.now(physical: 40) == HLCTimestamp(wallTime: 100, logical: 2), "the wall clock went back: the counter orders")
        #expect(clock.now(physical: 150) == HLCTimestamp(wallTime: 150))
        var stamps: [HLCTimestamp] = []
        for physical: UInt64 in [150, 10, 500, 499, 0, 501] { stamps.append(clock.now(physical: physical)) }
        #expect(zip(stamps, stamps.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test("HLC: a receive orders after the message; one beyond the drift bound is refused and changes nothing")
    func hybridReceive() throws {
        var clock = HybridLogicalClock(maxDrift: 1_000)
        clock.now(physical: 100)
        #expect(try clock.receive(HLCTimestamp(wallTime: 900, logical: 4), physical: 120) == HLCTimestamp(wallTime: 900, logical: 5))
        #expect(try clock.receive(HLCTimestamp(wallTime: 900, logical: 9), physical: 130) == HLCTimestamp(wallTime: 900, logical: 10))
        #expect(try clock.receive(HLCTimestamp(wallTime: 50), physical: 140) == HLCTimestamp(wallTime: 900, logical: 11))
        #expect(try clock.receive(HLCTimestamp(wallTime: 950), physical: 2_000) == HLCTimestamp(wallTime: 2_000))
        let before = clock
        #expect(throws: ClockDriftError.self) { try clock.receive(HLCTimestamp(wallTime: 3_001), physical: 2_000) }
        #expect(clock == before, "a refused message leaves the clock as it was")
        #expect(try clock.receive(HLCTimestamp(wallTime: 3_000), physical: 2_000) == HLCTimestamp(wallTime: 3_000, logical: 1),
                "exactly at the bound is accepted")
    }

    @Test("HLC: an exhausted counter moves to the next nanosecond; timestamps encode and refuse bad counters")
    func hybridEdges() throws {
        var clock = HybridLogicalClock(maxDrift: 10, last: HLCTimestamp(wallTime: 7, logical: UInt32.max))
        #expect(clock.now(physical: 7) == HLCTimestamp(wallTime: 8, logical: 0))
        let stamp = HLCTimestamp(wallTime: 1_733_400_000_000_000_000, logical: 3)
        #expect(try HLCTimestamp.decode(stamp.encoded()) == stamp)
        var writer = WireWriter()
        writer.varint(5)
        writer.varint(UInt64(UInt32.max) + 1)
        #expect(throws: WireError.self) { try HLCTimestamp.decode(writer.bytes) }
    }
}
