import SynodCore

/// Phase 2a for a run of slots, or a heartbeat when `values` is empty. Every accept also tells
/// the acceptor how far the leader's chosen prefix reaches, and carries the leader's newest
/// read context (ReadIndex-style leadership confirmation).
public struct AcceptRequest: Sendable, Equatable {
    /// The leader's ballot.
    public var ballot: Ballot
    /// The slot of `values[0]`.
    public var firstSlot: UInt64
    /// The values proposed for consecutive slots (empty: a heartbeat).
    public var values: [SlotValue]
    /// Every slot up to here is chosen, as the leader knows.
    public var chosenThrough: UInt64
    /// The leader's newest read context: acknowledging it confirms the leader for reads.
    public var readContext: UInt64

    /// Creates a request.
    public init(ballot: Ballot, firstSlot: UInt64, values: [SlotValue], chosenThrough: UInt64, readContext: UInt64) {
        self.ballot = ballot
        self.firstSlot = firstSlot
        self.values = values
        self.chosenThrough = chosenThrough
        self.readContext = readContext
    }
}

/// Phase 2b: the acceptor accepted `count` slots from `firstSlot` in `ballot` (durably).
public struct AcceptReply: Sendable, Equatable {
    /// The ballot accepted in (the request's).
    public var ballot: Ballot
    /// The first slot accepted.
    public var firstSlot: UInt64
    /// How many consecutive slots were accepted (0 for a heartbeat's answer).
    public var count: UInt64
    /// The acceptor's contiguous chosen prefix, so the leader can send what it lacks.
    public var learnedThrough: UInt64
    /// The read context of the request answered.
    public var readContext: UInt64

    /// Creates a reply.
    public init(ballot: Ballot, firstSlot: UInt64, count: UInt64, learnedThrough: UInt64, readContext: UInt64) {
        self.ballot = ballot
        self.firstSlot = firstSlot
        self.count = count
        self.learnedThrough = learnedThrough
        self.readContext = readContext
    }
}

/// A value an acceptor accepted in one slot.
public struct SlotAcceptance: Sendable, Equatable {
    /// The slot.
    public var slot: UInt64
    /// The ballot the value was accepted in.
    public var ballot: Ballot
    /// The value accepted.
    public var value: SlotValue

    /// Creates an acceptance.
    public init(slot: UInt64, ballot: Ballot, value: SlotValue) {
        self.slot = slot
        self.ballot = ballot
        self.value = value
    }
}

/// Messages of Multi-Paxos ("Paxos Made Simple" §3; "Paxos Made Live").
public enum MultiPaxosMessage: Sendable, Equatable {
    /// Phase 1a for every slot from `fromSlot` on.
    case prepare(Ballot, fromSlot: UInt64)
    /// Phase 1b: the promise, with what was accepted from `fromSlot` on: all of it when
    /// `complete`, else one page (the candidate asks for the next page with another prepare
    /// of the same ballot from the slot after the page's last).
    case promise(Ballot, fromSlot: UInt64, accepted: [SlotAcceptance], complete: Bool)
    /// Phase 2a, or a heartbeat.
    case accept(AcceptRequest)
    /// Phase 2b, or a heartbeat's answer.
    case accepted(AcceptReply)
    /// A refusal: the acceptor promised `promised`, above `ballot`.
    case nack(Ballot, promised: Ballot)
    /// Catch-up: chosen values from `firstSlot` on, for a replica whose prefix lags.
    case chosen(firstSlot: UInt64, values: [SlotValue])
    /// The sender's snapshot, to a replica that needs slots the sender compacted: the state
    /// after every slot up to `snapshot.position` (a candidate whose phase 1 starts below an
    /// acceptor's compaction point, or a replica that lags behind it).
    case snapshot(Snapshot)
    /// Pre-Vote: would the receiver promise `ballot`? Nothing changes on either side.
    case prePrepare(Ballot)
    /// The answer to a pre-prepare.
    case prePrepareReply(Ballot, granted: Bool)
}

/// Durable facts of a Multi-Paxos replica; replaying them rebuilds the acceptor and the
/// proposer's round counter.
public enum MultiPaxosRecord: Sendable, Equatable {
    /// The highest round this replica started as a proposer.
    case round(UInt64)
    /// The acceptor's promise (for every slot).
    case promised(Ballot)
    /// Values accepted in `ballot`, from `firstSlot` on.
    case accepted(firstSlot: UInt64, ballot: Ballot, values: [SlotValue])
}

extension MultiPaxosMessage: TraceDigestible {
    public func digest(into hasher: inout StableHasher) {
        switch self {
        case .prepare(let ballot, let from):
            hasher.combine(1)
            ballot.digest(into: &hasher)
            hasher.combine(from)
        case .promise(let ballot, let from, let accepted, let complete):
            hasher.combine(2)
            ballot.digest(into: &hasher)
            hasher.combine(from)
            hasher.combine(accepted.count)
            hasher.combine(complete ? 1 : 0)
        case .accept(let request):
            hasher.combine(3)
            request.ballot.digest(into: &hasher)
            hasher.combine(request.firstSlot)
            hasher.combine(request.values.count)
            hasher.combine(request.chosenThrough)
            hasher.combine(request.readContext)
        case .accepted(let reply):
            hasher.combine(4)
            reply.ballot.digest(into: &hasher)
            hasher.combine(reply.firstSlot)
            hasher.combine(reply.count)
            hasher.combine(reply.learnedThrough)
            hasher.combine(reply.readContext)
        case .nack(let ballot, let promised):
            hasher.combine(5)
            ballot.digest(into: &hasher)
            promised.digest(into: &hasher)
        case .chosen(let first, let values):
            hasher.combine(6)
            hasher.combine(first)
            hasher.combine(values.count)
        case .snapshot(let snapshot):
            hasher.combine(7)
            hasher.combine(snapshot.position)
            hasher.combine(snapshot.data.count)
        case .prePrepare(let ballot):
            hasher.combine(8)
            ballot.digest(into: &hasher)
        case .prePrepareReply(let ballot, let granted):
            hasher.combine(9)
            ballot.digest(into: &hasher)
            hasher.combine(granted ? 1 : 0)
        }
    }
}

