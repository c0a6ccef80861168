/// A complete linearizability checker for key-value histories.
///
/// The history is split per key (linearizability is compositional: a history is linearizable
/// exactly when each key's sub-history is, Herlihy & Wing's locality, the P-compositionality of
/// Horn & Kroening). Each key is searched with Wing & Gong's algorithm: walk the operations in
/// invocation order, linearize any operation whose invocation comes before every pending
/// completion and that the register model accepts, backtrack when a completion is reached with
/// its operation not yet linearized. Lowe's memoisation prunes any (set of linearized
/// operations, register state) pair already explored, which makes the search polynomial on
/// histories of bounded concurrency.
///
/// Time and memory are bounded: when the budget is spent the verdict is `unknown`, never a hang.
/// Keys take turns (smallest first, each turn twice as long as the one before), so a key that
/// cannot be decided does not starve the others: the history is `not linearizable` as soon as
/// any key is refuted, whatever keys stay undecided.
public struct LinearizabilityChecker: Sendable {
    /// Bounds on the search.
    public struct Options: Sendable {
        /// Wall-clock budget for the whole history.
        public var timeout: Duration = .seconds(60)
        /// Most memoised states kept for one key before giving up with `unknown`.
        public var maximumCachedStates = 50_000_000
        /// Memory the searches may hold together, in bytes; past it the key holding the most
        /// is given up (`unknown`) and its memory released, and the others go on.
        public var maximumMemoryBytes = 4 << 30
        /// Search steps of a key's first turn; each round doubles it (up to 64 times).
        public var firstTurnSteps = 1 << 12
        /// Decide keys whose written values are unique (gets, puts and cas; or gets and
        /// appends) by the order the values reveal, in O(n log n), instead of searching
        /// (`RevealedOrder`); keys it leaves undecided are searched. Off only to compare the two.
        public var decidesByRevealedOrder = true
        /// A wrong shortcut in that decision, for the test that shows the comparison can fail.
        var revealedOrderMutation: RevealedOrder.Mutation?
        /// Creates the defaults.
        public init() {}
    }

    /// The bounds in force.
    public var options: Options

    /// Creates a checker.
    public init(options: Options = Options()) { self.options = options }

    /// Checks a whole history.
    public func check(_ history: [HistoryOperation]) -> CheckResult {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: self.options.timeout)
        // Keys are told apart by their bytes, not by Unicode equivalence.
        var byKey: [[UInt8]: [HistoryOperation]] = [:]
        for operation in history { byKey[Array(operation.key.utf8), default: []].append(operation) }
        var result = CheckResult(verdict: .linearizable, keys: byKey.count, operations: history.count)
        if let bad = history.firstIndex(where: { operation in operation.returnTime.map { $0 < operation.call } ?? false }) {
            result.verdict = .unknown
            result.reason = "operation \(bad + 1) returns before its call: \(history[bad].summary)"
            return result
        }
        // Smallest keys first; equal sizes in key order, so turns are deterministic.
        let keys = byKey.keys.sorted {
            let (left, right) = (byKey[$0]!.count, byKey[$1]!.count)
            return left != right ? left < right : $0.lexicographicallyPrecedes($1)
        }
        var searches: [KeySearch?] = []
        var revealed: [(index: Int, violation: LinearizabilityViolation)] = []
        for (index, keyBytes) in keys.enumerated() {
            let operations = byKey[keyBytes]!
            let key = operations[0].key
            let reduced = KeySearch.reduce(operations)
            if self.options.decidesByRevealedOrder && RevealedOrder.applies(to: reduced) {
                switch RevealedOrder.check(key: key, reduced, mutation: self.options.revealedOrderMutation) {
                case .linearizable:
                    result.keysDecidedByRevealedOrder += 1
                    searches.append(nil)
                    continue
                case .violation(let violation):
                    result.keysDecidedByRevealedOrder += 1
                    revealed.append((index, violation))
                    searches.append(nil)
                    continue
                case .undecided:
                    result.keysSearchedAfterRevealedOrder += 1
                }
            }
            searches.append(KeySearch(key: key, operations: reduced, maximumCachedStates: self.options.maximumCachedStates))
        }
        if let first = revealed.first {
            result.verdict = .notLinearizable
            result.violation = first.violation
            result.unknownKeys = searches.indices.filter { searches[$0] != nil }.map { String(decoding: keys[$0], as: UTF8.self) }
            return result
        }
        byKey = [:]
        var active = searches.indices.filter { searches[$0] != nil }
        var turn = max(1, self.options.firstTurnSteps)
        var undecided: [(index: Int, reason: String)] = []
        func finish(_ index: Int) {
            result.cachedStates = max(result.cachedStates, searches[index]!.cachedStates)
            searches[index] = nil  // its memory goes now, in a few large blocks
        }
        while !active.isEmpty {
            var stillActive: [Int] = []
            for index in active {
                if clock.now >= deadline {
                    undecided.append((index, "time budget spent"))
                    finish(index)
                    continue
                }
                switch searches[index]!.run(steps: turn, deadline: deadline, clock: clock) {
                case .linearizable:
                    finish(index)
                case .violation(let violation):
                    finish(index)
                    result.verdict = .notLinearizable
                    result.violation = violation
                    // The keys not decided yet stay undecided: one refuted key is the verdict.
                    let open = searches.indices.filter { searches[$0] != nil } + undecided.map(\.index)
                    result.unknownKeys = open.sorted().map { String(decoding: keys[$0], as: UTF8.self) }
                    return result
                case .gaveUp(let reason):
                    undecided.append((index, reason))
                    finish(index)
                case .paused:
                    stillActive.append(index)
                }
            }
            // The memory budget: give up the largest searches until the rest fit.
            var total = stillActive.reduce(0) { $0 + searches[$1]!.memoryBytes }
            result.peakMemoryBytes = max(result.peakMemoryBytes, total)
            while total > self.options.maximumMemoryBytes, let largest = stillActive.max(by: { searches[$0]!.memoryBytes < searches[$1]!.memoryBytes }) {
                let bytes = searches[largest]!.memoryBytes
                undecided.append((largest, "memory budget of \(self.options.maximumMemoryBytes >> 20) MiB reached (key \(searches[largest]!.key) held \(bytes >> 20) MiB)"))
                finish(largest)
                stillActive.removeAll { $0 == largest }
                total -= bytes
            }
            active = stillActive
            if turn < self.options.firstTurnSteps << 6 { turn *= 2 }
        }
        if !undecided.isEmpty {
            result.verdict = .unknown
            undecided.sort { $0.index < $1.index }
            result.unknownKeys = undecided.map { String(decoding: keys[$0.index], as: UTF8.self) }
            result.reason = undecided[0].reason
        }
        return result
    }
}

