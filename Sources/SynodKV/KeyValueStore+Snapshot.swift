import SynodCore

extension KeyValueStore {
    /// Snapshot format version, the first byte of every snapshot.
    static let snapshotFormat: UInt8 = 1

    /// A canonical snapshot of the store and its client sessions: the revision, every key in
    /// key order, every session in client order. Equal states give equal bytes, however they
    /// were reached.
    public static func snapshot(of service: ExactlyOnce<KeyValueStore>) -> Bytes {
        var writer = ByteWriter()
        writer.byte(Self.snapshotFormat)
        let store = service.machine
        writer.signed(store.revision)
        let sorted = store.entries.values.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        writer.varint(UInt64(sorted.count))
        for kv in sorted { kv.encode(into: &writer) }
        let sessions = service.sessions
        writer.varint(UInt64(sessions.count))
        for session in sessions {
            writer.varint(session.client)
            writer.varint(session.sequence)
            writer.data(session.reply)
        }
        return writer.bytes
    }

    /// Restores a store and its sessions from `snapshot(of:)`.
    /// - Throws: `KVError.malformed` naming what is wrong; nothing is half-restored.
    public static func restore(_ bytes: Bytes, limits: KVLimits = KVLimits()) throws(KVError) -> ExactlyOnce<KeyValueStore> {
        var reader = ByteReader(bytes)
        let format = try reader.byte()
        guard format == Self.snapshotFormat else { throw .malformed("unknown snapshot format \(format)") }
        var store = KeyValueStore(limits: limits)
        store.revision = try reader.signed()
        guard store.revision >= 1 && store.revision < Int64.max else { throw .malformed("snapshot revision \(store.revision) out of range") }
        var previous: Bytes?
        for _ in 0..<(try reader.count(limit: bytes.count, what: "keys")) {
            let kv = try KeyValue.decode(from: &reader)
            if let previous, !previous.lexicographicallyPrecedes(kv.key) {
                throw .malformed("snapshot keys out of order")
            }
            guard !kv.key.isEmpty, kv.key.count <= limits.maximumKeyBytes, kv.value.count <= limits.maximumValueBytes else {
                throw .malformed("snapshot key or value empty or over the limits")
            }
            // Every write bumps the revision, so a key's history fits between its create and
            // mod revisions: 2 ≤ create ≤ mod ≤ revision, 1 ≤ version ≤ mod - create + 1.
            guard kv.createRevision >= 2, kv.createRevision <= kv.modRevision, kv.modRevision <= store.revision,
                  kv.version >= 1, kv.version <= kv.modRevision - kv.createRevision + 1
            else {
                throw .malformed("inconsistent revisions for a key")
            }
            previous = kv.key
            store.entries[kv.key] = kv
        }
        var sessions: [(client: ClientID, sequence: UInt64, reply: [UInt8])] = []
        for _ in 0..<(try reader.count(limit: bytes.count, what: "sessions")) {
            let client = try reader.varint()
            if let last = sessions.last, last.client >= client { throw .malformed("snapshot sessions out of order") }
            sessions.append((client, try reader.varint(), try reader.data(limit: bytes.count, what: "reply")))
        }
        guard reader.isAtEnd else { throw .malformed("trailing bytes after the snapshot") }
        return ExactlyOnce(store, sessions: sessions)
    }
}
