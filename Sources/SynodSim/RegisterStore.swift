import SynodCore

/// The simulator's application state machine: a map of small registers, enough to make client
/// histories checkable. Payloads are `[opcode, key, value bytes…]`.
///
/// - put: set the key's value; replies with nothing.
/// - append: add bytes to the end of the key's value (absent counts as empty); replies with
///   nothing. Not idempotent: a retry applied twice shows in later reads.
/// - get: replies with `[1] + value`, or `[0]` when the key is absent.
public struct RegisterStore: StateMachine, Sendable {
    /// Operation codes in the first payload byte.
    public enum Opcode: UInt8, Sendable {
        case put = 0x11
        case get = 0x12
        case append = 0x13
    }

    private var values: [UInt8: [UInt8]] = [:]

    /// An empty store.
    public init() {}

    /// Encodes a put.
    public static func put(key: UInt8, value: [UInt8]) -> [UInt8] { [Opcode.put.rawValue, key] + value }
    /// Encodes an append.
    public static func append(key: UInt8, value: [UInt8]) -> [UInt8] { [Opcode.append.rawValue, key] + value }
    /// Encodes a get.
    public static func get(key: UInt8) -> [UInt8] { [Opcode.get.rawValue, key] }

    /// The key a payload touches, or `nil` for a malformed payload. Commands on the same key
    /// conflict: every protocol must execute them in the same order on every replica.
    public static func key(of payload: [UInt8]) -> UInt8? {
        payload.count >= 2 ? payload[1] : nil
    }

    /// One key each: a put overwrites it, an append reads and writes it, a get reads it.
    public static func footprint(of payload: [UInt8]) -> Footprint {
        guard payload.count >= 2, let opcode = Opcode(rawValue: payload[0]) else { return .everything }
        let spans = [KeySpan.key([payload[1]])]
        switch opcode {
        case .put: return Footprint(spans: spans, writes: true, overwrites: true)
        case .append: return Footprint(spans: spans, writes: true)
        case .get: return Footprint(spans: spans, writes: false)
        }
    }

    public mutating func apply(_ payload: [UInt8]) -> [UInt8] {
        guard payload.count >= 2, let opcode = Opcode(rawValue: payload[0]) else { return [] }
        switch opcode {
        case .put:
            self.values[payload[1]] = Array(payload[2...])
            return []
        case .append:
            self.values[payload[1], default: []] += payload[2...]
            return []
        case .get:
            return self.query(payload)
        }
    }

    public func query(_ payload: [UInt8]) -> [UInt8] {
        guard payload.count >= 2 else { return [] }
        if let value = self.values[payload[1]] { return [1] + value }
        return [0]
    }
}
