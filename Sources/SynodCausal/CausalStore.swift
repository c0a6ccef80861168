import SynodClocks
import SynodCore

/// A client's request to the eventually consistent store, as a command payload.
public enum CausalRequest: Sendable, Equatable {
    /// Read a key: its siblings and causal context.
    case get(key: [UInt8])
    /// Write a key (`value` nil: delete it), replacing the siblings of `context`, the context
    /// the client read (empty: replace nothing, the value joins whatever is there).
    case put(key: [UInt8], value: [UInt8]?, context: VectorClock)
    /// Set a key's state (the store's replica hands its state machine the state it answers a
    /// client from; never sent by clients).
    case install(key: [UInt8], state: CausalRegister)

    /// The key.
    public var key: [UInt8] {
        switch self {
        case .get(let key), .put(let key, _, _), .install(let key, _): key
        }
    }
}

extension CausalRequest: WireCodable {
    /// The first byte of every encoding: apart from the other stores' payloads.
    static let marker: UInt8 = 0xC5

    public func encode(into writer: inout WireWriter) {
        writer.byte(Self.marker)
        switch self {
        case .get(let key):
            writer.byte(1)
            writer.data(key)
        case .put(let key, let value, let context):
            writer.byte(2)
            writer.data(key)
            writer.bool(value != nil)
            if let value { writer.data(value) }
            context.encode(into: &writer)
        case .install(let key, let state):
            writer.byte(3)
            writer.data(key)
            state.encode(into: &writer)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> CausalRequest {
        guard try reader.byte() == Self.marker else { throw .malformed("not a causal store request") }
        let kind = try reader.byte()
        let key = try reader.data(limit: CausalLimits.maximumKeyBytes, what: "key")
        switch kind {
        case 1:
            return .get(key: key)
        case 2:
            let value = try reader.bool() ? try reader.data(limit: CausalLimits.maximumValueBytes, what: "value") : nil
            return .put(key: key, value: value, context: try VectorClock.decode(from: &reader))
        case 3:
            return .install(key: key, state: try CausalRegister.decode(from: &reader))
        case let other:
            throw .malformed("unknown causal store request \(other)")
        }
    }

    /// True when `payload` is meant for this store (its first byte says so).
    public static func isCausal(_ payload: [UInt8]) -> Bool { payload.first == Self.marker }
}

/// The state machine beside an eventually consistent store's replica: a map of key states
/// that the replica sets (`install`) before it answers a client from it. Replies and query
/// answers are the key's state (`CausalRegister`, encoded): siblings and context.
public struct CausalStore: StateMachine, Sendable {
    public private(set) var registers: [[UInt8]: CausalRegister] = [:]

    public init() {}

    public mutating func apply(_ payload: [UInt8]) -> [UInt8] {
        guard case .install(let key, let state)? = try? CausalRequest.decode(payload) else { return self.query(payload) }
        self.registers[key] = state
        return state.encoded()
    }

    public func query(_ payload: [UInt8]) -> [UInt8] {
        guard let request = try? CausalRequest.decode(payload) else { return [] }
        return (self.registers[request.key] ?? CausalRegister()).encoded()
    }

    /// One key each; a put writes without reading (its context says what it replaces).
    public static func footprint(of payload: [UInt8]) -> Footprint {
        guard let request = try? CausalRequest.decode(payload) else { return .everything }
        switch request {
        case .get(let key): return Footprint(spans: [.key(key)], writes: false)
        case .put(let key, _, _), .install(let key, _): return Footprint(spans: [.key(key)], writes: true)
        }
    }
}

extension CausalStore {
    /// A snapshot of the store and its session table, canonical (keys and clients sorted):
    /// the key states, then each client's latest command and reply.
    public static func snapshot(of service: ExactlyOnce<CausalStore>) -> [UInt8] {
        var writer = WireWriter()
        writer.byte(CausalRequest.marker)
        let registers = service.machine.registers.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        writer.varint(UInt64(registers.count))
        for (key, state) in registers {
            writer.data(key)
            state.encode(into: &writer)
        }
        let sessions = service.sessions
        writer.varint(UInt64(sessions.count))
        for session in sessions {
            writer.varint(session.client)
            writer.varint(session.sequence)
            writer.data(session.reply)
        }
        return writer.bytes
    }

    /// The store a snapshot holds; a readable error for bytes that are not one (truncated,
    /// trailing bytes, keys out of order, a state that does not decode).
    public static func restore(_ bytes: [UInt8]) throws(WireError) -> ExactlyOnce<CausalStore> {
        var reader = WireReader(bytes)
        guard try reader.byte() == CausalRequest.marker else { throw .malformed("not a causal store snapshot") }
        var store = CausalStore()
        let count = try reader.count(limit: Int.max, what: "keys")
        var previous: [UInt8]?
        for _ in 0..<count {
            let key = try reader.data(limit: CausalLimits.maximumKeyBytes, what: "key")
            if let previous, !previous.lexicographicallyPrecedes(key) { throw .malformed("snapshot keys not in order") }
            previous = key
            store.registers[key] = try CausalRegister.decode(from: &reader)
        }
        let sessionCount = try reader.count(limit: Int.max, what: "sessions")
        var sessions: [(client: ClientID, sequence: UInt64, reply: [UInt8])] = []
        for _ in 0..<sessionCount {
            sessions.append((try reader.varint(), try reader.varint(), try reader.data(limit: Command.maximumPayloadBytes, what: "reply")))
        }
        guard reader.remaining == 0 else { throw .malformed("\(reader.remaining) bytes after the snapshot") }
        return ExactlyOnce(store, sessions: sessions)
    }
}
