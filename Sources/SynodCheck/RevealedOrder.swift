/// Deciding a key without search when its values reveal the order.
///
/// **Registers (get, put, cas) with unique written values.** Every read names the write it
/// saw, and every successful cas names the write it replaced, which must come *immediately*
/// before its own (values are written once, so nothing else can come between). The writes
/// therefore fall into chains: a put (or the initial absent value) followed by the cas
/// operations that swapped from it, one after another. A chain's operations are contiguous in
/// any linearization, in a fixed sequence of segments: the first write, the reads of its
/// value, the cas that replaced it, the reads of that value, and so on; inside a segment the
/// order is free. Gibbons and Korach (1997) showed that registers with a known reads-from
/// mapping are decided in polynomial time; with chains as their blocks the argument is the
/// same. Chain `i` must precede chain `j` when one of `i`'s operations returns before one of
/// `j`'s is called: `f(i) < s(j)`, with `f` a chain's earliest return and `s` its latest call.
/// An order exists exactly when no two chains must each precede the other (a shortest cycle
/// of that relation has length two: take the chain of least `f` in a cycle; it must precede
/// every member, its predecessor included). Sorting by `min(f, s)` (a chain whose `s ≤ f`
/// first on ties) then gives one.
///
/// A cas that failed writes nothing; it needs a moment, inside its interval, at which the
/// value was not the one it expected. It is placed in the order found, at the earliest gap its
/// interval allows whose value differs. When the values force it into a span where the value
/// was the expected one (called after that value's write returned, returned before a read of
/// it was called) the key is refuted; when only the order found fails it, the key is left
/// undecided and the complete search decides it.
///
/// **Append-only keys (get, append) with unique suffixes.** Every read returns the whole
/// sequence of appends before it, so the longest read, split into the appended suffixes,
/// gives the order of every observed append: one chain. A split that is not unique leaves the
/// key to the search. Appends no read saw come after every read.
///
/// So the checks are:
///
/// 1. every value read or swapped from was written on this key (or is absent, the initial
///    value); no two successful cas swap from the same value; reads of an append key are
///    prefixes of one sequence of its appends;
/// 2. inside a chain, no operation returns before an operation of an earlier segment is called;
/// 3. no two chains with `f(i) < s(j)` and `f(j) < s(i)` (two overlapping forward zones, or a
///    backward zone inside a forward one, in Gibbons and Korach's terms);
/// 4. every failed cas has a gap (above).
///
/// O(n log n) plus the length of the values. Operations with unknown outcome take effect any
/// time after their call (their return is infinite), or never: those whose value nobody saw
/// are left out.
enum RevealedOrder {
    /// Deliberately wrong shortcuts, for the tests that show the differential tests can fail.
    enum Mutation: Sendable {
        /// Only forward zones are compared: a backward zone inside a forward one is missed.
        case ignoreBackwardZones
        /// Failed cas operations are taken to fit anywhere.
        case ignoreFailedCas
        /// Appends no read saw are left out, as if they could come anywhere.
        case ignoreUnseenAppends
    }

    /// What the values decide.
    enum Decision {
        case linearizable
        case violation(LinearizabilityViolation)
        /// The values do not decide it; the complete search must.
        case undecided(String)
    }

    /// Whether `operations` (already reduced) are of a shape the values can decide: gets,
    /// puts and cas with every written value present and written once, or gets and appends
    /// of non-empty suffixes appended once.
    static func applies(to operations: [HistoryOperation]) -> Bool {
        var written: Set<RegisterValue> = []
        let appends = operations.contains { $0.kind == .append }
        for operation in operations {
            switch operation.kind {
            case .get: continue
            case .put, .cas:
                guard !appends else { return false }
                if operation.kind == .cas && operation.output == .swapped(false) { continue }
                guard let value = operation.value, written.insert(Array(value.utf8)).inserted else { return false }
            case .append:
                guard let value = operation.value, !value.isEmpty, written.insert(Array(value.utf8)).inserted else { return false }
            case .delete: return false
            }
        }
        return true
    }

    /// A chain: segments of operations (indices), in the order the values fix; free order
    /// inside a segment. The first segment is the chain's first write (empty for the initial
    /// value).
    struct Chain {
        var segments: [[Int]] = []
        /// Earliest return and latest call, shifted by one so that 0 is "before every time".
        var earliestReturn: UInt64 = .max
        var earliestReturnOperation = -1
        var latestCall: UInt64 = 0
        var latestCallOperation = -1
        /// The chain's writes, in order.
        var writes: [Int] = []
    }

