#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A storage failure: what, and where.
public enum StorageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A record before the log's tail fails its checksum or framing, or a snapshot file its
    /// checksum: the node must not start on it.
    case corrupt(file: String, offset: Int, reason: String)
    /// The operating system refused an operation.
    case io(path: String, operation: String, errno: Int32)
    /// A record over the configured bound.
    case recordTooLarge(bytes: Int, limit: Int)
    /// A record that passes its checksum but does not decode.
    case undecodable(directory: String, record: Int, reason: String)

    public var description: String {
        switch self {
        case .corrupt(let file, let offset, let reason):
            file.hasSuffix("/" + SnapshotFile.fileName)
                ? "corrupt snapshot: \(file) at byte \(offset): \(reason)"
                : "corrupt write-ahead log: \(file) at byte \(offset): \(reason)"
        case .io(let path, let operation, let code): "\(operation) \(path) failed: \(String(cString: strerror(code)))"
        case .recordTooLarge(let bytes, let limit): "record of \(bytes) bytes exceeds the limit of \(limit)"
        case .undecodable(let directory, let record, let reason):
            "write-ahead log \(directory): record \(record) passes its checksum but does not decode (\(reason))"
        }
    }
}

/// A write-ahead log of opaque records in segment files.
///
/// Each record is framed as `length | 2³¹ (u32 LE) · batch start (u64 LE) · masked CRC-32C of
/// those twelve bytes (u32 LE) · masked CRC-32C of the payload (u32 LE) · payload`. The header's
/// own checksum means a damaged length is never trusted (it cannot pass for a torn tail and
/// swallow the records after it); masking (as LevelDB does) means zero-filled space never passes
/// for a record. The batch start is how far the segment was synced when the record was written:
/// every byte before it was durable by then. (Logs written before batch starts existed hold
/// records framed `length (u32 LE, below 2³¹) · masked CRC-32C of the length · masked CRC-32C of
/// the payload · payload`; they are read as before, and appended to in the new framing.)
/// Segments are named by the index of their first record (`0000000000000000.wal`, …) and a new
/// one starts once the current one reaches `segmentBytes`. `append` writes; `sync` makes every
/// appended record durable with one `fdatasync` (group commit: call it once per batch).
///
/// A new segment's space is reserved when it is created (`fallocate`, the size set), so that a
/// sync writes the records and not also the file's new size. Records are then written over
/// zeros, and a crash can leave any of a batch's unsynced pages unwritten: a hole of zeros
/// before pages that did reach the disk.
///
/// Recovery reads every segment in order. In the tail segment (the last that holds anything), a
/// record that fails its checks is a torn write from a crash when the damage is one a crash
/// leaves: the record runs past the end of the file's data, or nothing but zeros follows it, or
/// a 512-byte sector it overlaps holds zeros from some byte of the record to the sector's end (a
/// sector that never reached the disk keeps what it held before, the records synced earlier
/// and then zeros; one written while its page was being filled holds the start of the new
/// bytes); and no frame after it was written after it was synced: a record whose header names a
/// batch start beyond the damage, the segment's seal, or (in a segment written before batch
/// starts) any whole record. Damage confined to the last synced batch that also looks like a
/// crash's is taken for one: those records are lost, as a damaged last record always was. The
/// records after a torn write are discarded with it, and the torn bytes are cut (durably)
/// before anything is appended. Any other failure is corruption: the log refuses to open and
/// names the file and byte offset. After a write or sync error the log refuses further use: the
/// node must restart and recover.
///
/// A class because it owns a file descriptor (closed on deinit); use it from one thread.
public final class WriteAheadLog {
    /// Tuning, with bounds checked by `validate()`.
    public struct Options: Sendable {
        /// A new segment starts once the current one holds this many bytes.
        public var segmentBytes = 64 << 20
        /// Largest record accepted (and believed when reading a length).
        public var maximumRecordBytes = 16 << 20
        /// Reserve each segment's `segmentBytes` when it is created, so a sync does not also
        /// write the file's size. Off: segments grow with every append.
        public var reserveSegments = true

        /// The defaults.
        public init() {}

        func validate() throws(StorageError) {
            // A record's length word is its length with the framing flag set, and all ones is a seal's.
            guard self.segmentBytes >= 4096, self.maximumRecordBytes >= 1, self.maximumRecordBytes < Int(WriteAheadLog.framingFlag) - 1 else {
                throw .io(path: "", operation: "validate options", errno: EINVAL)
            }
        }
    }

