import SynodClocks
import SynodCore
import Testing

/// Random message-passing executions, and the happens-before relation computed from the
/// execution graph alone (program order and send-to-receive edges, closed transitively), to
/// check the clocks against.
struct Execution {
    /// How the vector clocks under test stamp a send: the correct rule, or a broken one for the
    /// check that the property can fail.
    enum VectorRule {
        /// Advance, then send the advanced clock.
        case correct
        /// The reference text's rule: send the clock, then advance it (the send shares its
        /// stamp with the event before it).
        case sendBeforeIncrement
        /// Receive without merging the message's clock.
        case receiveWithoutMerge
    }

    struct Event {
        var process: Int
        var lamport: UInt64
        var vector: VectorClock
        var hybrid: HLCTimestamp
        /// Events that happened before this one, as a bit set over event numbers.
        var past: [UInt64]
    }

    var events: [Event] = []
    var processes: Int

    /// Draws an execution: `processes` processes, `count` events (local, send, or receive of a
    /// message in flight, taken in random order), physical clocks that advance by random steps
    /// and sometimes jump back.
    init(seed: UInt64, vectorRule: VectorRule = .correct) {
        var random = DeterministicRandom(seed: seed)
        let processes = random.integer(in: 2...5)
        let count = random.integer(in: 5...40)
        self.processes = processes
        let words = (count + 63) / 64
        var lamport = Array(repeating: LamportClock(), count: processes)
        let shared = (0..<processes).map { _ in SharedLamportClock() }
        var vector = Array(repeating: VectorClock(), count: processes)
        var hybrid = Array(repeating: HybridLogicalClock(maxDrift: UInt64.max), count: processes)
        var physical = (0..<processes).map { _ in UInt64(random.integer(in: 1_000...2_000)) }
        var lastEvent: [Int?] = Array(repeating: nil, count: processes)
        // Messages in flight: the send event's number and its stamps.
        var inFlight: [(send: Int, to: Int, lamport: UInt64, vector: VectorClock, hybrid: HLCTimestamp)] = []
        for number in 0..<count {
            let process = random.integer(in: 0..<processes)
            // Physical time: mostly forward, sometimes backwards (a wall clock set back).
            if random.chance(0.1) {
                physical[process] -= min(physical[process] - 1, UInt64(random.integer(in: 0...500)))
            } else {
                physical[process] += UInt64(random.integer(in: 0...20))
            }
            var past = Array(repeating: UInt64(0), count: words)
            func include(_ other: Int, _ past: inout [UInt64], _ events: [Event]) {
                for word in 0..<words { past[word] |= events[other].past[word] }
                past[other / 64] |= 1 << UInt64(other % 64)
            }
            if let previous = lastEvent[process] { include(previous, &past, self.events) }
            let receivable = inFlight.indices.filter { inFlight[$0].to == process }
            let kind = random.integer(in: 0..<3)
            var stamps: (UInt64, VectorClock, HLCTimestamp)
            if kind == 2, !receivable.isEmpty {
                let message = inFlight.remove(at: receivable[random.integer(in: 0..<receivable.count)])
                include(message.send, &past, self.events)
                let sharedStamp = shared[process].receive(message.lamport)
                let stamp = lamport[process].receive(message.lamport)
                precondition(sharedStamp == stamp, "the shared clock and the value clock disagree")
                var clock = vector[process]
                if vectorRule == .receiveWithoutMerge { clock.increment(NodeID(UInt16(process))) } else {
                    clock.receive(message.vector, at: NodeID(UInt16(process)))
                }
                vector[process] = clock
                let hybridStamp = try! hybrid[process].receive(message.hybrid, physical: physical[process])
                stamps = (stamp, clock, hybridStamp)
            } else if kind == 1 {
                let sharedStamp = shared[process].send()
                let stamp = lamport[process].send()
                precondition(sharedStamp == stamp, "the shared clock and the value clock disagree")
                var sent: VectorClock
                if vectorRule == .sendBeforeIncrement {
                    sent = vector[process]
                    vector[process].increment(NodeID(UInt16(process)))
                } else {
                    sent = vector[process].send(from: NodeID(UInt16(process)))
                }
                let hybridStamp = hybrid[process].now(physical: physical[process])
                var target = random.integer(in: 0..<(processes - 1))
                if target >= process { target += 1 }
                inFlight.append((number, target, stamp, sent, hybridStamp))
                stamps = (stamp, sent, hybridStamp)
            } else {
                let stamp = lamport[process].tick()
                precondition(shared[process].tick() == stamp, "the shared clock and the value clock disagree")
                stamps = (stamp, vector[process].tick(at: NodeID(UInt16(process))), hybrid[process].now(physical: physical[process]))
            }
            self.events.append(Event(process: process, lamport: stamps.0, vector: stamps.1, hybrid: stamps.2, past: past))
            lastEvent[process] = number
        }
    }

