@testable import SynodCheck
import Testing

/// Keys of gets and puts with unique values are decided by the order the reads reveal
/// (`RevealedOrder`): the verdicts must be exactly the complete search's.
@Suite("Checker: keys decided by the order their unique values reveal")
struct RevealedOrderTests {
    /// A small history of gets and puts with unique values on one key, linearizable by
    /// construction, then (two times in three) perturbed: a read's value changed to another
    /// written value or to absent, or an operation's interval moved.
    static func history(seed: UInt64) -> [HistoryOperation] {
        var random = SplitMixRandom(seed: seed)
        let count = Int.random(in: 3...14, using: &random)
        let clients = Int.random(in: 2...4, using: &random)
        var history = HistoryGenerator.linearizable(operations: count, keys: 1, clients: clients, seed: seed, kinds: [.get, .get, .put])
        let puts = history.filter { $0.kind == .put }.compactMap(\.value)
        switch Int.random(in: 0..<3, using: &random) {
        case 0:
            let reads = history.indices.filter { history[$0].kind == .get && !history[$0].isPending }
            if let read = reads.randomElement(using: &random) {
                let choice = Int.random(in: 0...puts.count, using: &random)
                history[read].output = .value(choice == puts.count ? nil : puts[choice])
            }
        case 1:
            let index = Int.random(in: 0..<history.count, using: &random)
            let shift = UInt64.random(in: 0...80, using: &random)
            history[index].call += shift
            if let end = history[index].returnTime { history[index].returnTime = max(end, history[index].call) + UInt64.random(in: 0...40, using: &random) }
        default:
            break
        }
        return history
    }

    static func verdict(_ history: [HistoryOperation], revealed: Bool, mutation: RevealedOrder.Mutation? = nil) -> CheckResult {
        var options = LinearizabilityChecker.Options()
        options.decidesByRevealedOrder = revealed
        options.revealedOrderMutation = mutation
        return LinearizabilityChecker(options: options).check(history)
    }

    @Test("20,000 random histories: the revealed order and the complete search give the same verdict on every one")
    func differential() {
        var linearizable = 0
        var refuted = 0
        for seed: UInt64 in 1...20_000 {
            let history = Self.history(seed: seed)
            let fast = Self.verdict(history, revealed: true)
            let search = Self.verdict(history, revealed: false)
            #expect(fast.keysDecidedByRevealedOrder == 1 && search.keysDecidedByRevealedOrder == 0)
            guard fast.verdict == search.verdict else {
                Issue.record("seed \(seed): revealed order says \(fast.verdict), search says \(search.verdict)\n\(HistoryCodec.encode(history))")
                return
            }
            if fast.verdict == .linearizable { linearizable += 1 } else { refuted += 1 }
        }
        #expect(linearizable > 4_000 && refuted > 4_000, "both verdicts are common: \(linearizable) linearizable, \(refuted) not")
    }

    @Test("the differential test catches a wrong shortcut: ignoring backward zones")
    func catchesWrongShortcut() {
        let caught = (UInt64(1)...20_000).first { seed in
            let history = Self.history(seed: seed)
            return Self.verdict(history, revealed: true, mutation: .ignoreBackwardZones).verdict != Self.verdict(history, revealed: false).verdict
        }
        #expect(caught != nil, "no seed showed the wrong shortcut")
    }

    @Test("the classic shapes: a backward zone inside a forward one, a read before its write, a read of nothing written")
    func shapes() throws {
        // x=1 is written, then read long after; meanwhile 2 is written and read inside that span.
        let inside = [
            H.put(1, "1", 0, 10), H.put(2, "2", 20, 30), H.get(3, "2", 25, 35), H.get(4, "1", 40, 50),
        ]
        let result = Self.verdict(inside, revealed: true)
        #expect(result.verdict == .notLinearizable && Self.verdict(inside, revealed: false).verdict == .notLinearizable)
        let explanation = try #require(result.violation?.description)
        #expect(explanation.contains("must each come before the other"), "\(explanation)")
        let early = [H.get(1, "1", 0, 5), H.put(2, "1", 10, 20)]
        #expect(Self.verdict(early, revealed: true).violation?.reason?.contains("returned before the put of its value was called") == true)
        let nothing = [H.put(1, "1", 0, 5), H.get(2, "2", 10, 20)]
        #expect(Self.verdict(nothing, revealed: true).violation?.reason?.contains("which no put on this key wrote") == true)
        // Touching intervals are concurrent: this one is linearizable.
        #expect(Self.verdict([H.put(1, "1", 0, 10), H.get(2, nil, 10, 20)], revealed: true).verdict == .linearizable)
        // Not for the revealed order: repeated values, cas, append, delete.
        #expect(Self.verdict([H.put(1, "1", 0, 10), H.put(2, "1", 20, 30)], revealed: true).keysDecidedByRevealedOrder == 0)
        #expect(Self.verdict([H.put(1, "1", 0, 10), H.delete(2, 20, 30)], revealed: true).keysDecidedByRevealedOrder == 0)
    }

    @Test("one key, 30 clients, 20,000 gets and puts with unique values: decided without search, and a corrupted copy refuted")
    func largeKey() {
        let history = HistoryGenerator.linearizable(operations: 20_000, keys: 1, clients: 30, seed: 7, kinds: [.get, .get, .put])
        let result = Self.verdict(history, revealed: true)
        #expect(result.verdict == .linearizable && result.keysDecidedByRevealedOrder == 1 && result.cachedStates == 0)
        let corrupted = HistoryGenerator.corruptOneRead(history, seed: 7)!
        #expect(Self.verdict(corrupted, revealed: true).verdict == .notLinearizable)
    }
}
