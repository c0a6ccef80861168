import SynodCheck
import Testing

/// Shorthand for handmade histories: intervals in arbitrary time units.
enum H {
    static func put(_ client: Int, _ value: String, _ call: UInt64, _ end: UInt64?, key: String = "x", unknown: Bool = false) -> HistoryOperation {
        HistoryOperation(client: client, kind: .put, key: key, value: value, call: call, returnTime: end, unknown: unknown)
    }
    static func append(_ client: Int, _ value: String, _ call: UInt64, _ end: UInt64, key: String = "x") -> HistoryOperation {
        HistoryOperation(client: client, kind: .append, key: key, value: value, call: call, returnTime: end)
    }
    static func get(_ client: Int, _ seen: String?, _ call: UInt64, _ end: UInt64, key: String = "x") -> HistoryOperation {
        HistoryOperation(client: client, kind: .get, key: key, output: .value(seen), call: call, returnTime: end)
    }
    static func cas(_ client: Int, _ expected: String?, _ value: String, _ swapped: Bool, _ call: UInt64, _ end: UInt64) -> HistoryOperation {
        HistoryOperation(client: client, kind: .cas, key: "x", value: value, expected: expected, output: .swapped(swapped), call: call, returnTime: end)
    }
    static func delete(_ client: Int, _ call: UInt64, _ end: UInt64) -> HistoryOperation {
        HistoryOperation(client: client, kind: .delete, key: "x", call: call, returnTime: end)
    }

    static func verdict(_ history: [HistoryOperation]) -> CheckResult.Verdict {
        LinearizabilityChecker().check(history).verdict
    }
}

@Suite("Classic anomalies get the right verdict")
struct AnomalyTests {
    @Test("stale read: a read after a completed write returns the older value")
    func staleRead() {
        #expect(H.verdict([H.put(1, "1", 0, 10), H.put(1, "2", 20, 30), H.get(2, "1", 40, 50)]) == .notLinearizable)
    }

    @Test("lost update: one of two concurrent appends vanishes")
    func lostUpdate() {
        let history = [H.append(1, "a", 0, 10), H.append(2, "b", 0, 10), H.get(3, "b", 20, 30)]
        #expect(H.verdict(history) == .notLinearizable)
        #expect(H.verdict([H.append(1, "a", 0, 10), H.append(2, "b", 0, 10), H.get(3, "ba", 20, 30)]) == .linearizable)
    }

    @Test("two successful cas from the same old value")
    func doubleCas() {
        let base = H.put(1, "0", 0, 1)
        #expect(H.verdict([base, H.cas(2, "0", "1", true, 2, 10), H.cas(3, "0", "2", true, 2, 10)]) == .notLinearizable)
        #expect(H.verdict([base, H.cas(2, "0", "1", true, 2, 10), H.cas(3, "0", "2", false, 2, 10)]) == .linearizable)
    }

    @Test("new-then-old read inversion during a write")
    func readInversion() {
        let history = [H.put(1, "1", 0, 100), H.get(2, "1", 10, 20), H.get(3, nil, 30, 40)]
        #expect(H.verdict(history) == .notLinearizable)
        // Old then new is fine.
        #expect(H.verdict([H.put(1, "1", 0, 100), H.get(2, nil, 10, 20), H.get(3, "1", 30, 40)]) == .linearizable)
    }

    @Test("a timed-out write seen, then unseen")
    func timedOutWriteSeenThenUnseen() {
        let write = H.put(1, "1", 0, 5, unknown: true)
        #expect(H.verdict([write, H.get(2, "1", 10, 20), H.get(3, nil, 30, 40)]) == .notLinearizable)
        // It may take effect late, or never.
        #expect(H.verdict([write, H.get(2, nil, 10, 20), H.get(3, "1", 30, 40)]) == .linearizable)
        #expect(H.verdict([write, H.get(2, nil, 10, 20), H.get(3, nil, 30, 40)]) == .linearizable)
        // But not before its call.
        #expect(H.verdict([H.get(2, "1", 0, 5), H.put(1, "1", 10, nil, unknown: true)]) == .notLinearizable)
    }

