import SynodCore

/// A log of independent Basic Paxos decrees, with no leader: every slot is decided by its own
/// single-decree instance (`SingleDecreePaxos`: both phases, every time), and any replica
/// proposes the commands its clients send.
///
/// Proposers take turns in the log so that they do not collide on a slot (as in Mencius, but
/// among the replicas that are proposing only). A replica with values to propose announces it
/// (`proposing(fromSlot:)`, again every third of `gapTicks` while it goes on); for `gapTicks`
/// after an announcement, the slots s ≥ `fromSlot` with (s − 1) mod n equal to its position
/// are its own. A slot whose owner is not proposing goes to the next member after it that is,
/// so a lone proposer gets every slot. A replica proposes its oldest waiting value into the
/// lowest unused slot assigned to it; one that stops proposing fills its assigned slots below
/// the highest slot in use with no-ops until the others can have noticed (Mencius's skip),
/// and a slot it passed that falls to it when another's claim lapses is filled at once, so
/// the log does not wait on a replica that stopped. A replica that is proposing skips the same
/// way: its assigned slots it has not used below a slot another proposer took get no-ops, and its
/// next value goes above that slot, so proposers with unequal shares of the slots advance
/// together. When another proposer holds a higher
/// ballot in its slot, it leaves the slot and takes the value to its next one instead of
/// dueling. A replica proposes every value waiting (up to `maxBatchValues` and
/// `maxBatchBytes`) as one batch in one slot, so one slot's two phases carry as many commands
/// as arrived while the previous slot was being decided; a batch executes in order at its
/// slot's position (`Committed.index` numbers its commands). While a slot is being decided,
/// its proposer runs phase 1 for its next slot (`prepareAhead`) when that slot will be used (a
/// value waits, or no other replica is proposing), so the next value there needs phase 2 only;
/// a prepared slot left unused below a later slot in use gets a no-op once the replica has
/// nothing in flight or waiting. Assignment is only a policy: any
/// replica may propose in any slot, and every slot runs Basic Paxos; views of who is
/// proposing may differ for a moment, which costs a collision, never safety. A slot still undecided below slots in use after `gapTicks` (its
/// proposer crashed) is filled by a replica proposing a no-op there, which decides the slot's
/// value if one was already chosen. Replicas ask random peers for chosen
/// values they lack. Reads go through the log: a read waits for a barrier (a no-op only this
/// replica can propose, created after the read arrived) to be chosen and executed; every
/// write acknowledged before the read sits in a slot chosen before the barrier existed, hence
/// below it.
///
/// This is the text's Basic Paxos run once per slot: two round trips per slot (one when its
/// phase 1 ran ahead) and dueling proposers under contention, the costs Multi-Paxos's stable
/// leader removes.
public struct PaxosLogReplica: Replica {
    public typealias Message = PaxosLogMessage
    public typealias Record = PaxosLogRecord
    public typealias Options = PaxosLogOptions
    public typealias Session = LeaderFollowingSession
    public typealias Monitor = PaxosLogMonitor

    public static let protocolName = "paxos"
    public static let coordination = Coordination.leaderless

    public let id: NodeID
    public let members: [NodeID]
    let options: PaxosLogOptions
    let selfPosition: Int
    var random: DeterministicRandom

    var instances: [UInt64: SingleDecreePaxos] = [:]
    /// Instances this replica is proposing in.
    var active: Set<UInt64> = []
    var chosen: ChosenSlots
    var executedThrough: UInt64 = 0
    /// The highest slot seen in use (any message or record of it).
    public internal(set) var highestSlotSeen: UInt64 = 0
    /// Slots below this one this replica has used, or passed while they were assigned to
    /// another member.
    var frontier: UInt64 = 1
    /// The tick at which each member (by position) was last heard from.
    var lastHeard: [Int]
    /// The tick at which each other member (by position) last announced it is proposing:
    /// within `gapTicks` of it, it is, and its own slots from `claimedFrom` on are its.
    var lastProposing: [Int]
    var claimedFrom: [UInt64]
    /// This replica's last announcement, and the slot its own slots are claimed from.
    var lastAnnounced = -1_000_000
    var claimFrom: UInt64 = 1

