import SynodCore

/// The leaderless Paxos log's safety properties, checked after every step (see `SlotLedger`):
/// one value per ballot and slot, agreement, and Lemma 1. Proposals come from the phase-2
/// accepts instances send; a choice from a proposer's own announcement that its value is
/// chosen, made right after a quorum accepted it in its current ballot (the bound).
public struct PaxosLogMonitor: SafetyMonitor {
    public typealias Observed = PaxosLogReplica

    let members: [NodeID]
    var ledger = SlotLedger()
    var checkedThrough: [UInt64]

    public init(members: [NodeID]) {
        self.members = members.sorted()
        self.checkedThrough = Array(repeating: 0, count: members.count)
    }

    public mutating func observe(
        node: NodeID, replica: PaxosLogReplica, ready: Ready<PaxosLogMessage, PaxosLogRecord>
    ) -> [InvariantViolation] {
        var violations: [InvariantViolation] = []
        var announced: Set<UInt64> = []
        for envelope in ready.messages {
            guard case .instance(let slot, let message) = envelope.message else { continue }
            switch message {
            case .accept(let ballot, let bytes):
                self.ledger.proposal(slot: slot, ballot: ballot, value: Self.value(bytes), node: node, into: &violations)
            case .decided(let bytes):
                guard announced.insert(slot).inserted, let instance = replica.instance(at: slot) else { continue }
                self.ledger.choice(slot: slot, value: Self.value(bytes), bound: instance.ballot, node: node, into: &violations)
            default:
                continue
            }
        }
        let position = self.members.firstIndex(of: node)!
        self.checkedThrough[position] = max(self.checkedThrough[position], replica.compactedThrough)
        self.ledger.learnedPrefix(
            through: replica.chosenThrough, value: replica.chosenValue(at:), checkedThrough: &self.checkedThrough[position],
            node: node, into: &violations)
        return violations
    }

    public mutating func restarted(node: NodeID, replica: PaxosLogReplica, recovered: Recovered<PaxosLogRecord>) {
        self.checkedThrough[self.members.firstIndex(of: node)!] = 0
    }

    static func value(_ bytes: [UInt8]) -> SlotValue { (try? SlotValue.decode(bytes)) ?? .noop }
}
