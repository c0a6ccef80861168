import SynodCore

extension Term {
    /// Terms stay below 2^48 whatever a peer sends, so `next` never overflows.
    static let maximum: UInt64 = 1 << 48

    /// Decodes a term below `reader.epochLimit` (lower for a peer's message than for a record).
    static func decode(from reader: inout WireReader) throws(WireError) -> Term {
        let raw = try reader.varint()
        guard raw < Swift.min(Self.maximum, reader.epochLimit) else { throw .malformed("term \(raw) out of range") }
        return Term(raw)
    }
}

// Canonical binary encodings of Raft's durable records (for the write-ahead log) and messages
// (for the transport), on SynodCore's wire codec. Tags are stable: add, never renumber.

extension RaftEntry: WireCodable {
    public func encode(into writer: inout WireWriter) {
        writer.varint(self.term.rawValue)
        // 0: a no-op, 1: a command, 2: a configuration.
        if let command = self.command {
            writer.byte(1)
            command.encode(into: &writer)
        } else if let configuration = self.configuration {
            writer.byte(2)
            configuration.encode(into: &writer)
        } else {
            writer.byte(0)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> RaftEntry {
        let term = try Term.decode(from: &reader)
        switch try reader.byte() {
        case 0: return RaftEntry(term: term, command: nil)
        case 1: return RaftEntry(term: term, command: try Command.decode(from: &reader))
        case 2: return RaftEntry(term: term, configuration: try Membership.decode(from: &reader))
        case let kind: throw .malformed("unknown Raft entry kind \(kind)")
        }
    }
}

/// Most entries one decoded record or message may hold (a bound on work per decode; the byte
/// size is bounded by the frame or the WAL record around it).
public let maximumDecodedRaftEntries = 1 << 20

extension Array where Element == RaftEntry {
    func encode(into writer: inout WireWriter) {
        writer.varint(UInt64(self.count))
        for entry in self { entry.encode(into: &writer) }
    }

    static func decode(from reader: inout WireReader) throws(WireError) -> [RaftEntry] {
        var entries: [RaftEntry] = []
        for _ in 0..<(try reader.count(limit: maximumDecodedRaftEntries, what: "entries")) {
            entries.append(try RaftEntry.decode(from: &reader))
        }
        return entries
    }
}

extension RaftRecord: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .hardState(let term, let votedFor):
            writer.byte(1)
            writer.varint(term.rawValue)
            writer.varint(UInt64(votedFor?.rawValue ?? 0))
        case .entries(let first, let entries):
            writer.byte(2)
            writer.varint(first.rawValue)
            entries.encode(into: &writer)
        case .checkpoint(let base, let term):
            writer.byte(3)
            writer.varint(base.rawValue)
            writer.varint(term.rawValue)
        case .snapshotChunk(let chunk):
            writer.byte(4)
            chunk.encodeBody(into: &writer)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> RaftRecord {
        switch try reader.byte() {
        case 1:
            let term = try Term.decode(from: &reader)
            let voted = try reader.varint()
            guard voted <= UInt64(UInt16.max) else { throw .malformed("vote for node \(voted) out of range") }
            return .hardState(term: term, votedFor: voted == 0 ? nil : NodeID(UInt16(voted)))
        case 2:
            let first = LogIndex(try reader.varint())
            guard first.rawValue >= 1 else { throw .malformed("entries record starting at index 0") }
            return .entries(first: first, try [RaftEntry].decode(from: &reader))
        case 3:
            let base = LogIndex(try reader.varint())
            guard base.rawValue >= 1 && base.rawValue < Term.maximum else { throw .malformed("checkpoint base \(base) out of range") }
            return .checkpoint(base: base, term: try Term.decode(from: &reader))
        case 4:
            return .snapshotChunk(try InstallSnapshot.decodeBody(from: &reader))
        case let tag:
            throw .malformed("unknown Raft record tag \(tag)")
        }
    }
}

extension RaftMessage: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .requestVote(let message):
            writer.byte(1)
            writer.varint(message.term.rawValue)
            writer.varint(message.lastLogIndex.rawValue)
            writer.varint(message.lastLogTerm.rawValue)
            writer.bool(message.transfer)
        case .voteResponse(let message):
            writer.byte(2)
            writer.varint(message.term.rawValue)
            writer.bool(message.granted)
        case .appendEntries(let message):
            writer.byte(3)
            writer.varint(message.term.rawValue)
            writer.varint(message.prevLogIndex.rawValue)
            writer.varint(message.prevLogTerm.rawValue)
            message.entries.encode(into: &writer)
            writer.varint(message.leaderCommit.rawValue)
            writer.varint(message.readContext)
        case .appendResponse(let message):
            writer.byte(4)
            writer.varint(message.term.rawValue)
            writer.bool(message.success)
            writer.varint(message.matchIndex.rawValue)
            writer.varint(message.rejectedIndex.rawValue)
            writer.varint(message.hintIndex.rawValue)
            writer.varint(message.readContext)
        case .installSnapshot(let message):
            writer.byte(5)
            message.encodeBody(into: &writer)
        case .preVote(let message):
            writer.byte(6)
            writer.varint(message.term.rawValue)
            writer.varint(message.lastLogIndex.rawValue)
            writer.varint(message.lastLogTerm.rawValue)
        case .preVoteResponse(let message):
            writer.byte(7)
            writer.varint(message.term.rawValue)
            writer.bool(message.granted)
        case .timeoutNow(let message):
            writer.byte(8)
            writer.varint(message.term.rawValue)
        case .readIndex(let message), .readIndexResponse(let message):
            if case .readIndex = self { writer.byte(9) } else { writer.byte(10) }
            writer.varint(message.term.rawValue)
            writer.varint(message.id)
            writer.varint(message.index.rawValue)
            writer.bool(message.granted)
        case .snapshotAck(let message):
            writer.byte(11)
            writer.varint(message.term.rawValue)
            writer.varint(message.position)
            writer.varint(message.received)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> RaftMessage {
        func term() throws(WireError) -> Term { try Term.decode(from: &reader) }
        func index() throws(WireError) -> LogIndex { LogIndex(try reader.varint()) }
        switch try reader.byte() {
        case 1:
            return .requestVote(RequestVote(
                term: try term(), lastLogIndex: try index(), lastLogTerm: try term(), transfer: try reader.bool()))
        case 2:
            return .voteResponse(VoteResponse(term: try term(), granted: try reader.bool()))
        case 3:
            return .appendEntries(AppendEntries(
                term: try term(), prevLogIndex: try index(), prevLogTerm: try term(),
                entries: try [RaftEntry].decode(from: &reader), leaderCommit: try index(), readContext: try reader.varint()))
        case 4:
            return .appendResponse(AppendResponse(
                term: try term(), success: try reader.bool(), matchIndex: try index(), rejectedIndex: try index(),
                hintIndex: try index(), readContext: try reader.varint()))
        case 5:
            return .installSnapshot(try InstallSnapshot.decodeBody(from: &reader))
        case 6:
            return .preVote(RequestVote(term: try term(), lastLogIndex: try index(), lastLogTerm: try term()))
        case 7:
            return .preVoteResponse(VoteResponse(term: try term(), granted: try reader.bool()))
        case 8:
            return .timeoutNow(TimeoutNow(term: try term()))
        case 9:
            return .readIndex(ReadIndexMessage(term: try term(), id: try reader.varint(), index: try index(), granted: try reader.bool()))
        case 10:
            return .readIndexResponse(ReadIndexMessage(
                term: try term(), id: try reader.varint(), index: try index(), granted: try reader.bool()))
        case 11:
            let ack = SnapshotAck(term: try term(), position: try reader.varint(), received: try reader.varint())
            guard ack.received <= UInt64(Snapshot.maximumDataBytes) else { throw .malformed("snapshot acknowledged up to \(ack.received) bytes") }
            return .snapshotAck(ack)
        case let tag:
            throw .malformed("unknown Raft message tag \(tag)")
        }
    }
}