    /// Values waiting to be chosen, oldest first; the first `inFlightValue.elements.count` are in
    /// flight.
    var queue: [SlotValue] = []
    var queueStart = 0
    /// The slot this replica is proposing its oldest waiting values in, and the value it proposed
    /// there: one of them, or a batch of them (meaningful while `currentSlot` is set; kept apart
    /// rather than as one optional because Swift 6.3.1's optimizer crashes on an optional tuple
    /// or struct read in `withInstance`).
    var currentSlot: UInt64?
    var inFlightValue = SlotValue.noop
    /// Values this replica proposed (commands and barriers, counting retries), and the slots it
    /// proposed them in: their ratio is the mean batch.
    var proposedValues: UInt64 = 0
    var proposedSlots: UInt64 = 0
    /// This replica's next slot, whose phase 1 it ran ahead of a value (`prepareAhead`), and
    /// how many of its slots got their value with phase 1 done that way.
    var preparedSlot: UInt64?
    var slotsPreparedAhead: UInt64 = 0
    /// Reads waiting for the barrier of the given nonce to be chosen.
    var readsByBarrier: [UInt64: [ReadRequest]] = [:]
    /// The newest barrier not yet proposed, which new reads may join.
    var openBarrier: UInt64?
    /// Reads whose barrier is chosen, waiting for its slot to be executed.
    var readsAtSlot: [(slot: UInt64, reads: [ReadRequest])] = []
    var pendingReadCount = 0

    var ticks = 0
    var gapSlot: UInt64 = 0
    var gapSinceTick = 0
    var output = Ready<PaxosLogMessage, PaxosLogRecord>()

    /// `proposedValues`, `proposedSlots` and `slotsPreparedAhead` (see there).
    public var counters: [String: UInt64] {
        ["proposedValues": self.proposedValues, "proposedSlots": self.proposedSlots, "slotsPreparedAhead": self.slotsPreparedAhead]
    }

    /// Every slot up to here is chosen and known to this replica.
    public var chosenThrough: UInt64 { self.chosen.through }

    public var committedThrough: UInt64 { self.chosenThrough }

    /// Every slot up to here is compacted: chosen, executed, held by `snapshot`, and its
    /// instance gone.
    public var compactedThrough: UInt64 { self.chosen.compacted.through }
    /// The snapshot holding the compacted slots, if any.
    public var snapshot: Snapshot? { self.chosen.compacted.snapshot }

    /// The chosen value of `slot`, if this replica knows it (not for compacted slots).
    public func chosenValue(at slot: UInt64) -> SlotValue? { self.chosen.value(at: slot) }

    /// The instance of `slot`, if this replica has one.
    public func instance(at slot: UInt64) -> SingleDecreePaxos? { self.instances[slot] }

    /// Each slot's records restore when no value is accepted in a ballot above the promise
    /// recorded before it (an acceptance records its promise first).
    public static func problem(restoring recovered: Recovered<PaxosLogRecord>) -> String? {
        var promised: [UInt64: Ballot] = [:]
        for (position, record) in recovered.records.enumerated() {
            switch record.record {
            case .round: continue
            case .promised(let ballot): promised[record.slot] = max(promised[record.slot] ?? .zero, ballot)
            case .accepted(let value):
                guard value.ballot <= promised[record.slot] ?? .zero else {
                    return "record \(position): slot \(record.slot) accepted in \(value.ballot) above its promise"
                }
            }
        }
        return nil
    }

