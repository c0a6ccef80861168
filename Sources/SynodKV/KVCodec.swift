import SynodCore

// Requests, responses and snapshots use SynodCore's canonical wire encoding.
typealias ByteWriter = WireWriter

/// `WireReader` with the store's error type.
struct ByteReader {
    var reader: WireReader

    init(_ bytes: Bytes) { self.reader = WireReader(bytes) }

    var bytes: Bytes { self.reader.bytes }
    var index: Int { self.reader.index }
    var isAtEnd: Bool { self.reader.isAtEnd }

    static func convert(_ error: WireError) -> KVError {
        switch error {
        case .malformed(let reason): .malformed(reason)
        case .tooLarge(let reason): .tooLarge(reason)
        }
    }

    mutating func byte() throws(KVError) -> UInt8 {
        do { return try self.reader.byte() } catch { throw Self.convert(error) }
    }

    mutating func varint() throws(KVError) -> UInt64 {
        do { return try self.reader.varint() } catch { throw Self.convert(error) }
    }

    mutating func signed() throws(KVError) -> Int64 {
        do { return try self.reader.signed() } catch { throw Self.convert(error) }
    }

    mutating func data(limit: Int, what: String) throws(KVError) -> Bytes {
        do { return try self.reader.data(limit: limit, what: what) } catch { throw Self.convert(error) }
    }

    mutating func bool() throws(KVError) -> Bool {
        do { return try self.reader.bool() } catch { throw Self.convert(error) }
    }

    mutating func count(limit: Int, what: String) throws(KVError) -> Int {
        do { return try self.reader.count(limit: limit, what: what) } catch { throw Self.convert(error) }
    }
}

/// Bounds on what a request may hold; every one is checked when decoding.
public struct KVLimits: Sendable, Equatable {
    /// Longest key, in bytes (etcd's default request limit is 1.5 MiB; keys are far smaller).
    public var maximumKeyBytes = 4_096
    /// Longest value, in bytes.
    public var maximumValueBytes = 1 << 20
    /// Most operations and comparisons in one transaction (etcd's default: 128).
    public var maximumTransactionOperations = 128
    /// Longest encoded request (etcd's default request limit: 1.5 MiB).
    public var maximumRequestBytes = 3 << 19

    public init() {}
}

extension KVRequest {
    /// The canonical encoding.
    public func encoded() -> Bytes {
        var writer = ByteWriter(capacity: self.encodedSizeHint)
        self.encode(into: &writer)
        return writer.bytes
    }

    /// About the encoding's size: exact but for varints shorter than their longest (a tag,
    /// two lengths and a flag or a limit), and a guess for a transaction.
    var encodedSizeHint: Int {
        switch self {
        case .put(let key, let value, _): 22 + key.count + value.count
        case .range(let range, _), .deleteRange(let range, _): 31 + range.key.count + range.end.count
        case .transaction: 256
        }
    }

    func encode(into writer: inout ByteWriter) {
        switch self {
        case .put(let key, let value, let previous):
            writer.byte(1)
            writer.data(key)
            writer.data(value)
            writer.bool(previous)
        case .range(let range, let limit):
            writer.byte(2)
            writer.data(range.key)
            writer.data(range.end)
            writer.signed(limit)
        case .deleteRange(let range, let previous):
            writer.byte(3)
            writer.data(range.key)
            writer.data(range.end)
            writer.bool(previous)
        case .transaction(let compare, let success, let failure):
            writer.byte(4)
            writer.varint(UInt64(compare.count))
            for comparison in compare {
                writer.data(comparison.key)
                writer.byte(comparison.target.rawValue)
                writer.byte(comparison.relation.rawValue)
                writer.data(comparison.value)
                writer.signed(comparison.number)
            }
            for branch in [success, failure] {
                writer.varint(UInt64(branch.count))
                for request in branch { request.encode(into: &writer) }
            }
        }
    }

