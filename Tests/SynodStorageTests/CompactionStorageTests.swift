import Foundation
import SynodCore
@testable import SynodStorage
import Testing

@Suite("Log compaction on disk: checkpoints, discarded segments, snapshot files")
struct CompactionStorageTests {
    @Test("a checkpoint starts its own segment; discarding before it leaves a log that opens at the checkpoint")
    func discardBeforeCheckpoint() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let (log, _) = try WriteAheadLog.open(directory: directory.path)
        try log.append((0..<5).map { record($0) })
        let checkpoint = try log.rollover()
        #expect(checkpoint == 5)
        #expect(try log.rollover() == 5, "an empty segment is not rolled over again")
        try log.append((5..<8).map { record($0) })
        try log.sync()
        try log.discard(before: checkpoint)
        #expect(directory.segments() == ["0000000000000005.wal"])
        let (reopened, recovery) = try WriteAheadLog.open(directory: directory.path)
        #expect(recovery.records == (5..<8).map { record($0) })
        // Appending after reopening continues the global numbering.
        try reopened.append([record(8)])
        #expect(try reopened.rollover() == 9)
    }

    @Test("a crash part way through discarding (marker moved, old segments left) opens at the marker and removes them")
    func interruptedDiscard() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        var options = WriteAheadLog.Options()
        options.segmentBytes = 4096
        let (log, _) = try WriteAheadLog.open(directory: directory.path, options: options)
        try log.append((0..<10).map { record($0, size: 1500) })
        let checkpoint = try log.rollover()
        try log.append([record(100)])
        try log.sync()
        let before = directory.segments()
        #expect(before.count > 2)
        try log.discard(before: checkpoint)
        // Put back an old segment, as a deletion interrupted by a crash might leave it.
        directory.write(before[0], [1, 2, 3])
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(recovery.records == [record(100)])
        #expect(!directory.segments().contains(before[0]), "leftovers before the marker are removed")
    }

    @Test("a damaged start marker is corruption, named")
    func damagedMarker() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        try directory.writeLog([record(0)])
        directory.write("start", Array("12x\n".utf8))
        #expect(throws: StorageError.self) { try WriteAheadLog.open(directory: directory.path) }
        do {
            _ = try WriteAheadLog.open(directory: directory.path)
        } catch {
            #expect("\(error)".contains("/start"))
        }
    }

    @Test("a snapshot file round-trips; replacing it is atomic; damage is refused with the file named")
    func snapshotFile() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        _ = try WriteAheadLog.open(directory: directory.path)  // a log beside the snapshot, as a node has
        #expect(try SnapshotFile.read(directory: directory.path) == nil)
        let first = Snapshot(position: 10, tag: 2, data: Array(repeating: 7, count: 1000))
        try SnapshotFile.write(first, directory: directory.path)
        #expect(try SnapshotFile.read(directory: directory.path) == first)
        let second = Snapshot(position: 20, tag: 3, data: [1, 2, 3])
        try SnapshotFile.write(second, directory: directory.path)
        #expect(try SnapshotFile.read(directory: directory.path) == second)
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/snapshot.tmp"))
        // A temporary file left by a crash in the middle of a write is ignored, and removed
        // when the log opens.
        directory.write("snapshot.tmp", [1, 2, 3])
        #expect(try SnapshotFile.read(directory: directory.path) == second)
        _ = try DurableRecordLog<Command>.open(directory: directory.path)
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/snapshot.tmp"))
        // Every single-byte flip and every truncation is refused, never trapped on or misread.
        let good = directory.bytes("snapshot")
        for offset in good.indices {
            var bad = good
            bad[offset] ^= 0x40
            directory.write("snapshot", bad)
            #expect(throws: StorageError.self) { try SnapshotFile.read(directory: directory.path) }
        }
        for length in 0..<good.count {
            directory.write("snapshot", Array(good.prefix(length)))
            #expect(throws: StorageError.self) { try SnapshotFile.read(directory: directory.path) }
        }
        do {
            _ = try SnapshotFile.read(directory: directory.path)
        } catch {
            #expect("\(error)".contains(directory.path + "/snapshot"))
        }
    }

    @Test("the snapshot store never replaces the file with an older snapshot, whichever writer comes last")
    func snapshotStoreNeverGoesBack() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let store = SnapshotStore(directory: directory.path, durablePosition: 0)
        #expect(try store.save(Snapshot(position: 20, tag: 2, data: [2])))
        #expect(try !store.save(Snapshot(position: 10, tag: 1, data: [1])), "an older snapshot, finished later, is dropped")
        #expect(try !store.save(Snapshot(position: 20, tag: 2, data: [2])), "the same one again is not rewritten")
        #expect(try SnapshotFile.read(directory: directory.path)?.position == 20)
        #expect(try store.save(Snapshot(position: 30, tag: 2, data: [3])))
        let data = try SnapshotFile.read(directory: directory.path)?.data
        #expect(store.position == 30 && data == [3])
    }

    @Test("a durable record log recovers its snapshot with the records after the checkpoint")
    func durableRecordLog() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let (log, _, _) = try DurableRecordLog<Command>.open(directory: directory.path)
        try log.append([Command(client: 1, sequence: 1, payload: [1])])
        try log.sync()
        let snapshot = Snapshot(position: 1, tag: 0, data: [9])
        try log.save(snapshot)
        let checkpoint = try log.beginCheckpoint()
        try log.append([Command(client: 1, sequence: 2, payload: [2])])
        try log.sync()
        try log.discard(before: checkpoint)
        let (_, recovered, _) = try DurableRecordLog<Command>.open(directory: directory.path)
        #expect(recovered.snapshot == snapshot)
        #expect(recovered.records.map(\.sequence) == [2])
    }
}
