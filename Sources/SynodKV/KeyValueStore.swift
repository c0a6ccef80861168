import SynodCore

/// The replicated key-value state machine, with etcd's semantics: one global revision that
/// every write request increments once; per key a create revision, a mod revision and a
/// version; put, range (one key, a key range, a prefix), delete range, and transactions that
/// compare values, versions or revisions, then run one branch. Apply is deterministic: equal
/// request sequences give equal states, replies and snapshots.
///
/// Requests arrive as canonically encoded `KVRequest` payloads; a payload that does not decode,
/// or breaks a `KVLimits` bound, gets a `KVResponse.error` reply and changes nothing.
public struct KeyValueStore: StateMachine, Sendable, Equatable {
    /// The revision of the last write (1 for an empty store, as in etcd).
    public internal(set) var revision: Int64 = 1
    /// The live keys. Order is irrelevant here; everything that leaves the store is sorted.
    var entries: [Bytes: KeyValue] = [:]
    public let limits: KVLimits

    /// An empty store.
    public init(limits: KVLimits = KVLimits()) { self.limits = limits }

    /// Number of live keys.
    public var count: Int { self.entries.count }

    public mutating func apply(_ payload: [UInt8]) -> [UInt8] {
        let response: KVResponse
        do {
            response = self.apply(try KVRequest.decode(payload, limits: self.limits))
        } catch {
            response = .error(error)
        }
        return response.encoded()
    }

    public func query(_ payload: [UInt8]) -> [UInt8] {
        do {
            let request = try KVRequest.decode(payload, limits: self.limits)
            guard case .range(let range, let limit) = request else {
                return KVResponse.error(.malformed("only range requests may be served as queries")).encoded()
            }
            return self.range(range, limit: limit).encoded()
        } catch {
            return KVResponse.error(error).encoded()
        }
    }

    /// What a request touches, for cores that order only conflicting commands. With etcd's
    /// semantics that is coarse: every write increments the one global revision, which every
    /// reply and every key's mod revision record, so the order of any two writes shows (and
    /// any read sees the revision of the writes before it). A range only reads; anything else
    /// (a put, a delete, a transaction, a payload that does not decode) may write every key.
    public static func footprint(of payload: [UInt8]) -> Footprint {
        payload.first == 2 ? Footprint(spans: nil, writes: false) : .everything
    }

    /// Applies one request. A request built in code (not decoded) is held to the same bounds
    /// as a decoded one, but for the whole request's size.
    public mutating func apply(_ request: KVRequest) -> KVResponse {
        if let problem = request.boundsProblem(self.limits) { return .error(problem) }
        if case .transaction(let compare, let success, let failure) = request {
            if let problem = Self.transactionProblem(success) ?? Self.transactionProblem(failure) {
                return .error(.invalidTransaction(problem))
            }
            let succeeded = compare.allSatisfy(self.holds)
            let branch = succeeded ? success : failure
            // One revision for the whole transaction, taken only if it writes.
            let writes = branch.contains { self.wouldWrite($0) }
            let revision = writes ? self.revision + 1 : self.revision
            let responses = branch.map { self.execute($0, at: revision) }
            self.revision = revision
            return .transaction(revision: revision, succeeded: succeeded, responses: responses)
        }
        let revision = self.wouldWrite(request) ? self.revision + 1 : self.revision
        let response = self.execute(request, at: revision)
        self.revision = revision
        return response
    }

    /// etcd's rule for a transaction branch: no key put twice, no put inside a range the branch
    /// deletes (before or after the put); overlapping deletes are fine. Synod also refuses
    /// nested transactions.
    public static func transactionProblem(_ branch: [KVRequest]) -> String? {
        var puts: Set<Bytes> = []
        var deletes: [KeyRange] = []
        for request in branch {
            switch request {
            case .transaction: return "a transaction may not contain a transaction"
            case .put(let key, _, _):
                guard puts.insert(key).inserted else { return "duplicate key given in txn request" }
            case .deleteRange(let range, _): deletes.append(range)
            case .range: continue
            }
        }
        for key in puts where deletes.contains(where: { $0.contains(key) }) {
            return "duplicate key given in txn request"
        }
        return nil
    }

    /// True when the request changes the store: a put always; a delete that matches a key.
    func wouldWrite(_ request: KVRequest) -> Bool {
        switch request {
        case .put: return true
        case .deleteRange(let range, _): return self.entries.keys.contains { range.contains($0) }
        case .range, .transaction: return false
        }
    }

    mutating func execute(_ request: KVRequest, at revision: Int64) -> KVResponse {
        switch request {
        case .put(let key, let value, let previous):
            let old = self.entries[key]
            self.entries[key] = KeyValue(
                key: key, value: value, createRevision: old?.createRevision ?? revision, modRevision: revision,
                version: (old?.version ?? 0) + 1)
            return .put(revision: revision, previous: previous ? old : nil)
        case .range(let range, let limit):
            return self.range(range, limit: limit, revision: revision)
        case .deleteRange(let range, let previous):
            let doomed = self.matching(range)
            for kv in doomed { self.entries[kv.key] = nil }
            return .deleteRange(revision: revision, deleted: Int64(doomed.count), previous: previous ? doomed : [])
        case .transaction:
            return .error(.invalidTransaction("a transaction may not contain a transaction"))
        }
    }

