import SynodCore

/// What a Paxos log replica knows to be chosen (shared by Multi-Paxos and the leaderless Paxos
/// log): the compacted prefix, held by a snapshot; the chosen values after it; and values known
/// chosen beyond a gap.
struct ChosenSlots: Sendable {
    /// The compacted prefix and the snapshot holding it.
    var compacted: CompactedPrefix
    /// The chosen values of slots `compacted.through + 1 ... through`.
    private(set) var prefix: [SlotValue] = []
    /// Values known chosen beyond `through`, not contiguous with it yet.
    private(set) var ahead: [UInt64: SlotValue] = [:]

    init(members: Int, restoring snapshot: Snapshot?) {
        self.compacted = CompactedPrefix(members: members, restoring: snapshot)
    }

    /// Every slot up to here is chosen and known.
    var through: UInt64 { self.compacted.through + UInt64(self.prefix.count) }

    /// The chosen value of `slot`, if known (not for compacted slots).
    func value(at slot: UInt64) -> SlotValue? {
        guard slot > self.compacted.through else { return nil }
        if slot <= self.through { return self.prefix[Int(slot - self.compacted.through - 1)] }
        return self.ahead[slot]
    }

    /// The chosen values of slots `first ... last`, all after the compaction point.
    func values(from first: UInt64, through last: UInt64) -> [SlotValue] {
        let base = self.compacted.through
        return Array(self.prefix[Int(first - base - 1)..<Int(last - base)])
    }

    /// `value` is chosen in `slot` (kept if another value was learned there first: the
    /// monitors report that). Returns the slots that joined the contiguous prefix.
    mutating func learn(_ slot: UInt64, _ value: SlotValue) -> Range<UInt64> {
        guard slot > self.through else { return self.through..<self.through }
        if self.ahead[slot] == nil { self.ahead[slot] = value }
        return self.extend()
    }

    /// Compacts through `position`, an executed slot, with the driver's state.
    mutating func compact(through position: UInt64, state: [UInt8]) {
        self.prefix.removeFirst(Int(position - self.compacted.through))
        self.compacted.advance(to: Snapshot(position: position, tag: 0, data: state), installs: false)
    }

    /// Another replica's snapshot beyond `through` replaces the prefix; values known chosen
    /// beyond it stay. Returns the slots that then joined the prefix.
    mutating func install(_ snapshot: Snapshot) -> Range<UInt64> {
        self.prefix = []
        self.ahead = self.ahead.filter { $0.key > snapshot.position }
        self.compacted.advance(to: snapshot, installs: true)
        return self.extend()
    }

    private mutating func extend() -> Range<UInt64> {
        let first = self.through + 1
        while let next = self.ahead.removeValue(forKey: self.through + 1) { self.prefix.append(next) }
        return first..<(self.through + 1)
    }
}
