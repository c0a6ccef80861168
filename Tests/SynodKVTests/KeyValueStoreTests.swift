import SynodCore
import SynodKV
import Testing

extension String {
    var bytes: Bytes { Array(self.utf8) }
}

@Suite("Key-value state machine: etcd semantics")
struct KeyValueStoreTests {
    @Test("put bumps the revision; create revision, mod revision and version follow etcd")
    func putRevisions() {
        var store = KeyValueStore()
        #expect(store.revision == 1)
        #expect(store.apply(.put(key: "a".bytes, value: "1".bytes, previous: false)) == .put(revision: 2, previous: nil))
        let old = KeyValue(key: "a".bytes, value: "1".bytes, createRevision: 2, modRevision: 2, version: 1)
        #expect(store.apply(.put(key: "a".bytes, value: "2".bytes, previous: true)) == .put(revision: 3, previous: old))
        let expected = KeyValue(key: "a".bytes, value: "2".bytes, createRevision: 2, modRevision: 3, version: 2)
        #expect(store.range(KeyRange(key: "a".bytes)) == .range(revision: 3, kvs: [expected], count: 1, more: false))
    }

    @Test("range: one key, a half-open range, a prefix, everything from a key, with a limit")
    func ranges() {
        var store = KeyValueStore()
        for key in ["a", "b", "ba", "bb", "c"] { _ = store.apply(.put(key: key.bytes, value: key.bytes, previous: false)) }
        func keys(_ range: KeyRange, limit: Int64 = 0) -> [String] {
            guard case .range(_, let kvs, _, _) = store.range(range, limit: limit) else { return [] }
            return kvs.map { String(decoding: $0.key, as: UTF8.self) }
        }
        #expect(keys(KeyRange(key: "b".bytes)) == ["b"])
        #expect(keys(KeyRange(key: "b".bytes, end: "c".bytes)) == ["b", "ba", "bb"])
        #expect(keys(.prefix("b".bytes)) == ["b", "ba", "bb"])
        #expect(keys(KeyRange(key: "bb".bytes, end: [0])) == ["bb", "c"])
        #expect(keys(.prefix([])) == ["a", "b", "ba", "bb", "c"])
        #expect(store.range(.prefix("b".bytes), limit: 2) == .range(
            revision: 6, kvs: [
                KeyValue(key: "b".bytes, value: "b".bytes, createRevision: 3, modRevision: 3, version: 1),
                KeyValue(key: "ba".bytes, value: "ba".bytes, createRevision: 4, modRevision: 4, version: 1),
            ], count: 3, more: true))
    }

    @Test("delete range removes keys, bumps the revision only when it deletes, and resets versions")
    func deletes() {
        var store = KeyValueStore()
        _ = store.apply(.put(key: "a".bytes, value: "1".bytes, previous: false))
        _ = store.apply(.put(key: "ab".bytes, value: "2".bytes, previous: false))
        guard case .deleteRange(let revision, let deleted, let previous) = store.apply(.deleteRange(.prefix("a".bytes), previous: true)) else {
            Issue.record("not a delete response")
            return
        }
        #expect(revision == 4 && deleted == 2 && previous.count == 2)
        #expect(store.apply(.deleteRange(KeyRange(key: "zz".bytes), previous: false)) == .deleteRange(revision: 4, deleted: 0, previous: []))
        #expect(store.apply(.put(key: "a".bytes, value: "3".bytes, previous: false)) == .put(revision: 5, previous: nil))
        #expect(store.range(KeyRange(key: "a".bytes)) == .range(
            revision: 5, kvs: [KeyValue(key: "a".bytes, value: "3".bytes, createRevision: 5, modRevision: 5, version: 1)],
            count: 1, more: false))
    }

    @Test("transactions compare value, version, create and mod revision, and run one branch under one revision")
    func transactions() {
        var store = KeyValueStore()
        _ = store.apply(.put(key: "x".bytes, value: "1".bytes, previous: false))  // revision 2
        let swap = KVRequest.transaction(
            compare: [Comparison(key: "x".bytes, target: .value, relation: .equal, value: "1".bytes),
                      Comparison(key: "x".bytes, target: .version, relation: .equal, number: 1),
                      Comparison(key: "x".bytes, target: .createRevision, relation: .less, number: 3),
                      Comparison(key: "x".bytes, target: .modRevision, relation: .greater, number: 1)],
            success: [.put(key: "x".bytes, value: "2".bytes, previous: false), .put(key: "y".bytes, value: "1".bytes, previous: false)],
            failure: [.range(KeyRange(key: "x".bytes), limit: 0)])
        guard case .transaction(let revision, let succeeded, let responses) = store.apply(swap) else {
            Issue.record("not a transaction response")
            return
        }
        #expect(succeeded && revision == 3 && responses == [.put(revision: 3, previous: nil), .put(revision: 3, previous: nil)])
        // The same compare now fails: the failure branch reads, and the revision stays.
        guard case .transaction(let again, let secondSucceeded, _) = store.apply(swap) else { return }
        #expect(!secondSucceeded && again == 3)
        // A value comparison on an absent key fails; a version comparison sees 0.
        #expect(store.apply(.transaction(compare: [Comparison(key: "nope".bytes, target: .value, relation: .notEqual, value: "z".bytes)], success: [], failure: []))
            == .transaction(revision: 3, succeeded: false, responses: []))
        #expect(store.apply(.transaction(compare: [Comparison(key: "nope".bytes, target: .version, relation: .equal, number: 0)], success: [], failure: []))
            == .transaction(revision: 3, succeeded: true, responses: []))
    }

    @Test("a transaction that puts one key twice, or puts a key it deletes, is refused; overlapping deletes are fine")
    func duplicateKeyInTransaction() {
        var store = KeyValueStore()
        let twoPuts = KVRequest.transaction(compare: [], success: [], failure: [
            .put(key: "k".bytes, value: "1".bytes, previous: false), .put(key: "k".bytes, value: "2".bytes, previous: false),
        ])
        guard case .error(.invalidTransaction) = store.apply(twoPuts) else {
            Issue.record("accepted a transaction putting one key twice")
            return
        }
        let overlappingDeletes = KVRequest.transaction(compare: [], success: [
            .deleteRange(KeyRange(key: "a".bytes, end: "c".bytes), previous: false),
            .deleteRange(KeyRange(key: "b".bytes, end: "d".bytes), previous: false),
        ], failure: [])
        #expect(store.apply(overlappingDeletes) == .transaction(revision: 1, succeeded: true, responses: [
            .deleteRange(revision: 1, deleted: 0, previous: []), .deleteRange(revision: 1, deleted: 0, previous: []),
        ]))
        let request = KVRequest.transaction(compare: [], success: [
            .put(key: "k".bytes, value: "1".bytes, previous: false), .deleteRange(.prefix("k".bytes), previous: false),
        ], failure: [])
        guard case .error(.invalidTransaction) = store.apply(request) else {
            Issue.record("accepted a transaction writing one key twice")
            return
        }
        #expect(store.revision == 1 && store.count == 0)
    }

    @Test("bad payloads: malformed, oversized keys and values, trailing bytes get an error reply and change nothing")
    func badPayloads() throws {
        var limits = KVLimits()
        limits.maximumKeyBytes = 8
        var store = KeyValueStore(limits: limits)
        for payload in [
            [], [99], [1, 5, 0x61], KVRequest.put(key: Bytes(repeating: 1, count: 9), value: [], previous: false).encoded(),
            KVRequest.put(key: "a".bytes, value: [], previous: false).encoded() + [0], [1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            KVRequest.put(key: [], value: [], previous: false).encoded(), [1, 0x81, 0x00, 0x61, 0, 0],
            Bytes(repeating: 1, count: KVLimits().maximumRequestBytes + 1),
        ] as [Bytes] {
            guard case .error = try KVResponse.decode(store.apply(payload)) else {
                Issue.record("accepted \(payload)")
                continue
            }
        }
        #expect(store.revision == 1 && store.count == 0)
        // Requests built in code are held to the same bounds.
        guard case .error(.tooLarge) = store.apply(.put(key: Bytes(repeating: 1, count: 9), value: [], previous: false)) else {
            Issue.record("accepted an oversized key built in code")
            return
        }
    }

    @Test("fuzz: random and mutated payloads never trap and never half-apply", arguments: 1...3 as ClosedRange<UInt64>)
    func fuzz(seed: UInt64) throws {
        var random = DeterministicRandom(seed: seed)
        var store = KeyValueStore()
        let valid = KVRequest.transaction(
            compare: [Comparison(key: "x".bytes, target: .value, relation: .equal, value: "1".bytes)],
            success: [.put(key: "x".bytes, value: "2".bytes, previous: true)],
            failure: [.deleteRange(.prefix("y".bytes), previous: true)]).encoded()
        for _ in 0..<5_000 {
            var payload = valid
            for _ in 0...random.integer(in: 0..<4) {
                let position = random.integer(in: 0..<payload.count)
                payload[position] = UInt8(random.integer(in: 0..<256))
            }
            if random.chance(0.2) { payload = Array(payload.prefix(random.integer(in: 0..<payload.count))) }
            let before = store
            let reply = try KVResponse.decode(store.apply(payload))
            if case .error = reply { #expect(store == before) }
        }
    }

    @Test("checking a request's bounds on the request refuses exactly what decoding its encoding refuses, with the same error",
          arguments: 1...3 as ClosedRange<UInt64>)
    func boundsAgreeWithDecoding(seed: UInt64) throws {
        var random = DeterministicRandom(seed: seed)
        var limits = KVLimits()
        limits.maximumKeyBytes = 4
        limits.maximumValueBytes = 6
        limits.maximumTransactionOperations = 3
        limits.maximumRequestBytes = 60
        // Lengths around each bound, empty ones included.
        func bytes() -> Bytes { Bytes(repeating: 7, count: random.integer(in: 0..<8)) }
        func simple() -> KVRequest {
            switch random.integer(in: 0..<3) {
            case 0: .put(key: bytes(), value: bytes(), previous: random.chance(0.5))
            case 1: .range(KeyRange(key: bytes(), end: bytes()), limit: Int64(random.integer(in: 0..<4)) - 1)
            default: .deleteRange(KeyRange(key: bytes(), end: bytes()), previous: false)
            }
        }
        func request(nesting: Bool) -> KVRequest {
            guard random.chance(0.5) else { return simple() }
            func branch() -> [KVRequest] {
                (0..<random.integer(in: 0..<5)).map { _ in nesting && random.chance(0.3) ? request(nesting: false) : simple() }
            }
            let compare = (0..<random.integer(in: 0..<5)).map { _ in
                Comparison(key: bytes(), target: .value, relation: .equal, value: bytes())
            }
            return .transaction(compare: compare, success: branch(), failure: branch())
        }
        var outcomes: [String: Int] = [:]
        for _ in 0..<20_000 {
            let built = request(nesting: true)
            let checked = Result { () throws(KVError) -> Bytes in try built.encoded(limits: limits) }
            let decoded = Result { () throws(KVError) -> KVRequest in try KVRequest.decode(built.encoded(), limits: limits) }
            switch (checked, decoded) {
            case (.success(let bytes), .success(let request)):
                #expect(bytes == built.encoded() && request == built)
                outcomes["accepted", default: 0] += 1
            case (.failure(let problem), .failure(let expected)):
                #expect(problem == expected, "\(built)")
                // Each check by its message (numbers left out).
                let message = "\(expected)".reduce(into: "") { text, character in
                    if !character.isNumber { text.append(character) } else if text.last != "#" { text.append("#") }
                }
                outcomes[message, default: 0] += 1
            default:
                Issue.record("checked \(checked), decoded \(decoded): \(built)")
            }
        }
        // The generator reaches every check decoding makes (the whole request's size; key,
        // value, range end and compared value too long; empty key; negative limit; too many
        // comparisons or operations; nesting) and acceptance, so the agreement is not vacuous.
        #expect(outcomes.count == 11 && outcomes.values.allSatisfy { $0 > 20 }, "\(outcomes)")
    }

    @Test("requests and responses survive the canonical encoding")
    func codecRoundTrip() throws {
        let request = KVRequest.transaction(
            compare: [Comparison(key: "k".bytes, target: .modRevision, relation: .less, number: -3)],
            success: [.range(.prefix("p".bytes), limit: 7), .put(key: [0], value: [0, 255], previous: true)],
            failure: [.deleteRange(KeyRange(key: "a".bytes, end: [0]), previous: false)])
        #expect(try KVRequest.decode(request.encoded()) == request)
        var store = KeyValueStore()
        _ = store.apply(.put(key: "p1".bytes, value: "v".bytes, previous: false))
        let response = store.apply(request)
        #expect(try KVResponse.decode(response.encoded()) == response)
    }
}

@Suite("Client sessions and snapshots")
struct KeyValueSessionTests {
    static func command(_ client: ClientID, _ sequence: UInt64, _ request: KVRequest) -> Command {
        Command(client: client, sequence: sequence, payload: request.encoded())
    }

    @Test("a retried command is applied once and answered with its original reply")
    func exactlyOnce() {
        var service = ExactlyOnce(KeyValueStore())
        let put = Self.command(7, 1, .put(key: "a".bytes, value: "1".bytes, previous: false))
        guard case .applied(let first) = service.apply(put) else {
            Issue.record("not applied")
            return
        }
        _ = service.apply(Self.command(8, 1, .put(key: "a".bytes, value: "2".bytes, previous: false)))
        #expect(service.apply(put) == .duplicate(first))
        #expect(service.machine.revision == 3)
    }

    @Test("snapshots are canonical: equal states reached in different orders give equal bytes")
    func canonicalSnapshots() throws {
        var one = ExactlyOnce(KeyValueStore())
        var two = ExactlyOnce(KeyValueStore())
        let first = KVRequest.put(key: "a".bytes, value: "1".bytes, previous: false)
        let second = KVRequest.put(key: "b".bytes, value: "2".bytes, previous: false)
        _ = one.apply(Self.command(1, 1, first))
        _ = one.apply(Self.command(1, 2, .deleteRange(KeyRange(key: "zz".bytes), previous: false)))
        _ = one.apply(Self.command(2, 1, second))
        _ = two.apply(Self.command(2, 1, second))
        _ = two.apply(Self.command(1, 1, first))
        _ = two.apply(Self.command(1, 2, .deleteRange(KeyRange(key: "zz".bytes), previous: false)))
        // Same keys and revision; b's and a's revisions differ, so the snapshots differ...
        #expect(KeyValueStore.snapshot(of: one) != KeyValueStore.snapshot(of: two))
        // ...while a restored copy snapshots to the same bytes, and keeps behaving the same.
        let snapshot = KeyValueStore.snapshot(of: one)
        var restored = try KeyValueStore.restore(snapshot)
        #expect(KeyValueStore.snapshot(of: restored) == snapshot)
        #expect(restored.machine == one.machine)
        // Sessions survive: a retry after the restore is still a duplicate.
        #expect(restored.apply(Self.command(2, 1, second)) == one.apply(Self.command(2, 1, second)))
        // Equal states built by differently ordered dictionaries give equal bytes.
        var three = ExactlyOnce(KeyValueStore())
        var four = ExactlyOnce(KeyValueStore())
        for index in 0..<50 { _ = three.apply(Self.command(UInt64(index + 1), 1, .put(key: "k\(index)".bytes, value: [], previous: false))) }
        for index in 0..<50 { _ = four.apply(Self.command(UInt64(index + 1), 1, .put(key: "k\(index)".bytes, value: [], previous: false))) }
        #expect(KeyValueStore.snapshot(of: three) == KeyValueStore.snapshot(of: four))
    }

    @Test("corrupt snapshots are refused with a reason, never trapped on", arguments: 1...3 as ClosedRange<UInt64>)
    func corruptSnapshots(seed: UInt64) {
        var service = ExactlyOnce(KeyValueStore())
        for index in 0..<20 { _ = service.apply(Self.command(1, UInt64(index + 1), .put(key: "k\(index % 7)".bytes, value: "v".bytes, previous: false))) }
        let snapshot = KeyValueStore.snapshot(of: service)
        var random = DeterministicRandom(seed: seed)
        var refused = 0
        for _ in 0..<2_000 {
            var bytes = snapshot
            bytes[random.integer(in: 0..<bytes.count)] = UInt8(random.integer(in: 0..<256))
            if random.chance(0.3) { bytes = Array(bytes.prefix(random.integer(in: 0..<bytes.count))) }
            do { _ = try KeyValueStore.restore(bytes) } catch { refused += 1 }
        }
        #expect(refused > 0)
        #expect(throws: KVError.self) { try KeyValueStore.restore([]) }
        // A snapshot whose revision would overflow the next write is refused.
        var writer = [UInt8]([1, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0, 0])
        #expect(throws: KVError.self) { try KeyValueStore.restore(writer) }
        writer = [1, 4, 0, 0]  // revision 2, no keys, no sessions: fine
        #expect((try? KeyValueStore.restore(writer))?.machine.revision == 2)
    }
}
