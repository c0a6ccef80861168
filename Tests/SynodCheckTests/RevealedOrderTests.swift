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
        #expect(Self.verdict(nothing, revealed: true).violation?.reason?.contains("which no put or cas on this key wrote") == true)
        // Touching intervals are concurrent: this one is linearizable.
        #expect(Self.verdict([H.put(1, "1", 0, 10), H.get(2, nil, 10, 20)], revealed: true).verdict == .linearizable)
        // Not for the revealed order: repeated values, delete.
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

    /// A small history of `kinds` on one key (values unique), linearizable by construction,
    /// then (three times in four) perturbed: a read's value changed (registers: to another
    /// written value or absent; appends: to a random sequence of appended values), an
    /// operation's interval moved, or a completed cas's outcome flipped or its expected value
    /// changed.
    static func mixedHistory(seed: UInt64, kinds: [HistoryOperation.Kind]) -> [HistoryOperation] {
        var random = SplitMixRandom(seed: seed)
        let count = Int.random(in: 3...14, using: &random)
        let clients = Int.random(in: 2...4, using: &random)
        var history = HistoryGenerator.linearizable(operations: count, keys: 1, clients: clients, seed: seed, kinds: kinds)
        let written = history.filter { $0.kind != .get }.compactMap(\.value)
        let appends = kinds.contains(.append)
        switch Int.random(in: 0..<4, using: &random) {
        case 0:
            let reads = history.indices.filter { history[$0].kind == .get && !history[$0].isPending }
            if let read = reads.randomElement(using: &random) {
                if appends {
                    let parts = (0..<Int.random(in: 0...3, using: &random)).compactMap { _ in written.randomElement(using: &random) }
                    history[read].output = .value(parts.isEmpty ? nil : parts.joined())
                } else {
                    let choice = Int.random(in: 0...written.count, using: &random)
                    history[read].output = .value(choice == written.count ? nil : written[choice])
                }
            }
        case 1:
            let index = Int.random(in: 0..<history.count, using: &random)
            let shift = UInt64.random(in: 0...80, using: &random)
            history[index].call += shift
            if let end = history[index].returnTime { history[index].returnTime = max(end, history[index].call) + UInt64.random(in: 0...40, using: &random) }
        case 2:
            let cas = history.indices.filter { history[$0].kind == .cas && !history[$0].isPending }
            if let index = cas.randomElement(using: &random) {
                if Bool.random(using: &random), case .swapped(let swapped) = history[index].output {
                    history[index].output = .swapped(!swapped)
                } else {
                    let choice = Int.random(in: 0...written.count, using: &random)
                    history[index].expected = choice == written.count ? nil : written[choice]
                }
            }
        default:
            break
        }
        return history
    }

    /// Compares the revealed order (searching what it leaves undecided) with the complete
    /// search on `count` histories of `kinds`; returns (linearizable, refuted, decided by the
    /// values), or records the first disagreement.
    static func compare(kinds: [HistoryOperation.Kind], count: UInt64, mutation: RevealedOrder.Mutation? = nil) -> (Int, Int, Int)? {
        var linearizable = 0
        var refuted = 0
        var decided = 0
        for seed: UInt64 in 1...count {
            let history = Self.mixedHistory(seed: seed, kinds: kinds)
            let fast = Self.verdict(history, revealed: true, mutation: mutation)
            let search = Self.verdict(history, revealed: false)
            guard fast.verdict == search.verdict else {
                if mutation == nil {
                    Issue.record("seed \(seed): revealed order says \(fast.verdict), search says \(search.verdict)\n\(HistoryCodec.encode(history))")
                }
                return nil
            }
            decided += fast.keysDecidedByRevealedOrder
            if fast.verdict == .linearizable { linearizable += 1 } else { refuted += 1 }
        }
        return (linearizable, refuted, decided)
    }

    @Test("20,000 random histories of gets, puts and cas: the same verdicts as the complete search, nearly all decided by the values")
    func differentialCas() throws {
        let (linearizable, refuted, decided) = try #require(Self.compare(kinds: [.get, .get, .put, .cas, .cas], count: 20_000))
        #expect(linearizable > 4_000 && refuted > 4_000, "both verdicts are common: \(linearizable) linearizable, \(refuted) not")
        #expect(decided > 19_000, "the values decide nearly every history: \(decided) of 20,000")
    }

    @Test("20,000 random histories of gets and appends: the same verdicts as the complete search, nearly all decided by the values")
    func differentialAppends() throws {
        let (linearizable, refuted, decided) = try #require(Self.compare(kinds: [.get, .get, .append], count: 20_000))
        #expect(linearizable > 4_000 && refuted > 4_000, "both verdicts are common: \(linearizable) linearizable, \(refuted) not")
        #expect(decided > 19_000, "the values decide nearly every history: \(decided) of 20,000")
    }

    @Test("the differential tests catch wrong shortcuts: failed cas ignored, unseen appends ignored")
    func catchesWrongCasAndAppendShortcuts() {
        #expect(Self.compare(kinds: [.get, .get, .put, .cas, .cas], count: 20_000, mutation: .ignoreFailedCas) == nil, "failed cas ignored went unnoticed")
        #expect(Self.compare(kinds: [.get, .get, .append], count: 20_000, mutation: .ignoreUnseenAppends) == nil, "unseen appends ignored went unnoticed")
    }

    @Test("cas and append shapes: chains, a cas pair from one value, a failed cas with no room, reads that do not extend")
    func casAndAppendShapes() throws {
        // A chain: put a, cas a→b, cas b→c, with reads along the way; linearizable.
        let chain = [
            H.put(1, "a", 0, 10), H.get(2, "a", 5, 15), H.cas(1, "a", "b", true, 20, 30), H.get(2, "b", 25, 35),
            H.cas(3, "b", "c", true, 28, 40), H.get(2, "c", 45, 50), H.cas(1, "a", "d", false, 41, 60),
        ]
        let decided = Self.verdict(chain, revealed: true)
        #expect(decided.verdict == .linearizable && decided.keysDecidedByRevealedOrder == 1 && decided.cachedStates == 0)
        // Two successful cas from one value.
        let pair = [H.put(1, "a", 0, 10), H.cas(2, "a", "b", true, 20, 30), H.cas(3, "a", "c", true, 20, 30)]
        let both = Self.verdict(pair, revealed: true)
        #expect(both.verdict == .notLinearizable && Self.verdict(pair, revealed: false).verdict == .notLinearizable)
        #expect(both.violation?.reason?.contains("both swapped from") == true, "\(String(describing: both.violation))")
        // A failed cas called after a's put returned and returned before a read of a was called.
        let noRoom = [H.put(1, "a", 0, 10), H.cas(2, "a", "b", false, 20, 30), H.get(3, "a", 40, 50)]
        let failed = Self.verdict(noRoom, revealed: true)
        #expect(failed.verdict == .notLinearizable && Self.verdict(noRoom, revealed: false).verdict == .notLinearizable)
        let reason = try #require(failed.violation?.reason)
        #expect(reason.contains("so the value was \"a\" throughout"), "\(reason)")
        // cas operations that swap from each other's values: nothing to start from.
        let cycle = [H.cas(1, "b", "a", true, 0, 10), H.cas(2, "a", "b", true, 20, 30)]
        #expect(Self.verdict(cycle, revealed: true).violation?.reason?.contains("form a cycle") == true)
        #expect(Self.verdict(cycle, revealed: false).verdict == .notLinearizable)
        // A read of a value the chain had already replaced.
        let stale = [H.put(1, "a", 0, 10), H.cas(2, "a", "b", true, 20, 30), H.get(3, "a", 40, 50)]
        #expect(Self.verdict(stale, revealed: true).verdict == .notLinearizable)
        // Appends: reads that are prefixes of one sequence, an unseen append at the end.
        let appended = [
            H.append(1, "x", 0, 10), H.get(2, "x", 5, 15), H.append(1, "y", 20, 30), H.get(2, "xy", 35, 40),
            H.append(3, "z", 36, 50),
        ]
        let appendResult = Self.verdict(appended, revealed: true)
        #expect(appendResult.verdict == .linearizable && appendResult.keysDecidedByRevealedOrder == 1 && appendResult.cachedStates == 0)
        let diverging = [H.append(1, "x", 0, 10), H.append(2, "y", 0, 10), H.get(3, "xy", 20, 30), H.get(4, "yx", 20, 30)]
        #expect(Self.verdict(diverging, revealed: true).violation?.reason?.contains("does not extend it") == true)
        // An unseen append that returned before a read which does not show it was called.
        let lost = [H.append(1, "x", 0, 10), H.get(2, nil, 20, 30)]
        #expect(Self.verdict(lost, revealed: true).verdict == .notLinearizable)
        #expect(Self.verdict(lost, revealed: true, mutation: .ignoreUnseenAppends).verdict == .linearizable)
    }

    @Test("one key, 30 clients, 20,000 gets, puts and cas with unique values: decided without search, and corrupted copies refuted")
    func largeCasKey() {
        let history = HistoryGenerator.linearizable(operations: 20_000, keys: 1, clients: 30, seed: 7, kinds: [.get, .get, .put, .cas, .cas])
        let result = Self.verdict(history, revealed: true)
        #expect(result.verdict == .linearizable && result.keysDecidedByRevealedOrder == 1 && result.cachedStates == 0)
        let corrupted = HistoryGenerator.corruptOneRead(history, seed: 7)!
        #expect(Self.verdict(corrupted, revealed: true).verdict == .notLinearizable)
        let stale = HistoryGenerator.staleOneRead(history, seed: 7)!
        let refuted = Self.verdict(stale, revealed: true)
        #expect(refuted.verdict == .notLinearizable && refuted.keysDecidedByRevealedOrder == 1, "\(refuted.verdict)")
    }

    @Test("one key, 30 clients, 3,000 gets and appends: decided without search, and a stale read refuted")
    func largeAppendKey() {
        let history = HistoryGenerator.linearizable(operations: 3_000, keys: 1, clients: 30, seed: 7, kinds: [.get, .get, .append])
        let result = Self.verdict(history, revealed: true)
        #expect(result.verdict == .linearizable && result.keysDecidedByRevealedOrder == 1 && result.cachedStates == 0)
        let stale = HistoryGenerator.staleOneRead(history, seed: 7)!
        let refuted = Self.verdict(stale, revealed: true)
        #expect(refuted.verdict == .notLinearizable && refuted.keysDecidedByRevealedOrder == 1, "\(refuted.verdict)")
    }
}