    public init(config: ReplicaConfig<PaxosLogOptions>, restoring: Recovered<PaxosLogRecord>, randomSeed: UInt64) {
        precondition((try? config.validate()) != nil, "invalid Paxos configuration")
        self.id = config.id
        self.members = config.members
        self.options = config.options
        self.selfPosition = config.members.firstIndex(of: config.id)!
        self.random = DeterministicRandom(seed: randomSeed)
        self.lastHeard = Array(repeating: 0, count: config.members.count)
        self.lastProposing = Array(repeating: -1_000_000, count: config.members.count)
        self.claimedFrom = Array(repeating: 1, count: config.members.count)
        self.chosen = ChosenSlots(members: config.members.count, restoring: restoring.snapshot)
        self.executedThrough = self.chosen.compacted.through
        self.highestSlotSeen = self.chosen.compacted.through
        var records: [UInt64: [PaxosRecord]] = [:]
        // Records of compacted slots are older than the snapshot's checkpoint: ignored.
        for record in restoring.records where record.slot > self.chosen.compacted.through {
            records[record.slot, default: []].append(record.record)
        }
        // In slot order: each instance forks the seeded randomness.
        for (slot, slotRecords) in records.sorted(by: { $0.key < $1.key }) {
            self.instances[slot] = SingleDecreePaxos(
                id: self.id, members: self.members, options: self.options.instanceOptions, restoring: slotRecords,
                randomSeed: self.random.fork())
            self.highestSlotSeen = max(self.highestSlotSeen, slot)
        }
        // Slots below what it used before a restart are left to gap filling.
        self.frontier = self.highestSlotSeen + 1
    }

    /// Whether the member at `position` takes `slot` (as this replica sees it; itself when
    /// `selfProposing`): it is proposing, and claimed its slots from `slot` or earlier.
    func takes(_ slot: UInt64, member position: Int, selfProposing: Bool) -> Bool {
        if position == self.selfPosition { return selfProposing && slot >= self.claimFrom }
        return self.ticks - self.lastProposing[position] < self.options.gapTicks && slot >= self.claimedFrom[position]
    }

    /// The member `slot` is assigned to: its owner if it takes it, else the next member that
    /// does (this replica if none does).
    func assignee(of slot: UInt64, selfProposing: Bool) -> Int {
        let n = self.members.count
        var member = Int((slot - 1) % UInt64(n))
        for _ in 0..<n {
            if self.takes(slot, member: member, selfProposing: selfProposing) { return member }
            member = (member + 1) % n
        }
        return self.selfPosition
    }

    // MARK: Inputs

    public mutating func tick() {
        self.ticks += 1
        for slot in self.active.sorted() {
            self.withInstance(slot) { $0.tick() }
        }
        self.fillGaps()
        if self.ticks % self.options.learnIntervalTicks == 0 && self.members.count > 1 {
            let peers = self.members.filter { $0 != self.id }
            let peer = peers[self.random.integer(in: 0..<peers.count)]
            self.send(.learn(fromSlot: self.chosenThrough + 1), to: peer)
        }
    }

    public mutating func receive(_ message: PaxosLogMessage, from sender: NodeID) {
        guard let senderPosition = self.members.firstIndex(of: sender) else { return }
        self.lastHeard[senderPosition] = self.ticks
        switch message {
        case .instance(let slot, let message):
            guard slot >= 1 else { return }
            if slot <= self.compactedThrough {
                // Compacted here: never run that instance again as a fresh acceptor (a promise
                // without the lost acceptance could let a no-op replace the chosen value). A
                // proposer still working there is behind: it gets the snapshot.
                if self.options.mutation != .promiseOverCompactedSlots {
                    if case .prepare = message { self.sendSnapshot(to: sender) }
                    if case .accept = message { self.sendSnapshot(to: sender) }
                    return
                }
            }
            self.highestSlotSeen = max(self.highestSlotSeen, slot)
            if let value = self.chosenValue(at: slot) {
                // Decided here already: tell the sender instead of running the instance again.
                switch message {
                case .prepare, .accept: self.send(.decided(firstSlot: slot, values: [value]), to: sender)
                default: break
                }
                return
            }
            self.withInstance(slot) { $0.receive(message, from: sender) }
        case .learn(let from):
            guard from >= 1, from <= self.chosenThrough else { return }
            if from <= self.compactedThrough {
                self.sendSnapshot(to: sender)
                return
            }
            // At most `maxSlotsPerMessage` slots, and no more once 8 MiB of commands are in (a
            // slot holds a batch of up to `maxBatchBytes`).
            var end = min(self.chosenThrough, from - 1 + UInt64(self.options.maxSlotsPerMessage))
            var bytes = 0
            for slot in from...end {
                bytes += self.chosenValue(at: slot)!.payloadBytes
                if bytes >= 8 << 20 { end = slot; break }
            }
            self.send(.decided(firstSlot: from, values: self.chosen.values(from: from, through: end)), to: sender)
        case .decided(let first, let values):
            guard first >= 1, first <= UInt64.max - UInt64(values.count) else { return }
            for (offset, value) in values.enumerated() { self.learn(first + UInt64(offset), value) }
        case .snapshot(let snapshot):
            self.install(snapshot)
        case .proposing(let from):
            self.lastProposing[senderPosition] = self.ticks
            self.claimedFrom[senderPosition] = from
        }
        self.advance()
    }

