/// Wing & Gong's search with Lowe's memoisation over one key's operations.
struct KeySearch {
    enum Outcome {
        case linearizable
        case violation(LinearizabilityViolation)
        case gaveUp(String)
        /// The step budget of this turn is spent; `run` goes on from here when called again.
        case paused
    }

    let key: String
    let operations: [HistoryOperation]
    let maximumCachedStates: Int
    /// Doubly linked list of call and return entries in time order; `head` is a sentinel and
    /// -1 ends the list.
    var next: [Int32] = []
    var previous: [Int32] = []
    var operationOf: [Int32] = []
    var isReturn: [Bool] = []
    var returnEntryOf: [Int32] = []
    var head: Int32 = 0
    /// Interned register states (0: absent).
    var states = StateTable()
    /// The operations in the model's terms, index for index.
    let model: [ModelOperation]
    /// Configurations explored (and failed, or under way).
    var cache = ConfigurationTable()
    var keyBuffer: [UInt64] = []
    /// Memoised model steps: (state, operation) → next state, or -1 when the step is refused.
    /// Strings are built and hashed once per distinct transition, not once per search step.
    var transitions: [UInt64: Int32] = [:]
    var cachedStates: Int { self.cache.count }
    /// The memory this search holds, in bytes (estimated from capacities: the memo exactly,
    /// the dictionaries at a fixed cost per entry).
    var memoryBytes: Int {
        self.cache.bytes + 48 * self.transitions.count + self.states.memoryBytes + 64 * self.operations.count
            + 8 * self.linearized.words.count + 16 * self.stack.capacity
    }

    // The search's position, kept between turns (see `run`).
    let isPending: [Bool]
    let neverWrites: [Bool]
    var linearized: LinearizedSet
    var state: Int32 = 0
    var stack: [Step] = []
    /// The deepest dead end: the explanation of a violation.
    var bestDepth = -1
    var bestLinearization: [Int32] = []
    var bestUnplaced: Int32 = -1
    var bestState: Int32 = 0
    /// Steps taken over all turns.
    var iterations = 0
    var entry: Int32 = -1
    /// At a new node, first look for a state-keeping candidate (see `Step.forced`).
    var atNewNode = true

    /// `operations` are already reduced (`reduce(_:)`).
    init(key: String, operations: [HistoryOperation], maximumCachedStates: Int) {
        self.key = key
        // Completed operations first, in call order, then pending ones: a set of linearized
        // operations is then a full prefix, a short window and the pending bits (`LinearizedSet`).
        let order = operations.indices.sorted {
            (operations[$0].isPending ? 1 : 0, operations[$0].call, $0) < (operations[$1].isPending ? 1 : 0, operations[$1].call, $1)
        }
        self.operations = order.map { operations[$0] }
        self.model = self.operations.map(ModelOperation.init)
        self.maximumCachedStates = maximumCachedStates
        self.isPending = self.operations.map(\.isPending)
        self.neverWrites = self.model.map(RegisterModel.neverWrites)
        self.linearized = LinearizedSet(
            completed: self.operations.count { !$0.isPending }, pending: self.operations.count { $0.isPending })
        self.buildList()
        self.entry = self.next[Int(self.head)]
    }

    /// Drops operations that cannot change the verdict:
    ///
    /// - a read whose outcome is unknown constrains nothing;
    /// - on a key with only reads and blind writes (get, put, delete), a pending write whose
    ///   value no completed read returned. Proof: in any linearization that includes it, the
    ///   operations between it and the next write are reads, which would return its value; there
    ///   are none, so removing it changes no output. Without this, every pending write doubles
    ///   the configurations a failing search must exhaust.
    static func reduce(_ operations: [HistoryOperation]) -> [HistoryOperation] {
        var kept = operations.filter { !($0.kind == .get && $0.isPending) }
        let blindOnly = kept.allSatisfy { $0.kind == .get || $0.kind == .put || $0.kind == .delete }
        guard blindOnly else { return kept }
        var observed: Set<RegisterValue?> = []
        for operation in kept where operation.kind == .get {
            if case .value(let seen) = operation.output { observed.insert(seen.map { Array($0.utf8) }) }
        }
        kept.removeAll {
            $0.isPending && $0.kind != .get && !observed.contains($0.kind == .put ? $0.value.map { Array($0.utf8) } : nil)
        }
        return kept
    }

