/// Why bytes did not decode.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes are not a valid encoding.
    case malformed(String)
    /// A length or count over its bound.
    case tooLarge(String)

    public var description: String {
        switch self {
        case .malformed(let reason): "malformed: \(reason)"
        case .tooLarge(let reason): "too large: \(reason)"
        }
    }
}

/// A type with a canonical binary encoding (messages, durable records, requests): fixed field
/// order, varints, length-prefixed bytes. Equal values encode to equal bytes; decoding checks
/// every length against the remaining input and its bounds, and never traps.
public protocol WireCodable: Sendable {
    /// Appends the encoding.
    func encode(into writer: inout WireWriter)
    /// Reads one value.
    static func decode(from reader: inout WireReader) throws(WireError) -> Self
}

extension WireCodable {
    /// The canonical encoding.
    public func encoded() -> [UInt8] {
        var writer = WireWriter()
        self.encode(into: &writer)
        return writer.bytes
    }

    /// Decodes exactly one value from `bytes` (trailing bytes are an error).
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Self {
        var reader = WireReader(bytes)
        let value = try Self.decode(from: &reader)
        guard reader.isAtEnd else { throw .malformed("\(reader.remaining) trailing bytes") }
        return value
    }
}

/// Builds a canonical encoding.
public struct WireWriter: Sendable {
    /// The encoding so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty writer.
    public init() {}

    /// An empty writer with room for `capacity` bytes, so an encoding of about that size is
    /// written into one allocation.
    public init(capacity: Int) { self.bytes.reserveCapacity(capacity) }

    /// One raw byte (tags, small enums).
    public mutating func byte(_ value: UInt8) { self.bytes.append(value) }

    /// An unsigned LEB128 varint.
    public mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            self.bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        self.bytes.append(UInt8(rest))
    }

    /// Zig-zag, so small negative numbers stay small.
    public mutating func signed(_ value: Int64) { self.varint(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }

    /// Length-prefixed bytes.
    public mutating func data(_ value: [UInt8]) {
        self.varint(UInt64(value.count))
        self.bytes.append(contentsOf: value)
    }

    /// A boolean as one byte, 0 or 1.
    public mutating func bool(_ value: Bool) { self.byte(value ? 1 : 0) }
}

/// Reads a canonical encoding; every read is bounds-checked.
public struct WireReader: Sendable {
    /// The input.
    public let bytes: [UInt8]
    /// The next byte to read.
    public private(set) var index = 0
    /// Terms, ballot rounds and views at or above this are refused by their decoders. Records
    /// are read with `storableEpochLimit`; a driver lowers it to `peerEpochLimit` for frames
    /// from peers, so that whatever a peer sends, the epochs a node derives from it (the next
    /// term, a higher round) stay below what its own records can hold.
    public var epochLimit = WireReader.storableEpochLimit

    /// Epochs a durable record can hold (exclusive): the encodings keep them below 2^48.
    public static let storableEpochLimit: UInt64 = 1 << 48
    /// Epochs a peer's message may carry (exclusive): 2^32 below `storableEpochLimit`, so a
    /// node that adopts the largest term a peer may send can still start 2^32 elections of its
    /// own before an epoch would no longer fit a record.
    public static let peerEpochLimit: UInt64 = (1 << 48) - (1 << 32)

    /// A reader at the start of `bytes`.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// True when every byte was read.
    public var isAtEnd: Bool { self.index == self.bytes.count }
    /// Bytes left to read.
    public var remaining: Int { self.bytes.count - self.index }

    /// One raw byte.
    public mutating func byte() throws(WireError) -> UInt8 {
        guard self.index < self.bytes.count else { throw .malformed("truncated at byte \(self.index)") }
        defer { self.index += 1 }
        return self.bytes[self.index]
    }

    /// A canonical varint: at most 64 bits, no overlong zero tail.
    public mutating func varint() throws(WireError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.byte()
            guard shift < 64 else { throw .malformed("varint too long at byte \(self.index)") }
            guard shift < 63 || byte <= 1 else { throw .malformed("varint overflows 64 bits at byte \(self.index)") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                guard byte != 0 || shift == 0 else { throw .malformed("overlong varint at byte \(self.index)") }
                return value
            }
            shift += 7
        }
    }

    /// A zig-zag signed varint.
    public mutating func signed() throws(WireError) -> Int64 {
        let raw = try self.varint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// Length-prefixed bytes of at most `limit` bytes.
    public mutating func data(limit: Int, what: String) throws(WireError) -> [UInt8] {
        let count = try self.varint()
        guard count <= UInt64(limit) else { throw .tooLarge("\(what) of \(count) bytes exceeds \(limit)") }
        guard count <= UInt64(self.remaining) else { throw .malformed("\(what) runs past the end") }
        defer { self.index += Int(count) }
        return Array(self.bytes[self.index..<(self.index + Int(count))])
    }

    /// A boolean; any byte but 0 or 1 is refused.
    public mutating func bool() throws(WireError) -> Bool {
        switch try self.byte() {
        case 0: return false
        case 1: return true
        case let other: throw .malformed("invalid boolean \(other)")
        }
    }

    /// A count of at most `limit` items (each item needs at least one byte, so a count above
    /// the remaining bytes is refused before anything is allocated).
    public mutating func count(limit: Int, what: String) throws(WireError) -> Int {
        let count = try self.varint()
        guard count <= UInt64(limit) else { throw .tooLarge("\(count) \(what) exceed \(limit)") }
        guard count <= UInt64(self.remaining) else { throw .malformed("\(count) \(what) cannot fit in \(self.remaining) bytes") }
        return Int(count)
    }
}

extension Command: WireCodable {
    /// Largest payload a decoded command may carry.
    public static let maximumPayloadBytes = 4 << 20

    public func encode(into writer: inout WireWriter) {
        writer.varint(self.client)
        writer.varint(self.sequence)
        writer.data(self.payload)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Command {
        Command(
            client: try reader.varint(), sequence: try reader.varint(),
            payload: try reader.data(limit: Self.maximumPayloadBytes, what: "command payload"))
    }
}

extension NodeID {
    /// Encodes the node number.
    public func encode(into writer: inout WireWriter) { writer.varint(UInt64(self.rawValue)) }

    /// Decodes a node number (0 is not a node).
    public static func decode(from reader: inout WireReader) throws(WireError) -> NodeID {
        let raw = try reader.varint()
        guard raw >= 1 && raw <= UInt64(UInt16.max) else { throw .malformed("node id \(raw) out of range") }
        return NodeID(UInt16(raw))
    }
}