    public mutating func propose(_ command: Command) {
        guard self.queue.count - self.queueStart < self.options.maxQueuedCommands else {
            self.output.rejected.append(Rejection(request: .proposal(command), reason: .overloaded))
            return
        }
        self.queue.append(.command(command))
        self.advance()
    }

    public mutating func read(_ request: ReadRequest) {
        guard self.pendingReadCount < self.options.maxPendingReads else {
            self.output.rejected.append(Rejection(request: .read(request), reason: .overloaded))
            return
        }
        self.pendingReadCount += 1
        if let nonce = self.openBarrier {
            self.readsByBarrier[nonce, default: []].append(request)
        } else {
            let nonce = self.random.next()
            self.openBarrier = nonce
            self.readsByBarrier[nonce] = [request]
            self.queue.append(.barrier(node: self.id, nonce: nonce))
        }
        self.advance()
    }

    /// Log compaction: slots up to `position` are executed and held by the driver's state; their
    /// instances and chosen values are dropped.
    public mutating func compact(through position: UInt64, state: [UInt8]) {
        guard self.snapshotTag(at: position) != nil else { return }
        self.dropInstances(through: position)
        self.chosen.compact(through: position, state: state)
    }

    /// Paxos snapshots carry no stamp (0); `nil` for positions not executed or compacted already.
    public func snapshotTag(at position: UInt64) -> UInt64? {
        position > self.compactedThrough && position <= self.executedThrough ? 0 : nil
    }

    public mutating func ready() -> Ready<PaxosLogMessage, PaxosLogRecord> {
        self.chosen.compacted.handOver(into: &self.output) {
            // Every remaining instance's durable state, in slot order.
            self.instances.keys.sorted().flatMap { slot in
                self.instances[slot]!.durableRecords.map { PaxosLogRecord(slot: slot, record: $0) }
            }
        }
        while self.executedThrough < self.chosenThrough {
            self.executedThrough += 1
            for (index, command) in self.chosenValue(at: self.executedThrough)!.commands.enumerated() {
                self.output.committed.append(Committed(position: self.executedThrough, index: index, command: command))
            }
        }
        while let first = self.readsAtSlot.first, first.slot <= self.executedThrough {
            self.output.reads.append(contentsOf: first.reads)
            self.pendingReadCount -= first.reads.count
            self.readsAtSlot.removeFirst()
        }
        defer { self.output = Ready() }
        return self.output
    }

    // MARK: Proposing

    /// Settles the value in flight once its slot is decided, and starts the next one.
    mutating func advance() {
        if let slot = self.currentSlot, let chosen = self.chosenValue(at: slot) {
            self.currentSlot = nil
            if chosen == self.inFlightValue {
                let values = self.inFlightValue.elements
                self.queueStart += values.count
                for case .barrier(_, let nonce) in values {
                    if let reads = self.readsByBarrier.removeValue(forKey: nonce) { self.readsAtSlot.append((slot, reads)) }
                }
                if self.queueStart > 1024 && self.queueStart * 2 > self.queue.count {
                    self.queue.removeFirst(self.queueStart)
                    self.queueStart = 0
                }
            }
        }
        // A command already chosen (a client's retry of it reached this replica) is not
        // proposed again; it is answered when executed.
        while self.currentSlot == nil, self.queueStart < self.queue.count,
              case .command = self.queue[self.queueStart], self.chosen.ahead.values.contains(self.queue[self.queueStart])
        {
            self.queueStart += 1
        }
        // Own slots left unused below a slot another proposer took are skipped first, so this
        // replica's next value goes above them rather than holding that slot's execution back.
        self.skipUnusedSlots()
        if self.currentSlot == nil, self.queueStart < self.queue.count { self.proposeNextBatch() }
        // The next slot is prepared while this one is decided when it will be used: a value
        // waits behind the one in flight, or no other replica is proposing (a lone proposer's
        // next value goes there). Otherwise others' slots above it would mostly make it a no-op.
        if self.options.prepareAhead, let slot = self.currentSlot, self.preparedSlot == nil,
           self.queue.count - self.queueStart > self.inFlightValue.elements.count || !self.othersProposing
        {
            self.prepareNextSlot(after: slot)
        }
    }

