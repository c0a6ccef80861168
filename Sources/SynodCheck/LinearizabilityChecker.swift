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
public struct LinearizabilityChecker: Sendable {
    /// Bounds on the search.
    public struct Options: Sendable {
        /// Wall-clock budget for the whole history.
        public var timeout: Duration = .seconds(60)
        /// Most memoised states kept for one key before giving up with `unknown`.
        public var maximumCachedStates = 20_000_000
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
        for keyBytes in byKey.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let operations = byKey[keyBytes]!
            let key = operations[0].key
            var search = KeySearch(key: key, operations: operations, maximumCachedStates: self.options.maximumCachedStates)
            let outcome = search.run(deadline: deadline, clock: clock)
            result.cachedStates = max(result.cachedStates, search.cachedStates)
            switch outcome {
            case .linearizable:
                continue
            case .violation(let violation):
                result.verdict = .notLinearizable
                result.violation = violation
                return result
            case .gaveUp(let reason):
                result.verdict = .unknown
                result.unknownKeys.append(key)
                result.reason = reason
                if clock.now >= deadline { return result }
            }
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

    public var description: String {
        var text = "key \(self.key) is not linearizable.\n"
        text += "Longest partial linearization (\(self.longestLinearization.count) operations):\n"
        for operation in self.longestLinearization.suffix(10) { text += "  \(operation.summary)\n" }
        if self.longestLinearization.count > 10 { text += "  (\(self.longestLinearization.count - 10) earlier operations left out)\n" }
        text += "after which the value is \(HistoryOperation.quoted(self.stateAfterLinearization)), "
        text += "and this operation cannot be placed:\n  \(self.unplaced.summary)"
        return text
    }
}
