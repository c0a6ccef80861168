import SynodCore

/// Messages of the leaderless Paxos log: one single-decree instance per slot, plus learning.
public enum PaxosLogMessage: Sendable, Equatable {
    /// A message of the single-decree instance deciding `slot`.
    case instance(slot: UInt64, PaxosMessage)
    /// "What is chosen from `fromSlot` on?", sent now and then to a random peer.
    case learn(fromSlot: UInt64)
    /// Chosen values from `firstSlot` on.
    case decided(firstSlot: UInt64, values: [SlotValue])
    /// The sender's snapshot, to a replica that asked about slots the sender compacted.
    case snapshot(Snapshot)
    /// "I have values to propose": the receiver leaves the sender's own slots from `fromSlot`
    /// on to it for `gapTicks` (sent when a replica starts proposing, and again while it goes
    /// on, with the same slot).
    case proposing(fromSlot: UInt64)
}

/// A durable fact of one slot's instance.
public struct PaxosLogRecord: Sendable, Equatable {
    public var slot: UInt64
    public var record: PaxosRecord

    public init(slot: UInt64, record: PaxosRecord) {
        self.slot = slot
        self.record = record
    }
}

extension PaxosMessage: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .prepare(let ballot):
            writer.byte(1)
            ballot.encode(into: &writer)
        case .promise(let ballot, let accepted):
            writer.byte(2)
            ballot.encode(into: &writer)
            writer.bool(accepted != nil)
            if let accepted {
                accepted.ballot.encode(into: &writer)
                writer.data(accepted.value)
            }
        case .accept(let ballot, let value):
            writer.byte(3)
            ballot.encode(into: &writer)
            writer.data(value)
        case .accepted(let ballot):
            writer.byte(4)
            ballot.encode(into: &writer)
        case .nack(let ballot, let promised):
            writer.byte(5)
            ballot.encode(into: &writer)
            promised.encode(into: &writer)
        case .decided(let value):
            writer.byte(6)
            writer.data(value)
        }
    }

    /// Largest value a decoded message may carry.
    public static let maximumValueBytes = Command.maximumPayloadBytes + 64

    public static func decode(from reader: inout WireReader) throws(WireError) -> PaxosMessage {
        func value() throws(WireError) -> [UInt8] { try reader.data(limit: Self.maximumValueBytes, what: "value") }
        switch try reader.byte() {
        case 1:
            return .prepare(try Ballot.decode(from: &reader))
        case 2:
            let ballot = try Ballot.decode(from: &reader)
            guard try reader.bool() else { return .promise(ballot, accepted: nil) }
            return .promise(ballot, accepted: AcceptedValue(ballot: try Ballot.decode(from: &reader), value: try value()))
        case 3:
            return .accept(try Ballot.decode(from: &reader), value: try value())
        case 4:
            return .accepted(try Ballot.decode(from: &reader))
        case 5:
            return .nack(try Ballot.decode(from: &reader), promised: try Ballot.decode(from: &reader))
        case 6:
            return .decided(try value())
        case let tag:
            throw .malformed("unknown Paxos message tag \(tag)")
        }
    }
}

extension PaxosRecord: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .round(let round):
            writer.byte(1)
            writer.varint(round)
        case .promised(let ballot):
            writer.byte(2)
            ballot.encode(into: &writer)
        case .accepted(let accepted):
            writer.byte(3)
            accepted.ballot.encode(into: &writer)
            writer.data(accepted.value)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PaxosRecord {
        switch try reader.byte() {
        case 1:
            let round = try reader.varint()
            guard round < Ballot.maximumRound else { throw .malformed("round \(round) out of range") }
            return .round(round)
        case 2: return .promised(try Ballot.decode(from: &reader))
        case 3:
            return .accepted(AcceptedValue(
                ballot: try Ballot.decode(from: &reader),
                value: try reader.data(limit: PaxosMessage.maximumValueBytes, what: "value")))
        case let tag: throw .malformed("unknown Paxos record tag \(tag)")
        }
    }
}

extension PaxosLogMessage: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .instance(let slot, let message):
            writer.byte(1)
            writer.varint(slot)
            message.encode(into: &writer)
        case .learn(let from):
            writer.byte(2)
            writer.varint(from)
        case .decided(let first, let values):
            writer.byte(3)
            writer.varint(first)
            values.encode(into: &writer)
        case .snapshot(let snapshot):
            writer.byte(4)
            snapshot.encode(into: &writer)
        case .proposing(let from):
            writer.byte(5)
            writer.varint(from)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PaxosLogMessage {
        func slot() throws(WireError) -> UInt64 { try reader.slot() }
        switch try reader.byte() {
        case 1: return .instance(slot: try slot(), try PaxosMessage.decode(from: &reader))
        case 2: return .learn(fromSlot: try slot())
        case 3:
            let first = try slot()
            let values = try [SlotValue].decode(from: &reader)
            try reader.checkSlotRun(first, UInt64(values.count))
            return .decided(firstSlot: first, values: values)
        case 4: return .snapshot(try Snapshot.decode(from: &reader))
        case 5: return .proposing(fromSlot: try slot())
        case let tag: throw .malformed("unknown Paxos log message tag \(tag)")
        }
    }
}

extension PaxosLogRecord: WireCodable {
    public func encode(into writer: inout WireWriter) {
        writer.varint(self.slot)
        self.record.encode(into: &writer)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PaxosLogRecord {
        PaxosLogRecord(slot: try reader.slot(), record: try PaxosRecord.decode(from: &reader))
    }
}

extension PaxosLogMessage: TraceDigestible {
    public func digest(into hasher: inout StableHasher) {
        switch self {
        case .instance(let slot, let message):
            hasher.combine(1)
            hasher.combine(slot)
            switch message {
            case .prepare(let ballot): hasher.combine(1); ballot.digest(into: &hasher)
            case .promise(let ballot, let accepted):
                hasher.combine(2)
                ballot.digest(into: &hasher)
                hasher.combine(accepted == nil ? 0 : 1)
            case .accept(let ballot, let value): hasher.combine(3); ballot.digest(into: &hasher); hasher.combine(bytes: value)
            case .accepted(let ballot): hasher.combine(4); ballot.digest(into: &hasher)
            case .nack(let ballot, let promised): hasher.combine(5); ballot.digest(into: &hasher); promised.digest(into: &hasher)
            case .decided(let value): hasher.combine(6); hasher.combine(bytes: value)
            }
        case .learn(let from):
            hasher.combine(2)
            hasher.combine(from)
        case .decided(let first, let values):
            hasher.combine(3)
            hasher.combine(first)
            hasher.combine(values.count)
        case .snapshot(let snapshot):
            hasher.combine(4)
            hasher.combine(snapshot.position)
            hasher.combine(snapshot.data.count)
        case .proposing(let from):
            hasher.combine(5)
            hasher.combine(from)
        }
    }
}
