import SynodCore

/// The ABD register's invariants, checked after every step:
///
/// - **tag-uniqueness**: no two writes of a key are ever recorded under one tag (a
///   coordinator that gave a tag out twice, after a crash say, breaks it). A record a crash
///   took back before it was durable, and that no other replica holds, frees its tag.
/// - **completed-at-majority**: once an operation completes with a key's write under tag t, a
///   majority of replicas hold t or newer for that key, and keep holding it through crashes
///   and restarts (a replica that answered a store before it was durable breaks it at its
///   restart).
public struct ABDMonitor: SafetyMonitor {
    public typealias Observed = ABDReplica

    let members: [NodeID]
    let quorum: QuorumSystem
    /// Who recorded each key's tag: the write, and the replicas holding the record.
    var writers: [ABDKeyTag: (write: CommandID, holders: Set<NodeID>)] = [:]
    /// Each replica's tag per key, as its records (and restores) show.
    var held: [NodeID: [[UInt8]: ABDTag]] = [:]
    /// The newest tag an operation completed with, per key.
    var completed: [[UInt8]: ABDTag] = [:]
    /// Found at a restart; reported with the next step observed (any replica's).
    var foundAtRestart: [InvariantViolation] = []

    public init(members: [NodeID]) {
        self.members = members.sorted()
        self.quorum = .majority(of: members.count)
    }

    public mutating func observe(node: NodeID, replica: ABDReplica, ready: Ready<ABDMessage, ABDRecord>) -> [InvariantViolation] {
        var violations = self.foundAtRestart
        self.foundAtRestart = []
        for record in ready.records {
            let name = ABDKeyTag(key: record.key, tag: record.tag)
            if let known = self.writers[name], known.write != record.write.id {
                violations.append(InvariantViolation(
                    invariant: "tag-uniqueness", node: node,
                    detail: "tag \(record.tag) of key \(Self.text(record.key)) holds \(record.write.id) here, \(known.write) at \(known.holders.sorted().map(\.description).joined(separator: ", "))"))
            }
            self.writers[name, default: (record.write.id, [])].holders.insert(node)
            if record.tag > self.held[node]?[record.key] ?? .zero { self.held[node, default: [:]][record.key] = record.tag }
        }
        for completion in replica.completions {
            if completion.tag > self.completed[completion.key] ?? .zero { self.completed[completion.key] = completion.tag }
            if let problem = self.unheld(completion.key, completion.tag) {
                violations.append(InvariantViolation(
                    invariant: "completed-at-majority", node: node,
                    detail: "\(completion.isWrite ? "a write" : "a read") of key \(Self.text(completion.key)) completed with tag \(completion.tag), \(problem)"))
            }
        }
        return violations
    }

    public mutating func restarted(node: NodeID, replica: ABDReplica, recovered: Recovered<ABDRecord>) {
        self.held[node] = replica.registers.mapValues(\.tag)
        let kept = Set(recovered.records.map { ABDKeyTag(key: $0.key, tag: $0.tag) })
        for (name, entry) in self.writers where entry.holders.contains(node) && !kept.contains(name) {
            if entry.holders.count == 1 {
                self.writers[name] = nil
            } else {
                self.writers[name]!.holders.remove(node)
            }
        }
        for (key, tag) in self.completed.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            guard let problem = self.unheld(key, tag) else { continue }
            self.foundAtRestart.append(InvariantViolation(
                invariant: "completed-at-majority", node: node,
                detail: "after the restart, key \(Self.text(key)) completed with tag \(tag) but \(problem)"))
        }
    }

    /// Why tag `tag` of `key` is not held by a majority, or `nil` when it is.
    func unheld(_ key: [UInt8], _ tag: ABDTag) -> String? {
        let holders = self.members.filter { (self.held[$0]?[key] ?? .zero) >= tag }
        guard !self.quorum.isPhase2Quorum(holders.count) else { return nil }
        return "only \(holders.map(\.description).joined(separator: ", ")) hold it or newer"
    }

    /// A key in a violation's text, as footprints show it (printable, or hex).
    static func text(_ key: [UInt8]) -> String { KeySpan.key(key).description }
}
