import SynodCore

/// The compacted prefix of a Paxos log (Multi-Paxos or the leaderless log): every slot up to
/// `through` is chosen, executed, and held by `snapshot`; the log keeps nothing of them. Also
/// what the next `ready()` must hand the driver, and when each member was last sent the
/// snapshot (it is large: resent only after a while, unless a candidate waits for it).
struct CompactedPrefix: Sendable {
    /// Every slot up to here is compacted.
    private(set) var through: UInt64 = 0
    /// The snapshot holding the compacted slots, if any.
    private(set) var snapshot: Snapshot?
    /// A snapshot to hand the driver with a checkpoint: `true` to install (another replica's).
    private var handOver: Bool?
    private var lastSent: [Int]

    init(members: Int, restoring snapshot: Snapshot?) {
        self.lastSent = Array(repeating: Int.min / 2, count: members)
        if let snapshot {
            self.through = snapshot.position
            self.snapshot = snapshot
        }
    }

    /// The log is now compacted through `snapshot.position`, by this replica (`installs`
    /// false) or from another's snapshot (true).
    mutating func advance(to snapshot: Snapshot, installs: Bool) {
        precondition(snapshot.position > self.through, "compaction never goes back")
        self.through = snapshot.position
        self.snapshot = snapshot
        // An install wins over a compaction in the same step: the state machine must change.
        self.handOver = installs || self.handOver == true
    }

    /// The snapshot to send to the member at `position` now, if any: always when `force`,
    /// otherwise once per `resendTicks`.
    mutating func snapshot(forMemberAt position: Int, tick: Int, resendTicks: Int, force: Bool) -> Snapshot? {
        guard let snapshot = self.snapshot, force || tick - self.lastSent[position] >= resendTicks else { return nil }
        self.lastSent[position] = tick
        return snapshot
    }

    /// Puts a pending hand-over into `ready`: the snapshot, and `checkpoint()` as its records
    /// (the whole durable state given the snapshot, which subsumes the records of this step).
    mutating func handOver<Message, Record>(into ready: inout Ready<Message, Record>, checkpoint: () -> [Record]) {
        guard let installs = self.handOver else { return }
        self.handOver = nil
        ready.snapshot = self.snapshot
        ready.installsSnapshot = installs
        ready.checkpoint = true
        ready.records = checkpoint()
    }
}
