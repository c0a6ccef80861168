import SynodCore

/// How two vector clocks (or the events they stamp) are ordered.
public enum CausalOrder: String, Sendable, Equatable {
    /// The left happened before the right (every entry ≤, at least one <).
    case before
    /// The left happened after the right.
    case after
    /// The same clock.
    case equal
    /// Neither happened before the other.
    case concurrent
}

/// A vector clock over node ids (Fidge and Mattern 1988; the reference text's section 7.2).
///
/// Entries are kept sorted by node, without zeros, so equal clocks are equal values and encode
/// to equal bytes whatever order they were built in. Events stamped by the rules of `tick`,
/// `send` and `receive` satisfy: `a` happened before `b` exactly when `a`'s clock is `before`
/// `b`'s, and they are concurrent exactly when their clocks are `concurrent`.
///
/// A send is an event: the node's entry advances first and the message carries the advanced
/// clock. (The reference text sends the clock before advancing it, which stamps the send with
/// the same clock as the event before it, so the "⟺" it states fails for those two events.)
public struct VectorClock: Sendable, Hashable, CustomStringConvertible {
    /// (node, counter) with counter > 0, sorted by node.
    public private(set) var entries: [(node: NodeID, counter: UInt64)]

    /// The zero clock (no event seen).
    public init() { self.entries = [] }

    /// A clock from counters; zeros are dropped.
    public init(_ counters: [NodeID: UInt64]) {
        self.entries = counters.filter { $0.value > 0 }.map { ($0.key, $0.value) }.sorted { $0.node < $1.node }
    }

    /// The counter of `node` (0 when absent).
    public subscript(node: NodeID) -> UInt64 {
        guard let index = self.index(of: node) else { return 0 }
        return self.entries[index].counter
    }

    private func index(of node: NodeID) -> Int? {
        var low = 0
        var high = self.entries.count
        while low < high {
            let middle = (low + high) / 2
            if self.entries[middle].node < node { low = middle + 1 } else { high = middle }
        }
        return low < self.entries.count && self.entries[low].node == node ? low : nil
    }

    /// Advances `node`'s entry by one: an event at `node`.
    public mutating func increment(_ node: NodeID) {
        var low = 0
        var high = self.entries.count
        while low < high {
            let middle = (low + high) / 2
            if self.entries[middle].node < node { low = middle + 1 } else { high = middle }
        }
        if low < self.entries.count && self.entries[low].node == node {
            precondition(self.entries[low].counter < UInt64.max, "vector clock entry exhausted")
            self.entries[low].counter += 1
        } else {
            self.entries.insert((node, 1), at: low)
        }
    }

    /// The pointwise maximum with `other`.
    public mutating func merge(_ other: VectorClock) {
        var merged: [(node: NodeID, counter: UInt64)] = []
        merged.reserveCapacity(max(self.entries.count, other.entries.count))
        var left = 0
        var right = 0
        while left < self.entries.count || right < other.entries.count {
            if right == other.entries.count || (left < self.entries.count && self.entries[left].node < other.entries[right].node) {
                merged.append(self.entries[left])
                left += 1
            } else if left == self.entries.count || other.entries[right].node < self.entries[left].node {
                merged.append(other.entries[right])
                right += 1
            } else {
                merged.append((self.entries[left].node, max(self.entries[left].counter, other.entries[right].counter)))
                left += 1
                right += 1
            }
        }
        self.entries = merged
    }

    /// The pointwise maximum of two clocks.
    public func merging(_ other: VectorClock) -> VectorClock {
        var result = self
        result.merge(other)
        return result
    }

    /// A local event at `node`; returns the event's clock.
    @discardableResult
    public mutating func tick(at node: NodeID) -> VectorClock {
        self.increment(node)
        return self
    }

    /// A send from `node`: an event; the message carries the returned clock.
    public mutating func send(from node: NodeID) -> VectorClock { self.tick(at: node) }

    /// A receive at `node` of a message stamped `timestamp`: merge, then an event.
    @discardableResult
    public mutating func receive(_ timestamp: VectorClock, at node: NodeID) -> VectorClock {
        self.merge(timestamp)
        return self.tick(at: node)
    }