extension InstallSnapshot {
    /// The encoding shared by the message and the record that keeps a received chunk.
    func encodeBody(into writer: inout WireWriter) {
        writer.varint(self.term.rawValue)
        self.snapshot.encode(into: &writer)
        writer.varint(self.offset)
        writer.varint(self.totalBytes)
        writer.varint(self.checksum)
    }

    static func decodeBody(from reader: inout WireReader) throws(WireError) -> InstallSnapshot {
        let term = try Term.decode(from: &reader)
        let snapshot = try Snapshot.decode(from: &reader)
        guard snapshot.tag < Term.maximum, snapshot.tag <= term.rawValue else {
            throw .malformed("snapshot of term \(snapshot.tag) sent in \(term)")
        }
        if !snapshot.identity.isEmpty { _ = try Membership.decode(snapshot.identity) }
        let offset = try reader.varint()
        let total = try reader.varint()
        guard total <= UInt64(Snapshot.maximumDataBytes), offset <= total, UInt64(snapshot.data.count) <= total - offset else {
            throw .malformed("snapshot chunk of \(snapshot.data.count) bytes at \(offset) of \(total)")
        }
        return InstallSnapshot(term: term, snapshot: snapshot, offset: offset, totalBytes: total, checksum: try reader.varint())
    }
}
