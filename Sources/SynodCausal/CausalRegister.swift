import SynodClocks
import SynodCore

/// One write's identity in a causal store: the replica that accepted it and that replica's
/// counter for the key (Preguiça, Baquero, Almeida et al.'s dotted version vectors).
public struct Dot: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var node: NodeID
    public var counter: UInt64

    public init(node: NodeID, counter: UInt64) {
        self.node = node
        self.counter = counter
    }

    /// An arbitrary total order (counter, then node), for canonical encodings and for the
    /// deliberately broken last-writer-wins variant; it means nothing causally.
    public static func < (lhs: Dot, rhs: Dot) -> Bool { (lhs.counter, lhs.node) < (rhs.counter, rhs.node) }

    public var description: String { "\(self.node):\(self.counter)" }
}

/// One of a key's concurrent values, with the write that made it.
public struct Sibling: Sendable, Equatable {
    public var dot: Dot
    /// The value (`nil`: a delete, kept as a tombstone until a write that saw it replaces it).
    public var value: [UInt8]?
    /// The client command that wrote it.
    public var write: CommandID

    public init(dot: Dot, value: [UInt8]?, write: CommandID) {
        self.dot = dot
        self.value = value
        self.write = write
    }
}

/// A key's state in an eventually consistent store: every value written concurrently
/// (siblings, each with its dot) and the causal context, every write the state has seen
/// (a version vector; a dot it covers that is not a sibling was overwritten by a write that
/// saw it).
///
/// The states form a join semilattice: `merge` is commutative, associative and idempotent,
/// so replicas that exchange states in any order, any number of times, converge. A write
/// removes exactly the siblings its client had seen (its read context covers them), so
/// concurrent writes are kept as siblings and never silently dropped.
///
/// Each replica's context entry for its own node is contiguous: it gives its dots for the key
/// out one by one (`write`), durably before anyone sees them, and learns others' from whole
/// states. That is what lets a plain version vector stand for the set of dots seen.
public struct CausalRegister: Sendable, Equatable {
    /// Every write this state has seen.
    public private(set) var context: VectorClock
    /// The values not overwritten, sorted by dot.
    public private(set) var siblings: [Sibling]

    /// The state of a key nobody wrote.
    public init() {
        self.context = VectorClock()
        self.siblings = []
    }

    /// A state from its parts (decoding); `nil` when a sibling is outside the context or two
    /// share a dot.
    public init?(context: VectorClock, siblings: [Sibling]) {
        let sorted = siblings.sorted { $0.dot < $1.dot }
        for (index, sibling) in sorted.enumerated() {
            guard context[sibling.dot.node] >= sibling.dot.counter, sibling.dot.counter > 0 else { return nil }
            if index > 0 && sorted[index - 1].dot == sibling.dot { return nil }
        }
        self.context = context
        self.siblings = sorted
    }

    /// True when the state has seen `dot`.
    public func covers(_ dot: Dot) -> Bool { self.context[dot.node] >= dot.counter }

    /// Accepts a write at replica `node`: the new value replaces the siblings the client saw
    /// (`seen`, the context it read), and stays beside the others. Returns the write's dot.
    @discardableResult
    public mutating func write(_ value: [UInt8]?, seen: VectorClock, at node: NodeID, command: CommandID) -> Dot {
        self.siblings.removeAll { seen[$0.dot.node] >= $0.dot.counter }
        self.context.merge(seen)
        let dot = Dot(node: node, counter: self.context[node] + 1)
        self.context.merge(VectorClock([node: dot.counter]))
        self.siblings.append(Sibling(dot: dot, value: value, write: command))
        self.siblings.sort { $0.dot < $1.dot }
        return dot
    }

    /// The join with `other`: siblings both hold, and siblings one holds that the other has
    /// not seen; contexts united.
    public mutating func merge(_ other: CausalRegister) {
        var merged: [Sibling] = []
        merged.reserveCapacity(self.siblings.count + other.siblings.count)
        for sibling in self.siblings where other.siblings.contains(where: { $0.dot == sibling.dot }) || !other.covers(sibling.dot) {
            merged.append(sibling)
        }
        for sibling in other.siblings where !self.siblings.contains(where: { $0.dot == sibling.dot }) && !self.covers(sibling.dot) {
            merged.append(sibling)
        }
        self.context.merge(other.context)
        self.siblings = merged.sorted { $0.dot < $1.dot }
    }

    /// The join of two states.
    public func merging(_ other: CausalRegister) -> CausalRegister {
        var copy = self
        copy.merge(other)
        return copy
    }

    /// The deliberately broken merge of a last-writer-wins store (test-only): of the join's
    /// siblings, only the one with the greatest dot survives, so a concurrent write is lost
    /// though nobody saw it.
    @_spi(Testing) public mutating func keepOnlyLastWriter() {
        guard let last = self.siblings.max(by: { $0.dot < $1.dot }) else { return }
        self.siblings = [last]
    }

    /// A stable 64-bit digest of the state (anti-entropy compares these).
    public var digest: UInt64 {
        var hasher = StableHasher()
        hasher.combine(bytes: self.encoded())
        return hasher.value
    }
}

/// Bounds of decoded states.
public enum CausalLimits {
    /// Most siblings one key may hold in a decoded state.
    public static let maximumSiblings = 1 << 12
    /// Longest key.
    public static let maximumKeyBytes = 1 << 16
    /// Longest value.
    public static let maximumValueBytes = 1 << 20
    /// Largest encoded state of one key the store lets grow, across all replicas: under the
    /// 4 MiB a reply or a peer message carries and the 16 MiB a log record holds. Each replica
    /// of an `n`-member store refuses a write that would leave more than an `n`-th of it (and
    /// of `maximumSiblings`) at its key, so a merge of every replica's state stays within it.
    public static let maximumStateBytes = 3 << 20

    /// What one replica of `members` replicas accepts at one key: siblings and encoded bytes.
    public static func replicaShare(members: Int) -> (siblings: Int, bytes: Int) {
        let members = max(1, members)
        return (Self.maximumSiblings / members, Self.maximumStateBytes / members)
    }
}

extension CausalRegister: WireCodable {
    public func encode(into writer: inout WireWriter) {
        self.context.encode(into: &writer)
        writer.varint(UInt64(self.siblings.count))
        for sibling in self.siblings {
            sibling.dot.node.encode(into: &writer)
            writer.varint(sibling.dot.counter)
            writer.bool(sibling.value != nil)
            if let value = sibling.value { writer.data(value) }
            writer.varint(sibling.write.client)
            writer.varint(sibling.write.sequence)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> CausalRegister {
        let context = try VectorClock.decode(from: &reader)
        let count = try reader.count(limit: CausalLimits.maximumSiblings, what: "siblings")
        var siblings: [Sibling] = []
        for _ in 0..<count {
            let dot = Dot(node: try NodeID.decode(from: &reader), counter: try reader.varint())
            let value = try reader.bool() ? try reader.data(limit: CausalLimits.maximumValueBytes, what: "value") : nil
            siblings.append(Sibling(dot: dot, value: value, write: CommandID(client: try reader.varint(), sequence: try reader.varint())))
        }
        guard let register = CausalRegister(context: context, siblings: siblings) else {
            throw .malformed("a sibling outside the context, with counter 0, or two siblings with one dot")
        }
        guard register.siblings == siblings else { throw .malformed("siblings not sorted by dot") }
        return register
    }
}
