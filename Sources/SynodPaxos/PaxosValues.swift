import SynodCore

/// What one slot of a Paxos log holds once chosen.
public enum SlotValue: Sendable, Hashable, CustomStringConvertible {
    /// Nothing: a new leader's filler for a slot no acceptor it heard from had accepted.
    case noop
    /// A client command.
    case command(Command)
    /// A read barrier of the leaderless protocol: a no-op that a proposer can tell apart from
    /// every other (`nonce` is drawn from its seeded randomness), so that it knows the slot was
    /// chosen after its reads arrived.
    case barrier(node: NodeID, nonce: UInt64)
    /// Several commands and barriers chosen together in one slot, executed in this order (the
    /// leaderless log's proposers batch what waits): two or more elements, none of them a no-op
    /// or a batch.
    case batch([SlotValue])

    /// The command payloads' size (0 for no-ops and barriers), for byte budgets.
    public var payloadBytes: Int {
        switch self {
        case .noop, .barrier: return 0
        case .command(let command): return command.payload.count
        case .batch(let values): return values.reduce(0) { $0 + $1.payloadBytes }
        }
    }

    /// The command to execute, if the value is one command.
    public var command: Command? {
        if case .command(let command) = self { return command }
        return nil
    }

    /// The commands to execute, in order.
    public var commands: [Command] {
        switch self {
        case .noop, .barrier: return []
        case .command(let command): return [command]
        case .batch(let values): return values.compactMap(\.command)
        }
    }

    /// The values the slot holds: a batch's elements, else the value itself.
    public var elements: [SlotValue] {
        if case .batch(let values) = self { return values }
        return [self]
    }

    public var description: String {
        switch self {
        case .noop: return "no-op"
        case .command(let command): return "\(command.id)"
        case .barrier(let node, let nonce): return "barrier(\(node), \(nonce))"
        case .batch(let values): return "batch[\(values.map(\.description).joined(separator: ", "))]"
        }
    }
}

/// Slots stay below 2^48 (a slot number arriving from a peer, plus any count, never overflows).
public let maximumPaxosSlot: UInt64 = 1 << 48

/// Most values one batch may hold (a bound on work per decode, as for slots).
public let maximumBatchValues = 1 << 16

/// Most slots one decoded message or record may carry (a bound on work per decode; the byte
/// size is bounded by the frame or the WAL record around it).
public let maximumDecodedPaxosSlots = 1 << 20

extension WireReader {
    /// A slot number from a peer or a record: 1 or more, below `maximumPaxosSlot`.
    mutating func slot() throws(WireError) -> UInt64 {
        let slot = try self.varint()
        guard slot >= 1 && slot < maximumPaxosSlot else { throw .malformed("slot \(slot) out of range") }
        return slot
    }

    /// Checks that `count` slots from `first` stay below `maximumPaxosSlot`.
    func checkSlotRun(_ first: UInt64, _ count: UInt64) throws(WireError) {
        guard count <= UInt64(maximumDecodedPaxosSlots), first < maximumPaxosSlot - count else {
            throw .malformed("\(count) slots from \(first) out of range")
        }
    }
}

extension SlotValue: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .noop:
            writer.byte(0)
        case .command(let command):
            writer.byte(1)
            command.encode(into: &writer)
        case .barrier(let node, let nonce):
            writer.byte(2)
            node.encode(into: &writer)
            writer.varint(nonce)
        case .batch(let values):
            writer.byte(3)
            values.encode(into: &writer)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> SlotValue {
        let tag = try reader.byte()
        guard tag == 3 else { return try Self.decodeUnbatched(tag: tag, from: &reader) }
        let count = try reader.count(limit: maximumBatchValues, what: "batched values")
        guard count >= 2 else { throw .malformed("a batch of \(count) values") }
        var values: [SlotValue] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            // The tag is checked before the element is read: a batch nested in a batch is
            // refused without recursing into it, however deep a peer nests them.
            let tag = try reader.byte()
            guard tag == 1 || tag == 2 else { throw .malformed("a batch holding a value of tag \(tag)") }
            values.append(try Self.decodeUnbatched(tag: tag, from: &reader))
        }
        return .batch(values)
    }

    /// A no-op, command or barrier after its `tag`.
    static func decodeUnbatched(tag: UInt8, from reader: inout WireReader) throws(WireError) -> SlotValue {
        switch tag {
        case 0: return .noop
        case 1: return .command(try Command.decode(from: &reader))
        case 2: return .barrier(node: try NodeID.decode(from: &reader), nonce: try reader.varint())
        default: throw .malformed("unknown slot value tag \(tag)")
        }
    }

    func digest(into hasher: inout StableHasher) {
        switch self {
        case .noop:
            hasher.combine(0)
        case .command(let command):
            hasher.combine(1)
            hasher.combine(command.client)
            hasher.combine(command.sequence)
        case .barrier(let node, let nonce):
            hasher.combine(2)
            hasher.combine(Int(node.rawValue))
            hasher.combine(nonce)
        case .batch(let values):
            hasher.combine(3)
            hasher.combine(values.count)
            for value in values { value.digest(into: &hasher) }
        }
    }
}

extension Ballot: WireCodable {
    public func encode(into writer: inout WireWriter) {
        writer.varint(self.round)
        writer.varint(UInt64(self.node.rawValue))
    }

    /// Rounds stay below 2^48: `epoch` keeps its order, and `round + 1` never overflows, whatever
    /// a peer sends.
    public static let maximumRound: UInt64 = 1 << 48

    /// Decodes a ballot; node 0 is allowed only in the zero ballot.
    public static func decode(from reader: inout WireReader) throws(WireError) -> Ballot {
        let round = try reader.varint()
        guard round < Swift.min(Self.maximumRound, reader.epochLimit) else { throw .malformed("ballot round \(round) out of range") }
        let node = try reader.varint()
        guard node <= UInt64(UInt16.max) else { throw .malformed("ballot node \(node) out of range") }
        guard node != 0 || round == 0 else { throw .malformed("ballot b\(round).0 names no node") }
        return Ballot(round: round, node: NodeID(UInt16(node)))
    }

    /// The ballot as a `ReplicaEvent` epoch: same order, round in the high bits.
    public var epoch: UInt64 { self.round << 16 | UInt64(self.node.rawValue) }

    func digest(into hasher: inout StableHasher) {
        hasher.combine(self.round)
        hasher.combine(Int(self.node.rawValue))
    }
}

extension Array where Element == SlotValue {
    func encode(into writer: inout WireWriter) {
        writer.varint(UInt64(self.count))
        for value in self { value.encode(into: &writer) }
    }

    static func decode(from reader: inout WireReader) throws(WireError) -> [SlotValue] {
        var values: [SlotValue] = []
        for _ in 0..<(try reader.count(limit: maximumDecodedPaxosSlots, what: "slots")) {
            values.append(try SlotValue.decode(from: &reader))
        }
        return values
    }
}
