import Foundation
import SynodStorage
import Testing

/// A fresh directory under the system's temporary folder, removed by `remove()`.
struct ScratchDirectory {
    let path: String
    init() {
        self.path = NSTemporaryDirectory() + "synod-wal-" + UUID().uuidString
    }
    func remove() { try? FileManager.default.removeItem(atPath: self.path) }
    func segments() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: self.path)) ?? []).filter { $0.hasSuffix(".wal") }.sorted()
    }
    func bytes(_ name: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: self.path + "/" + name) ?? Data()) }
    /// Writes `records` to a log here and syncs them, as a node would before crashing.
    func writeLog(_ records: [[UInt8]], options: WriteAheadLog.Options = WriteAheadLog.Options()) throws {
        let (log, _) = try WriteAheadLog.open(directory: self.path, options: options)
        try log.append(records)
        try log.sync()
    }
    func write(_ name: String, _ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: self.path + "/" + name, contents: Data(bytes)) }
    /// Damages a segment in place, as a crash or the disk would.
    func edit(_ name: String, _ change: (inout [UInt8]) -> Void) {
        var bytes = self.bytes(name)
        change(&bytes)
        self.write(name, bytes)
    }
}

/// Small segments (4 KiB reserved each), so damage is tested in whole files quickly; `reserve`
/// off: segments that grow with every append, ending where their data ends.
func smallSegments(reserve: Bool = true) -> WriteAheadLog.Options {
    var options = WriteAheadLog.Options()
    options.segmentBytes = 4096
    options.reserveSegments = reserve
    return options
}

/// The bytes before the last one that is not zero.
func nonZeroLength(_ bytes: some Collection<UInt8>) -> Int { bytes.count - bytes.reversed().prefix { $0 == 0 }.count }

func record(_ index: Int, size: Int = 20) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
}