    /// Orders every call and return by time. Intervals are closed: at equal times calls come
    /// first, so operations that touch are concurrent. Pending operations never return.
    mutating func buildList() {
        let count = self.operations.count
        var entries: [(time: UInt64, isReturn: Bool, operation: Int32)] = []
        entries.reserveCapacity(2 * count)
        for (index, operation) in self.operations.enumerated() {
            entries.append((operation.call, false, Int32(index)))
            entries.append((operation.isPending ? UInt64.max : operation.returnTime!, true, Int32(index)))
        }
        entries.sort { ($0.time, $0.isReturn ? 1 : 0, $0.operation) < ($1.time, $1.isReturn ? 1 : 0, $1.operation) }
        let total = entries.count
        self.head = Int32(total)
        self.next = Array(repeating: -1, count: total + 1)
        self.previous = Array(repeating: -1, count: total + 1)
        self.operationOf = entries.map(\.operation) + [-1]
        self.isReturn = entries.map(\.isReturn) + [false]
        self.returnEntryOf = Array(repeating: -1, count: count)
        var last = self.head
        for (position, entry) in entries.enumerated() {
            if entry.isReturn { self.returnEntryOf[Int(entry.operation)] = Int32(position) }
            self.next[Int(last)] = Int32(position)
            self.previous[position] = last
            last = Int32(position)
        }
    }

    mutating func unlink(_ entry: Int32) {
        let before = self.previous[Int(entry)]
        let after = self.next[Int(entry)]
        self.next[Int(before)] = after
        if after >= 0 { self.previous[Int(after)] = before }
    }

    mutating func relink(_ entry: Int32) {
        let before = self.previous[Int(entry)]
        let after = self.next[Int(entry)]
        self.next[Int(before)] = entry
        if after >= 0 { self.previous[Int(after)] = entry }
    }

    mutating func step(_ state: Int32, _ operation: Int32) -> Int32 {
        let key = UInt64(UInt32(bitPattern: state)) << 32 | UInt64(UInt32(bitPattern: operation))
        if let known = self.transitions[key] { return known }
        let next = RegisterModel.step(state, self.model[Int(operation)], &self.states)
        self.transitions[key] = next
        return next
    }

    /// A fixed pseudo-random 64-bit tag per operation; a configuration's hash is the XOR of
    /// its linearized operations' tags, updated in O(1) per step.
    static func tag(_ operation: Int) -> UInt64 {
        var value = UInt64(operation) &+ 0x9E37_79B9_7F4A_7C15
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }

    /// One linearized operation on the search path.
    struct Step {
        var operation: Int32
        var callEntry: Int32
        var previousState: Int32
        /// Taken because it never changes the state, wherever it is placed (a read, a failed
        /// cas), and the current state accepts it. Linearizing such an operation at once is
        /// never worse than delaying it: any completion that places it later still works with it
        /// removed from there, since it changes nothing. So it dominates every alternative at
        /// its node, and backtracking over it backtracks over the node too. (A write that
        /// happens to leave the current state unchanged does not qualify: placed later, it may
        /// change it.)
        var forced: Bool
    }

    enum Attempt {
        /// Linearized: the search moved to the new configuration.
        case descended
        /// The configuration was explored before (and failed); nothing changed.
        case explored
        /// The memo is full.
        case overBudget
    }

    /// Linearizes the operation whose call is `entry`, moving the state to `newState`, unless
    /// the configuration it leads to was explored before.
    mutating func linearize(_ entry: Int32, reaching newState: Int32, forced: Bool) -> Attempt {
        let operation = self.operationOf[Int(entry)]
        self.linearized.insert(Int(operation))
        self.linearized.keyWords(into: &self.keyBuffer)
        guard self.cache.insert(frontier: Int32(self.linearized.low), state: newState, hash: self.linearized.hash, words: self.keyBuffer) else {
            self.linearized.remove(Int(operation))
            return .explored
        }
        if self.cache.count > self.maximumCachedStates { return .overBudget }
        self.stack.append(Step(operation: operation, callEntry: entry, previousState: self.state, forced: forced))
        self.state = newState
        self.unlink(entry)
        self.unlink(self.returnEntryOf[Int(operation)])
        return .descended
    }

