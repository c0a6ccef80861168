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
/// Each record is framed as `length (u32 LE) · masked CRC-32C of the length (u32 LE) · masked
/// CRC-32C of the payload (u32 LE) · payload`. The header's own checksum means a damaged length
/// is never trusted (it cannot pass for a torn tail and swallow the records after it); masking
/// (as LevelDB does) means zero-filled space never passes for a record.
/// Segments are named by the index of their first record (`0000000000000000.wal`, …) and a new
/// one starts once the current one passes `segmentBytes`. `append` writes; `sync` makes every
/// appended record durable with one `fdatasync` (group commit: call it once per batch).
///
/// Recovery reads every segment in order. A failure at the very end of the last segment is a
/// torn write from a crash: a header cut short, a valid header whose record runs past the end or
/// ends exactly at the end with a bad payload checksum, or a damaged header followed by nothing
/// but zeros. The tail is truncated (durably) to the last whole record. Any other failure is
/// corruption: the log refuses to open and names the file and byte offset. After a write or sync
/// error the log refuses further use: the node must restart and recover.
///
/// A class because it owns a file descriptor (closed on deinit); use it from one thread.
public final class WriteAheadLog {
    /// Tuning, with bounds checked by `validate()`.
    public struct Options: Sendable {
        /// A new segment starts once the current one holds this many bytes.
        public var segmentBytes = 64 << 20
        /// Largest record accepted (and believed when reading a length).
        public var maximumRecordBytes = 16 << 20

        /// The defaults.
        public init() {}

        func validate() throws(StorageError) {
            guard self.segmentBytes >= 4096, self.maximumRecordBytes >= 1, self.maximumRecordBytes < Int(WriteAheadLog.sealLength) else {
                throw .io(path: "", operation: "validate options", errno: EINVAL)
            }
        }
    }