    @Test("a read of a value nobody wrote")
    func phantomRead() {
        #expect(H.verdict([H.put(1, "1", 0, 10), H.get(2, "7", 20, 30)]) == .notLinearizable)
    }

    @Test("closed intervals: operations that touch at one instant are concurrent")
    func touchingIntervals() {
        #expect(H.verdict([H.put(1, "1", 0, 10), H.get(2, nil, 10, 20)]) == .linearizable)
        #expect(H.verdict([H.put(1, "1", 0, 10), H.get(2, nil, 11, 20)]) == .notLinearizable)
    }

    @Test("delete and cas on an absent key")
    func deleteAndAbsentCas() {
        let history = [H.put(1, "1", 0, 10), H.delete(1, 20, 30), H.cas(2, nil, "2", true, 40, 50), H.get(3, "2", 60, 70)]
        #expect(H.verdict(history) == .linearizable)
        #expect(H.verdict([H.put(1, "1", 0, 10), H.cas(2, nil, "2", true, 20, 30)]) == .notLinearizable)
    }

    @Test("keys are independent: a violation names its key, the operation it could not place, and the partial order")
    func explanation() {
        let history = [
            H.put(1, "a", 0, 10, key: "fine"), H.get(2, "a", 20, 30, key: "fine"),
            H.put(1, "1", 0, 10), H.put(1, "2", 20, 30), H.get(2, "1", 40, 50),
        ]
        // The search's explanation (with unique values the key is decided without search: its
        // explanation names the stale read too, tested below).
        var options = LinearizabilityChecker.Options()
        options.decidesByRevealedOrder = false
        let revealed = LinearizabilityChecker().check(history)
        #expect(revealed.violation?.unplaced == H.get(2, "1", 40, 50) && revealed.violation?.key == "x")
        let result = LinearizabilityChecker(options: options).check(history)
        #expect(result.verdict == .notLinearizable)
        let violation = try! #require(result.violation)
        #expect(violation.key == "x")
        #expect(violation.unplaced == H.get(2, "1", 40, 50))
        #expect(violation.longestLinearization == [H.put(1, "1", 0, 10), H.put(1, "2", 20, 30)])
        #expect(violation.stateAfterLinearization == "2")
        #expect(violation.description.contains("cannot be placed"))
    }

    @Test("keys and values compare by bytes, not by Unicode equivalence")
    func bytesNotCanonicalEquivalence() {
        let composed = "\u{E9}", decomposed = "e\u{301}"
        // Different keys: a read of the other key sees nothing.
        #expect(H.verdict([H.put(1, "1", 0, 1, key: composed), H.get(2, nil, 2, 3, key: decomposed)]) == .linearizable)
        // Different values: reading the other spelling is a read of a value nobody wrote.
        #expect(H.verdict([H.put(1, composed, 0, 1), H.get(2, decomposed, 2, 3)]) == .notLinearizable)
        #expect(H.verdict([H.append(1, "e", 0, 1), H.append(1, "\u{301}", 2, 3), H.get(2, composed, 4, 5)]) == .notLinearizable)
    }

    @Test("an operation that returns before its call makes the verdict unknown, not a violation")
    func returnBeforeCall() {
        let result = LinearizabilityChecker().check([H.put(1, "1", 10, 5)])
        #expect(result.verdict == .unknown)
        #expect(result.reason?.contains("returns before its call") == true)
    }

    @Test("an exhausted budget gives unknown, never a hang")
    func budgetGivesUnknown() {
        // 24 concurrent appends and a read of an impossible value: the search must try every
        // order of every subset before it could say no.
        // (A put among the appends keeps the revealed order out: only the search could decide it.)
        var history = [H.put(98, "", 0, 0)]
        history += (0..<24).map { H.append($0, String(UnicodeScalar(UInt8(65 + $0))), 0, 100) }
        history.append(H.get(99, "impossible", 200, 300))
        var options = LinearizabilityChecker.Options()
        options.maximumCachedStates = 10_000
        #expect(LinearizabilityChecker(options: options).check(history).verdict == .unknown)
        options = LinearizabilityChecker.Options()
        options.timeout = .milliseconds(100)
        let result = LinearizabilityChecker(options: options).check(history)
        #expect(result.verdict == .unknown)
        #expect(result.unknownKeys == ["x"])
    }
}