    /// The keys in `range`, sorted.
    func matching(_ range: KeyRange) -> [KeyValue] {
        if range.end.isEmpty { return self.entries[range.key].map { [$0] } ?? [] }
        return self.entries.values.filter { range.contains($0.key) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
    }

    /// A range read at the current revision.
    public func range(_ range: KeyRange, limit: Int64 = 0) -> KVResponse {
        self.range(range, limit: limit, revision: self.revision)
    }

    func range(_ range: KeyRange, limit: Int64, revision: Int64) -> KVResponse {
        let all = self.matching(range)
        let shown = limit > 0 && Int64(all.count) > limit ? Array(all.prefix(Int(limit))) : all
        return .range(revision: revision, kvs: shown, count: Int64(all.count), more: shown.count < all.count)
    }

    /// Whether a comparison holds now. An absent key has an empty value and zero versions
    /// and revisions (etcd compares against those).
    func holds(_ comparison: Comparison) -> Bool {
        let kv = self.entries[comparison.key]
        let order: Int
        switch comparison.target {
        case .value:
            guard let kv else { return false }  // etcd: a value comparison on an absent key fails
            order = kv.value == comparison.value ? 0 : (kv.value.lexicographicallyPrecedes(comparison.value) ? -1 : 1)
        case .version: order = Self.order(kv?.version ?? 0, comparison.number)
        case .createRevision: order = Self.order(kv?.createRevision ?? 0, comparison.number)
        case .modRevision: order = Self.order(kv?.modRevision ?? 0, comparison.number)
        }
        switch comparison.relation {
        case .equal: return order == 0
        case .notEqual: return order != 0
        case .less: return order < 0
        case .greater: return order > 0
        }
    }

    static func order(_ lhs: Int64, _ rhs: Int64) -> Int { lhs == rhs ? 0 : (lhs < rhs ? -1 : 1) }
}

extension KVRequest {
    /// The first problem `decode(_:limits:)` would find in this request's encoding: the same
    /// checks in the same order, with the same errors, without decoding (so without copying a
    /// key or value). `KeyValueStoreTests.boundsAgreeWithDecoding` holds the two to agreement.
    /// The whole request's size is not checked here (`encoded(limits:)` checks it).
    func boundsProblem(_ limits: KVLimits, nested: Bool = false) -> KVError? {
        func data(_ bytes: Bytes, limit: Int, what: String) -> KVError? {
            bytes.count > limit ? .tooLarge("\(what) of \(bytes.count) bytes exceeds \(limit)") : nil
        }
        func key(_ key: Bytes) -> KVError? {
            data(key, limit: limits.maximumKeyBytes, what: "key") ?? (key.isEmpty ? .malformed("key is not provided") : nil)
        }
        func count(_ count: Int, what: String) -> KVError? {
            count > limits.maximumTransactionOperations ? .tooLarge("\(count) \(what) exceed \(limits.maximumTransactionOperations)") : nil
        }
        switch self {
        case .put(let putKey, let value, _):
            return key(putKey) ?? data(value, limit: limits.maximumValueBytes, what: "value")
        case .range(let range, let limit):
            if let problem = key(range.key) ?? data(range.end, limit: limits.maximumKeyBytes, what: "range end") { return problem }
            return limit < 0 ? .malformed("negative range limit \(limit)") : nil
        case .deleteRange(let range, _):
            return key(range.key) ?? data(range.end, limit: limits.maximumKeyBytes, what: "range end")
        case .transaction(let compare, let success, let failure):
            if nested { return .invalidTransaction("a transaction may not contain a transaction") }
            if let problem = count(compare.count, what: "comparisons") { return problem }
            for comparison in compare {
                if let problem = key(comparison.key) ?? data(comparison.value, limit: limits.maximumValueBytes, what: "compared value") {
                    return problem
                }
            }
            for branch in [success, failure] {
                if let problem = count(branch.count, what: "operations") { return problem }
                for request in branch {
                    if let problem = request.boundsProblem(limits, nested: true) { return problem }
                }
            }
            return nil
        }
    }
}

extension KeyRange {
    /// True when some key could lie in both ranges.
    func overlaps(_ other: KeyRange) -> Bool {
        func bounds(_ range: KeyRange) -> (low: Bytes, high: Bytes?) {
            if range.end.isEmpty { return (range.key, range.key + [0]) }
            if range.end == [0] { return (range.key, nil) }
            return (range.key, range.end)
        }
        let (lowA, highA) = bounds(self)
        let (lowB, highB) = bounds(other)
        let aStartsBeforeBEnds = highB.map { lowA.lexicographicallyPrecedes($0) } ?? true
        let bStartsBeforeAEnds = highA.map { lowB.lexicographicallyPrecedes($0) } ?? true
        return aStartsBeforeBEnds && bStartsBeforeAEnds
    }
}