// Canonical encodings; tags are stable: add, never renumber.

extension MultiPaxosMessage: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .prepare(let ballot, let from):
            writer.byte(1)
            ballot.encode(into: &writer)
            writer.varint(from)
        case .promise(let ballot, let from, let accepted, let complete):
            writer.byte(2)
            ballot.encode(into: &writer)
            writer.varint(from)
            writer.varint(UInt64(accepted.count))
            for acceptance in accepted {
                writer.varint(acceptance.slot)
                acceptance.ballot.encode(into: &writer)
                acceptance.value.encode(into: &writer)
            }
            writer.bool(complete)
        case .accept(let request):
            writer.byte(3)
            request.ballot.encode(into: &writer)
            writer.varint(request.firstSlot)
            request.values.encode(into: &writer)
            writer.varint(request.chosenThrough)
            writer.varint(request.readContext)
        case .accepted(let reply):
            writer.byte(4)
            reply.ballot.encode(into: &writer)
            writer.varint(reply.firstSlot)
            writer.varint(reply.count)
            writer.varint(reply.learnedThrough)
            writer.varint(reply.readContext)
        case .nack(let ballot, let promised):
            writer.byte(5)
            ballot.encode(into: &writer)
            promised.encode(into: &writer)
        case .chosen(let first, let values):
            writer.byte(6)
            writer.varint(first)
            values.encode(into: &writer)
        case .snapshot(let snapshot):
            writer.byte(7)
            snapshot.encode(into: &writer)
        case .prePrepare(let ballot):
            writer.byte(8)
            ballot.encode(into: &writer)
        case .prePrepareReply(let ballot, let granted):
            writer.byte(9)
            ballot.encode(into: &writer)
            writer.bool(granted)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> MultiPaxosMessage {
        func slot() throws(WireError) -> UInt64 { try reader.slot() }
        func slotRun(_ first: UInt64, _ count: UInt64) throws(WireError) { try reader.checkSlotRun(first, count) }
        switch try reader.byte() {
        case 1:
            return .prepare(try Ballot.decode(from: &reader), fromSlot: try slot())
        case 2:
            let ballot = try Ballot.decode(from: &reader)
            let from = try slot()
            var accepted: [SlotAcceptance] = []
            for _ in 0..<(try reader.count(limit: maximumDecodedPaxosSlots, what: "acceptances")) {
                accepted.append(SlotAcceptance(
                    slot: try slot(), ballot: try Ballot.decode(from: &reader), value: try SlotValue.decode(from: &reader)))
            }
            return .promise(ballot, fromSlot: from, accepted: accepted, complete: try reader.bool())
        case 3:
            let ballot = try Ballot.decode(from: &reader)
            let first = try slot()
            let values = try [SlotValue].decode(from: &reader)
            try slotRun(first, UInt64(values.count))
            return .accept(AcceptRequest(
                ballot: ballot, firstSlot: first, values: values, chosenThrough: try reader.varint(),
                readContext: try reader.varint()))
        case 4:
            let ballot = try Ballot.decode(from: &reader)
            let first = try slot()
            let count = try reader.varint()
            try slotRun(first, count)
            return .accepted(AcceptReply(
                ballot: ballot, firstSlot: first, count: count, learnedThrough: try reader.varint(),
                readContext: try reader.varint()))
        case 5:
            return .nack(try Ballot.decode(from: &reader), promised: try Ballot.decode(from: &reader))
        case 6:
            let first = try slot()
            let values = try [SlotValue].decode(from: &reader)
            try slotRun(first, UInt64(values.count))
            return .chosen(firstSlot: first, values: values)
        case 7:
            // Snapshot positions are bounded below 2^48 = maximumPaxosSlot by their own decoder.
            return .snapshot(try Snapshot.decode(from: &reader))
        case 8:
            return .prePrepare(try Ballot.decode(from: &reader))
        case 9:
            return .prePrepareReply(try Ballot.decode(from: &reader), granted: try reader.bool())
        case let tag:
            throw .malformed("unknown Multi-Paxos message tag \(tag)")
        }
    }
}

extension MultiPaxosRecord: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .round(let round):
            writer.byte(1)
            writer.varint(round)
        case .promised(let ballot):
            writer.byte(2)
            ballot.encode(into: &writer)
        case .accepted(let first, let ballot, let values):
            writer.byte(3)
            writer.varint(first)
            ballot.encode(into: &writer)
            values.encode(into: &writer)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> MultiPaxosRecord {
        switch try reader.byte() {
        case 1:
            let round = try reader.varint()
            guard round < Ballot.maximumRound else { throw .malformed("round \(round) out of range") }
            return .round(round)
        case 2:
            return .promised(try Ballot.decode(from: &reader))
        case 3:
            let first = try reader.slot()
            let ballot = try Ballot.decode(from: &reader)
            let values = try [SlotValue].decode(from: &reader)
            try reader.checkSlotRun(first, UInt64(values.count))
            return .accepted(firstSlot: first, ballot: ballot, values: values)
        case let tag:
            throw .malformed("unknown Multi-Paxos record tag \(tag)")
        }
    }
}