    /// Whether event `a` happened before event `b` (from the graph, not from any clock).
    func happenedBefore(_ a: Int, _ b: Int) -> Bool {
        self.events[b].past[a / 64] & (1 << UInt64(a % 64)) != 0
    }

    /// The first pair of events on which the clocks break their guarantees, described; `nil`
    /// when every pair keeps them.
    func violation() -> String? {
        for b in self.events.indices {
            for a in self.events.indices where a != b {
                let before = self.happenedBefore(a, b)
                let after = self.happenedBefore(b, a)
                let order = self.events[a].vector.compare(self.events[b].vector)
                let expected: CausalOrder = before ? .before : after ? .after : .concurrent
                if order != expected {
                    return "events \(a) and \(b): happens-before says \(expected), vector clocks \(self.events[a].vector) and \(self.events[b].vector) say \(order)"
                }
                if before && !(self.events[a].lamport < self.events[b].lamport) {
                    return "events \(a) → \(b) but Lamport stamps \(self.events[a].lamport) and \(self.events[b].lamport)"
                }
                if before && !(self.events[a].hybrid < self.events[b].hybrid) {
                    return "events \(a) → \(b) but HLC stamps \(self.events[a].hybrid) and \(self.events[b].hybrid)"
                }
            }
        }
        return nil
    }
}

@Suite("Clocks: properties over random executions")
struct ClockPropertyTests {
    @Test("over 10,000 random executions: a → b exactly when VC(a) < VC(b), concurrent exactly when the clocks are; a → b implies LC(a) < LC(b) and HLC(a) < HLC(b)")
    func happensBefore() {
        var pairs = 0
        var concurrentPairs = 0
        var orderedByCounter = 0
        for seed: UInt64 in 1...10_000 {
            let execution = Execution(seed: seed)
            if let violation = execution.violation() {
                Issue.record("seed \(seed): \(violation)")
                return
            }
            let count = execution.events.count
            pairs += count * (count - 1) / 2
            for b in 0..<count {
                for a in 0..<b where !execution.happenedBefore(a, b) { concurrentPairs += 1 }
                let earlier = execution.events[..<b].last { $0.process == execution.events[b].process }
                if let earlier, earlier.hybrid.wallTime == execution.events[b].hybrid.wallTime { orderedByCounter += 1 }
            }
        }
        // The executions are not trivial: many pairs, both ordered and concurrent ones.
        #expect(pairs > 1_000_000 && concurrentPairs > pairs / 10 && concurrentPairs < pairs, "\(pairs) pairs, \(concurrentPairs) concurrent")
        #expect(orderedByCounter > 1_000, "\(orderedByCounter) events ordered by the HLC's counter alone (wall time not advanced or set back)")
    }

    @Test("the same check fails for broken vector clocks: the reference text's send rule, and a receive that does not merge", arguments: [Execution.VectorRule.sendBeforeIncrement, .receiveWithoutMerge])
    func catchesBrokenClocks(rule: Execution.VectorRule) {
        let caught = (UInt64(1)...200).first { Execution(seed: $0, vectorRule: rule).violation() != nil }
        #expect(caught != nil, "no seed of 200 showed the broken rule")
        if let caught { #expect(Execution(seed: caught).violation() == nil, "the correct clocks pass seed \(caught)") }
    }
}
