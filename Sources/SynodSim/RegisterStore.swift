import SynodCore

/// The simulator's application state machine: a map of small registers, enough to make client
/// histories checkable. Payloads are `[opcode, key, value bytes…]`.
///
/// - put: set the key's value; replies with nothing.
/// - get: replies with `[1] + value`, or `[0]` when the key is absent.
public struct RegisterStore: StateMachine, Sendable {
    /// Operation codes in the first payload byte.
    public enum Opcode: UInt8, Sendable {
        case put = 1
        case get = 2
    }

    private var values: [UInt8: [UInt8]] = [:]

    /// An empty store.
    public init() {}

    /// Encodes a put.
    public static func put(key: UInt8, value: [UInt8]) -> [UInt8] { [Opcode.put.rawValue, key] + value }
    /// Encodes a get.
    public static func get(key: UInt8) -> [UInt8] { [Opcode.get.rawValue, key] }

    /// The key a payload touches, or `nil` for a malformed payload. Commands on the same key
    /// conflict: every protocol must execute them in the same order on every replica.
    public static func key(of payload: [UInt8]) -> UInt8? {
        payload.count >= 2 ? payload[1] : nil
    }

    public mutating func apply(_ payload: [UInt8]) -> [UInt8] {
        guard payload.count >= 2, let opcode = Opcode(rawValue: payload[0]) else { return [] }
        switch opcode {
        case .put:
            self.values[payload[1]] = Array(payload[2...])
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

/// One client operation as the simulator saw it: the history the linearizability checker reads.
public struct HistoryOperation: Sendable, Equatable {
    /// The operation kind.
    public enum Kind: String, Sendable {
        case get
        case put
    }

    public var client: ClientID
    public var kind: Kind
    public var key: UInt8
    /// put: the value written.
    public var value: [UInt8]?
    /// get: the value read (`nil` when absent or unknown).
    public var output: [UInt8]?
    public var callNanoseconds: UInt64
    public var returnNanoseconds: UInt64?
    /// True when the outcome is indeterminate (the client gave up).
    public var unknown: Bool
}
