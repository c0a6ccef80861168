import SynodCausal
import SynodClocks
import SynodCore

/// The eventually consistent store's invariants:
///
/// - **dot-uniqueness**, after every step: no two writes accepted under one dot (a dot a
///   crash took back before it was durable is free again, since nobody saw it).
/// - **durability**, at every restart: a write whose client was answered (so it was durable
///   at the replica that took it) is still there, or covered, after that replica restarts,
///   whatever its checkpoints discarded.
/// - **convergence**, once faults stopped and every operation ended (`settled`): every replica
///   holds the same state, and every write accepted durably is either there (a sibling) or was
///   causally overwritten: a later write's client had read it (its context covers the dot).
///   A write that vanished otherwise was silently dropped, the last-writer-wins bug.
public struct EventualMonitor: SafetyMonitor {
    public typealias Observed = EventualReplica

    struct Write {
        var command: CommandID
        var key: [UInt8]
        var dot: Dot
        var seen: VectorClock
    }

    /// A write's name: its key and its dot (a replica numbers its writes per key).
    struct Name: Hashable {
        var key: [UInt8]
        var dot: Dot
    }

    let members: [NodeID]
    var writes: [Name: Write] = [:]
    /// Writes whose client got the answer (a replica answers only once the write is durable).
    var acknowledged: Set<CommandID> = []
    /// Found by `restarted`, reported by the next `observe`.
    var foundAtRestart: [InvariantViolation] = []

    public init(members: [NodeID]) { self.members = members.sorted() }

    public mutating func observe(node: NodeID, replica: EventualReplica, ready: Ready<EventualMessage, EventualRecord>) -> [InvariantViolation] {
        var violations = self.foundAtRestart
        self.foundAtRestart = []
        for committed in ready.committed where committed.command.client != 0 {
            self.acknowledged.insert(committed.command.id)
        }
        for accepted in replica.acceptedWrites {
            let name = Name(key: accepted.key, dot: accepted.dot)
            if let known = self.writes[name], known.command != accepted.write {
                violations.append(InvariantViolation(
                    invariant: "dot-uniqueness", node: node,
                    detail: "dot \(accepted.dot) of key \(Self.text(accepted.key)) names \(accepted.write) and \(known.command)"))
            }
            self.writes[name] = Write(command: accepted.write, key: accepted.key, dot: accepted.dot, seen: accepted.seen)
        }
        return violations
    }

    public mutating func restarted(node: NodeID, replica: EventualReplica, recovered: Recovered<EventualRecord>) {
        for (name, write) in self.writes.sorted(by: { ($0.value.command, $0.value.dot) < ($1.value.command, $1.value.dot) })
        where write.dot.node == node {
            guard !(replica.registers[write.key]?.covers(write.dot) ?? false) else { continue }
            if self.acknowledged.contains(write.command) {
                self.foundAtRestart.append(InvariantViolation(
                    invariant: "durability", node: node,
                    detail: "\(write.command) (dot \(write.dot)) on key \(Self.text(write.key)) was answered, so durable, "
                        + "but the restarted replica does not hold it"))
            } else {
                self.writes[name] = nil  // never durable: nobody saw it, its dot is free again
            }
        }
    }

    public mutating func settled(_ replicas: [(node: NodeID, replica: EventualReplica)]) -> [InvariantViolation]? {
        guard let first = replicas.first else { return [] }
        guard replicas.allSatisfy({ $0.replica.registers == first.replica.registers }) else { return nil }
        let state = first.replica.registers
        var violations: [InvariantViolation] = []
        let ordered = self.writes.values.sorted { ($0.command, $0.dot) < ($1.command, $1.dot) }
        for write in ordered {
            let dot = write.dot
            let register = state[write.key] ?? CausalRegister()
            if register.siblings.contains(where: { $0.dot == dot }) { continue }
            let overwriter = ordered.first { $0.key == write.key && $0.seen[dot.node] >= dot.counter }
            if register.covers(dot), overwriter != nil { continue }
            violations.append(InvariantViolation(
                invariant: "convergence", node: nil,
                detail: "\(write.command) (dot \(dot)) on key \(Self.text(write.key)) is gone, yet no write saw it: "
                    + (register.covers(dot) ? "dropped, not overwritten" : "it never reached the converged state")))
            if violations.count >= 5 { break }
        }
        return violations
    }

    /// A key in a violation's text, as footprints show it (printable, or hex).
    static func text(_ key: [UInt8]) -> String { KeySpan.key(key).description }
}