/// A checker's answer.
public struct CheckResult: Sendable {
    /// The verdict.
    public enum Verdict: String, Sendable {
        case linearizable
        case notLinearizable = "not-linearizable"
        case unknown
    }

    /// The answer.
    public var verdict: Verdict
    /// Distinct keys in the history.
    public var keys: Int
    /// Operations in the history.
    public var operations: Int
    /// The first violation found (by key order), when not linearizable.
    public var violation: LinearizabilityViolation?
    /// Keys whose search ran out of budget.
    public var unknownKeys: [String] = []
    /// Why the search gave up, when `unknown`.
    public var reason: String?
    /// The most memoised states one key needed (a measure of memory).
    public var cachedStates = 0
    /// The most memory the searches held together between turns, in bytes (estimated).
    public var peakMemoryBytes = 0
    /// Keys decided without search, by the order their unique values reveal.
    public var keysDecidedByRevealedOrder = 0
    /// Keys whose values were unique but did not decide them (an ambiguous split of appends,
    /// a failed cas the order found had no room for, a cycle of cas): searched.
    public var keysSearchedAfterRevealedOrder = 0
}

/// Why a key's history is not linearizable.
public struct LinearizabilityViolation: Sendable, CustomStringConvertible {
    /// The key.
    public var key: String
    /// The longest partial linearization the search found, in order.
    public var longestLinearization: [HistoryOperation]
    /// The operation that blocked the deepest prefix the search explored: its completion came
    /// before it could be linearized after that prefix.
    public var unplaced: HistoryOperation
    /// The register's value after the longest partial linearization.
    public var stateAfterLinearization: String?
    /// Set when the key was decided by the order its values reveal (no search, so no partial
    /// linearization): why `unplaced` cannot be placed.
    public var reason: String?

    /// A violation.
    public init(
        key: String, longestLinearization: [HistoryOperation], unplaced: HistoryOperation, stateAfterLinearization: String?,
        reason: String? = nil
    ) {
        self.key = key
        self.longestLinearization = longestLinearization
        self.unplaced = unplaced
        self.stateAfterLinearization = stateAfterLinearization
        self.reason = reason
    }

    public var description: String {
        var text = "key \(self.key) is not linearizable.\n"
        if let reason = self.reason {
            return text + "Its written values are unique, so each read names the write it saw; this operation cannot be placed:\n  "
                + "\(self.unplaced.summary)\nbecause \(reason)"
        }
        text += "Longest partial linearization (\(self.longestLinearization.count) operations):\n"
        for operation in self.longestLinearization.suffix(10) { text += "  \(operation.summary)\n" }
        if self.longestLinearization.count > 10 { text += "  (\(self.longestLinearization.count - 10) earlier operations left out)\n" }
        text += "after which the value is \(HistoryOperation.quoted(self.stateAfterLinearization)), "
        text += "and this operation cannot be placed:\n  \(self.unplaced.summary)"
        return text
    }
}