    /// Whether another member announced it is proposing within `gapTicks`.
    var othersProposing: Bool {
        self.lastProposing.indices.contains { $0 != self.selfPosition && self.ticks - self.lastProposing[$0] < self.options.gapTicks }
    }

    /// Proposes the oldest waiting values in this replica's next slot.
    mutating func proposeNextBatch() {
        let value = self.nextBatch()
        for case .barrier(_, let nonce) in value.elements where nonce == self.openBarrier { self.openBarrier = nil }
        let slot = self.takeSlot()
        self.currentSlot = slot
        self.inFlightValue = value
        self.proposedValues += UInt64(value.elements.count)
        self.proposedSlots += 1
        self.highestSlotSeen = max(self.highestSlotSeen, slot)
        self.active.insert(slot)
        var bytes = WireWriter()
        value.encode(into: &bytes)
        self.withInstance(slot) { $0.propose(bytes.bytes) }
    }

    /// Runs phase 1 for the next slot assigned to this replica above `slot` while `slot` is
    /// being decided, so the next value (or a skip's no-op) there needs phase 2 only. The
    /// ballot's promise stands until a higher ballot comes; the slot is left to the usual
    /// filling if this replica never uses it (after a restart, say).
    mutating func prepareNextSlot(after slot: UInt64) {
        guard self.preparedSlot == nil else { return }
        let next = self.firstFreeOwnSlot(from: slot + 1)
        self.preparedSlot = next
        self.highestSlotSeen = max(self.highestSlotSeen, next)
        self.withInstance(next) { $0.prepare() }
    }

    /// The oldest waiting values, as many as `maxBatchValues` and `maxBatchBytes` allow (at
    /// least one): the value itself when it is alone, else a batch of them.
    func nextBatch() -> SlotValue {
        var values: [SlotValue] = []
        var bytes = 0
        var index = self.queueStart
        while index < self.queue.count && values.count < self.options.maxBatchValues {
            let value = self.queue[index]
            if !values.isEmpty && bytes + value.payloadBytes > self.options.maxBatchBytes { break }
            values.append(value)
            bytes += value.payloadBytes
            index += 1
        }
        return values.count == 1 ? values[0] : .batch(values)
    }

    /// The encoding of a no-op, which proposers that fill gaps send.
    static let noopBytes: [UInt8] = {
        var bytes = WireWriter()
        SlotValue.noop.encode(into: &bytes)
        return bytes.bytes
    }()

    /// The lowest slot assigned to this replica (as a proposer) that nobody has used or
    /// decided as far as it knows: the slot for its next value. A replica far behind the
    /// highest slot in use (it was paused or cut off, and the others reassigned its slots
    /// meanwhile) starts above it instead of learning, one proposal at a time, that the slots
    /// in between are decided.
    ///
    /// It announces that it is proposing, with the slot its claim starts from, before its first
    /// value after the others may have thought it idle, and every third of `gapTicks` while it
    /// goes on: the others then leave its own slots from there on to it, and it fills those it
    /// does not use. Its slots below the claim stay with whoever had them.
    mutating func takeSlot() -> UInt64 {
        var slot = max(self.frontier, self.chosenThrough + 1)
        if self.highestSlotSeen > slot + UInt64(64 * self.members.count) { slot = self.highestSlotSeen + 1 }
        if self.ticks - self.lastAnnounced >= self.options.gapTicks {
            self.claimFrom = slot
        }
        if self.ticks - self.lastAnnounced >= max(1, self.options.gapTicks / 3) {
            self.lastAnnounced = self.ticks
            for member in self.members where member != self.id { self.send(.proposing(fromSlot: self.claimFrom), to: member) }
        }
        if let prepared = self.takePreparedSlot() {
            self.slotsPreparedAhead += 1
            self.frontier = max(self.frontier, prepared + 1)
            return prepared
        }
        slot = self.firstFreeOwnSlot(from: slot)
        self.frontier = slot + 1
        return slot
    }

