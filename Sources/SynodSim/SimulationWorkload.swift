import SynodCausal
import SynodCheck
import SynodClocks
import SynodCore
import SynodKV

/// What the simulated clients do, and which state machine the replicas run.
public enum SimulationWorkload: String, Sendable, CaseIterable {
    /// Registers (`RegisterStore`): get, put and append. Appends are not idempotent, so a retry
    /// applied twice shows in the history.
    case register
    /// The etcd-semantics store (`SynodKV.KeyValueStore`): range reads of one key, put, delete,
    /// and compare-and-set as a transaction (value compare, or version 0 for "absent").
    case kv
    /// The eventually consistent store (`SynodCausal.CausalStore`): get, and put with the
    /// causal context of the client's last answer on that key. A get's history output is the
    /// value of its newest sibling (by dot), a stand-in: siblings have no single value.
    case eventual

    /// One client operation: how it is ordered, its payload, and its history record.
    struct Operation {
        var kind: ClientRequest.Kind
        var payload: [UInt8]
        var record: HistoryOperation
    }

    /// Draws an operation on register `key`. `recentValues` are values written to that key
    /// lately (cas candidates for the expected value).
    func makeOperation(
        key: UInt8, client: ClientID, sequence: UInt64, options: SimulationOptions, recentValues: [String],
        context: VectorClock = VectorClock(), random: inout DeterministicRandom, now: UInt64, appends: Bool = true
    ) -> Operation {
        let keyName = "k\(key)"
        let value = HistoryGenerator.paddedValue("c\(client)s\(sequence)", bytes: options.valueBytes)
        var record = HistoryOperation(client: Int(client), kind: .get, key: keyName, call: now, returnTime: nil)
        if random.chance(options.readFraction) {
            let payload = switch self {
            case .register: RegisterStore.get(key: key)
            case .kv: KVRequest.range(KeyRange(key: Array(keyName.utf8)), limit: 0).encoded()
            case .eventual: CausalRequest.get(key: Array(keyName.utf8)).encoded()
            }
            return Operation(kind: .read, payload: payload, record: record)
        }
        record.value = value
        switch self {
        case .eventual:
            record.kind = .put
            let request = CausalRequest.put(key: Array(keyName.utf8), value: Array(value.utf8), context: context)
            return Operation(kind: .write, payload: request.encoded(), record: record)
        case .register:
            let append = random.chance(options.appendFraction) && appends
            record.kind = append ? .append : .put
            let payload = append ? RegisterStore.append(key: key, value: Array(value.utf8)) : RegisterStore.put(key: key, value: Array(value.utf8))
            return Operation(kind: .write, payload: payload, record: record)
        case .kv:
            let keyBytes = Array(keyName.utf8)
            switch random.integer(in: 0..<10) {
            case 0..<5:
                record.kind = .put
                return Operation(kind: .write, payload: KVRequest.put(key: keyBytes, value: Array(value.utf8), previous: false).encoded(), record: record)
            case 5..<8:
                record.kind = .cas
                let expected = recentValues.isEmpty || random.chance(0.2) ? nil : recentValues[random.integer(in: 0..<recentValues.count)]
                record.expected = expected
                let comparison = expected.map { Comparison(key: keyBytes, target: .value, relation: .equal, value: Array($0.utf8)) }
                    ?? Comparison(key: keyBytes, target: .version, relation: .equal, number: 0)
                let request = KVRequest.transaction(
                    compare: [comparison], success: [.put(key: keyBytes, value: Array(value.utf8), previous: false)], failure: [])
                return Operation(kind: .write, payload: request.encoded(), record: record)
            default:
                record.kind = .delete
                record.value = nil
                return Operation(kind: .write, payload: KVRequest.deleteRange(KeyRange(key: keyBytes), previous: false).encoded(), record: record)
            }
        }
    }

    /// What the client saw, from the reply bytes; `nil` when the reply makes no sense (a bug).
    func output(of kind: HistoryOperation.Kind, reply: [UInt8]) -> HistoryOperation.Output? {
        switch (self, kind) {
        case (_, .put), (_, .append), (_, .delete):
            return HistoryOperation.Output.none
        case (.register, .get):
            return .value(reply.first == 1 ? String(decoding: reply.dropFirst(), as: UTF8.self) : nil)
        case (.kv, .get):
            guard case .range(_, let kvs, _, _)? = try? KVResponse.decode(reply) else { return nil }
            return .value(kvs.first.map { String(decoding: $0.value, as: UTF8.self) })
        case (.kv, .cas):
            guard case .transaction(_, let succeeded, _)? = try? KVResponse.decode(reply) else { return nil }
            return .swapped(succeeded)
        case (.register, .cas), (.eventual, .cas):
            return nil
        case (.eventual, .get):
            guard let state = try? CausalRegister.decode(reply) else { return nil }
            return .value(state.siblings.last.flatMap { $0.value }.map { String(decoding: $0, as: UTF8.self) })
        }
    }

    /// The key a committed payload touches (commands on one key conflict), or `nil`.
    func conflictKey(of payload: [UInt8]) -> String? {
        switch self {
        case .register:
            return RegisterStore.key(of: payload).map { "k\($0)" }
        case .eventual:
            return (try? CausalRequest.decode(payload)).map { String(decoding: $0.key, as: UTF8.self) }
        case .kv:
            switch try? KVRequest.decode(payload) {
            case .put(let key, _, _)?: return String(decoding: key, as: UTF8.self)
            case .range(let range, _)?, .deleteRange(let range, _)?: return String(decoding: range.key, as: UTF8.self)
            case .transaction(let compare, _, _)?: return compare.first.map { String(decoding: $0.key, as: UTF8.self) }
            case nil: return nil
            }
        }
    }
}

/// The state machine a simulated replica runs (the node driver wraps it in its exactly-once
/// session table).
enum SimulatedMachine: StateMachine {
    case register(RegisterStore)
    case kv(KeyValueStore)
    case causal(CausalStore)

    init(_ workload: SimulationWorkload) {
        switch workload {
        case .register: self = .register(RegisterStore())
        case .kv: self = .kv(KeyValueStore())
        case .eventual: self = .causal(CausalStore())
        }
    }

    mutating func apply(_ payload: [UInt8]) -> [UInt8] {
        switch self {
        // Each case lets go of its store before mutating it, so it is changed in place.
        case .register(var store):
            self = .register(RegisterStore())
            let reply = store.apply(payload)
            self = .register(store)
            return reply
        case .kv(var store):
            self = .register(RegisterStore())
            let reply = store.apply(payload)
            self = .kv(store)
            return reply
        case .causal(var store):
            self = .register(RegisterStore())
            let reply = store.apply(payload)
            self = .causal(store)
            return reply
        }
    }

    func query(_ payload: [UInt8]) -> [UInt8] {
        switch self {
        case .register(let store): store.query(payload)
        case .kv(let store): store.query(payload)
        case .causal(let store): store.query(payload)
        }
    }

    /// The register store's footprint for its payloads (their opcodes say so), the key-value
    /// store's for the others.
    static func footprint(of payload: [UInt8]) -> Footprint {
        if let first = payload.first, RegisterStore.Opcode(rawValue: first) != nil { return RegisterStore.footprint(of: payload) }
        if CausalRequest.isCausal(payload) { return CausalStore.footprint(of: payload) }
        return KeyValueStore.footprint(of: payload)
    }
}
