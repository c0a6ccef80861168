import Glibc
import Synchronization
import SynodCore

/// A replica's newest snapshot on disk: one file, `snapshot`, replaced atomically (written to
/// `snapshot.tmp`, synced, renamed, directory synced), so a crash leaves the previous snapshot
/// or the new one, whole. Its bytes: the magic `SYNODSNP`, the masked CRC32C of the rest
/// (little-endian), then the `Snapshot` in the wire encoding.
public enum SnapshotFile {
    /// The file's name in its directory.
    public static let fileName = "snapshot"
    static let magic = Array("SYNODSNP".utf8)

    /// Removes what a write interrupted by a crash left before its rename (never the snapshot,
    /// only litter). Only while no write can be under way: when the node opens its storage.
    public static func removeInterruptedWrite(directory: String) {
        _ = unlink(directory + "/" + Self.fileName + ".tmp")
    }

    /// Makes `snapshot` the directory's snapshot, durably.
    public static func write(_ snapshot: Snapshot, directory: String) throws(StorageError) {
        let payload = snapshot.encoded()
        var bytes = Self.magic
        WriteAheadLog.appendWord(WriteAheadLog.masked(CRC32C.checksum(payload)), to: &bytes)
        bytes += payload
        try WriteAheadLog.writeDurably(bytes, to: directory + "/" + Self.fileName)
    }

    /// The directory's snapshot, or `nil` if it has none.
    /// - Throws: `StorageError.corrupt` naming the file when it is damaged (a checksum or
    ///   format mismatch): the node must not start from a state it cannot trust.
    public static func read(directory: String) throws(StorageError) -> Snapshot? {
        let path = directory + "/" + Self.fileName
        guard access(path, F_OK) == 0 else { return nil }
        let bytes = try WriteAheadLog.readFile(path)
        let header = Self.magic.count + 4
        guard bytes.count >= header, Array(bytes.prefix(Self.magic.count)) == Self.magic else {
            throw .corrupt(file: path, offset: 0, reason: "not a Synod snapshot (bad magic or too short)")
        }
        let stored = (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[Self.magic.count + $1]) << UInt32($1 * 8) }
        let payload = Array(bytes[header...])
        guard stored == WriteAheadLog.masked(CRC32C.checksum(payload)) else {
            throw .corrupt(file: path, offset: header, reason: "snapshot checksum mismatch")
        }
        do {
            return try Snapshot.decode(payload)
        } catch {
            throw .corrupt(file: path, offset: header, reason: "snapshot does not decode: \(error)")
        }
    }
}

/// A directory's snapshot file shared by the threads that replace it (a node's storage thread
/// for snapshots it receives, a background thread for its own): a snapshot replaces the file
/// only if it is newer than the one there, so the file never goes back, whichever write
/// finishes last.
public final class SnapshotStore: Sendable {
    /// The directory holding the file.
    public let directory: String
    private let durablePosition: Mutex<UInt64>

    /// A store whose file (if any) holds the snapshot at `durablePosition`.
    public init(directory: String, durablePosition: UInt64) {
        self.directory = directory
        self.durablePosition = Mutex(durablePosition)
    }

    /// The position of the snapshot on disk (0: none).
    public var position: UInt64 { self.durablePosition.withLock { $0 } }

    /// Makes `snapshot` the durable one unless the file already holds it or a newer one;
    /// returns whether it wrote. Writers wait for each other.
    @discardableResult
    public func save(_ snapshot: Snapshot) throws(StorageError) -> Bool {
        let result: Result<Bool, StorageError> = self.durablePosition.withLock { position in
            guard snapshot.position > position else { return .success(false) }
            do throws(StorageError) {
                try SnapshotFile.write(snapshot, directory: self.directory)
            } catch {
                return .failure(error)
            }
            position = snapshot.position
            return .success(true)
        }
        return try result.get()
    }
}
