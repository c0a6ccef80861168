import Foundation
import SynodCore
import SynodRaft
import SynodStorage
import Testing

/// Issue 11, findings 4, 5 and 9: a data directory is used by one process, for one node of one
/// protocol and cluster; a log whose segments were deleted is refused, not started afresh.
@Suite("Data directory and lost segments")
struct DataDirectoryTests {
    static let raft = DataDirectoryIdentity(protocolName: "raft", clusterID: 0xABC, node: 2)

    func expectRefusal(_ path: String, _ identity: DataDirectoryIdentity = Self.raft, saying fragment: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try DataDirectory.open(path: path, identity: identity)
            Issue.record("opened \(path)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.description.contains(fragment), "\(error.description)", sourceLocation: sourceLocation)
        }
    }

    @Test("an empty path and a path that is a file are refused with what is wrong")
    func badPaths() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        self.expectRefusal("", saying: "the data directory path is empty")
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        directory.write("plain", [1, 2, 3])
        self.expectRefusal(directory.path + "/plain", saying: "is a file, not a directory")
        self.expectRefusal(directory.path + "/plain/below", saying: "a part of the path is a file")
    }

    @Test("a second process (here: a second open) on a locked directory is refused while the first holds it")
    func exclusiveLock() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        var first: DataDirectory? = try DataDirectory.open(path: directory.path + "/node", identity: Self.raft)
        #expect(first != nil)
        self.expectRefusal(directory.path + "/node", saying: "is in use by another synod process (pid \(getpid()))")
        first = nil  // the holder stops: the lock goes with it
        #expect(try DataDirectory.open(path: directory.path + "/node", identity: Self.raft).existingIdentity == nil)
    }

    @Test("data of another protocol, cluster or member is refused, naming both sides")
    func identity() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let path = directory.path + "/node"
        do {
            let opened = try DataDirectory.open(path: path, identity: Self.raft)
            try opened.recordIdentity()
        }
        #expect(try DataDirectory.open(path: path, identity: Self.raft).existingIdentity == Self.raft)
        var paxos = Self.raft
        paxos.protocolName = "paxos"
        self.expectRefusal(path, paxos, saying: "it holds raft records, and this node runs paxos")
        var otherCluster = Self.raft
        otherCluster.clusterID = 0xDEF
        self.expectRefusal(path, otherCluster, saying: "it belongs to cluster abc, and this node's configuration")
        var otherNode = Self.raft
        otherNode.node = 3
        self.expectRefusal(path, otherNode, saying: "it is node 2's, and this node is 3")
        directory.write("node/identity", Array("synod-data-directory 9\n".utf8))
        self.expectRefusal(path, saying: "unknown format version")
    }

    /// A log of 40 records in segments of 4 KiB (several segments), synced.
    func segmentedLog(_ directory: ScratchDirectory) throws -> [[UInt8]] {
        var options = WriteAheadLog.Options()
        options.segmentBytes = 4096
        let records = (0..<40).map { record($0, size: 300) }
        try directory.writeLog(records, options: options)
        #expect(directory.segments().count >= 3)
        return records
    }

    @Test("a deleted last segment is refused: the segment before it was sealed naming it")
    func deletedLastSegment() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let records = try self.segmentedLog(directory)
        var options = WriteAheadLog.Options()
        options.segmentBytes = 4096
        #expect(try WriteAheadLog.open(directory: directory.path, options: options).1.records == records)
        let last = directory.segments().last!
        try FileManager.default.removeItem(atPath: directory.path + "/" + last)
        do {
            _ = try WriteAheadLog.open(directory: directory.path, options: options)
            Issue.record("opened a log whose last segment was deleted")
        } catch {
            #expect(error.description.contains("\(last)"), "\(error)")
            #expect(error.description.contains("the log's last segment was deleted"), "\(error)")
        }
        // A segment in the middle, as before.
        let directory2 = ScratchDirectory()
        defer { directory2.remove() }
        _ = try self.segmentedLog(directory2)
        try FileManager.default.removeItem(atPath: directory2.path + "/" + directory2.segments()[1])
        #expect(throws: StorageError.self) { try WriteAheadLog.open(directory: directory2.path, options: options) }
    }

    @Test("a crash after the next segment was created but before the seal was whole loses nothing")
    func tornSeal() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let records = try self.segmentedLog(directory)
        let segments = directory.segments()
        let sealed = segments[segments.count - 2]
        // Keep the log up to the end of the second-to-last segment; its seal (the last 20
        // bytes) torn after 7 of them, and the last segment created but empty.
        let bytes = directory.bytes(sealed)
        directory.write(sealed, Array(bytes.prefix(bytes.count - 13)))
        directory.write(segments.last!, [])
        var options = WriteAheadLog.Options()
        options.segmentBytes = 4096
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
        let kept = try WriteAheadLog.open(directory: directory.path, options: options).1.records
        #expect(recovery.truncatedBytes == 7)
        #expect(recovery.truncatedRecords == 0, "a seal is not a record")
        #expect(kept == recovery.records)
        #expect(records.starts(with: kept) && kept.count < records.count)
        // Recovery sealed it again: deleting the (empty) last segment now is detected too.
        try FileManager.default.removeItem(atPath: directory.path + "/" + segments.last!)
        #expect(throws: StorageError.self) { try WriteAheadLog.open(directory: directory.path, options: options) }
    }

    @Test("no segments where the node has run before (the identity file, or a snapshot, says so) is refused")
    func everySegmentDeleted() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        try directory.writeLog([record(1)])
        for segment in directory.segments() { try FileManager.default.removeItem(atPath: directory.path + "/" + segment) }
        #expect(throws: StorageError.self) { try WriteAheadLog.open(directory: directory.path, requireExisting: true) }
        // The snapshot kept, every segment gone.
        try SnapshotFile.write(Snapshot(position: 5, tag: 1, data: [1, 2, 3]), directory: directory.path)
        do {
            _ = try DurableRecordLog<RaftRecord>.open(directory: directory.path)
            Issue.record("opened a log with a snapshot and no segments")
        } catch {
            #expect(error.description.contains("were deleted"), "\(error)")
        }
    }

    @Test("a torn tail reports how many records it cut, and where")
    func tornRecordsCounted() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let options = smallSegments(reserve: false)
        try directory.writeLog((0..<5).map { record($0) }, options: options)
        let segment = directory.segments()[0]
        let whole = directory.bytes(segment)
        // Three more records appended, then a crash tore the last one.
        try directory.writeLog((5..<8).map { record($0) }, options: options)
        let longer = directory.bytes(segment)
        directory.write(segment, Array(longer.prefix(longer.count - 5)))
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(recovery.records.count == 7)
        #expect(recovery.truncatedRecords == 1)
        // A record's header whole and half its payload: one record cut, at the end of the last whole one.
        directory.write(segment, Array(longer.prefix(whole.count + 20 + 10)))
        let (_, again) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(again.records.count == 5)
        #expect(again.truncatedRecords == 1)
        #expect(again.truncatedAt?.offset == whole.count)
        #expect(again.truncatedAt?.file == directory.path + "/" + segment)
        // Zeros the file system left after the last record: free space, no record was in them.
        directory.write(segment, whole + [UInt8](repeating: 0, count: 64))
        let (_, zeros) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(zeros.records.count == 5 && zeros.truncatedBytes == 0 && zeros.truncatedRecords == 0 && zeros.truncatedAt == nil)
    }
}