    /// Searches on from where the last turn stopped, for at most `steps` steps (then `.paused`)
    /// and until `deadline` (then `.gaveUp`): the checker gives every key turns, so that one
    /// hard key cannot starve the others.
    mutating func run(steps: Int, deadline: ContinuousClock.Instant, clock: ContinuousClock) -> Outcome {
        let stop = self.iterations &+ steps
        while true {
            self.iterations &+= 1
            if self.iterations & 0xFFF == 0 && clock.now >= deadline {
                return .gaveUp("time budget spent on key \(self.key) after \(self.iterations) steps")
            }
            if self.iterations == stop { return .paused }
            var deadEnd = false
            if self.atNewNode {
                self.atNewNode = false
                var candidate = self.next[Int(self.head)]
                var forcedEntry: Int32 = -1
                while candidate >= 0 && !self.isReturn[Int(candidate)] {
                    let operation = self.operationOf[Int(candidate)]
                    if self.neverWrites[Int(operation)] && self.step(self.state, operation) == self.state {
                        forcedEntry = candidate
                        break
                    }
                    candidate = self.next[Int(candidate)]
                }
                if forcedEntry >= 0 {
                    switch self.linearize(forcedEntry, reaching: self.state, forced: true) {
                    case .descended:
                        self.atNewNode = true
                        continue
                    case .explored:
                        deadEnd = true  // explored before, and failed: so does this node
                    case .overBudget:
                        return .gaveUp("more than \(self.maximumCachedStates) states memoised on key \(self.key)")
                    }
                } else {
                    self.entry = self.next[Int(self.head)]
                }
            }
            if !deadEnd {
                guard self.entry >= 0 else { return .linearizable }
                let operation = self.operationOf[Int(self.entry)]
                if !self.isReturn[Int(self.entry)] {
                    let stateID = self.step(self.state, operation)
                    if stateID >= 0 {
                        switch self.linearize(self.entry, reaching: stateID, forced: false) {
                        case .descended:
                            self.atNewNode = true
                            continue
                        case .explored:
                            break
                        case .overBudget:
                            return .gaveUp("more than \(self.maximumCachedStates) states memoised on key \(self.key)")
                        }
                    }
                    self.entry = self.next[Int(self.entry)]
                    continue
                }
                // A completion whose operation is not linearized yet. If it is a pending
                // operation's (they sort last), every completed operation is linearized: done.
                if self.isPending[Int(operation)] { return .linearizable }
                if self.stack.count > self.bestDepth {
                    self.bestDepth = self.stack.count
                    self.bestLinearization = self.stack.map(\.operation)
                    self.bestUnplaced = operation
                    self.bestState = self.state
                }
            }
            // Backtrack: undo steps until one that was a free choice, then try the next
            // candidate after it.
            while true {
                guard let top = self.stack.popLast() else {
                    return .violation(LinearizabilityViolation(
                        key: self.key,
                        longestLinearization: self.bestLinearization.map { self.operations[Int($0)] },
                        unplaced: self.operations[Int(max(self.bestUnplaced, 0))],
                        stateAfterLinearization: self.states.value(self.bestState).map { String(decoding: $0, as: UTF8.self) }))
                }
                self.linearized.remove(Int(top.operation))
                self.state = top.previousState
                self.relink(self.returnEntryOf[Int(top.operation)])
                self.relink(top.callEntry)
                if !top.forced {
                    self.entry = self.next[Int(top.callEntry)]
                    break
                }
            }
        }
    }
}

/// The set of linearized operations, kept so that its memo key is small: operations are
/// numbered completed-first in call order, so the linearized completed operations are a full
/// prefix of words (below `low`), a short window (`low...high`) and nothing above; pending
/// operations have words of their own. A key holds the window and the pending words only:
/// a few words where a plain bitset needs one bit per operation of the key.
struct LinearizedSet {
    let completedWords: Int
    let lastCompletedMask: UInt64
    var words: [UInt64]
    /// First completed word that is not full.
    var low = 0
    /// Last completed word with a bit set, or -1.
    var high = -1
    /// XOR of the members' tags: the set's hash, updated in O(1).
    var hash: UInt64 = 0
    let pendingBase: Int
    let completedCount: Int

    init(completed: Int, pending: Int) {
        self.completedCount = completed
        self.completedWords = (completed + 63) / 64
        self.lastCompletedMask = completed % 64 == 0 ? ~0 : (1 << UInt64(completed % 64)) - 1
        self.pendingBase = self.completedWords * 64
        self.words = [UInt64](repeating: 0, count: self.completedWords + (pending + 63) / 64)
    }

    func bit(_ operation: Int) -> Int {
        operation < self.completedCount ? operation : self.pendingBase + (operation - self.completedCount)
    }

    func isFull(_ word: Int) -> Bool {
        self.words[word] == (word == self.completedWords - 1 ? self.lastCompletedMask : ~0)
    }

    mutating func insert(_ operation: Int) {
        let bit = self.bit(operation)
        self.words[bit >> 6] |= 1 << UInt64(bit & 63)
        self.hash ^= KeySearch.tag(operation)
        guard operation < self.completedCount else { return }
        let word = bit >> 6
        self.high = max(self.high, word)
        while self.low < self.completedWords && self.isFull(self.low) { self.low += 1 }
    }

    mutating func remove(_ operation: Int) {
        let bit = self.bit(operation)
        self.words[bit >> 6] &= ~(1 << UInt64(bit & 63))
        self.hash ^= KeySearch.tag(operation)
        guard operation < self.completedCount else { return }
        let word = bit >> 6
        self.low = min(self.low, word)
        while self.high >= 0 && self.words[self.high] == 0 { self.high -= 1 }
    }

    /// The words that, with `low` and the hash, identify the set: the completed window and
    /// the pending words.
    func keyWords(into buffer: inout [UInt64]) {
        buffer.removeAll(keepingCapacity: true)
        if self.high >= self.low { buffer.append(contentsOf: self.words[self.low...self.high]) }
        buffer.append(contentsOf: self.words[self.completedWords...])
    }
}