    /// Decides `operations`, which must satisfy `applies(to:)`.
    static func check(key: String, _ operations: [HistoryOperation], mutation: Mutation? = nil) -> Decision {
        var decider = Decider(key: key, operations: operations, mutation: mutation)
        return operations.contains { $0.kind == .append } ? decider.decideAppends() : decider.decideRegister()
    }

    struct Decider {
        let key: String
        let operations: [HistoryOperation]
        let mutation: Mutation?
        var chains: [Chain] = []

        init(key: String, operations: [HistoryOperation], mutation: Mutation?) {
            self.key = key
            self.operations = operations
            self.mutation = mutation
        }

        func call(_ index: Int) -> UInt64 { self.operations[index].call + 1 }
        func returns(_ index: Int) -> UInt64 { self.operations[index].isPending ? .max : self.operations[index].returnTime! + 1 }
        func bytes(_ value: String?) -> RegisterValue? { value.map { Array($0.utf8) } }

        func violation(_ unplaced: Int, _ reason: String) -> Decision {
            .violation(LinearizabilityViolation(
                key: self.key, longestLinearization: [], unplaced: self.operations[unplaced], stateAfterLinearization: nil, reason: reason))
        }

        /// The value a completed read saw, `nil` when its output is not a value.
        func seen(_ index: Int) -> RegisterValue?? {
            guard case .value(let value) = self.operations[index].output else { return nil }
            return .some(self.bytes(value))
        }

        // MARK: Registers

        mutating func decideRegister() -> Decision {
            let count = self.operations.count
            // Who wrote each value: puts, and cas operations that swapped or may have.
            var writerOf: [RegisterValue: Int] = [:]
            for (index, operation) in self.operations.enumerated() {
                if operation.kind == .put || (operation.kind == .cas && operation.output != .swapped(false)) {
                    writerOf[self.bytes(operation.value)!] = index
                }
            }
            // The writes that took effect: completed ones, and pending ones whose value was seen
            // (by a read, or by a cas that swapped from it), transitively.
            var included = [Bool](repeating: false, count: count)
            var seenValues: [RegisterValue] = []
            for (index, operation) in self.operations.enumerated() {
                switch operation.kind {
                case .put where !operation.isPending: included[index] = true
                case .cas where operation.output == .swapped(true):
                    included[index] = true
                    if let expected = self.bytes(operation.expected) { seenValues.append(expected) }
                case .get:
                    if case .some(.some(let value)) = self.seen(index) { seenValues.append(value) }
                default: break
                }
            }
            while let value = seenValues.popLast() {
                guard let writer = writerOf[value], !included[writer] else { continue }
                included[writer] = true
                if self.operations[writer].kind == .cas, let expected = self.bytes(self.operations[writer].expected) {
                    seenValues.append(expected)
                }
            }
            // Each write's successor (the cas that swapped from it; -1 stands for the initial
            // value) and readers.
            var successor: [Int: Int] = [:]
            var readers: [Int: [Int]] = [:]
            var includedCas = 0
            for (index, operation) in self.operations.enumerated() where included[index] && operation.kind == .cas {
                includedCas += 1
                let predecessor: Int
                if let expected = self.bytes(operation.expected) {
                    guard let writer = writerOf[expected] else {
                        return self.violation(index, "it swapped from \(HistoryOperation.quoted(operation.expected)), which no put or cas on this key wrote")
                    }
                    predecessor = writer
                } else {
                    predecessor = -1
                }
                if let other = successor[predecessor] {
                    return self.violation(index,
                        "it and \(self.operations[other].summary) both swapped from \(HistoryOperation.quoted(operation.expected)), "
                            + "which was written once: the first to take effect changed it")
                }
                successor[predecessor] = index
            }
            for index in 0..<count where self.operations[index].kind == .get {
                guard case .some(let value) = self.seen(index) else { continue }
                var writer = -1
                if let value {
                    guard let found = writerOf[value], included[found] else {
                        return self.violation(index, "it read \(HistoryOperation.quoted(self.operations[index].output.readValue)), which no put or cas on this key wrote")
                    }
                    writer = found
                }
                readers[writer, default: []].append(index)
            }
            // The chains: from the initial value and from each put.
            var reachedCas = 0
            for head in [-1] + (0..<count).filter({ included[$0] && self.operations[$0].kind == .put }) {
                var chain = Chain()
                var write = head
                while true {
                    chain.segments.append(write < 0 ? [] : [write])
                    if write >= 0 { chain.writes.append(write) }
                    chain.segments.append(readers[write] ?? [])
                    guard let next = successor[write] else { break }
                    reachedCas += 1
                    write = next
                }
                self.chains.append(chain)
            }
            if reachedCas < includedCas {
                // A cycle: the first of its cas to take effect swapped from a value that only a
                // later member writes.
                var reached = [Bool](repeating: false, count: count)
                for chain in self.chains { for write in chain.writes { reached[write] = true } }
                let member = (0..<count).first { included[$0] && self.operations[$0].kind == .cas && !reached[$0] }!
                return self.violation(member,
                    "it swapped from \(HistoryOperation.quoted(self.operations[member].expected)), and the cas operations that wrote "
                        + "the values it depends on form a cycle back to it: the first of them to take effect had nothing to swap from")
            }
            if let refuted = self.checkChains() { return refuted }
            return self.placeFailedCas(writerOf: writerOf, included: included, successor: successor, readers: readers)
        }

