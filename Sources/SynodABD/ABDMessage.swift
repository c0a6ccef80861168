import SynodCore

/// The version of a register's value: a counter, and the replica that coordinated the write
/// (which breaks ties, so two coordinators never write under one tag). Tags order writes; the
/// zero tag is the initial, never written value.
public struct ABDTag: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The counter: one more than the highest a majority reported when the write began.
    public var counter: UInt64
    /// The coordinator of the write (0 for the zero tag).
    public var writer: UInt16

    /// The tag of the initial value.
    public static let zero = ABDTag(counter: 0, writer: 0)

    public init(counter: UInt64, writer: UInt16) {
        self.counter = counter
        self.writer = writer
    }

    public static func < (lhs: ABDTag, rhs: ABDTag) -> Bool {
        (lhs.counter, lhs.writer) < (rhs.counter, rhs.writer)
    }

    public var description: String { "\(self.counter).\(self.writer)" }

    func encode(into writer: inout WireWriter) {
        writer.varint(self.counter)
        writer.varint(UInt64(self.writer))
    }

    static func decode(from reader: inout WireReader) throws(WireError) -> ABDTag {
        let counter = try reader.varint()
        // Counters grow by one per write: refused where a durable record could not hold them.
        guard counter < reader.epochLimit else { throw .tooLarge("tag counter \(counter)") }
        let writer = try reader.varint()
        guard writer <= UInt64(UInt16.max) else { throw .malformed("tag writer \(writer) out of range") }
        guard (counter == 0) == (writer == 0) else { throw .malformed("tag \(counter).\(writer) is not a write's tag") }
        return ABDTag(counter: counter, writer: UInt16(writer))
    }
}

/// A register as a replica holds it: the newest write it knows, with its tag.
public struct ABDRegister: Sendable, Equatable {
    /// The write's tag (`.zero`: never written).
    public var tag: ABDTag
    /// The client command that wrote it (`nil` exactly when the tag is zero).
    public var write: Command?

    /// The register nobody wrote.
    public static let empty = ABDRegister(tag: .zero, write: nil)

    public init(tag: ABDTag, write: Command?) {
        self.tag = tag
        self.write = write
    }
}

/// Messages between ABD replicas: a coordinator's two phases, and the answers.
public enum ABDMessage: Sendable, Equatable {
    /// Phase 1 of operation `operation`: "what do you hold for `key`?"
    case query(operation: UInt64, key: [UInt8])
    /// The answer to a query: the register the sender holds.
    case current(operation: UInt64, register: ABDRegister)
    /// Phase 2 (a write, or a read's write-back): "hold `write` under `tag` for `key`, unless
    /// you hold a newer one."
    case store(operation: UInt64, key: [UInt8], tag: ABDTag, write: Command)
    /// The store is durable at the sender (sent only after its records are synced).
    case stored(operation: UInt64)
}

/// A durable fact: this replica holds `write` under `tag` for `key`. Replaying the records
/// keeps, for each key, the one with the highest tag.
public struct ABDRecord: Sendable, Equatable {
    public var key: [UInt8]
    public var tag: ABDTag
    public var write: Command

    public init(key: [UInt8], tag: ABDTag, write: Command) {
        self.key = key
        self.tag = tag
        self.write = write
    }
}

/// Longest key a decoded message or record may carry (a key is part of a command's payload).
let maximumKeyBytes = Command.maximumPayloadBytes

extension ABDMessage: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .query(let operation, let key):
            writer.byte(1)
            writer.varint(operation)
            writer.data(key)
        case .current(let operation, let register):
            writer.byte(2)
            writer.varint(operation)
            register.tag.encode(into: &writer)
            register.write?.encode(into: &writer)
        case .store(let operation, let key, let tag, let write):
            writer.byte(3)
            writer.varint(operation)
            writer.data(key)
            tag.encode(into: &writer)
            write.encode(into: &writer)
        case .stored(let operation):
            writer.byte(4)
            writer.varint(operation)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> ABDMessage {
        switch try reader.byte() {
        case 1:
            return .query(operation: try reader.varint(), key: try reader.data(limit: maximumKeyBytes, what: "key"))
        case 2:
            let operation = try reader.varint()
            let tag = try ABDTag.decode(from: &reader)
            return .current(operation: operation, register: ABDRegister(tag: tag, write: tag == .zero ? nil : try Command.decode(from: &reader)))
        case 3:
            let operation = try reader.varint()
            let key = try reader.data(limit: maximumKeyBytes, what: "key")
            let tag = try ABDTag.decode(from: &reader)
            guard tag != .zero else { throw .malformed("a store under the zero tag") }
            return .store(operation: operation, key: key, tag: tag, write: try Command.decode(from: &reader))
        case 4:
            return .stored(operation: try reader.varint())
        case let other:
            throw .malformed("unknown ABD message \(other)")
        }
    }
}

extension ABDRecord: WireCodable {
    public func encode(into writer: inout WireWriter) {
        writer.data(self.key)
        self.tag.encode(into: &writer)
        self.write.encode(into: &writer)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> ABDRecord {
        let key = try reader.data(limit: maximumKeyBytes, what: "key")
        let tag = try ABDTag.decode(from: &reader)
        guard tag != .zero else { throw .malformed("a record under the zero tag") }
        return ABDRecord(key: key, tag: tag, write: try Command.decode(from: &reader))
    }
}

extension ABDMessage: TraceDigestible {
    public func digest(into hasher: inout StableHasher) {
        switch self {
        case .query(let operation, let key):
            hasher.combine(1)
            hasher.combine(operation)
            hasher.combine(bytes: key)
        case .current(let operation, let register):
            hasher.combine(2)
            hasher.combine(operation)
            hasher.combine(register.tag.counter)
            hasher.combine(UInt64(register.tag.writer))
        case .store(let operation, let key, let tag, let write):
            hasher.combine(3)
            hasher.combine(operation)
            hasher.combine(bytes: key)
            hasher.combine(tag.counter)
            hasher.combine(UInt64(tag.writer))
            hasher.combine(write.client)
            hasher.combine(write.sequence)
        case .stored(let operation):
            hasher.combine(4)
            hasher.combine(operation)
        }
    }
}