    /// How `self` is ordered with respect to `other`, in one pass over both.
    public func compare(_ other: VectorClock) -> CausalOrder {
        var less = false
        var greater = false
        var left = 0
        var right = 0
        while left < self.entries.count || right < other.entries.count {
            if right == other.entries.count || (left < self.entries.count && self.entries[left].node < other.entries[right].node) {
                greater = true  // other's counter there is 0
                left += 1
            } else if left == self.entries.count || other.entries[right].node < self.entries[left].node {
                less = true
                right += 1
            } else {
                let mine = self.entries[left].counter
                let theirs = other.entries[right].counter
                if mine < theirs { less = true } else if mine > theirs { greater = true }
                left += 1
                right += 1
            }
            if less && greater { return .concurrent }
        }
        return less ? .before : greater ? .after : .equal
    }

    /// Whether `self` happened before `other`.
    public func happenedBefore(_ other: VectorClock) -> Bool { self.compare(other) == .before }

    public static func == (lhs: VectorClock, rhs: VectorClock) -> Bool {
        lhs.entries.count == rhs.entries.count && zip(lhs.entries, rhs.entries).allSatisfy { $0.node == $1.node && $0.counter == $1.counter }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in self.entries {
            hasher.combine(entry.node)
            hasher.combine(entry.counter)
        }
    }

    public var description: String {
        "[" + self.entries.map { "\($0.node):\($0.counter)" }.joined(separator: " ") + "]"
    }
}

extension VectorClock: WireCodable {
    /// Most entries a decoded clock may hold (node ids are 16-bit).
    public static let maximumEntries = 1 << 16

    /// Compact: the number of entries, then each entry's node as the gap from the previous
    /// node, and its counter, all as varints. A clock over a few nodes with small counters
    /// takes a few bytes; the encoding is canonical (one encoding per clock).
    public func encode(into writer: inout WireWriter) {
        writer.varint(UInt64(self.entries.count))
        var previous: UInt64 = 0
        for (position, entry) in self.entries.enumerated() {
            let node = UInt64(entry.node.rawValue)
            writer.varint(position == 0 ? node : node - previous - 1)
            writer.varint(entry.counter)
            previous = node
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> VectorClock {
        let count = try reader.count(limit: Self.maximumEntries, what: "vector clock entries")
        var clock = VectorClock()
        clock.entries.reserveCapacity(count)
        var next: UInt64 = 0
        for _ in 0..<count {
            let gap = try reader.varint()
            guard next <= UInt64(UInt16.max), gap <= UInt64(UInt16.max) - next else {
                throw .malformed("vector clock node beyond \(UInt16.max)")
            }
            let node = next + gap
            let counter = try reader.varint()
            guard counter > 0 else { throw .malformed("vector clock entry of n\(node) is zero") }
            clock.entries.append((NodeID(UInt16(node)), counter))
            next = node + 1
        }
        return clock
    }
}

extension VectorClock {
    /// The clock as text, `node:counter` pairs by node, comma-separated (`1:3,2:5`; the zero
    /// clock is the empty string): how the eventually consistent store's HTTP API hands a
    /// causal context to a client and takes it back.
    public var text: String {
        self.entries.map { "\($0.node.rawValue):\($0.counter)" }.joined(separator: ",")
    }

    /// Reads `text` as written by `text` (spaces around entries allowed, any node order);
    /// throws a readable error for anything else: a node outside 1...65535, a counter of zero
    /// or beyond 64 bits, a node named twice.
    public init(text: String) throws(ClockTextError) {
        var counters: [NodeID: UInt64] = [:]
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty else {
            self.init()
            return
        }
        for entry in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let node = UInt16(parts[0].trimmingSpaces), node > 0,
                  let counter = UInt64(parts[1].trimmingSpaces)
            else {
                throw ClockTextError("'\(entry)' is not NODE:COUNTER (a node 1...65535, a counter)")
            }
            guard counter > 0 else { throw ClockTextError("'\(entry)': a counter of zero is left out, not written") }
            guard counters.updateValue(counter, forKey: NodeID(node)) == nil else {
                throw ClockTextError("node \(node) appears twice")
            }
        }
        self.init(counters)
    }
}

/// Why a clock's text form could not be read.
public struct ClockTextError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
