import Foundation
@testable import SynodStorage
import Testing

/// Segments written over reserved space: a crash can leave a hole of zeros in the batch that was
/// being written, before pages that did reach the disk. Recovery must take that for a torn write,
/// and still refuse damage to records that were synced.
@Suite("Write-ahead log: reserved segments")
struct ReservedSegmentTests {
    /// Twelve 100-byte records in one batch after `before` synced ones (each framed in 120
    /// bytes, so the batch covers several 512-byte sectors), synced when `syncLast` is set, then
    /// `after` more records in a batch of their own.
    func writeBatches(_ directory: ScratchDirectory, before: Int, after: Int) throws -> [[UInt8]] {
        let (log, recovery) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        #expect(recovery.records.isEmpty)
        var written: [[UInt8]] = []
        func batch(_ records: [[UInt8]]) throws {
            guard !records.isEmpty else { return }
            try log.append(records)
            try log.sync()
            written += records
        }
        try batch((0..<before).map { record($0, size: 100) })
        try batch((before..<(before + 12)).map { record($0, size: 100) })
        try batch(((before + 12)..<(before + 12 + after)).map { record($0, size: 100) })
        return written
    }

    @Test("segments are reserved: a new segment's file is segmentBytes long before any record")
    func reserved() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let (log, _) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        #expect(directory.bytes(directory.segments()[0]).count == 4096)
        try log.append([record(1)])
        try log.sync()
        #expect(directory.bytes(directory.segments()[0]).count == 4096)
        _ = try log.rollover()
        // The sealed segment gives its unused space back; its successor is reserved.
        let segments = directory.segments()
        #expect(segments.count == 2)
        #expect(directory.bytes(segments[0]).count == 40 + 20)
        #expect(directory.bytes(segments[1]).count == 4096)
    }

    @Test("the written length (zeros at the end skipped a word at a time) matches a byte-by-byte count")
    func writtenLength() {
        var state: UInt64 = 7
        for _ in 0..<2000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let count = Int(state >> 54)  // up to 1023 bytes
            var bytes = [UInt8](repeating: 0, count: count)
            if count > 0 && state & 1 == 0 { bytes[Int(state >> 20) % count] = UInt8(truncatingIfNeeded: state >> 8) | 1 }
            if count > 0 && state & 2 == 0 { bytes[Int(state >> 30) % count] = 0x80 }
            #expect(WriteAheadLog.writtenLength(bytes) == nonZeroLength(bytes), "\(count) bytes")
        }
    }

    @Test("a hole in the last batch (a sector that never reached the disk) is a torn write; the records after it go for good")
    func holeInLastBatch() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let written = try writeBatches(directory, before: 2, after: 0)
        let name = directory.segments()[0]
        // Records 0 and 1 (bytes 0 to 240) were synced before the batch at 240 was written.
        directory.edit(name) { $0.replaceSubrange(512..<1024, with: repeatElement(0, count: 512)) }
        do {
            let (log, recovery) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
            // Record 4 covers bytes 480 to 600: it and everything after it are torn.
            #expect(recovery.records == Array(written[0..<4]))
            #expect(recovery.truncatedAt?.offset == 480)
            #expect(recovery.truncatedBytes == 14 * 120 - 480)
            // The one the hole begins in and the five whole ones after the hole (the four in
            // the hole cannot be told from zeros).
            #expect(recovery.truncatedRecords == 6)
            try log.append([record(99, size: 7)])
            try log.sync()
        }
        // The records after the hole were cut: they do not come back after the new record.
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        #expect(recovery.records == Array(written[0..<4]) + [record(99, size: 7)])
        #expect(recovery.truncatedBytes == 0)
    }

    @Test("a batch whose first sector never reached the disk, the sector shared with synced records, is a torn write")
    func lostFirstSector() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let written = try writeBatches(directory, before: 2, after: 0)
        let name = directory.segments()[0]
        // The sector holds records 0 and 1 (synced) and the batch's first bytes, at 240 to 512:
        // unwritten, it still holds the two records and zeros.
        directory.edit(name) { $0.replaceSubrange(240..<512, with: repeatElement(0, count: 272)) }
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        #expect(recovery.records == Array(written[0..<2]))
        #expect(recovery.truncatedAt?.offset == 240)
    }

    @Test("a sector written while its page was being filled (new bytes, then zeros to its end) is a torn write")
    func halfFilledSector() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let written = try writeBatches(directory, before: 2, after: 0)
        let name = directory.segments()[0]
        // Record 5 (600 to 720) keeps its first hundred bytes; the sector is zeros from 700 on.
        directory.edit(name) { $0.replaceSubrange(700..<1024, with: repeatElement(0, count: 324)) }
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        #expect(recovery.records == Array(written[0..<5]))
        #expect(recovery.truncatedAt?.offset == 600)
    }

    @Test("frames inside a payload (an old-framing record, a seal) after a torn record do not pass for a later batch")
    func framesInPayload() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        // An empty record in the old framing, and a seal, as a client's value could hold them.
        var forged: [UInt8] = []
        WriteAheadLog.appendWord(UInt32(0), to: &forged)
        WriteAheadLog.appendWord(WriteAheadLog.masked(CRC32C.checksum([0, 0, 0, 0])), to: &forged)
        WriteAheadLog.appendWord(WriteAheadLog.masked(CRC32C.checksum([])), to: &forged)
        WriteAheadLog.seal(next: 7, into: &forged)
        let records = [record(0, size: 100), record(1, size: 480), forged + record(2, size: 68), record(3, size: 100)]
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
            try log.append(Array(records[0..<1]))
            try log.sync()
            try log.append(Array(records[1...]))
            try log.sync()
        }
        let name = directory.segments()[0]
        // Record 1 (120 to 620) torn: its sector is zeros from 400 on. The forged frames sit in
        // record 2 (620 to 740), which reached the disk.
        directory.edit(name) { $0.replaceSubrange(400..<512, with: repeatElement(0, count: 112)) }
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        #expect(recovery.records == Array(records[0..<1]))
        #expect(recovery.truncatedAt?.offset == 120)
    }

    @Test("zeros at the end of the last record, stored as a hole (as ZFS does with compression), are read as zeros")
    func trailingHole() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let options = smallSegments(reserve: false)
        let last = [1, 2, 3] + [UInt8](repeating: 0, count: 9000)
        try directory.writeLog([record(0), last], options: options)
        let name = directory.segments()[0]
        let bytes = directory.bytes(name)
        // Only the first block is data; the rest of the file is a hole.
        directory.write(name, Array(bytes[0..<4096]))
        let handle = try #require(FileHandle(forWritingAtPath: directory.path + "/" + name))
        try handle.truncate(atOffset: UInt64(bytes.count))
        try handle.close()
        #expect(directory.bytes(name) == bytes)
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(recovery.records == [record(0), last])
        #expect(recovery.truncatedBytes == 0)
    }

    @Test("a record appended over a torn batch's first damaged record does not revive the whole ones after it")
    func noRevival() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        // Records of 620 framed bytes: one synced, then a batch of five at 620 to 3720.
        let options = smallSegments()
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.path, options: options)
            try log.append([record(0, size: 600)])
            try log.sync()
            try log.append((1...5).map { record($0, size: 600) })
            try log.sync()
        }
        let name = directory.segments()[0]
        // A hole inside the fourth record of the batch (2480 to 3100) only.
        directory.edit(name) { $0.replaceSubrange(2560..<3072, with: repeatElement(0, count: 512)) }
        do {
            let (log, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
            #expect(recovery.records == (0...3).map { record($0, size: 600) })
            #expect(recovery.truncatedAt?.offset == 2480 && recovery.truncatedRecords == 2)
            // Exactly as long as the torn record: without the cut, the fifth would follow it whole.
            try log.append([record(9, size: 600)])
            try log.sync()
        }
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(recovery.records == (0...3).map { record($0, size: 600) } + [record(9, size: 600)])
    }

    @Test("a hole in a batch that a later batch follows is corruption: that batch was synced")
    func holeInSyncedBatch() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        _ = try writeBatches(directory, before: 0, after: 2)
        let name = directory.segments()[0]
        directory.edit(name) { $0.replaceSubrange(512..<1024, with: repeatElement(0, count: 512)) }
        #expect(throws: StorageError.corrupt(
            file: directory.path + "/" + name, offset: 480,
            reason: "record checksum mismatch, and the record at byte 1440 was written after it was synced")) {
            _ = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        }
    }

    @Test("damage a crash cannot leave (no sector of zeros, not at the end) is corruption, even in the last batch")
    func flipInLastBatch() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        _ = try writeBatches(directory, before: 2, after: 0)
        let name = directory.segments()[0]
        directory.edit(name) { $0[600 + 30] ^= 0x10 }
        #expect(throws: StorageError.corrupt(file: directory.path + "/" + name, offset: 600, reason: "record checksum mismatch")) {
            _ = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        }
    }

    @Test("a log in the old framing (no batch starts) is read, and appended to in the new one")
    func oldFraming() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        var bytes: [UInt8] = []
        for index in 0..<3 {
            let payload = record(index, size: 10 * index)
            let start = bytes.count
            WriteAheadLog.appendWord(UInt32(payload.count), to: &bytes)
            WriteAheadLog.appendWord(WriteAheadLog.masked(CRC32C.checksum(bytes[start..<(start + 4)])), to: &bytes)
            WriteAheadLog.appendWord(WriteAheadLog.masked(CRC32C.checksum(payload)), to: &bytes)
            bytes += payload
        }
        let name = WriteAheadLog.segmentName(0)
        // Its last record torn, as the old build could leave it.
        directory.write(name, Array(bytes.dropLast(4)))
        do {
            let (log, recovery) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
            #expect(recovery.records == [record(0, size: 0), record(1, size: 10)])
            #expect(recovery.truncatedRecords == 1)
            try log.append([record(3)])
            try log.sync()
        }
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        #expect(recovery.records == [record(0, size: 0), record(1, size: 10), record(3)])
        // Damage before an old-framing record is corruption, as it always was.
        var damaged = bytes
        damaged[12 + 2] ^= 0x01
        directory.write(name, damaged)
        #expect(throws: StorageError.self) { _ = try WriteAheadLog.open(directory: directory.path, options: smallSegments()) }
    }
}
