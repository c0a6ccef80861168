/// The application's state after applying every committed command up to `position`: what lets
/// a core discard the log before it (log compaction) and bring a far-behind replica up to date
/// in one message.
///
/// `data` is opaque to cores: the driver serialises its state machine and session table into
/// it and restores them from it. `tag` is the protocol's stamp of `position` (Raft: the term
/// of the entry at that index; protocols without one use 0), set by the core.
public struct Snapshot: Sendable, Equatable {
    /// `Committed.position` of the last command the state contains (or a later position up to
    /// which the protocol knows nothing else was committed).
    public var position: UInt64
    /// The protocol's stamp of `position`.
    public var tag: UInt64
    /// The serialised state machine.
    public var data: [UInt8]

    /// Creates a snapshot.
    public init(position: UInt64, tag: UInt64, data: [UInt8]) {
        self.position = position
        self.tag = tag
        self.data = data
    }
}

extension Snapshot: WireCodable {
    /// Largest state a decoded snapshot may carry (the transport's frames are smaller still).
    public static let maximumDataBytes = 1 << 30

    public func encode(into writer: inout WireWriter) {
        writer.varint(self.position)
        writer.varint(self.tag)
        writer.data(self.data)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Snapshot {
        let position = try reader.varint()
        let tag = try reader.varint()
        guard position < 1 << 48, tag < 1 << 48 else {
            throw .malformed("snapshot position \(position) or tag \(tag) out of range")
        }
        return Snapshot(position: position, tag: tag, data: try reader.data(limit: Self.maximumDataBytes, what: "snapshot bytes"))
    }
}