        /// Checks 2 and 3 for `chains`; fills in each chain's `f` and `s`.
        mutating func checkChains() -> Decision? {
            for number in self.chains.indices {
                if let refuted = self.checkSegments(number) { return refuted }
            }
            // The initial value's chain comes first: its write is before every time.
            self.chains[0].earliestReturn = 0
            self.chains[0].earliestReturnOperation = -1
            // Find i ≠ j with f(i) < s(j) and f(j) < s(i): chains sorted by f; for each j, among
            // the chains with f < s(j) (a prefix), the largest s other than j's own.
            var order = self.chains.indices.sorted { self.chains[$0].earliestReturn < self.chains[$1].earliestReturn }
            if self.mutation == .ignoreBackwardZones {
                order.removeAll { self.chains[$0].latestCall <= self.chains[$0].earliestReturn }
            }
            var best: [(first: Int, second: Int)] = []  // prefix maxima of s: the two largest
            best.reserveCapacity(order.count)
            var first = -1
            var second = -1
            for number in order {
                if first < 0 || self.chains[number].latestCall > self.chains[first].latestCall {
                    second = first
                    first = number
                } else if second < 0 || self.chains[number].latestCall > self.chains[second].latestCall {
                    second = number
                }
                best.append((first, second))
            }
            for j in order {
                var low = 0
                var high = order.count
                while low < high {
                    let middle = (low + high) / 2
                    if self.chains[order[middle]].earliestReturn < self.chains[j].latestCall { low = middle + 1 } else { high = middle }
                }
                guard low > 0 else { continue }
                let candidates = best[low - 1]
                let i = candidates.first != j ? candidates.first : candidates.second
                guard i >= 0, self.chains[j].earliestReturn < self.chains[i].latestCall else { continue }
                return self.conflict(self.chains[i], self.chains[j])
            }
            return nil
        }

        /// Check 2 for one chain, and its `f` and `s`.
        mutating func checkSegments(_ number: Int) -> Decision? {
            var latestCall: UInt64 = 0  // over the earlier segments
            var latestCallOperation = -1
            var chain = self.chains[number]
            for segment in chain.segments {
                for index in segment {
                    let returned = self.returns(index)
                    if returned < latestCall {
                        return self.violation(index, self.mustFollow(index, latestCallOperation))
                    }
                    if returned < chain.earliestReturn {
                        chain.earliestReturn = returned
                        chain.earliestReturnOperation = index
                    }
                }
                for index in segment where self.call(index) > latestCall || latestCallOperation < 0 {
                    latestCall = self.call(index)
                    latestCallOperation = index
                }
            }
            chain.latestCall = latestCall
            chain.latestCallOperation = latestCallOperation
            self.chains[number] = chain
            return nil
        }