    /// What recovery found.
    public struct Recovery: Sendable {
        /// Every whole record, oldest first.
        public var records: [[UInt8]]
        /// Bytes cut from a torn tail (0 when the log ended cleanly).
        public var truncatedBytes: Int
        /// Records in the bytes cut (each cut short by the crash): never synced, so never
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
    private var segmentSize: Int
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
        // A segment is the tail when every segment after it is empty: a crash between creating
        // the next segment and sealing this one leaves a torn seal here and an empty file after.
        var sizes: [Int] = []
        for name in segments {
            var status = stat()
            guard stat(directory + "/" + name, &status) == 0 else { throw .io(path: directory + "/" + name, operation: "stat", errno: errno) }
            sizes.append(Int(status.st_size))
        }
        for (position, name) in segments.enumerated() {
            let path = directory + "/" + name
            // Segments are named by their first record's index: a gap means a lost segment.
            let expected = Self.segmentName(start + UInt64(records.count))
            guard name == expected else {
                throw .corrupt(file: path, offset: 0, reason: "expected segment \(expected) here: a segment is missing")
            }
            let bytes = try Self.readFile(path)
            let isTail = sizes[(position + 1)...].allSatisfy { $0 == 0 }
            let parsed = try Self.parse(bytes, file: path, isLast: isTail, options: options)
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
            if parsed.end < bytes.count {
                truncated += bytes.count - parsed.end
                // Before an (empty) later segment only the seal can have been torn.
                let isFinal = position == segments.count - 1
                truncatedRecords += isFinal ? Self.recordsBegun(in: bytes[parsed.end...]) : 0
                truncatedAt = (path, parsed.end)
                try Self.truncateDurably(path, to: parsed.end)
            }
            if parsed.sealedNext == nil && position < segments.count - 1 {
                // Its seal was torn (or the log predates seals): seal it now, so a later
                // deletion of the segments after it is still detected.
                try Self.appendSeal(next: start + UInt64(records.count), to: path)
            }
            if position == segments.count - 1 { lastSize = parsed.end }
        }
        if segments.isEmpty {
            segments = [Self.segmentName(start)]
            lastSize = 0
        }
        let path = directory + "/" + segments.last!
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        // The directory entry of a new segment must be durable too.
        do {
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

    /// Appends a seal naming `next` to a closed segment, durably.
    static func appendSeal(next: UInt64, to path: String) throws(StorageError) {
        var seal: [UInt8] = []
        Self.seal(next: next, into: &seal)
        let descriptor = Glibc.open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        let count = seal.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        guard count == seal.count else { throw .io(path: path, operation: "write", errno: count < 0 ? errno : EIO) }
        if fdatasync(descriptor) != 0 { throw .io(path: path, operation: "fdatasync", errno: errno) }
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
            Self.frame(record, into: &buffer)
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
    }

    /// Bytes of framing before each payload.
    static let headerBytes = 12

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

    /// Appends the framing of one record to `buffer`.
    static func frame(_ record: [UInt8], into buffer: inout [UInt8]) {
        let start = buffer.count
        Self.appendWord(UInt32(record.count), to: &buffer)
        Self.appendWord(Self.masked(CRC32C.checksum(buffer[start..<(start + 4)])), to: &buffer)
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
    }

    /// The length field of a seal frame: no record is this long (`maximumRecordBytes` is
    /// below it), so a seal is never taken for a record.
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

    /// How many records the torn tail of the final segment held: one cut short (or ending in a
    /// bad checksum), or none when it is zeros (space the file system allocated). A tail never
    /// holds more: parsing stops at the first record that is not whole, and nothing is written
    /// after a record until it is. (A torn seal is never in the final segment: its successor is
    /// created first.)
    static func recordsBegun(in tail: ArraySlice<UInt8>) -> Int {
        tail.allSatisfy { $0 == 0 } ? 0 : 1
    }

    /// Parses a segment's records and seal. `isLast`: torn tails are allowed (see the type's
    /// documentation); elsewhere every failure is corruption.
    static func parse(_ bytes: [UInt8], file: String, isLast: Bool, options: Options) throws(StorageError) -> ParsedSegment {
        var records: [[UInt8]] = []
        var offset = 0
        func word(_ at: Int) -> UInt32 { Self.word(bytes, at: at) }
        func torn(_ reason: String) throws(StorageError) -> ParsedSegment {
            guard isLast else { throw .corrupt(file: file, offset: offset, reason: reason) }
            return ParsedSegment(records: records, end: offset)
        }
        while offset < bytes.count {
            guard bytes.count - offset >= Self.headerBytes else { return try torn("a record header cut short") }
            guard Self.masked(CRC32C.checksum(bytes[offset..<(offset + 4)])) == word(offset + 4) else {
                // A damaged header: torn only if nothing but zeros follows it.
                if isLast && bytes[offset...].allSatisfy({ $0 == 0 }) { return ParsedSegment(records: records, end: offset) }
                throw .corrupt(file: file, offset: offset, reason: "record header checksum mismatch")
            }
            if word(offset) == Self.sealLength {
                // The seal: eight bytes of the next index, then nothing.
                let end = offset + Self.headerBytes + 8
                guard end <= bytes.count else { return try torn("a segment seal cut short") }
                let payload = Array(bytes[(offset + Self.headerBytes)..<end])
                guard Self.masked(CRC32C.checksum(payload)) == word(offset + 8) else {
                    if isLast && end == bytes.count { return ParsedSegment(records: records, end: offset) }
                    throw .corrupt(file: file, offset: offset, reason: "segment seal checksum mismatch")
                }
                guard end == bytes.count else { throw .corrupt(file: file, offset: end, reason: "bytes after the segment's seal") }
                return ParsedSegment(records: records, end: end, sealedNext: Self.word(payload, at: 0, as: UInt64.self))
            }
            let length = Int(word(offset))
            guard length <= options.maximumRecordBytes else {
                throw .corrupt(file: file, offset: offset, reason: "record length \(length) exceeds the limit of \(options.maximumRecordBytes)")
            }
            let end = offset + Self.headerBytes + length
            guard end <= bytes.count else { return try torn("a record of \(length) bytes runs past the end of the segment") }
            let payload = Array(bytes[(offset + Self.headerBytes)..<end])
            guard Self.masked(CRC32C.checksum(payload)) == word(offset + 8) else {
                if isLast && end == bytes.count { return ParsedSegment(records: records, end: offset) }
                throw .corrupt(file: file, offset: offset, reason: "record checksum mismatch")
            }
            records.append(payload)
            offset = end
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

    static func readFile(_ path: String) throws(StorageError) -> [UInt8] {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw .io(path: path, operation: "read", errno: errno) }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
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
            let count = buffer.withUnsafeBytes { Glibc.write(self.descriptor, $0.baseAddress! + written, buffer.count - written) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 {
                // Cut the partial write back off, then refuse further use.
                let code = count < 0 ? errno : EIO
                _ = ftruncate(self.descriptor, off_t(self.segmentSize))
                self.failed = .io(path: self.segmentPath, operation: "write", errno: code)
                throw self.failed!
            }
            written += count
        }
        self.segmentSize += buffer.count
        self.nextIndex += records
        if !buffer.isEmpty { self.unsynced = true }
    }

    /// Seals the current segment (durably) and starts the next. The next segment's file is
    /// created (and its directory entry made durable) before the seal is written: a seal on
    /// disk promises that its successor exists, so a deleted last segment is detected.
    private func startSegment() throws(StorageError) {
        try self.sync()
        let nextPath = self.directory + "/" + Self.segmentName(self.nextIndex)
        let next = Glibc.open(nextPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard next >= 0 else {
            self.failed = .io(path: nextPath, operation: "open", errno: errno)
            throw self.failed!
        }
        do {
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
        close(self.descriptor)
        self.descriptor = next
        self.segmentPath = nextPath
        self.segmentSize = 0
    }
}

extension String {
    /// The string with leading zeros up to `width` characters.
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - self.count)) + self
    }
}
