/// SplitMix64: a small seeded generator for generated histories.
public struct SplitMixRandom: RandomNumberGenerator, Sendable {
    var state: UInt64
    /// Creates a generator from a seed.
    public init(seed: UInt64) { self.state = seed }
    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var value = self.state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}

/// Histories linearizable by construction: each client runs operations one after another;
/// each operation gets an interval and a point inside it; replaying the operations in point
/// order on a register per key gives every output. Some writes time out (unknown outcome):
/// they take effect at their point, or never.
public enum HistoryGenerator {
    /// The default mix: reads and writes of every kind.
    public static let defaultKinds: [HistoryOperation.Kind] = [.get, .get, .put, .put, .append, .cas, .delete]

    /// A linearizable history of `operations` operations over `keys` keys by `clients` clients,
    /// drawing operation kinds uniformly from `kinds` (repeat a kind to weight it).
    public static func linearizable(
        operations: Int, keys: Int, clients: Int, seed: UInt64, kinds: [HistoryOperation.Kind] = Self.defaultKinds
    ) -> [HistoryOperation] {
        var random = SplitMixRandom(seed: seed)
        var clock = [UInt64](repeating: 0, count: clients)
        var planned: [(operation: HistoryOperation, point: UInt64, takesEffect: Bool)] = []
        for index in 0..<operations {
            let client = Int.random(in: 0..<clients, using: &random)
            let call = clock[client] + UInt64.random(in: 1...20, using: &random)
            let end = call + UInt64.random(in: 1...60, using: &random)
            clock[client] = end
            let point = UInt64.random(in: call...end, using: &random)
            let key = "k\(Int.random(in: 0..<keys, using: &random))"
            let kind = kinds[Int.random(in: 0..<kinds.count, using: &random)]
            var operation = HistoryOperation(client: client, kind: kind, key: key, call: call, returnTime: end)
            switch kind {
            case .put, .append: operation.value = "v\(index)"
            case .cas:
                operation.value = "v\(index)"
                operation.expected = Bool.random(using: &random) ? nil : "v\(Int.random(in: 0..<max(1, index), using: &random))"
            case .get, .delete: break
            }
            var takesEffect = true
            if kind != .get && Int.random(in: 0..<10, using: &random) == 0 {
                operation.unknown = true
                takesEffect = Bool.random(using: &random)
            }
            planned.append((operation, point, takesEffect))
        }
        // Replay in point order (ties: by index, a valid order since points lie in intervals).
        var values: [String: String] = [:]
        let order = planned.indices.sorted { (planned[$0].point, $0) < (planned[$1].point, $1) }
        for index in order {
            var operation = planned[index].operation
            let current = values[operation.key]
            switch operation.kind {
            case .get: operation.output = .value(current)
            case .put: if planned[index].takesEffect { values[operation.key] = operation.value }
            case .append: if planned[index].takesEffect { values[operation.key] = (current ?? "") + operation.value! }
            case .delete: if planned[index].takesEffect { values[operation.key] = nil }
            case .cas:
                let swapped = current == operation.expected
                if operation.unknown {
                    if swapped && planned[index].takesEffect { values[operation.key] = operation.value }
                } else {
                    operation.output = .swapped(swapped)
                    if swapped { values[operation.key] = operation.value }
                }
            }
            planned[index].operation = operation
        }
        return planned.map(\.operation)
    }

    /// A written value: `prefix` (unique: client and sequence), padded to `bytes` bytes when
    /// it is shorter, for workloads of large values.
    public static func paddedValue(_ prefix: String, bytes: Int) -> String {
        prefix.utf8.count >= bytes ? prefix : prefix + "-" + String(repeating: "x", count: bytes - prefix.utf8.count - 1)
    }

    /// The same history with one completed read changed to a value nobody wrote.
    public static func corruptOneRead(_ history: [HistoryOperation], seed: UInt64) -> [HistoryOperation]? {
        var random = SplitMixRandom(seed: seed ^ 0xABCD)
        let reads = history.indices.filter { history[$0].kind == .get && !history[$0].isPending }
        guard !reads.isEmpty else { return nil }
        var corrupted = history
        corrupted[reads[Int.random(in: 0..<reads.count, using: &random)]].output = .value("never-written")
        return corrupted
    }

    /// The same history with one completed read made stale: it returns what an earlier read
    /// saw before a write that completed before this read was called. On a key whose values
    /// are written once (no deletes), that value cannot come back, so the copy is certainly
    /// not linearizable. `nil` when no read has such an earlier read and write.
    public static func staleOneRead(_ history: [HistoryOperation], seed: UInt64) -> [HistoryOperation]? {
        var random = SplitMixRandom(seed: seed ^ 0x57A1E)
        func wrote(_ operation: HistoryOperation) -> Bool {
            !operation.isPending && (operation.kind == .put || operation.kind == .append || operation.output == .swapped(true))
        }
        var reads = history.indices.filter { history[$0].kind == .get && !history[$0].isPending }
        reads.shuffle(using: &random)
        for read in reads.prefix(200) {
            let key = history[read].key
            // The write that completed before the read was called and was called last.
            guard let write = history.indices.filter({ history[$0].key == key && wrote(history[$0]) && history[$0].returnTime! < history[read].call })
                .max(by: { history[$0].call < history[$1].call })
            else { continue }
            let earlier = history.indices.first {
                history[$0].key == key && history[$0].kind == .get && !history[$0].isPending
                    && history[$0].returnTime! < history[write].call && history[$0].output != history[read].output
            }
            guard let earlier else { continue }
            var stale = history
            stale[read].output = history[earlier].output
            return stale
        }
        return nil
    }
}