        /// Why `index` cannot be placed: it returned before `earlier`, which the values put
        /// before it, was called.
        func mustFollow(_ index: Int, _ earlier: Int) -> String {
            let operation = self.operations[index]
            let before = self.operations[earlier]
            if operation.kind == .get, case .value(let value) = operation.output, before.kind == .put || before.kind == .cas,
                before.value == value
            {
                return "it returned before the \(before.kind.rawValue) of its value was called: \(before.summary)"
            }
            let order = operation.kind == .append || before.kind == .append || self.operations.contains(where: { $0.kind == .append })
                ? "the order the appends reveal (each read holds the appends before it)"
                : "the order the values reveal (a write, the reads of its value, the cas that replaced it)"
            return "\(before.summary) must come before it in \(order), yet was called only after it returned"
        }

        /// Chains `i` and `j` must each precede the other.
        func conflict(_ i: Chain, _ j: Chain) -> Decision {
            func name(_ chain: Chain) -> String {
                guard let first = chain.writes.first else { return "the initial (absent) value" }
                let head = "the value \(HistoryOperation.quoted(self.operations[first].value))"
                return chain.writes.count == 1 ? head : head + " (and the \(chain.writes.count - 1) cas after it)"
            }
            func operation(_ index: Int) -> String { index < 0 ? "the initial value" : self.operations[index].summary }
            let reason = "\(name(i)) and \(name(j)) must each come before the other: "
                + "\(operation(i.earliestReturnOperation)) returned before \(operation(j.latestCallOperation)) was called, and "
                + "\(operation(j.earliestReturnOperation)) returned before \(operation(i.latestCallOperation)) was called"
            // The operation named unplaced: a read called too late for its value, if there is one.
            let candidates = [j.latestCallOperation, i.latestCallOperation].filter { $0 >= 0 }
            let unplaced = candidates.first { self.operations[$0].kind == .get } ?? candidates[0]
            return self.violation(unplaced, reason)
        }