    /// The canonical encoding, refused exactly as `decode(_:limits:)` would refuse it (the same
    /// error), for a request built from a client's input: its bounds are checked on the
    /// request itself rather than by decoding the encoding again.
    public func encoded(limits: KVLimits) throws(KVError) -> Bytes {
        let bytes = self.encoded()
        guard bytes.count <= limits.maximumRequestBytes else {
            throw .tooLarge("request of \(bytes.count) bytes exceeds \(limits.maximumRequestBytes)")
        }
        if let problem = self.boundsProblem(limits) { throw problem }
        return bytes
    }

    /// Decodes a request, checking every bound in `limits`.
    public static func decode(_ bytes: Bytes, limits: KVLimits = KVLimits()) throws(KVError) -> KVRequest {
        guard bytes.count <= limits.maximumRequestBytes else {
            throw .tooLarge("request of \(bytes.count) bytes exceeds \(limits.maximumRequestBytes)")
        }
        var reader = ByteReader(bytes)
        let request = try Self.decode(from: &reader, limits: limits, nested: false)
        guard reader.isAtEnd else { throw .malformed("\(bytes.count - reader.index) trailing bytes") }
        return request
    }

    static func decode(from reader: inout ByteReader, limits: KVLimits, nested: Bool) throws(KVError) -> KVRequest {
        func key() throws(KVError) -> Bytes {
            let key = try reader.data(limit: limits.maximumKeyBytes, what: "key")
            guard !key.isEmpty else { throw .malformed("key is not provided") }
            return key
        }
        func rangeEnd() throws(KVError) -> Bytes { try reader.data(limit: limits.maximumKeyBytes, what: "range end") }
        switch try reader.byte() {
        case 1:
            return .put(key: try key(), value: try reader.data(limit: limits.maximumValueBytes, what: "value"),
                        previous: try reader.bool())
        case 2:
            let range = KeyRange(key: try key(), end: try rangeEnd())
            let limit = try reader.signed()
            guard limit >= 0 else { throw .malformed("negative range limit \(limit)") }
            return .range(range, limit: limit)
        case 3:
            return .deleteRange(KeyRange(key: try key(), end: try rangeEnd()), previous: try reader.bool())
        case 4:
            guard !nested else { throw .invalidTransaction("a transaction may not contain a transaction") }
            var compare: [Comparison] = []
            for _ in 0..<(try reader.count(limit: limits.maximumTransactionOperations, what: "comparisons")) {
                let comparisonKey = try key()
                guard let target = Comparison.Target(rawValue: try reader.byte()) else { throw .malformed("invalid comparison target") }
                guard let relation = Comparison.Relation(rawValue: try reader.byte()) else { throw .malformed("invalid comparison relation") }
                compare.append(Comparison(
                    key: comparisonKey, target: target, relation: relation,
                    value: try reader.data(limit: limits.maximumValueBytes, what: "compared value"), number: try reader.signed()))
            }
            var branches: [[KVRequest]] = []
            for _ in 0..<2 {
                var branch: [KVRequest] = []
                for _ in 0..<(try reader.count(limit: limits.maximumTransactionOperations, what: "operations")) {
                    branch.append(try Self.decode(from: &reader, limits: limits, nested: true))
                }
                branches.append(branch)
            }
            return .transaction(compare: compare, success: branches[0], failure: branches[1])
        case let tag:
            throw .malformed("unknown request tag \(tag)")
        }
    }
}

extension KeyValue {
    func encode(into writer: inout ByteWriter) {
        writer.data(self.key)
        writer.data(self.value)
        writer.signed(self.createRevision)
        writer.signed(self.modRevision)
        writer.signed(self.version)
    }

    static func decode(from reader: inout ByteReader) throws(KVError) -> KeyValue {
        KeyValue(
            key: try reader.data(limit: Int.max, what: "key"), value: try reader.data(limit: Int.max, what: "value"),
            createRevision: try reader.signed(), modRevision: try reader.signed(), version: try reader.signed())
    }
}

