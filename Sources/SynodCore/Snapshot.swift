/// The application's state after applying every committed command up to `position`: what lets
/// a core discard the log before it (log compaction) and bring a far-behind replica up to date
/// in one message.
///
/// `data` is opaque to cores: the driver serialises its state machine and session table into
/// it and restores them from it. `tag` is the protocol's stamp of `position` (Raft: the term
/// of the entry at that index; protocols without one use 0), set by the core. `identity` is
/// whatever else the protocol identifies a checkpoint by, in its own encoding (PBFT: the
/// state's digest, which 2f+1 checkpoint messages must match; EPaxos, whose positions are
/// local to a replica: the executed prefix of every replica's instances); empty for
/// protocols that need nothing beyond the position.
public struct Snapshot: Sendable, Equatable {
    /// `Committed.position` of the last command the state contains (or a later position up to
    /// which the protocol knows nothing else was committed).
    public var position: UInt64
    /// The protocol's stamp of `position`.
    public var tag: UInt64
    /// The serialised state machine.
    public var data: [UInt8]
    /// The protocol's identity of the checkpoint (`Replica.snapshotIdentity(at:)`).
    public var identity: [UInt8]

    /// Creates a snapshot.
    public init(position: UInt64, tag: UInt64, data: [UInt8], identity: [UInt8] = []) {
        self.position = position
        self.tag = tag
        self.data = data
        self.identity = identity
    }
}

extension Snapshot: WireCodable {
    /// Largest state a decoded snapshot may carry (the transport's frames are smaller still).
    public static let maximumDataBytes = 1 << 30
    /// Largest protocol identity a decoded snapshot may carry.
    public static let maximumIdentityBytes = 1 << 20

    public func encode(into writer: inout WireWriter) {
        writer.varint(self.position)
        writer.varint(self.tag)
        writer.data(self.data)
        writer.data(self.identity)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Snapshot {
        let position = try reader.varint()
        let tag = try reader.varint()
        guard position < 1 << 48, tag < 1 << 48 else {
            throw .malformed("snapshot position \(position) or tag \(tag) out of range")
        }
        let data = try reader.data(limit: Self.maximumDataBytes, what: "snapshot bytes")
        // Snapshot files written before snapshots had an identity end after the data.
        let identity = reader.isAtEnd ? [] : try reader.data(limit: Self.maximumIdentityBytes, what: "snapshot identity")
        return Snapshot(position: position, tag: tag, data: data, identity: identity)
    }
}