        /// Check 4: every failed cas needs a moment in its interval at which the value was not
        /// the one it expected.
        func placeFailedCas(writerOf: [RegisterValue: Int], included: [Bool], successor: [Int: Int], readers: [Int: [Int]]) -> Decision {
            let failed = self.operations.indices.filter { self.operations[$0].kind == .cas && self.operations[$0].output == .swapped(false) }
            guard !failed.isEmpty, self.mutation != .ignoreFailedCas else { return .linearizable }
            // The write whose value a failed cas expected: -1 for absent, nil when that value
            // never held (nobody wrote it, or its write never took effect).
            func expectedWrite(_ index: Int) -> Int?? {
                guard let expected = self.bytes(self.operations[index].expected) else { return .some(-1) }
                guard let writer = writerOf[expected], included[writer] else { return .none }
                return .some(writer)
            }
            // Refuted when the values force it into a span holding its expected value: called
            // after an operation of that span returned (its write, or a read of the value), and
            // returned before one was called (a read of the value, or the cas that replaced it).
            for index in failed {
                guard case .some(.some(let write)) = expectedWrite(index) else { continue }
                var latestReader = readers[write]?.max { self.call($0) < self.call($1) }
                if let next = successor[write], latestReader.map({ self.call(next) > self.call($0) }) ?? true { latestReader = next }
                guard let reader = latestReader else { continue }
                var earliest = write
                for other in readers[write] ?? [] where earliest < 0 || self.returns(other) < self.returns(earliest) { earliest = other }
                if write < 0 { earliest = -1 }  // the initial value holds from before every time
                let written = earliest < 0 ? 0 : self.returns(earliest)
                if written < self.call(index) && self.returns(index) < self.call(reader) {
                    let after = earliest < 0 ? "" : "was called after \(self.operations[earliest].summary) returned and "
                    return self.violation(index,
                        "it failed, so the value was not \(HistoryOperation.quoted(self.operations[index].expected)) when it took effect; "
                            + "yet it \(after)returned before \(self.operations[reader].summary) was called, "
                            + "so the value was \(HistoryOperation.quoted(self.operations[index].expected)) throughout")
                }
            }
            // One linearization of the rest: chains by min(f, s), a chain whose s ≤ f first on ties.
            let order = self.chains.indices.sorted {
                let (left, right) = (self.chains[$0], self.chains[$1])
                let leftKey = (min(left.earliestReturn, left.latestCall), left.latestCall <= left.earliestReturn ? 0 : 1, $0)
                let rightKey = (min(right.earliestReturn, right.latestCall), right.latestCall <= right.earliestReturn ? 0 : 1, $1)
                return leftKey < rightKey
            }
            var position = [Int](repeating: -1, count: self.operations.count)
            var placed: [Int] = []
            // The gaps holding each write's value: from its position to just before the next write.
            var span: [Int: (first: Int, last: Int)] = [-1: (-1, -1)]
            var current = -1
            for number in order {
                for (segmentNumber, segment) in self.chains[number].segments.enumerated() {
                    let isWrite = segmentNumber % 2 == 0
                    if isWrite, let write = segment.first {
                        span[current]!.last = placed.count - 1
                        current = write
                        span[write] = (placed.count, placed.count)
                    }
                    for index in isWrite ? segment : segment.sorted(by: { self.call($0) < self.call($1) }) {
                        position[index] = placed.count
                        placed.append(index)
                    }
                }
            }
            span[current]!.last = placed.count - 1
            // For a failed cas's interval: the last placed operation that returned before its
            // call, and the first called after its return.
            let byReturn = placed.sorted { self.returns($0) < self.returns($1) }
            var latestPosition: [Int] = []
            latestPosition.reserveCapacity(byReturn.count)
            for index in byReturn { latestPosition.append(max(latestPosition.last ?? -1, position[index])) }
            let byCall = placed.sorted { self.call($0) < self.call($1) }
            var earliestPosition = [Int](repeating: placed.count, count: byCall.count + 1)
            for (rank, index) in byCall.enumerated().reversed() { earliestPosition[rank] = min(earliestPosition[rank + 1], position[index]) }
            // In call order, each failed cas takes the earliest gap its interval allows, at or
            // after the gaps of the failed cas that returned before it was called, whose value
            // is not the one it expected. Earliest is best: it leaves every later one the most
            // room. `placedGaps` holds the latest gap over failed cas by rank of return.
            let byRank = failed.sorted { self.returns($0) < self.returns($1) }
            var placedGaps = MaximumTree(count: byRank.count)
            for index in failed.sorted(by: { self.call($0) < self.call($1) }) {
                var low = 0
                var high = byReturn.count
                while low < high {
                    let middle = (low + high) / 2
                    if self.returns(byReturn[middle]) < self.call(index) { low = middle + 1 } else { high = middle }
                }
                var gap = low == 0 ? -1 : latestPosition[low - 1]
                low = 0
                high = byRank.count
                while low < high {
                    let middle = (low + high) / 2
                    if self.returns(byRank[middle]) < self.call(index) { low = middle + 1 } else { high = middle }
                }
                gap = max(gap, placedGaps.maximum(below: low))
                low = 0
                high = byCall.count
                while low < high {
                    let middle = (low + high) / 2
                    if self.call(byCall[middle]) <= self.returns(index) { low = middle + 1 } else { high = middle }
                }
                let before = earliestPosition[low]
                // Gaps run to before-1 (gap g: just after placed[g]).
                if case .some(.some(let write)) = expectedWrite(index), let held = span[write], held.first <= gap, gap <= held.last {
                    gap = held.last + 1
                }
                guard gap <= before - 1 else {
                    return .undecided("a failed cas found no gap in the order the values suggest: \(self.operations[index].summary)")
                }
                var rank = 0
                high = byRank.count
                while rank < high {
                    let middle = (rank + high) / 2
                    if self.returns(byRank[middle]) < self.returns(index) { rank = middle + 1 } else { high = middle }
                }
                while byRank[rank] != index { rank += 1 }
                placedGaps.raise(rank, to: gap)
            }
            return .linearizable
        }

        // MARK: Appends