extension KVResponse {
    /// The canonical encoding.
    public func encoded() -> Bytes {
        var writer = ByteWriter()
        self.encode(into: &writer)
        return writer.bytes
    }

    func encode(into writer: inout ByteWriter) {
        switch self {
        case .put(let revision, let previous):
            writer.byte(1)
            writer.signed(revision)
            writer.bool(previous != nil)
            previous?.encode(into: &writer)
        case .range(let revision, let kvs, let count, let more):
            writer.byte(2)
            writer.signed(revision)
            writer.varint(UInt64(kvs.count))
            for kv in kvs { kv.encode(into: &writer) }
            writer.signed(count)
            writer.bool(more)
        case .deleteRange(let revision, let deleted, let previous):
            writer.byte(3)
            writer.signed(revision)
            writer.signed(deleted)
            writer.varint(UInt64(previous.count))
            for kv in previous { kv.encode(into: &writer) }
        case .transaction(let revision, let succeeded, let responses):
            writer.byte(4)
            writer.signed(revision)
            writer.bool(succeeded)
            writer.varint(UInt64(responses.count))
            for response in responses { response.encode(into: &writer) }
        case .error(let error):
            writer.byte(5)
            switch error {
            case .malformed(let reason): writer.byte(1); writer.data(Array(reason.utf8))
            case .tooLarge(let reason): writer.byte(2); writer.data(Array(reason.utf8))
            case .invalidTransaction(let reason): writer.byte(3); writer.data(Array(reason.utf8))
            }
        }
    }

    /// Decodes a response (the client side of the store).
    public static func decode(_ bytes: Bytes) throws(KVError) -> KVResponse {
        var reader = ByteReader(bytes)
        let response = try Self.decode(from: &reader, depth: 0)
        guard reader.isAtEnd else { throw .malformed("trailing bytes") }
        return response
    }

    static func decode(from reader: inout ByteReader, depth: Int) throws(KVError) -> KVResponse {
        guard depth <= 1 else { throw .malformed("responses nested too deep") }
        switch try reader.byte() {
        case 1:
            let revision = try reader.signed()
            return .put(revision: revision, previous: try reader.bool() ? try KeyValue.decode(from: &reader) : nil)
        case 2:
            let revision = try reader.signed()
            var kvs: [KeyValue] = []
            for _ in 0..<(try reader.count(limit: reader.bytes.count, what: "entries")) { kvs.append(try KeyValue.decode(from: &reader)) }
            return .range(revision: revision, kvs: kvs, count: try reader.signed(), more: try reader.bool())
        case 3:
            let revision = try reader.signed()
            let deleted = try reader.signed()
            var previous: [KeyValue] = []
            for _ in 0..<(try reader.count(limit: reader.bytes.count, what: "entries")) { previous.append(try KeyValue.decode(from: &reader)) }
            return .deleteRange(revision: revision, deleted: deleted, previous: previous)
        case 4:
            let revision = try reader.signed()
            let succeeded = try reader.bool()
            var responses: [KVResponse] = []
            for _ in 0..<(try reader.count(limit: reader.bytes.count, what: "responses")) {
                responses.append(try Self.decode(from: &reader, depth: depth + 1))
            }
            return .transaction(revision: revision, succeeded: succeeded, responses: responses)
        case 5:
            let kind = try reader.byte()
            let reason = String(decoding: try reader.data(limit: reader.bytes.count, what: "message"), as: UTF8.self)
            switch kind {
            case 1: return .error(.malformed(reason))
            case 2: return .error(.tooLarge(reason))
            case 3: return .error(.invalidTransaction(reason))
            default: throw .malformed("unknown error kind \(kind)")
            }
        case let tag:
            throw .malformed("unknown response tag \(tag)")
        }
    }
}
