/// Deciding a key without search when its values reveal the order: on a key of reads and
/// puts whose written values are unique, every read names the write it saw, so the history is
/// linearizable exactly when the blocks "a write and the reads of its value" can be put in one
/// order (Gibbons and Korach, 1997, for registers whose reads-from mapping is known).
///
/// A block's operations are contiguous in any linearization (a write, then reads of its value,
/// until the next write). Block `i` must precede block `j` when one of `i`'s operations returns
/// before one of `j`'s is called: `f(i) < s(j)`, with `f` a block's earliest return and `s` its
/// latest call. Such an order exists exactly when no two blocks must each precede the other
/// (a shortest cycle in that relation has length two: take the block of least `f` in a cycle;
/// it must precede every member, its predecessor included). So the checks are:
///
/// 1. every read's value was written on this key (or is absent, read from the initial block);
/// 2. no read returns before its write is called;
/// 3. no two blocks with `f(i) < s(j)` and `f(j) < s(i)` (two overlapping forward zones, or a
///    backward zone inside a forward one, in Gibbons and Korach's terms).
///
/// O(n log n). Outcomes with unknown outcome take effect any time after their call (their
/// return is infinite); unread ones are dropped before (`KeySearch.reduce`).
enum RevealedOrder {
    /// Deliberately wrong shortcuts, for the test that shows the differential test can fail.
    enum Mutation: Sendable {
        /// Only forward zones are compared: a backward zone inside a forward one is missed.
        case ignoreBackwardZones
    }

    /// Whether the values of `operations` (already reduced) decide the order: only gets and
    /// puts, every put's value a string written once.
    static func applies(to operations: [HistoryOperation]) -> Bool {
        var written: Set<[UInt8]> = []
        for operation in operations {
            switch operation.kind {
            case .get: continue
            case .put:
                guard let value = operation.value, written.insert(Array(value.utf8)).inserted else { return false }
            case .append, .cas, .delete: return false
            }
        }
        return true
    }

    /// One block: a write (absent for the initial value) and the reads of its value.
    struct Block {
        var write: Int?
        var reads: [Int] = []
        /// Earliest return and latest call, shifted by one so that 0 is "before every time".
        var earliestReturn: UInt64 = .max
        var earliestReturnOperation = -1
        var latestCall: UInt64 = 0
        var latestCallOperation = -1

        mutating func add(_ index: Int, call: UInt64, returns: UInt64) {
            if returns < self.earliestReturn || self.earliestReturnOperation < 0 {
                self.earliestReturn = returns
                self.earliestReturnOperation = index
            }
            if call > self.latestCall || self.latestCallOperation < 0 {
                self.latestCall = call
                self.latestCallOperation = index
            }
        }
    }

    /// `nil` when linearizable, else the violation with its explanation. `operations` must
    /// satisfy `applies(to:)`.
    static func check(key: String, _ operations: [HistoryOperation], mutation: Mutation? = nil) -> LinearizabilityViolation? {
        func call(_ index: Int) -> UInt64 { operations[index].call + 1 }
        func returns(_ index: Int) -> UInt64 { operations[index].isPending ? .max : operations[index].returnTime! + 1 }
        // Block 0 is the initial value's; its write is before every time.
        var blocks = [Block(write: nil)]
        blocks[0].earliestReturn = 0
        blocks[0].earliestReturnOperation = -1
        var blockOfValue: [[UInt8]: Int] = [:]
        for (index, operation) in operations.enumerated() where operation.kind == .put {
            blockOfValue[Array(operation.value!.utf8)] = blocks.count
            var block = Block(write: index)
            block.add(index, call: call(index), returns: returns(index))
            blocks.append(block)
        }
        for (index, operation) in operations.enumerated() where operation.kind == .get {
            guard case .value(let seen) = operation.output else { continue }
            let number: Int
            if let seen {
                guard let found = blockOfValue[Array(seen.utf8)] else {
                    return Self.violation(key, operations, unplaced: index, because: "it read \(HistoryOperation.quoted(seen)), which no put on this key wrote")
                }
                number = found
            } else {
                number = 0
            }
            if let write = blocks[number].write, returns(index) < call(write) {
                return Self.violation(key, operations, unplaced: index,
                    because: "it returned before the put of its value was called: \(operations[write].summary)")
            }
            blocks[number].reads.append(index)
            let earliest = blocks[number].earliestReturn
            let earliestOperation = blocks[number].earliestReturnOperation
            blocks[number].add(index, call: call(index), returns: returns(index))
            if number == 0 {  // the initial write's return stays first
                blocks[0].earliestReturn = earliest
                blocks[0].earliestReturnOperation = earliestOperation
            }
        }
        if blocks[0].reads.isEmpty { blocks.removeFirst() }
        // Find i ≠ j with f(i) < s(j) and f(j) < s(i): blocks sorted by f; for each j, among the
        // blocks with f < s(j) (a prefix), the largest s other than j's own.
        var order = blocks.indices.sorted { blocks[$0].earliestReturn < blocks[$1].earliestReturn }
        if mutation == .ignoreBackwardZones {
            order.removeAll { blocks[$0].latestCall <= blocks[$0].earliestReturn }
        }
        var best: [(first: Int, second: Int)] = []  // prefix maxima of s: the two largest blocks
        best.reserveCapacity(order.count)
        var first = -1
        var second = -1
        for number in order {
            if first < 0 || blocks[number].latestCall > blocks[first].latestCall {
                second = first
                first = number
            } else if second < 0 || blocks[number].latestCall > blocks[second].latestCall {
                second = number
            }
            best.append((first, second))
        }
        for j in order {
            // The prefix of blocks with f < s(j).
            var low = 0
            var high = order.count
            while low < high {
                let middle = (low + high) / 2
                if blocks[order[middle]].earliestReturn < blocks[j].latestCall { low = middle + 1 } else { high = middle }
            }
            guard low > 0 else { continue }
            let candidates = best[low - 1]
            let i = candidates.first != j ? candidates.first : candidates.second
            guard i >= 0, blocks[j].earliestReturn < blocks[i].latestCall else { continue }
            return Self.conflict(key, operations, blocks[i], blocks[j])
        }
        return nil
    }

    static func violation(_ key: String, _ operations: [HistoryOperation], unplaced: Int, because reason: String) -> LinearizabilityViolation {
        LinearizabilityViolation(
            key: key, longestLinearization: [], unplaced: operations[unplaced], stateAfterLinearization: nil, reason: reason)
    }

    /// Blocks `i` and `j` must each precede the other.
    static func conflict(_ key: String, _ operations: [HistoryOperation], _ i: Block, _ j: Block) -> LinearizabilityViolation {
        func name(_ block: Block) -> String {
            block.write.map { "the value \(HistoryOperation.quoted(operations[$0].value))" } ?? "the initial (absent) value"
        }
        func operation(_ index: Int) -> String { index < 0 ? "the initial value" : operations[index].summary }
        let reason = "\(name(i)) and \(name(j)) must each come before the other: "
            + "\(operation(i.earliestReturnOperation)) returned before \(operation(j.latestCallOperation)) was called, and "
            + "\(operation(j.earliestReturnOperation)) returned before \(operation(i.latestCallOperation)) was called"
        // The operation named unplaced: a read called too late for its value, if there is one.
        let candidates = [j.latestCallOperation, i.latestCallOperation].filter { $0 >= 0 }
        let unplaced = candidates.first { operations[$0].kind == .get } ?? candidates[0]
        return LinearizabilityViolation(
            key: key, longestLinearization: [], unplaced: operations[unplaced], stateAfterLinearization: nil, reason: reason)
    }
}