    /// The lowest slot from `start` on that is assigned to this replica (as a proposer) and that
    /// nobody has used or decided as far as it knows.
    func firstFreeOwnSlot(from start: UInt64) -> UInt64 {
        var slot = start
        while self.chosen.ahead[slot] != nil || self.instances[slot] != nil
            || self.assignee(of: slot, selfProposing: true) != self.selfPosition
        {
            slot += 1
        }
        return slot
    }

    /// The slot prepared ahead, if it is still undecided and its phase 1 still stands (no
    /// higher ballot refused it); it is no longer held either way.
    mutating func takePreparedSlot() -> UInt64? {
        guard let prepared = self.preparedSlot else { return nil }
        self.preparedSlot = nil
        guard prepared > self.chosenThrough, self.chosen.ahead[prepared] == nil,
              self.instances[prepared]?.isPreparedAhead == true
        else { return nil }
        return prepared
    }

    /// Fills the slots still assigned to this replica that it has not used, below the highest
    /// slot in use, with no-ops (Mencius's skip), so that execution does not wait for them: for
    /// as long as the others may still think it proposing (`gapTicks` after its last
    /// announcement, and half as long again for messages in flight); later they assign its
    /// slots to themselves. It skips them whether or not it has values waiting: a proposer
    /// assigned more slots than another (it also takes an idle member's) would otherwise fill
    /// them one slot per round while the other's values, in slots above, wait for them to be
    /// decided; with the skip, its next value goes above them too.
    mutating func skipUnusedSlots() {
        // A slot prepared ahead, with a slot above it in use, gets its no-op (phase 2 only) once
        // this replica has nothing in flight or waiting: while it has, its next value may come
        // before the no-op would be chosen.
        if let prepared = self.preparedSlot, prepared < self.highestSlotSeen, self.currentSlot == nil,
           self.queueStart >= self.queue.count, let slot = self.takePreparedSlot()
        {
            self.active.insert(slot)
            self.withInstance(slot) { $0.propose(Self.noopBytes) }
        }
        let start = max(self.frontier, self.chosenThrough + 1)
        guard start < self.highestSlotSeen else { return }
        guard self.ticks - self.lastAnnounced < self.options.gapTicks + self.options.gapTicks / 2 else {
            self.frontier = self.highestSlotSeen
            return
        }
        let end = min(self.highestSlotSeen, start + 4096)
        self.frontier = end
        for slot in start..<end
        where self.chosen.ahead[slot] == nil && self.instances[slot] == nil
            && self.assignee(of: slot, selfProposing: true) == self.selfPosition
        {
            self.active.insert(slot)
            self.withInstance(slot) { $0.propose(Self.noopBytes) }
        }
    }

    /// Fills the slots this replica passed that are assigned to it now (see above); and when
    /// the lowest undecided slot has stayed undecided (while later slots are in use) for
    /// `gapTicks` times one plus this replica's rank for that slot, proposes no-ops in the
    /// undecided slots from there on (at most 64 at a time); each decides its slot's value if
    /// one was chosen already. Ranks stagger the replicas so that one fills a gap while the
    /// others learn the outcome instead of dueling with it.
    mutating func fillGaps() {
        let lowest = self.chosenThrough + 1
        guard lowest <= self.highestSlotSeen else { return }
        // Slots this replica passed while another member claimed them, assigned to it now
        // that the claim lapsed (the claimant stopped, crashed or restarted): filled at once,
        // if a majority can hear it (cut off, it would only make retries nobody answers).
        let proposing = self.ticks - self.lastAnnounced < self.options.gapTicks
        let passed = self.hearsMajority ? min(self.frontier, self.highestSlotSeen + 1, lowest + 64) : lowest
        for slot in lowest..<max(lowest, passed)
        where self.chosen.ahead[slot] == nil && !self.active.contains(slot)
            && self.assignee(of: slot, selfProposing: proposing) == self.selfPosition
        {
            self.active.insert(slot)
            self.withInstance(slot) { $0.propose(Self.noopBytes) }
        }
        if lowest != self.gapSlot {
            self.gapSlot = lowest
            self.gapSinceTick = self.ticks
            return
        }
        let rank = Int((lowest + UInt64(self.selfPosition)) % UInt64(self.members.count))
        guard self.ticks - self.gapSinceTick >= self.options.gapTicks * (1 + rank) else { return }
        self.gapSinceTick = self.ticks
        var filled = 0
        var slot = lowest
        while slot <= self.highestSlotSeen && filled < 64 {
            if self.chosen.ahead[slot] == nil && !self.active.contains(slot) {
                self.active.insert(slot)
                self.withInstance(slot) { $0.propose(Self.noopBytes) }
                filled += 1
            }
            slot += 1
        }
    }