        mutating func decideAppends() -> Decision {
            // The longest value read; every other must be a prefix of it.
            var longest = -1
            var longestLength = -1
            for index in self.operations.indices where self.operations[index].kind == .get {
                guard case .some(.some(let value)) = self.seen(index) else { continue }
                if value.count > longestLength {
                    longest = index
                    longestLength = value.count
                }
            }
            var sequence: [Int] = []  // the appends, in order
            var boundary: [Int: Int] = [0: -1]  // a read's length → the last append it saw
            if let empty = self.operations.indices.first(where: { self.seen($0) == .some(.some([])) }) {
                return self.violation(empty, "it read the empty string, which no append makes (appended suffixes are not empty)")
            }
            if longest >= 0 {
                let full = self.seen(longest)!!
                for index in self.operations.indices where self.operations[index].kind == .get {
                    guard case .some(.some(let value)) = self.seen(index) else { continue }
                    if !full.starts(with: value) {
                        return self.violation(index,
                            "it read \(HistoryOperation.quoted(self.operations[index].output.readValue)) and \(self.operations[longest].summary) "
                                + "read a value that does not extend it, yet appends only extend a value")
                    }
                }
                // Split `full` into appended suffixes: count the splits of each prefix (up to 2).
                var suffixes: [ArraySlice<UInt8>: Int] = [:]
                var lengths: Set<Int> = []
                for (index, operation) in self.operations.enumerated() where operation.kind == .append {
                    let suffix = Array(operation.value!.utf8)
                    suffixes[suffix[...]] = index
                    lengths.insert(suffix.count)
                }
                let sortedLengths = lengths.sorted()
                var splits = [UInt8](repeating: 0, count: full.count + 1)
                var lastAppend = [Int](repeating: -1, count: full.count + 1)
                splits[0] = 1
                for end in 1...full.count {
                    for length in sortedLengths where length <= end {
                        guard splits[end - length] > 0, let append = suffixes[full[(end - length)..<end]] else { continue }
                        splits[end] = min(2, splits[end] + splits[end - length])
                        lastAppend[end] = append
                    }
                }
                guard splits[full.count] > 0 else {
                    return self.violation(longest, "no sequence of the appends on this key makes the value it read")
                }
                guard splits[full.count] == 1 else {
                    return .undecided("the value \(self.operations[longest].summary) read splits into appends in more than one way")
                }
                var end = full.count
                var used: Set<Int> = []
                while end > 0 {
                    let append = lastAppend[end]
                    guard used.insert(append).inserted else {
                        return self.violation(longest, "the only way to make the value it read uses \(self.operations[append].summary) twice")
                    }
                    sequence.append(append)
                    end -= self.operations[append].value!.utf8.count
                }
                sequence.reverse()
                var length = 0
                for (number, append) in sequence.enumerated() {
                    length += self.operations[append].value!.utf8.count
                    boundary[length] = number
                }
            }
            // One chain: the initial value, its reads, then each append and its reads, then the
            // appends nobody saw that took effect (completed ones).
            var readers = [[Int]](repeating: [], count: sequence.count + 1)  // slot 0: the initial value
            for index in self.operations.indices where self.operations[index].kind == .get {
                guard case .some(let value) = self.seen(index) else { continue }
                guard let number = boundary[value?.count ?? 0] else {
                    return self.violation(index, "the value it read ends inside an append, yet appends take effect whole")
                }
                readers[number + 1].append(index)
            }
            var chain = Chain()
            chain.segments = [[], readers[0]]
            for (number, append) in sequence.enumerated() {
                chain.segments.append([append])
                chain.segments.append(readers[number + 1])
            }
            let seenAppends = Set(sequence)
            let unseen = self.operations.indices.filter {
                self.operations[$0].kind == .append && !self.operations[$0].isPending && !seenAppends.contains($0)
            }
            if self.mutation != .ignoreUnseenAppends { chain.segments.append(unseen) }
            chain.writes = sequence
            self.chains = [chain]
            if let refuted = self.checkSegments(0) { return refuted }
            return .linearizable
        }
    }
}

extension HistoryOperation.Output {
    /// The value of a read, for messages.
    var readValue: String? {
        if case .value(let value) = self { return value }
        return nil
    }
}

/// Prefix maxima over a fixed number of slots (a Fenwick tree), -1 where nothing was set.
struct MaximumTree {
    var tree: [Int]
    init(count: Int) { self.tree = [Int](repeating: -1, count: count + 1) }
    /// Raises slot `index` to at least `value`.
    mutating func raise(_ index: Int, to value: Int) {
        var node = index + 1
        while node < self.tree.count {
            self.tree[node] = max(self.tree[node], value)
            node += node & -node
        }
    }
    /// The largest value in slots `0..<end`.
    func maximum(below end: Int) -> Int {
        var node = end
        var result = -1
        while node > 0 {
            result = max(result, self.tree[node])
            node -= node & -node
        }
        return result
    }
}