    /// What recovery found.
    public struct Recovery: Sendable {
        /// Every whole record, oldest first.
        public var records: [[UInt8]]
        /// Bytes cut from a torn tail, up to its last byte that is not zero (0 when the log
        /// ended cleanly, or only zeros followed its last record).
        public var truncatedBytes: Int
        /// Records seen in the bytes cut (the one the damage is in, and whole ones after a hole;
        /// records wholly in a hole cannot be told from zeros): never synced, so never
        /// acknowledged.
        public var truncatedRecords: Int
        /// Where the cut was made (file and byte offset), when there was one.
        public var truncatedAt: (file: String, offset: Int)?
        /// Segment files read.
        public var segments: Int
    }

    /// The folder holding the segments.
    public let directory: String
    /// The tuning it was opened with.
    public let options: Options
    private var descriptor: Int32
    private var segmentPath: String
    /// Where the next record goes in the current segment.
    private var segmentSize: Int
    /// How much of the current segment is durable: the batch start of the records written next.
    private var syncedSize: Int
    private var nextIndex: UInt64
    private var unsynced = false
    /// Set by a write or sync error: the file's state is unknown, so nothing more is written.
    private var failed: StorageError?

    /// Opens (creating if needed) the log in `directory`, recovering what is there.
    /// - Returns: the log, ready to append after the last whole record, and what was recovered.
    /// - Parameter requireExisting: the log must hold at least one segment (the node has run
    ///   before): an empty folder means its segments were deleted, and is refused rather than
    ///   started afresh without the node's promises and acknowledged records.
    public static func open(
        directory: String, options: Options = Options(), requireExisting: Bool = false
    ) throws(StorageError) -> (WriteAheadLog, Recovery) {
        try options.validate()
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw .io(path: directory, operation: "mkdir", errno: errno) }
        // Segments before the start marker were discarded (log compaction); a crash may have
        // left some of them behind.
        let start = try Self.readStart(directory)
        var segments = try Self.segmentNames(directory)
        for name in segments where name < Self.segmentName(start) {
            if unlink(directory + "/" + name) != 0 { throw .io(path: directory + "/" + name, operation: "unlink", errno: errno) }
        }
        segments.removeAll { $0 < Self.segmentName(start) }
        if segments.isEmpty && requireExisting {
            throw .corrupt(
                file: directory, offset: 0,
                reason: "no log segments, but this node has run before: its records (its votes, promises and acknowledged entries) were deleted")
        }
        var records: [[UInt8]] = []
        var truncated = 0
        var truncatedRecords = 0
        var truncatedAt: (file: String, offset: Int)?
        var lastSize = 0
        // A segment is the tail when every segment after it holds nothing (no file, or only
        // reserved zeros): a crash between creating the next segment and sealing this one
        // leaves a torn seal here and an empty segment after.
        var contents: [Int: [UInt8]] = [:]
        // Enough zeros after a segment's data to complete any record that starts in it.
        let padding = options.maximumRecordBytes + Self.headerBytes
        var tail = segments.count - 1
        while tail > 0 {
            let bytes = try Self.readFile(directory + "/" + segments[tail], segmentPadding: padding)
            contents[tail] = bytes
            guard Self.writtenLength(bytes) == 0 else { break }
            tail -= 1
        }
        for (position, name) in segments.enumerated() {
            let path = directory + "/" + name
            // Segments are named by their first record's index: a gap means a lost segment.
            let expected = Self.segmentName(start + UInt64(records.count))
            guard name == expected else {
                throw .corrupt(file: path, offset: 0, reason: "expected segment \(expected) here: a segment is missing")
            }
            let bytes: [UInt8]
            if let read = contents.removeValue(forKey: position) {
                bytes = read
            } else {
                bytes = try Self.readFile(path, segmentPadding: padding)
            }
            let parsed = try Self.parse(bytes, file: path, isLast: position >= tail, options: options)
            records += parsed.records
            if let next = parsed.sealedNext {
                guard next == start + UInt64(records.count) else {
                    throw .corrupt(file: path, offset: parsed.end, reason: "the seal names segment \(Self.segmentName(next)), after \(records.count) records")
                }
                if position == segments.count - 1 {
                    throw .corrupt(
                        file: directory + "/" + Self.segmentName(next), offset: 0,
                        reason: "missing: \(name) was sealed with this segment as its successor, so the log's last segment was deleted")
                }
            }
            if parsed.tornBytes > 0 {
                truncated += parsed.tornBytes
                // Before an (empty) later segment only the seal can have been torn.
                truncatedRecords += position == segments.count - 1 ? parsed.tornRecords : 0
                truncatedAt = (path, parsed.end)
                try Self.truncateDurably(path, to: parsed.end)
            }
            if parsed.sealedNext == nil && position < segments.count - 1 {
                // Its seal was torn (or the log predates seals): seal it now, so a later
                // deletion of the segments after it is still detected.
                try Self.writeSeal(next: start + UInt64(records.count), to: path, at: parsed.end)
            }
            if position == segments.count - 1 { lastSize = parsed.end }
        }
        if segments.isEmpty {
            segments = [Self.segmentName(start)]
            lastSize = 0
        }
        let path = directory + "/" + segments.last!
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        do throws(StorageError) {
            // What was read may have been in the page cache only (the process crashed, the
            // machine did not): the records written next promise that it is durable. The
            // directory entry of a new segment must be durable too.
            if options.reserveSegments { try Self.reserve(descriptor, path: path, bytes: options.segmentBytes) }
            if fsync(descriptor) != 0 { throw StorageError.io(path: path, operation: "fsync", errno: errno) }
            try Self.syncDirectory(directory)
        } catch {
            close(descriptor)
            throw error
        }
        let log = WriteAheadLog(
            directory: directory, options: options, descriptor: descriptor, segmentPath: path, segmentSize: lastSize,
            nextIndex: start + UInt64(records.count))
        return (log, Recovery(
            records: records, truncatedBytes: truncated, truncatedRecords: truncatedRecords, truncatedAt: truncatedAt,
            segments: segments.count))
    }

    /// Reserves the first `bytes` of a segment (its size at least that), unless the file
    /// system cannot, or has no room: then the segment grows with every append, as it would
    /// unreserved (and a full disk fails the append, not the start). Where the file system has
    /// no `fallocate`, glibc writes the zeros itself.
    static func reserve(_ descriptor: Int32, path: String, bytes: Int) throws(StorageError) {
        let code = posix_fallocate(descriptor, 0, off_t(bytes))
        guard code == 0 || code == EOPNOTSUPP || code == ENOSYS || code == EINVAL || code == ENOSPC || code == EDQUOT else {
            throw .io(path: path, operation: "fallocate", errno: code)
        }
    }

    /// The name of the file holding the index of the first record kept.
    static let startFileName = "start"

    /// The index of the first record kept (0 unless `discard(before:)` ran).
    static func readStart(_ directory: String) throws(StorageError) -> UInt64 {
        let path = directory + "/" + Self.startFileName
        guard access(path, F_OK) == 0 else { return 0 }
        let bytes = try Self.readFile(path)
        // Written whole by an atomic rename: sixteen digits and a newline.
        guard bytes.count == 17, bytes[16] == 10, bytes.prefix(16).allSatisfy({ (48...57).contains($0) }),
              let index = UInt64(String(decoding: bytes.prefix(16), as: UTF8.self))
        else { throw .corrupt(file: path, offset: 0, reason: "the start marker is not sixteen digits and a newline") }
        return index
    }

    /// Ends the current segment (durably) unless it is empty, so that the next record starts a
    /// segment of its own; returns that record's index.
    public func rollover() throws(StorageError) -> UInt64 {
        if let failed { throw failed }
        if self.segmentSize > 0 { try self.startSegment() }
        return self.nextIndex
    }

    /// Discards every record before `index`, which must start a segment (`rollover`): the
    /// start marker moves first (atomically), then the older segments are deleted, so a crash
    /// part way leaves a log that opens at `index` all the same.
    public func discard(before index: UInt64) throws(StorageError) {
        if let failed { throw failed }
        precondition(index <= self.nextIndex, "discarding records not written yet")
        try Self.writeDurably(Array((String(index).leftPadded(to: 16) + "\n").utf8), to: self.directory + "/" + Self.startFileName)
        for name in try Self.segmentNames(self.directory) where name < Self.segmentName(index) {
            if unlink(self.directory + "/" + name) != 0 {
                throw .io(path: self.directory + "/" + name, operation: "unlink", errno: errno)
            }
        }
        try Self.syncDirectory(self.directory)
    }

    /// Writes a small file atomically and durably: a temporary file, fsync, rename, fsync of
    /// the directory. A crash leaves the old file or the new one, whole.
    public static func writeDurably(_ bytes: [UInt8], to path: String) throws(StorageError) {
        let temporary = path + ".tmp"
        let descriptor = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .io(path: temporary, operation: "open", errno: errno) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 {
                let code = count < 0 ? errno : EIO
                close(descriptor)
                throw .io(path: temporary, operation: "write", errno: code)
            }
            written += count
        }
        if fsync(descriptor) != 0 {
            let code = errno
            close(descriptor)
            throw .io(path: temporary, operation: "fsync", errno: code)
        }
        close(descriptor)
        if rename(temporary, path) != 0 { throw .io(path: path, operation: "rename", errno: errno) }
        let slash = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        try Self.syncDirectory(slash)
    }

    /// Writes a seal naming `next` at `offset` of a closed segment, durably, and releases the
    /// space reserved after it.
    static func writeSeal(next: UInt64, to path: String, at offset: Int) throws(StorageError) {
        var seal: [UInt8] = []
        Self.seal(next: next, into: &seal)
        let descriptor = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        let count = seal.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
        guard count == seal.count else { throw .io(path: path, operation: "write", errno: count < 0 ? errno : EIO) }
        if fdatasync(descriptor) != 0 { throw .io(path: path, operation: "fdatasync", errno: errno) }
        _ = ftruncate(descriptor, off_t(offset + seal.count))
    }

    /// Cuts a torn tail and makes the cut durable before anything is appended after it.
    static func truncateDurably(_ path: String, to size: Int) throws(StorageError) {
        let descriptor = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        if ftruncate(descriptor, off_t(size)) != 0 { throw .io(path: path, operation: "truncate", errno: errno) }
        if fsync(descriptor) != 0 { throw .io(path: path, operation: "fsync", errno: errno) }
    }

    private init(directory: String, options: Options, descriptor: Int32, segmentPath: String, segmentSize: Int, nextIndex: UInt64) {
        self.directory = directory
        self.options = options
        self.descriptor = descriptor
        self.segmentPath = segmentPath
        self.segmentSize = segmentSize
        self.syncedSize = segmentSize
        self.nextIndex = nextIndex
    }

    deinit { if self.descriptor >= 0 { close(self.descriptor) } }

    /// Appends records (not yet durable: call `sync`).
    public func append(_ records: [[UInt8]]) throws(StorageError) {
        if let failed { throw failed }
        for record in records {
            guard record.count <= self.options.maximumRecordBytes else {
                throw .recordTooLarge(bytes: record.count, limit: self.options.maximumRecordBytes)
            }
        }
        var buffer: [UInt8] = []
        var framed: UInt64 = 0
        for record in records {
            if self.segmentSize + buffer.count >= self.options.segmentBytes {
                try self.write(buffer, records: framed)
                buffer.removeAll(keepingCapacity: true)
                framed = 0
                try self.startSegment()
            }
            Self.frame(record, batch: self.syncedSize, into: &buffer)
            framed += 1
        }
        try self.write(buffer, records: framed)
    }

    /// Makes every appended record durable.
    public func sync() throws(StorageError) {
        if let failed { throw failed }
        guard self.unsynced else { return }
        if fdatasync(self.descriptor) != 0 {
            // After a failed fdatasync the kernel may have dropped the dirty pages: a retry
            // could succeed without them. Refuse further use; recovery decides what survived.
            self.failed = .io(path: self.segmentPath, operation: "fdatasync", errno: errno)
            throw self.failed!
        }
        self.unsynced = false
        self.syncedSize = self.segmentSize
    }

    /// Bytes of framing before each payload.
    static let headerBytes = 20
    /// Bytes of framing before a payload in the old framing, and before a seal's index.
    static let oldHeaderBytes = 12
    /// Set in a record's length word: the record carries its batch start.
    static let framingFlag: UInt32 = 1 << 31
    /// A crash leaves a sector either as it was (zeros, in reserved space) or as written.
    static let sectorBytes = 512

    /// LevelDB's CRC mask: the checksum of data that holds checksums, and of zeros, is no
    /// longer trivially valid.
    static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

    /// Appends `value` little-endian (a 32-bit framing word, or the seal's 64-bit index).
    static func appendWord(_ value: some FixedWidthInteger, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    /// The little-endian integer in `bytes[offset...]`.
    static func word<Integer: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as: Integer.Type = UInt32.self) -> Integer {
        var value: Integer = 0
        for index in 0..<MemoryLayout<Integer>.size { value |= Integer(bytes[offset + index]) << (8 * index) }
        return value
    }

    /// Appends the framing of one record, written once the segment's first `batch` bytes are
    /// durable, to `buffer`.
    static func frame(_ record: [UInt8], batch: Int, into buffer: inout [UInt8]) {
        let start = buffer.count
        Self.appendWord(UInt32(record.count) | Self.framingFlag, to: &buffer)
        Self.appendWord(UInt64(batch), to: &buffer)
        Self.appendWord(Self.masked(CRC32C.checksum(buffer[start..<(start + 12)])), to: &buffer)
        Self.appendWord(Self.masked(CRC32C.checksum(record)), to: &buffer)
        buffer.append(contentsOf: record)
    }

    /// What one segment holds.
    struct ParsedSegment {
        /// Its whole records.
        var records: [[UInt8]]
        /// The offset after the last whole record (or the seal).
        var end: Int
        /// The index its seal names as the next segment's first record, if it was sealed.
        var sealedNext: UInt64?
        /// Bytes of a torn tail after `end`, up to the last that is not zero: to be cut.
        var tornBytes = 0
        /// Records begun in those bytes.
        var tornRecords = 0
    }

    /// The length word of a seal frame: no record's is all ones (`maximumRecordBytes` is below
    /// 2³¹ − 1), so a seal is never taken for a record.
    static let sealLength = UInt32.max

    /// Appends the seal frame that ends a segment: the index of the next segment's first record.
    static func seal(next index: UInt64, into buffer: inout [UInt8]) {
        let start = buffer.count
        Self.appendWord(Self.sealLength, to: &buffer)
        Self.appendWord(Self.masked(CRC32C.checksum(buffer[start..<(start + 4)])), to: &buffer)
        var payload: [UInt8] = []
        Self.appendWord(index, to: &payload)
        Self.appendWord(Self.masked(CRC32C.checksum(payload)), to: &buffer)
        buffer.append(contentsOf: payload)
    }

    /// One frame read at an offset.
    enum Frame {
        /// A whole record; `batch` is nil in the old framing.
        case record(payload: Range<Int>, batch: Int?)
        /// A whole seal, ending at `end`.
        case seal(next: UInt64, end: Int)
        /// A frame that fails a checksum or is cut short: `extent` is the bytes it covers (its
        /// header, or the whole record when the header is sound); `pastEnd`: it runs past the
        /// end of the file.
        case damaged(reason: String, extent: Range<Int>, pastEnd: Bool)
        /// A frame whose header passes its checksum but is impossible: never a torn write.
        case invalid(reason: String)

        var isSeal: Bool { if case .seal = self { true } else { false } }
        var isRecord: Bool { if case .record = self { true } else { false } }
    }

    /// What a frame's header, alone, says (its checksum checked, not its payload's).
    enum Header {
        /// A record in the new framing, written once `batch` bytes were durable.
        case new(batch: Int)
        /// A seal's header.
        case seal
        /// A record's header in the old framing.
        case old
    }

    /// The header at `offset`, if one whose checksum holds starts there.
    static func header(in bytes: [UInt8], at offset: Int) -> Header? {
        guard bytes.count - offset >= Self.oldHeaderBytes else { return nil }
        let first = Self.word(bytes, at: offset) as UInt32
        if first == Self.sealLength || first & Self.framingFlag == 0 {
            guard Self.masked(CRC32C.checksum(bytes[offset..<(offset + 4)])) == Self.word(bytes, at: offset + 4) as UInt32 else { return nil }
            return first == Self.sealLength ? .seal : .old
        }
        guard bytes.count - offset >= Self.headerBytes,
              Self.masked(CRC32C.checksum(bytes[offset..<(offset + 12)])) == Self.word(bytes, at: offset + 12) as UInt32
        else { return nil }
        return .new(batch: Int(truncatingIfNeeded: Self.word(bytes, at: offset + 4, as: UInt64.self)))
    }

    /// The frame at `offset`.
    static func frame(in bytes: [UInt8], at offset: Int, options: Options) -> Frame {
        func word(_ at: Int) -> UInt32 { Self.word(bytes, at: at) }
        let available = bytes.count - offset
        guard available >= Self.oldHeaderBytes else {
            return .damaged(reason: "a record header cut short", extent: offset..<bytes.count, pastEnd: true)
        }
        let first = word(offset)
        let isNew = first != Self.sealLength && first & Self.framingFlag != 0
        let header = isNew ? Self.headerBytes : Self.oldHeaderBytes
        guard available >= header else {
            return .damaged(reason: "a record header cut short", extent: offset..<bytes.count, pastEnd: true)
        }
        let covered = isNew ? 12 : 4
        guard Self.masked(CRC32C.checksum(bytes[offset..<(offset + covered)])) == word(offset + covered) else {
            return .damaged(reason: "record header checksum mismatch", extent: offset..<(offset + header), pastEnd: false)
        }
        let length = first == Self.sealLength ? 8 : Int(first & ~Self.framingFlag)
        guard length <= options.maximumRecordBytes || first == Self.sealLength else {
            return .invalid(reason: "record length \(length) exceeds the limit of \(options.maximumRecordBytes)")
        }
        let batch = isNew ? Int(truncatingIfNeeded: Self.word(bytes, at: offset + 4, as: UInt64.self)) : nil
        if let batch, batch < 0 || batch > offset {
            return .invalid(reason: "record written once byte \(batch) was durable, but it starts at byte \(offset)")
        }
        let end = offset + header + length
        let what = first == Self.sealLength ? "segment seal" : "record"
        guard end <= bytes.count else {
            return .damaged(
                reason: first == Self.sealLength ? "a segment seal cut short" : "a record of \(length) bytes runs past the end of the segment",
                extent: offset..<bytes.count, pastEnd: true)
        }
        guard Self.masked(CRC32C.checksum(bytes[(offset + header)..<end])) == word(offset + covered + 4) else {
            return .damaged(reason: "\(what) checksum mismatch", extent: offset..<end, pastEnd: false)
        }
        if first == Self.sealLength { return .seal(next: Self.word(bytes, at: offset + header, as: UInt64.self), end: end) }
        return .record(payload: (offset + header)..<end, batch: batch)
    }

    /// The length of `bytes` without the zeros at its end (a reserved segment's free space),
    /// found a word at a time.
    static func writtenLength(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { buffer in
            var end = buffer.count
            while end % 8 != 0 && buffer[end - 1] == 0 { end -= 1 }
            if end % 8 == 0 {
                while end >= 8 && buffer.loadUnaligned(fromByteOffset: end - 8, as: UInt64.self) == 0 { end -= 8 }
            }
            while end > 0 && buffer[end - 1] == 0 { end -= 1 }
            return end
        }
    }

    /// The offset of the first byte from `start` on that is not zero (`bytes.count` if none).
    static func firstNonZero(_ bytes: [UInt8], from start: Int) -> Int {
        bytes.withUnsafeBytes { buffer in
            var index = start
            while index < buffer.count && index % 8 != 0 && buffer[index] == 0 { index += 1 }
            while index + 8 <= buffer.count && index % 8 == 0 && buffer.loadUnaligned(fromByteOffset: index, as: UInt64.self) == 0 { index += 8 }
            while index < buffer.count && buffer[index] == 0 { index += 1 }
            return index
        }
    }

    /// Parses a segment's records and seal. `isLast`: torn tails are allowed (see the type's
    /// documentation); elsewhere every failure is corruption.
    static func parse(_ bytes: [UInt8], file: String, isLast: Bool, options: Options) throws(StorageError) -> ParsedSegment {
        var records: [[UInt8]] = []
        var offset = 0
        // Reserved space after the last frame holds zeros.
        let written = Self.writtenLength(bytes)
        // Whole records read so far, all in the old framing (a log written before batch starts).
        var oldFramingOnly = false
        while offset < written {
            switch Self.frame(in: bytes, at: offset, options: options) {
            case .record(let payload, let batch):
                records.append(Array(bytes[payload]))
                oldFramingOnly = batch == nil && (records.count == 1 || oldFramingOnly)
                offset = payload.upperBound
            case .seal(let next, let end):
                guard end >= written else { throw .corrupt(file: file, offset: end, reason: "bytes after the segment's seal") }
                return ParsedSegment(records: records, end: end, sealedNext: next)
            case .invalid(let reason):
                throw .corrupt(file: file, offset: offset, reason: reason)
            case .damaged(let reason, let extent, let pastEnd):
                guard isLast else { throw .corrupt(file: file, offset: offset, reason: reason) }
                // A crash leaves a record cut short at the end of the file, or last of all that
                // was written, or written over zeros in part: a sector of it holds zeros from
                // some byte of the record to the sector's end (the sector never reached the
                // disk and kept its zeros, or was written while its page was still being
                // filled). A flipped bit elsewhere is damage to synced records.
                let firstSector = extent.lowerBound / Self.sectorBytes * Self.sectorBytes
                let holed = stride(from: firstSector, to: extent.upperBound, by: Self.sectorBytes).contains { sector in
                    let end = min(sector + Self.sectorBytes, bytes.count)
                    let zeros = bytes[max(sector, offset)..<end].reversed().prefix { $0 == 0 }.count
                    return zeros > 0 && end - zeros < extent.upperBound
                }
                guard pastEnd || extent.upperBound >= written || holed else {
                    throw .corrupt(file: file, offset: offset, reason: reason)
                }
                // No frame after it may have been written once it was durable: a record whose
                // header names a batch start past it, or the segment's seal. (Only headers are
                // checked: a payload cannot make the scan check a payload. A segment in the old
                // framing only, written before batch starts, is held to the old rule: no whole
                // record after the damage.)
                var begun = 1
                var later = offset + 1
                while later < written {
                    // Every frame has a byte that is not zero in its first twelve: runs of
                    // zeros (holes, reserved space) are skipped a word at a time.
                    let nonZero = Self.firstNonZero(bytes, from: later)
                    if nonZero - later >= Self.oldHeaderBytes {
                        later = nonZero - Self.oldHeaderBytes + 1
                        continue
                    }
                    defer { later += 1 }
                    let evidence: Bool
                    switch Self.header(in: bytes, at: later) {
                    case .new(let batch):
                        // A batch start past the header itself is no header this log wrote.
                        if (0...offset).contains(batch) { begun += 1 }
                        evidence = batch > offset && batch <= later
                    case .seal:
                        // A seal ends its segment: nothing but zeros after it.
                        evidence = later + Self.oldHeaderBytes + 8 >= written
                            && Self.frame(in: bytes, at: later, options: options).isSeal
                    case .old:
                        evidence = oldFramingOnly && Self.frame(in: bytes, at: later, options: options).isRecord
                    case nil:
                        continue
                    }
                    if evidence {
                        throw .corrupt(
                            file: file, offset: offset,
                            reason: "\(reason), and the record at byte \(later) was written after it was synced")
                    }
                }
                return ParsedSegment(records: records, end: offset, tornBytes: written - offset, tornRecords: begun)
            }
        }
        return ParsedSegment(records: records, end: offset)
    }

    static func segmentName(_ index: UInt64) -> String {
        String(index).leftPadded(to: 16) + ".wal"
    }

    static func segmentNames(_ directory: String) throws(StorageError) -> [String] {
        guard let handle = opendir(directory) else { throw .io(path: directory, operation: "opendir", errno: errno) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasSuffix(".wal") && name.count == 20 && name.prefix(16).allSatisfy({ $0.isASCII && $0.isNumber }) {
                names.append(name)
            }
        }
        return names.sorted()
    }

    /// Linux's `SEEK_DATA` and `SEEK_HOLE` (glibc defines them only for `_GNU_SOURCE`).
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4

    /// A file's bytes. With `segmentPadding`, a segment's: only the extents the file system
    /// reports as data (`SEEK_DATA`) are read, holes between them read as zeros, and the space
    /// after the last extent (reserved and never written, or zeros a file system stored as a
    /// hole) is left out but for `segmentPadding` zeros, enough to hold the rest of any record
    /// that starts in the data.
    static func readFile(_ path: String, segmentPadding: Int? = nil) throws(StorageError) -> [UInt8] {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .io(path: path, operation: "stat", errno: errno) }
        let size = Int(status.st_size)
        // The data's extents; the whole file where the file system cannot tell.
        var extents = [0..<size]
        if segmentPadding != nil {
            extents = []
            var position = 0
            while position < size {
                let data = lseek(descriptor, off_t(position), Self.seekData)
                if data < 0 && errno == ENXIO { break }  // no data from `position` on
                let hole = data < 0 ? -1 : lseek(descriptor, data, Self.seekHole)
                guard data >= 0, hole > data else {
                    extents = [0..<size]
                    break
                }
                extents.append(Int(data)..<min(Int(hole), size))
                position = Int(hole)
            }
        }
        let length = min(size, (extents.last?.upperBound ?? 0) + (segmentPadding ?? 0))
        // No one writes meanwhile: the data directory is locked.
        var failure: Int32?
        let bytes = [UInt8](unsafeUninitializedCapacity: length) { buffer, initialized in
            var filled = 0
            for extent in extents {
                if extent.lowerBound > filled { (buffer.baseAddress! + filled).initialize(repeating: 0, count: extent.lowerBound - filled) }
                filled = extent.lowerBound
                while filled < extent.upperBound {
                    let count = pread(descriptor, buffer.baseAddress! + filled, extent.upperBound - filled, off_t(filled))
                    if count < 0 && errno == EINTR { continue }
                    if count <= 0 {
                        failure = count < 0 ? errno : EIO
                        initialized = filled
                        return
                    }
                    filled += count
                }
            }
            (buffer.baseAddress! + filled).initialize(repeating: 0, count: length - filled)
            initialized = length
        }
        if let failure { throw .io(path: path, operation: "read", errno: failure) }
        return bytes
    }

    static func syncDirectory(_ directory: String) throws(StorageError) {
        let descriptor = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: directory, operation: "open", errno: errno) }
        defer { close(descriptor) }
        if fsync(descriptor) != 0 { throw .io(path: directory, operation: "fsync", errno: errno) }
    }

    private func write(_ buffer: [UInt8], records: UInt64) throws(StorageError) {
        var written = 0
        while written < buffer.count {
            let count = buffer.withUnsafeBytes {
                pwrite(self.descriptor, $0.baseAddress! + written, buffer.count - written, off_t(self.segmentSize + written))
            }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 {
                // The partial write is a torn tail for recovery; refuse further use.
                self.failed = .io(path: self.segmentPath, operation: "write", errno: count < 0 ? errno : EIO)
                throw self.failed!
            }
            written += count
        }
        self.segmentSize += buffer.count
        self.nextIndex += records
        if !buffer.isEmpty { self.unsynced = true }
    }

    /// Seals the current segment (durably) and starts the next. The next segment's file is
    /// created and reserved (and its directory entry made durable) before the seal is written:
    /// a seal on disk promises that its successor exists, so a deleted last segment is
    /// detected. The sealed segment's unused reservation is released.
    private func startSegment() throws(StorageError) {
        try self.sync()
        let nextPath = self.directory + "/" + Self.segmentName(self.nextIndex)
        let next = Glibc.open(nextPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard next >= 0 else {
            self.failed = .io(path: nextPath, operation: "open", errno: errno)
            throw self.failed!
        }
        do throws(StorageError) {
            if self.options.reserveSegments {
                try Self.reserve(next, path: nextPath, bytes: self.options.segmentBytes)
                if fsync(next) != 0 { throw StorageError.io(path: nextPath, operation: "fsync", errno: errno) }
            }
            try Self.syncDirectory(self.directory)
        } catch {
            close(next)
            self.failed = error
            throw error
        }
        var seal: [UInt8] = []
        Self.seal(next: self.nextIndex, into: &seal)
        do {
            try self.write(seal, records: 0)
            try self.sync()
        } catch {
            close(next)
            throw error
        }
        // Not synced: zeros after a seal are allowed.
        _ = ftruncate(self.descriptor, off_t(self.segmentSize))
        close(self.descriptor)
        self.descriptor = next
        self.segmentPath = nextPath
        self.segmentSize = 0
        self.syncedSize = 0
    }
}

extension String {
    /// The string with leading zeros up to `width` characters.
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - self.count)) + self
    }
}
