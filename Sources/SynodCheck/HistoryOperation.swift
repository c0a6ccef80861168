/// One client operation of a history, in the JSON Lines format of DESIGN.md: what the client
/// asked, what it saw, and when (invocation and completion on one clock, closed intervals).
public struct HistoryOperation: Sendable, Equatable {
    /// The operation.
    public enum Kind: String, Sendable, CaseIterable {
        case get
        case put
        case append
        case cas
        case delete
    }

    /// What the client saw.
    public enum Output: Sendable, Equatable {
        /// Nothing to see (writes), or not known (pending operations).
        case none
        /// get: the value read; `nil` when the key was absent.
        case value(String?)
        /// cas: whether it swapped.
        case swapped(Bool)
    }

    /// The client that issued the operation.
    public var client: Int
    /// The operation.
    public var kind: Kind
    /// The key; keys are checked independently.
    public var key: String
    /// put, append, cas: the new value (append: the suffix).
    public var value: String?
    /// cas: the value compared against; `nil` means "the key is absent".
    public var expected: String?
    /// What the client saw.
    public var output: Output
    /// Invocation time, nanoseconds.
    public var call: UInt64
    /// Completion time, nanoseconds; `nil` when the operation never completed.
    public var returnTime: UInt64?
    /// True when the outcome is indeterminate (timeout, crash): the operation may take effect at
    /// any time after its call, or never.
    public var unknown: Bool

    /// Creates an operation.
    public init(
        client: Int, kind: Kind, key: String, value: String? = nil, expected: String? = nil,
        output: Output = .none, call: UInt64, returnTime: UInt64?, unknown: Bool = false
    ) {
        self.client = client
        self.kind = kind
        self.key = key
        self.value = value
        self.expected = expected
        self.output = output
        self.call = call
        self.returnTime = returnTime
        self.unknown = unknown
    }

    /// True when the client never learned the outcome: pending or unknown.
    public var isPending: Bool { self.unknown || self.returnTime == nil }

    /// A short human description, e.g. `client 3 put(k1, "v") [120, 450]`.
    public var summary: String {
        let argument: String
        switch self.kind {
        case .get, .delete: argument = ""
        case .put, .append: argument = ", \(Self.quoted(self.value))"
        case .cas: argument = ", \(Self.quoted(self.expected)) -> \(Self.quoted(self.value))"
        }
        let result: String
        switch self.output {
        case .none: result = ""
        case .value(let value): result = " = \(Self.quoted(value))"
        case .swapped(let swapped): result = " = \(swapped)"
        }
        let end = self.isPending ? "?" : String(self.returnTime!)
        return "client \(self.client) \(self.kind.rawValue)(\(self.key)\(argument))\(result) [\(self.call), \(end)]"
    }

    static func quoted(_ value: String?) -> String {
        value.map { "\"\($0)\"" } ?? "absent"
    }
}
