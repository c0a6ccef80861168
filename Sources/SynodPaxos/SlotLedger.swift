import SynodCore

/// What a monitor knows about a log of Paxos slots: who proposed what in which ballot, what
/// was chosen (with a ballot the choice is known not to exceed), what replicas learned. Every
/// fact goes through one of three methods, each of which reports the invariants it breaks:
///
/// - **one value per ballot**: no ballot proposes two values for one slot;
/// - **agreement**: no two replicas learn, and no two announcements choose, different values
///   for one slot;
/// - **Lemma 1** (the reference text's; "Paxos Made Simple"'s P2b): once a value is chosen in a
///   slot in ballot b, every proposal for that slot in a ballot above b carries it. With only an
///   upper bound of b known, the check is sound (never early), and runs whichever of the choice
///   and the later proposal is seen first.
struct SlotLedger {
    struct Choice {
        var value: SlotValue
        var bound: Ballot
    }

    private(set) var proposed: [UInt64: [Ballot: SlotValue]] = [:]
    private(set) var learned: [UInt64: SlotValue] = [:]
    private(set) var choices: [UInt64: Choice] = [:]

    /// `ballot` proposed `value` for `slot`.
    mutating func proposal(slot: UInt64, ballot: Ballot, value: SlotValue, node: NodeID, into violations: inout [InvariantViolation]) {
        if let earlier = self.proposed[slot]?[ballot] {
            if earlier != value {
                violations.append(InvariantViolation(
                    invariant: "one-value-per-ballot", node: node,
                    detail: "slot \(slot) proposed as \(earlier) and as \(value) in \(ballot)"))
            }
            return
        }
        self.proposed[slot, default: [:]][ballot] = value
        if let choice = self.choices[slot], ballot > choice.bound, value != choice.value {
            violations.append(Self.lemmaViolation(slot: slot, choice: choice, ballot: ballot, value: value, node: node))
        }
    }

    /// `value` was chosen for `slot` in a ballot no higher than `bound`.
    mutating func choice(slot: UInt64, value: SlotValue, bound: Ballot, node: NodeID, into violations: inout [InvariantViolation]) {
        if let choice = self.choices[slot] {
            if choice.value != value {
                violations.append(InvariantViolation(
                    invariant: "agreement", node: node,
                    detail: "slot \(slot) chosen as \(value) by \(bound), earlier as \(choice.value) by \(choice.bound)"))
                return
            }
            if bound >= choice.bound { return }
        }
        let choice = Choice(value: value, bound: bound)
        self.choices[slot] = choice
        if let learned = self.learned[slot], learned != value {
            violations.append(InvariantViolation(
                invariant: "agreement", node: node, detail: "slot \(slot) chosen as \(value) by \(bound), learned as \(learned)"))
        }
        for (later, proposal) in (self.proposed[slot] ?? [:]).sorted(by: { $0.key < $1.key }) where later > bound && proposal != value {
            violations.append(Self.lemmaViolation(slot: slot, choice: choice, ballot: later, value: proposal, node: node))
        }
    }

    /// A replica learned that `value` is chosen for `slot`.
    mutating func learned(slot: UInt64, value: SlotValue, node: NodeID, into violations: inout [InvariantViolation]) {
        if let first = self.learned[slot] {
            if first != value {
                violations.append(InvariantViolation(
                    invariant: "agreement", node: node, detail: "slot \(slot) learned as \(value), elsewhere as \(first)"))
            }
            return
        }
        self.learned[slot] = value
        if let choice = self.choices[slot], choice.value != value {
            violations.append(InvariantViolation(
                invariant: "agreement", node: node, detail: "slot \(slot) learned as \(value), chosen as \(choice.value)"))
        }
    }

    /// Compares the chosen prefix a replica learned since the last call (per replica and
    /// incarnation, in `checkedThrough`) with what every other replica learned.
    mutating func learnedPrefix(
        through chosenThrough: UInt64, value: (UInt64) -> SlotValue?, checkedThrough: inout UInt64, node: NodeID,
        into violations: inout [InvariantViolation]
    ) {
        while checkedThrough < chosenThrough {
            checkedThrough += 1
            self.learned(slot: checkedThrough, value: value(checkedThrough)!, node: node, into: &violations)
        }
    }

    /// The value `ballot` proposed for `slot`, if seen.
    func value(proposedIn ballot: Ballot, slot: UInt64) -> SlotValue? { self.proposed[slot]?[ballot] }

    static func lemmaViolation(slot: UInt64, choice: Choice, ballot: Ballot, value: SlotValue, node: NodeID) -> InvariantViolation {
        InvariantViolation(
            invariant: "lemma-1", node: node,
            detail: "slot \(slot): \(choice.value) chosen by \(choice.bound), yet \(ballot) proposes \(value)")
    }
}