@Suite("Write-ahead log")
struct WriteAheadLogTests {
    @Test("CRC-32C matches the standard check value")
    func crcCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test("appended and synced records come back in order after reopening")
    func roundTrip() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let written = (0..<100).map { record($0, size: $0 % 7 * 13) }
        do {
            let (log, recovery) = try WriteAheadLog.open(directory: directory.path)
            #expect(recovery.records.isEmpty)
            try log.append(Array(written[0..<60]))
            try log.sync()
            try log.append(Array(written[60...]))
            try log.sync()
        }
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path)
        #expect(recovery.records == written)
        #expect(recovery.truncatedBytes == 0)
    }

    @Test("segments rotate by size and are read back in order")
    func segmentsRotate() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        var options = WriteAheadLog.Options()
        options.segmentBytes = 4096
        let written = (0..<300).map { record($0, size: 100) }
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.path, options: options)
            for chunk in stride(from: 0, to: written.count, by: 25) { try log.append(Array(written[chunk..<(chunk + 25)])) }
            try log.sync()
        }
        #expect(directory.segments().count > 5)
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(recovery.records == written)
    }

    @Test("a torn tail, cut at any byte of the last record, is truncated to the last whole record")
    func tornTailTruncated() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let written = (0..<5).map { record($0, size: 30) }
        let options = smallSegments(reserve: false)
        try directory.writeLog(written, options: options)
        let name = directory.segments()[0]
        let full = directory.bytes(name)
        let lastStart = full.count - (20 + 30)
        for cut in lastStart..<full.count {
            directory.write(name, Array(full[0..<cut]))
            let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
            #expect(recovery.records == Array(written[0..<4]), "cut at \(cut)")
            #expect(recovery.truncatedBytes == nonZeroLength(full[lastStart..<cut]))
            #expect(directory.bytes(name).count == lastStart, "the torn tail is removed from the file")
        }
        // A last record with garbage in its payload and nothing after it: torn, too.
        var garbled = full
        garbled[full.count - 1] ^= 0xFF
        directory.write(name, garbled)
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(recovery.records == Array(written[0..<4]))
    }

    @Test("a bad checksum before the tail is corruption: refuse to open, name the file and offset")
    func corruptionRefused() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        try directory.writeLog((0..<5).map { record($0, size: 30) }, options: smallSegments())
        let name = directory.segments()[0]
        directory.edit(name) { $0[50 + 20 + 3] ^= 0x01 }  // inside the second record's payload
        #expect(throws: StorageError.corrupt(file: directory.path + "/" + name, offset: 50, reason: "record checksum mismatch")) {
            _ = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        }
    }

    @Test("a flipped bit in a length is corruption, never a torn tail that swallows the records after it")
    func damagedLengthRefused() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        try directory.writeLog((0..<5).map { record($0, size: 30) }, options: smallSegments())
        let name = directory.segments()[0]
        directory.edit(name) { $0[50 + 3] ^= 0x01 }  // the second record's length grows by 16 MiB
        #expect(throws: StorageError.corrupt(file: directory.path + "/" + name, offset: 50, reason: "record header checksum mismatch")) {
            _ = try WriteAheadLog.open(directory: directory.path, options: smallSegments())
        }
    }

    @Test("a zero-filled tail (space allocated, data never written) is free space, not records")
    func zeroTailIsTorn() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let options = smallSegments(reserve: false)
        try directory.writeLog([record(1), [], record(2)], options: options)
        let name = directory.segments()[0]
        directory.write(name, directory.bytes(name) + [UInt8](repeating: 0, count: 100))
        do {
            let (log, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
            #expect(recovery.records == [record(1), [], record(2)])
            #expect(recovery.truncatedBytes == 0)
            try log.append([record(3)])
            try log.sync()
        }
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(recovery.records == [record(1), [], record(2), record(3)])
    }

    @Test("a missing segment is corruption")
    func missingSegmentRefused() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        var options = WriteAheadLog.Options()
        options.segmentBytes = 4096
        try directory.writeLog((0..<200).map { record($0, size: 100) }, options: options)
        let segments = directory.segments()
        #expect(segments.count >= 3)
        try FileManager.default.removeItem(atPath: directory.path + "/" + segments[1])
        #expect(throws: StorageError.self) { _ = try WriteAheadLog.open(directory: directory.path, options: options) }
    }

    @Test("damage in a sealed segment is corruption even at its end")
    func sealedSegmentDamage() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        var options = WriteAheadLog.Options()
        options.segmentBytes = 4096
        try directory.writeLog((0..<100).map { record($0, size: 100) }, options: options)
        let first = directory.segments()[0]
        let bytes = directory.bytes(first)
        directory.write(first, Array(bytes.dropLast(3)))
        #expect(throws: StorageError.self) { _ = try WriteAheadLog.open(directory: directory.path, options: options) }
    }

    @Test("appending after recovery continues the log")
    func appendAfterRecovery() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let options = smallSegments(reserve: false)
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.path, options: options)
            try log.append([record(1)])
            try log.sync()
            try log.append([record(2)])  // never synced; then the process "crashes" mid-write:
        }
        let name = directory.segments()[0]
        directory.write(name, Array(directory.bytes(name).dropLast(5)))
        do {
            let (log, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
            #expect(recovery.records == [record(1)])
            try log.append([record(3)])
            try log.sync()
        }
        let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(recovery.records == [record(1), record(3)])
    }

    @Test("oversized records are refused with a clear error")
    func oversizedRefused() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        var options = WriteAheadLog.Options()
        options.maximumRecordBytes = 16
        let (log, _) = try WriteAheadLog.open(directory: directory.path, options: options)
        #expect(throws: StorageError.recordTooLarge(bytes: 17, limit: 16)) { try log.append([record(0, size: 17)]) }
        // A record of 2³¹ − 1 bytes would have a seal's length word.
        options.maximumRecordBytes = (1 << 31) - 1
        #expect(throws: StorageError.self) { _ = try WriteAheadLog.open(directory: directory.path, options: options) }
    }

    @Test("fuzz: random damage gives a prefix of the records or a corruption error, never a trap", arguments: 1...4 as ClosedRange<UInt64>)
    func fuzz(seed: UInt64) throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let written = (0..<40).map { record($0, size: $0 % 5 * 9) }
        let options = smallSegments(reserve: seed % 2 == 0)
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.path, options: options)
            for batch in stride(from: 0, to: written.count, by: 8) {
                try log.append(Array(written[batch..<(batch + 8)]))
                try log.sync()
            }
        }
        let name = directory.segments()[0]
        let original = directory.bytes(name)
        var state = seed
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        var corrupt = 0
        for _ in 0..<300 {
            var bytes = original
            switch next(4) {
            case 0: bytes[next(bytes.count)] ^= UInt8(1 + next(255))
            case 1: bytes = Array(bytes.prefix(next(bytes.count)))
            case 2: bytes.insert(UInt8(next(256)), at: next(bytes.count))
            default:
                // A sector that never reached the disk.
                let sector = next(bytes.count / 512 + 1) * 512
                bytes.replaceSubrange(sector..<min(sector + 512, bytes.count), with: repeatElement(0, count: min(512, bytes.count - sector)))
            }
            directory.write(name, bytes)
            do {
                let (_, recovery) = try WriteAheadLog.open(directory: directory.path, options: options)
                #expect(recovery.records == Array(written.prefix(recovery.records.count)))
            } catch {
                corrupt += 1
            }
        }
        #expect(corrupt > 0)
    }
}
