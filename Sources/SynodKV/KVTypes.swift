/// A key or value: raw bytes, compared lexicographically (as etcd does).
public typealias Bytes = [UInt8]

/// One stored key with its etcd-style metadata.
public struct KeyValue: Sendable, Equatable {
    /// The key.
    public var key: Bytes
    /// Its value.
    public var value: Bytes
    /// The store revision at which the key was created (since its last deletion).
    public var createRevision: Int64
    /// The store revision of the key's last modification.
    public var modRevision: Int64
    /// Modifications since creation: 1 after the create; reset by a delete.
    public var version: Int64

    /// Creates an entry.
    public init(key: Bytes, value: Bytes, createRevision: Int64, modRevision: Int64, version: Int64) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
    }
}

/// A key range: one key when `end` is empty; every key ≥ `key` when `end` is `[0]`; otherwise
/// the half-open range [key, end). `prefix(_:)` builds the range of a prefix.
public struct KeyRange: Sendable, Equatable {
    /// The first key.
    public var key: Bytes
    /// Empty (one key), `[0]` (every key from `key`), or the exclusive end.
    public var end: Bytes

    /// A range from `key` to `end` (see the type's rules for `end`).
    public init(key: Bytes, end: Bytes = []) {
        self.key = key
        self.end = end
    }

    /// Every key that starts with `prefix` (all keys when the prefix is empty).
    public static func prefix(_ prefix: Bytes) -> KeyRange {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return KeyRange(key: prefix, end: end)
            }
            end.removeLast()
        }
        return KeyRange(key: prefix, end: [0])
    }

    /// True when `candidate` lies in the range.
    public func contains(_ candidate: Bytes) -> Bool {
        if self.end.isEmpty { return candidate == self.key }
        if candidate.lexicographicallyPrecedes(self.key) { return false }
        if self.end == [0] { return true }
        return candidate.lexicographicallyPrecedes(self.end)
    }
}

/// A condition of a transaction, on one key (etcd's Compare).
public struct Comparison: Sendable, Equatable {
    /// What is compared.
    public enum Target: UInt8, Sendable {
        case value = 0
        case version = 1
        case createRevision = 2
        case modRevision = 3
    }

    /// How.
    public enum Relation: UInt8, Sendable {
        case equal = 0
        case greater = 1
        case less = 2
        case notEqual = 3
    }

    /// The key compared.
    public var key: Bytes
    /// What is compared.
    public var target: Target
    /// How.
    public var relation: Relation
    /// For `.value`: the bytes compared against.
    public var value: Bytes
    /// For versions and revisions: the number compared against (an absent key has 0).
    public var number: Int64

    /// Creates a comparison.
    public init(key: Bytes, target: Target, relation: Relation, value: Bytes = [], number: Int64 = 0) {
        self.key = key
        self.target = target
        self.relation = relation
        self.value = value
        self.number = number
    }
}

/// A request to the key-value store.
public enum KVRequest: Sendable, Equatable {
    /// Sets a key; `previous`: return the value it replaced.
    case put(key: Bytes, value: Bytes, previous: Bool)
    /// Reads a range; `limit` 0 means no limit.
    case range(KeyRange, limit: Int64)
    /// Deletes a range; `previous`: return what was deleted.
    case deleteRange(KeyRange, previous: Bool)
    /// If every comparison holds, runs `success`, else `failure`. A branch may not put one key
    /// twice nor put a key it also deletes (as in etcd); unlike etcd (since 3.3), a branch may
    /// not hold a nested transaction: Synod keeps transactions flat.
    case transaction(compare: [Comparison], success: [KVRequest], failure: [KVRequest])
}

/// The store's answer to one request.
public enum KVResponse: Sendable, Equatable {
    case put(revision: Int64, previous: KeyValue?)
    case range(revision: Int64, kvs: [KeyValue], count: Int64, more: Bool)
    case deleteRange(revision: Int64, deleted: Int64, previous: [KeyValue])
    case transaction(revision: Int64, succeeded: Bool, responses: [KVResponse])
    /// The request was refused; nothing changed.
    case error(KVError)
}

/// Why a request was refused.
public enum KVError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The payload did not decode.
    case malformed(String)
    /// A key or value over the configured bound.
    case tooLarge(String)
    /// A transaction that nests another, writes one key twice, or holds too many operations.
    case invalidTransaction(String)

    public var description: String {
        switch self {
        case .malformed(let reason): "malformed request: \(reason)"
        case .tooLarge(let reason): "request too large: \(reason)"
        case .invalidTransaction(let reason): "invalid transaction: \(reason)"
        }
    }
}
