import SynodCore

/// Multi-Paxos's safety properties, checked by the simulator after every step (see
/// `SlotLedger`): one value per ballot and slot, agreement, and Lemma 1.
///
/// Proposals come from the accepts replicas send; choices from two sources: each replica's
/// chosen prefix, and a leader's accepts, which announce the prefix it knows to be chosen. Every
/// slot of that prefix the leader proposed in its ballot b was chosen in a ballot no higher than
/// b (in b by a quorum of b, or earlier, before the leader re-proposed it), which is the bound
/// Lemma 1 is checked against.
public struct MultiPaxosMonitor: SafetyMonitor {
    public typealias Observed = MultiPaxosReplica

    let members: [NodeID]
    var ledger = SlotLedger()
    /// How far each ballot's announced chosen prefix has been turned into choices.
    var announcedThrough: [Ballot: UInt64] = [:]
    /// How far each replica's chosen prefix has been compared (per incarnation).
    var checkedThrough: [UInt64]

    public init(members: [NodeID]) {
        self.members = members.sorted()
        self.checkedThrough = Array(repeating: 0, count: members.count)
    }

    public mutating func observe(
        node: NodeID, replica: MultiPaxosReplica, ready: Ready<MultiPaxosMessage, MultiPaxosRecord>
    ) -> [InvariantViolation] {
        var violations: [InvariantViolation] = []
        for envelope in ready.messages {
            guard case .accept(let request) = envelope.message else { continue }
            for (offset, value) in request.values.enumerated() {
                let slot = request.firstSlot + UInt64(offset)
                self.ledger.proposal(slot: slot, ballot: request.ballot, value: value, node: node, into: &violations)
                // A slot this ballot had already announced as chosen before proposing it (the
                // leader learned it from a catch-up first): the proposal carries the choice.
                if slot <= self.announcedThrough[request.ballot] ?? 0 {
                    self.ledger.choice(slot: slot, value: value, bound: request.ballot, node: node, into: &violations)
                }
            }
            let done = self.announcedThrough[request.ballot] ?? 0
            if request.chosenThrough > done {
                self.announcedThrough[request.ballot] = request.chosenThrough
                for slot in (done + 1)...request.chosenThrough {
                    guard let value = self.ledger.value(proposedIn: request.ballot, slot: slot) else { continue }
                    self.ledger.choice(slot: slot, value: value, bound: request.ballot, node: node, into: &violations)
                }
            }
        }
        let position = self.members.firstIndex(of: node)!
        // Compacted slots were checked before they were compacted; installed ones come from a
        // replica whose prefix was checked.
        self.checkedThrough[position] = max(self.checkedThrough[position], replica.compactedThrough)
        self.ledger.learnedPrefix(
            through: replica.chosenThrough, value: replica.chosenValue(at:), checkedThrough: &self.checkedThrough[position],
            node: node, into: &violations)
        return violations
    }

    public mutating func restarted(node: NodeID, replica: MultiPaxosReplica, recovered: Recovered<MultiPaxosRecord>) {
        self.checkedThrough[self.members.firstIndex(of: node)!] = 0
    }
}