    /// Whether a majority (this replica included) was heard from within `gapTicks`.
    var hearsMajority: Bool {
        let heard = self.lastHeard.indices.filter { $0 == self.selfPosition || self.ticks - self.lastHeard[$0] < self.options.gapTicks }
        return heard.count > self.members.count / 2
    }

    // MARK: Instances

    /// Runs `body` on the instance of `slot` (created on first use), forwards what it asks
    /// for, and learns its decision.
    mutating func withInstance(_ slot: UInt64, _ body: (inout SingleDecreePaxos) -> Void) {
        var instance = self.instances.removeValue(forKey: slot) ?? SingleDecreePaxos(
            id: self.id, members: self.members, options: self.options.instanceOptions, randomSeed: self.random.fork())
        body(&instance)
        if slot == self.currentSlot && instance.isBackingOff {
            // Another proposer holds a higher ballot here: leave the slot to it and take the
            // value to a slot of this replica's own (the caller advances) rather than duel.
            instance.withdraw()
            self.active.remove(slot)
            self.currentSlot = nil
        }
        let output = instance.ready()
        for record in output.records { self.output.records.append(PaxosLogRecord(slot: slot, record: record)) }
        for envelope in output.messages {
            self.output.messages.append(Envelope(
                to: envelope.to, message: .instance(slot: slot, envelope.message), afterSync: envelope.afterSync))
        }
        let decided = instance.decided
        self.instances[slot] = instance
        if let decided {
            self.active.remove(slot)
            self.learn(slot, (try? SlotValue.decode(decided)) ?? .noop)
        }
    }

    mutating func learn(_ slot: UInt64, _ value: SlotValue) {
        guard slot > self.chosenThrough else { return }
        self.highestSlotSeen = max(self.highestSlotSeen, slot)
        for joined in self.chosen.learn(slot, value) { self.active.remove(joined) }
    }

    // MARK: Snapshots

    /// Another replica's snapshot beyond what this one has chosen: it replaces the state. A
    /// value in flight in a compacted slot is proposed again later (a command chosen twice is
    /// applied once; a barrier chosen twice only costs a slot).
    mutating func install(_ snapshot: Snapshot) {
        guard snapshot.position > self.chosenThrough else { return }
        let position = snapshot.position
        self.dropInstances(through: position)
        for joined in self.chosen.install(snapshot) { self.active.remove(joined) }
        self.executedThrough = position
        self.highestSlotSeen = max(self.highestSlotSeen, position)
        if let slot = self.currentSlot, slot <= position { self.currentSlot = nil }
    }

    mutating func dropInstances(through position: UInt64) {
        self.instances = self.instances.filter { $0.key > position }
        self.active = self.active.filter { $0 > position }
    }

    mutating func sendSnapshot(to member: NodeID) {
        guard let position = self.members.firstIndex(of: member),
              let snapshot = self.chosen.compacted.snapshot(
                  forMemberAt: position, tick: self.ticks, resendTicks: self.options.snapshotResendTicks, force: false)
        else { return }
        self.send(.snapshot(snapshot), to: member)
    }

    mutating func send(_ message: PaxosLogMessage, to member: NodeID) {
        self.output.messages.append(Envelope(to: member, message: message, afterSync: false))
    }
}
