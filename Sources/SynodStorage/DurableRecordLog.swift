#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SynodCore

/// A protocol's durable records on a write-ahead log: what a driver writes from `Ready.records`
/// and hands back to `Replica.init(config:restoring:randomSeed:)` after a restart. Generic over
/// the record type: nothing here knows which protocol it serves.
public final class DurableRecordLog<Record: WireCodable> {
    private let log: WriteAheadLog
    /// The snapshot file beside the log, shared with whatever thread writes the node's own
    /// snapshots.
    public let snapshots: SnapshotStore

    private init(log: WriteAheadLog, snapshots: SnapshotStore) {
        self.log = log
        self.snapshots = snapshots
    }

    /// Opens the log in `directory`, recovering its snapshot (if any) and its records.
    /// - Parameter requireExisting: the node has run before, so the log must have segments
    ///   (a snapshot file beside no segments is refused in any case: the records were deleted).
    /// - Throws: `StorageError.corrupt` for damage before the tail or a missing segment,
    ///   `.undecodable` for a record that passes its checksum but does not decode (a bug or a
    ///   format change: refuse to start).
    public static func open(
        directory: String, options: WriteAheadLog.Options = WriteAheadLog.Options(), requireExisting: Bool = false
    ) throws(StorageError) -> (DurableRecordLog, Recovered<Record>, WriteAheadLog.Recovery) {
        let hasSnapshot = access(directory + "/" + SnapshotFile.fileName, F_OK) == 0
        let (log, recovery) = try WriteAheadLog.open(
            directory: directory, options: options, requireExisting: requireExisting || hasSnapshot)
        var records: [Record] = []
        records.reserveCapacity(recovery.records.count)
        for (index, bytes) in recovery.records.enumerated() {
            do {
                records.append(try Record.decode(bytes))
            } catch {
                throw .undecodable(directory: directory, record: index, reason: error.description)
            }
        }
        SnapshotFile.removeInterruptedWrite(directory: directory)
        let snapshot = try SnapshotFile.read(directory: directory)
        let store = SnapshotStore(directory: directory, durablePosition: snapshot?.position ?? 0)
        return (DurableRecordLog(log: log, snapshots: store), Recovered(snapshot: snapshot, records: records), recovery)
    }

    /// Appends records (durable after `sync`).
    public func append(_ records: [Record]) throws(StorageError) {
        try self.log.append(records.map { $0.encoded() })
    }

    /// Makes every appended record durable (one `fdatasync`).
    public func sync() throws(StorageError) {
        try self.log.sync()
    }

    /// Replaces the snapshot, atomically and durably (`Ready.snapshot`), unless the file holds
    /// it or a newer one already.
    public func save(_ snapshot: Snapshot) throws(StorageError) {
        try self.snapshots.save(snapshot)
    }

    /// Starts a new segment for a checkpoint's records; returns the checkpoint's position, to
    /// pass to `discard(before:)` once the checkpoint is durable.
    public func beginCheckpoint() throws(StorageError) -> UInt64 {
        try self.log.rollover()
    }

    /// Discards every record before a durable checkpoint (log compaction).
    public func discard(before checkpoint: UInt64) throws(StorageError) {
        try self.log.discard(before: checkpoint)
    }
}
