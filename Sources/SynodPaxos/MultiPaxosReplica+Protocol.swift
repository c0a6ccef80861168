import SynodCore

extension MultiPaxosReplica {
    // MARK: Pre-Vote

    /// Asks every other member whether it would promise the next ballot, changing nothing
    /// durable; with yes from a phase-1 quorum (its own included), phase 1 starts.
    mutating func startPreVote() {
        if self.leader != nil || self.role == .candidate {
            self.output.events.append(.becameFollower(epoch: self.promised.epoch, leader: nil))
        }
        self.role = .preCandidate
        self.leader = nil
        self.proposals = [:]
        self.resetElectionTimeout()
        self.preBallot = Ballot(round: self.maxRound + 1, node: self.id)
        self.preVotes = Array(repeating: false, count: self.members.count)
        self.preVotes[self.selfPosition] = true
        for member in self.members where member != self.id {
            self.send(.prePrepare(self.preBallot), to: member, afterSync: false)
        }
        if self.quorum.isPhase1Quorum(1) { self.startPhase1() }
    }

    /// Yes when this replica has not heard from a leader within the minimum election timeout
    /// and could promise `ballot`; nothing changes here.
    mutating func onPrePrepare(_ ballot: Ballot, sender: NodeID) {
        let hearsFromLeader = self.role == .leader
            || (self.leader != nil && self.electionElapsedTicks < self.options.electionTimeoutTicksMin)
        self.send(.prePrepareReply(ballot, granted: !hearsFromLeader && ballot > self.promised), to: sender, afterSync: false)
    }

    mutating func onPrePrepareReply(_ ballot: Ballot, granted: Bool, position: Int) {
        guard self.role == .preCandidate, ballot == self.preBallot, granted else { return }
        self.preVotes[position] = true
        if self.quorum.isPhase1Quorum(self.preVotes.reduce(0) { $0 + ($1 ? 1 : 0) }) { self.startPhase1() }
    }

    // MARK: Phase 1

    /// Campaigns with a ballot above every round seen. The round is durable before the
    /// prepare leaves (`afterSync`), so this ballot is never used again, even after a crash.
    mutating func startPhase1() {
        if self.role == .leader { self.rejectPendingReads() }
        self.maxRound += 1
        self.output.records.append(.round(self.maxRound))
        self.ballot = Ballot(round: self.maxRound, node: self.id)
        self.role = .candidate
        self.leader = nil
        self.phase1From = self.chosenThrough + 1
        self.promisesReceived = Array(repeating: nil, count: self.members.count)
        self.proposals = [:]
        self.resetElectionTimeout()
        self.output.events.append(.becameCandidate(epoch: self.ballot.epoch))
        self.broadcast(.prepare(self.ballot, fromSlot: self.phase1From), afterSync: true)
    }

    /// Acceptor, phase 1b: promise never to accept below `ballot`, durably, and report every
    /// value accepted from `from` on.
    mutating func onPrepare(_ ballot: Ballot, from: UInt64, sender: NodeID) {
        self.maxRound = max(self.maxRound, ballot.round)
        guard ballot >= self.promised else {
            self.send(.nack(ballot, promised: self.promised), to: sender, afterSync: false)
            return
        }
        if ballot > self.promised {
            self.raisePromise(to: ballot, leader: nil)
        } else if self.role == .follower {
            // The candidate this acceptor promised is asking for the next page: it is making
            // progress, so do not start a competing phase 1 yet.
            self.electionElapsedTicks = 0
        }
        if from <= self.compactedThrough && self.options.mutation != .promiseOverCompactedSlots {
            // The acceptances of slots up to the compaction point are gone: a promise could not
            // report them, and the candidate would fill chosen slots with no-ops. It gets the
            // snapshot instead, and asks again from after it.
            self.sendSnapshot(to: sender, force: true)
            return
        }
        let all = self.acceptances.filter { $0.key >= from }
            .map { SlotAcceptance(slot: $0.key, ballot: $0.value.ballot, value: $0.value.value) }
            .sorted { $0.slot < $1.slot }
        // One page: at most maxPromiseSlots acceptances and the message byte budget (at least one).
        var page: [SlotAcceptance] = []
        var bytes = 0
        for acceptance in all {
            bytes += acceptance.value.payloadBytes
            if page.count == self.options.maxPromiseSlots || (bytes > self.options.maxPayloadBytesPerMessage && !page.isEmpty) {
                break
            }
            page.append(acceptance)
        }
        self.send(.promise(ballot, fromSlot: from, accepted: page, complete: page.count == all.count), to: sender,
                  afterSync: self.options.mutation != .replyBeforeDurable)
    }

    /// Raises the promise (durably); a replica campaigning or leading with a lower ballot
    /// steps down.
    mutating func raisePromise(to ballot: Ballot, leader: NodeID?) {
        self.promised = ballot
        self.output.records.append(.promised(ballot))
        if ballot != self.ballot || self.role == .follower {
            self.becomeFollower(leader: leader)
        }
    }

    /// Collects an acceptor's promise, page by page; an acceptor counts toward the phase-1
    /// quorum once its last page is in. (Between pages the acceptor's state can only change
    /// through ballots above ours, whose phase 1 must then have completed: our phase 2 cannot
    /// win a quorum, so what the later pages say cannot make a wrong value chosen.)
    mutating func onPromise(
        _ ballot: Ballot, from: UInt64, accepted: [SlotAcceptance], complete: Bool, position: Int, sender: NodeID
    ) {
        // Replies carry their ballot: a stale one never counts toward this ballot's quorum.
        guard self.role == .candidate, ballot == self.ballot else { return }
        let expected = self.promisesReceived[position]?.nextFrom ?? self.phase1From
        guard from == expected, self.promisesReceived[position]?.complete != true else { return }
        guard accepted.allSatisfy({ $0.slot >= from }), complete || !accepted.isEmpty else { return }
        var pages = self.promisesReceived[position] ?? PromisePages(accepted: [], complete: false, nextFrom: from)
        pages.accepted += accepted
        pages.complete = complete
        pages.nextFrom = (accepted.map(\.slot).max() ?? from) + 1
        self.promisesReceived[position] = pages
        if !complete {
            // Phase 1 is making progress: do not give up on this ballot while pages arrive.
            self.electionElapsedTicks = 0
            self.send(.prepare(ballot, fromSlot: pages.nextFrom), to: sender, afterSync: false)
            return
        }
        let count = self.promisesReceived.reduce(0) { $0 + ($1?.complete == true ? 1 : 0) }
        if self.quorum.isPhase1Quorum(count) { self.becomeLeader() }
    }

    /// Phase 1 is complete: every slot after the chosen prefix that an acceptor of the quorum
    /// reported gets the value of its highest accepted ballot (never the most frequent), gaps
    /// get no-ops, and all of them are proposed again in this ballot.
    mutating func becomeLeader() {
        self.role = .leader
        self.leader = self.id
        var reported: [UInt64: [SlotAcceptance]] = [:]
        var lastSlot = self.chosenThrough
        for pages in self.promisesReceived.compactMap({ $0 }) where pages.complete {
            for acceptance in pages.accepted where acceptance.slot > self.chosenThrough {
                reported[acceptance.slot, default: []].append(acceptance)
                lastSlot = max(lastSlot, acceptance.slot)
            }
        }
        if let ahead = self.chosen.ahead.keys.max() { lastSlot = max(lastSlot, ahead) }
        self.proposals = [:]
        if lastSlot > self.chosenThrough {
            for slot in (self.chosenThrough + 1)...lastSlot {
                let value = self.chosen.ahead[slot] ?? self.recoveredValue(reported[slot] ?? []) ?? .noop
                self.proposals[slot] = Proposal(value: value, acknowledged: 0, sentTick: self.ticks)
            }
        }
        self.nextSlot = lastSlot + 1
        self.unsentFrom = self.chosenThrough + 1
        self.peerLearned = Array(repeating: nil, count: self.members.count)
        self.announcedThrough = self.chosenThrough
        self.readContextCounter = 0
        self.readContextSent = 0
        self.readAcknowledged = Array(repeating: 0, count: self.members.count)
        self.heartbeatElapsedTicks = 0
        self.output.events.append(.becameLeader(epoch: self.ballot.epoch))
        // Tell the others at once, even with nothing to recover.
        self.broadcastHeartbeat()
    }

    func recoveredValue(_ acceptances: [SlotAcceptance]) -> SlotValue? {
        if self.options.mutation == .mostFrequentValue {
            var counts: [SlotValue: Int] = [:]
            for acceptance in acceptances { counts[acceptance.value, default: 0] += 1 }
            return acceptances.max { lhs, rhs in
                let (left, right) = (counts[lhs.value]!, counts[rhs.value]!)
                return left != right ? left < right : lhs.ballot < rhs.ballot
            }?.value
        }
        return acceptances.max { $0.ballot < $1.ballot }?.value
    }

    /// A snapshot from a replica that compacted slots this one still needs: beyond the chosen
    /// prefix, it replaces the state machine (every slot up to it is chosen and executed). A
    /// candidate then runs its phase 1 again, in the same ballot, from after the snapshot.
    mutating func onSnapshot(_ snapshot: Snapshot) {
        guard snapshot.position > self.chosenThrough else { return }
        let position = snapshot.position
        self.executedThrough = position
        self.acceptances = self.acceptances.filter { $0.key > position }
        self.proposals = self.proposals.filter { $0.key > position }
        for slot in self.chosen.install(snapshot) { self.proposals[slot] = nil }
        self.nextSlot = max(self.nextSlot, self.chosenThrough + 1)
        self.unsentFrom = max(self.unsentFrom, self.chosenThrough + 1)
        if self.role == .candidate {
            self.phase1From = self.chosenThrough + 1
            self.promisesReceived = Array(repeating: nil, count: self.members.count)
            self.electionElapsedTicks = 0
            self.broadcast(.prepare(self.ballot, fromSlot: self.phase1From), afterSync: true)
        }
    }

    /// Sends this replica's snapshot to `member`, at most once per `snapshotResendTicks` unless
    /// `force` (a candidate's prepare: its phase 1 waits for it).
    mutating func sendSnapshot(to member: NodeID, force: Bool) {
        guard let position = self.members.firstIndex(of: member),
              let snapshot = self.chosen.compacted.snapshot(
                  forMemberAt: position, tick: self.ticks, resendTicks: self.options.snapshotResendTicks, force: force)
        else { return }
        self.send(.snapshot(snapshot), to: member, afterSync: false)
    }

    /// The whole durable state given the snapshot: the round, the promise, and every
    /// acceptance after the compaction point, in runs of one ballot over consecutive slots.
    func checkpointRecords() -> [MultiPaxosRecord] {
        var records: [MultiPaxosRecord] = []
        if self.maxRound > 0 { records.append(.round(self.maxRound)) }
        if self.promised > .zero { records.append(.promised(self.promised)) }
        var run: (first: UInt64, ballot: Ballot, values: [SlotValue])?
        for slot in self.acceptances.keys.sorted() {
            let acceptance = self.acceptances[slot]!
            if let current = run, current.ballot == acceptance.ballot, current.first + UInt64(current.values.count) == slot,
               current.values.count < self.options.maxSlotsPerMessage
            {
                run!.values.append(acceptance.value)
                continue
            }
            if let current = run { records.append(.accepted(firstSlot: current.first, ballot: current.ballot, values: current.values)) }
            run = (slot, acceptance.ballot, [acceptance.value])
        }
        if let current = run { records.append(.accepted(firstSlot: current.first, ballot: current.ballot, values: current.values)) }
        return records
    }

    mutating func onNack(_ ballot: Ballot, promised: Ballot) {
        self.maxRound = max(self.maxRound, promised.round)
        guard self.role != .follower, ballot == self.ballot, promised > self.ballot else { return }
        self.becomeFollower(leader: nil)
    }

    // MARK: Phase 2

    /// Acceptor, phase 2b: accept unless promised a higher ballot; durable before the reply.
    mutating func onAccept(_ request: AcceptRequest, sender: NodeID) {
        let ballot = request.ballot
        self.maxRound = max(self.maxRound, ballot.round)
        var wroteRecords = false
        if ballot < self.promised {
            guard self.options.mutation == .acceptBelowPromise, !request.values.isEmpty else {
                self.send(.nack(ballot, promised: self.promised), to: sender, afterSync: false)
                return
            }
        } else {
            if ballot > self.promised {
                self.raisePromise(to: ballot, leader: ballot.node)
                wroteRecords = true
            } else if ballot != self.ballot && (self.role != .follower || self.leader != ballot.node) {
                self.becomeFollower(leader: ballot.node)
            }
            if self.role == .follower { self.electionElapsedTicks = 0 }
        }
        if request.chosenThrough < self.compactedThrough {
            // The leader lags behind this replica's compaction point: it gets the snapshot.
            self.sendSnapshot(to: sender, force: false)
        }
        // Slots up to the compaction point are chosen and executed here: nothing to accept.
        let compactedInRequest = self.compactedThrough >= request.firstSlot ? self.compactedThrough - request.firstSlot + 1 : 0
        let skipped = Int(min(UInt64(request.values.count), compactedInRequest))
        let firstSlot = request.firstSlot + UInt64(skipped)
        let values = request.values[skipped...]
        if !values.isEmpty {
            for (offset, value) in values.enumerated() {
                self.acceptances[firstSlot + UInt64(offset)] = Acceptance(ballot: ballot, value: value)
            }
            self.output.records.append(.accepted(firstSlot: firstSlot, ballot: ballot, values: Array(values)))
            wroteRecords = true
        }
        // A slot accepted in the ballot of a leader that says it is chosen holds the chosen
        // value: the leader proposes one value per slot in its ballot.
        if ballot == self.promised {
            while self.chosenThrough < request.chosenThrough,
                  let acceptance = self.acceptances[self.chosenThrough + 1], acceptance.ballot == ballot
            {
                self.learn(self.chosenThrough + 1, acceptance.value)
            }
        }
        let reply = AcceptReply(
            ballot: ballot, firstSlot: firstSlot, count: UInt64(values.count),
            learnedThrough: self.chosenThrough, readContext: request.readContext)
        self.send(.accepted(reply), to: sender, afterSync: wroteRecords && self.options.mutation != .replyBeforeDurable)
    }

    /// Leader: count acceptances; a slot accepted by a phase-2 quorum in this ballot is chosen.
    mutating func onAccepted(_ reply: AcceptReply, position: Int) {
        guard self.role == .leader, reply.ballot == self.ballot else { return }
        // The latest report, not the highest: a replica that restarted has learned less.
        self.peerLearned[position] = reply.learnedThrough
        if reply.readContext <= self.readContextCounter && reply.readContext > self.readAcknowledged[position] {
            self.readAcknowledged[position] = reply.readContext
        }
        guard reply.count > 0 else { return }
        let bit: UInt64 = 1 << UInt64(position)
        let first = max(reply.firstSlot, self.chosenThrough + 1)
        let end = min(reply.firstSlot &+ reply.count, self.nextSlot)
        guard first < end else { return }
        for slot in first..<end {
            guard var proposal = self.proposals[slot], proposal.acknowledged & bit == 0 else { continue }
            proposal.acknowledged |= bit
            if self.quorum.isPhase2Quorum(proposal.acknowledged.nonzeroBitCount) {
                self.proposals[slot] = nil
                self.learn(slot, proposal.value)
            } else {
                self.proposals[slot] = proposal
            }
        }
    }

    /// Learns that `value` is chosen in `slot`.
    mutating func learn(_ slot: UInt64, _ value: SlotValue) {
        guard slot > self.chosenThrough else { return }
        for joined in self.chosen.learn(slot, value) { self.proposals[joined] = nil }
    }

    // MARK: Leader housekeeping

    /// Sends every slot proposed since the last call in batches, to every acceptor (this one
    /// included); a pending read with nothing to send gets a heartbeat of its own.
    mutating func flush() {
        if self.unsentFrom < self.nextSlot {
            var first = self.unsentFrom
            while first < self.nextSlot {
                var values: [SlotValue] = []
                var bytes = 0
                var slot = first
                while slot < self.nextSlot && values.count < self.options.maxSlotsPerMessage {
                    let value = self.proposedValue(at: slot)
                    bytes += value.payloadBytes
                    if bytes > self.options.maxPayloadBytesPerMessage && !values.isEmpty { break }
                    values.append(value)
                    slot += 1
                }
                self.broadcast(.accept(self.acceptRequest(first: first, values: values)), afterSync: false)
                first = slot
            }
            self.unsentFrom = self.nextSlot
        } else if self.readContextCounter > self.readContextSent {
            self.broadcastHeartbeat()
        }
        self.readContextSent = self.readContextCounter
    }

    func proposedValue(at slot: UInt64) -> SlotValue {
        self.proposals[slot]?.value ?? self.chosenValue(at: slot) ?? .noop
    }

    func acceptRequest(first: UInt64, values: [SlotValue]) -> AcceptRequest {
        AcceptRequest(
            ballot: self.ballot, firstSlot: first, values: values, chosenThrough: self.chosenThrough,
            readContext: self.readContextCounter)
    }

    mutating func broadcastHeartbeat() {
        let heartbeat = self.acceptRequest(first: self.chosenThrough + 1, values: [])
        for (position, member) in self.members.enumerated() where position != self.selfPosition {
            self.send(.accept(heartbeat), to: member, afterSync: false)
        }
    }

    /// Resends unacknowledged accepts, sends lagging replicas the chosen values they lack, and
    /// heartbeats.
    mutating func heartbeat() {
        self.resendStaleAccepts()
        for (position, member) in self.members.enumerated() where position != self.selfPosition {
            // Only a replica still short of what was announced a heartbeat ago is lagging.
            guard let learned = self.peerLearned[position], learned < self.announcedThrough else { continue }
            if learned < self.compactedThrough {
                self.sendSnapshot(to: member, force: false)
                continue
            }
            var end = min(self.chosenThrough, learned + UInt64(self.options.maxSlotsPerMessage))
            var bytes = 0
            for slot in (learned + 1)...end {
                bytes += self.chosenValue(at: slot)!.payloadBytes
                if bytes > self.options.maxPayloadBytesPerMessage && slot > learned + 1 {
                    end = slot - 1
                    break
                }
            }
            let values = self.chosen.values(from: learned + 1, through: end)
            self.send(.chosen(firstSlot: learned + 1, values: values), to: member, afterSync: false)
        }
        self.announcedThrough = self.chosenThrough
        self.broadcastHeartbeat()
        self.readContextSent = self.readContextCounter
    }

    mutating func resendStaleAccepts() {
        guard self.chosenThrough + 1 < self.nextSlot else { return }
        let stale = self.ticks - self.options.resendTicks
        for (position, member) in self.members.enumerated() {
            let bit: UInt64 = 1 << UInt64(position)
            var runStart: UInt64?
            var values: [SlotValue] = []
            var runBytes = 0
            for slot in (self.chosenThrough + 1)..<self.nextSlot {
                if let proposal = self.proposals[slot], proposal.sentTick <= stale, proposal.acknowledged & bit == 0 {
                    if runStart == nil { runStart = slot }
                    values.append(proposal.value)
                    runBytes += proposal.value.payloadBytes
                    if values.count < self.options.maxSlotsPerMessage && runBytes < self.options.maxPayloadBytesPerMessage {
                        continue
                    }
                }
                if let start = runStart {
                    self.send(.accept(self.acceptRequest(first: start, values: values)), to: member, afterSync: false)
                    runStart = nil
                    values = []
                    runBytes = 0
                }
            }
            if let start = runStart {
                self.send(.accept(self.acceptRequest(first: start, values: values)), to: member, afterSync: false)
            }
        }
        for slot in (self.chosenThrough + 1)..<self.nextSlot where self.proposals[slot].map({ $0.sentTick <= stale }) == true {
            self.proposals[slot]!.sentTick = self.ticks
        }
    }

    // MARK: Outputs

    mutating func emitCommitted() {
        while self.executedThrough < self.chosenThrough {
            self.executedThrough += 1
            // A leader proposes one command per slot; a batch (another protocol's value, from a
            // peer) would still execute whole.
            for (index, command) in self.chosenValue(at: self.executedThrough)!.commands.enumerated() {
                self.output.committed.append(Committed(position: self.executedThrough, index: index, command: command))
            }
        }
    }

    mutating func emitReads() {
        guard self.role == .leader, !self.pendingReads.isEmpty else { return }
        var acknowledgements = self.readAcknowledged
        acknowledgements[self.selfPosition] = self.readContextCounter
        let confirmed = self.quorum.phase2QuorumValue(acknowledgements)
        var served = 0
        for read in self.pendingReads {
            guard read.context <= confirmed, read.readIndex <= self.executedThrough else { break }
            self.output.reads.append(read.request)
            served += 1
        }
        self.pendingReads.removeFirst(served)
    }

    // MARK: Transitions

    mutating func becomeFollower(leader: NodeID?) {
        if self.role == .leader { self.rejectPendingReads() }
        let changed = self.role != .follower || self.leader != leader
        self.role = .follower
        self.leader = leader
        self.proposals = [:]
        self.resetElectionTimeout()
        if changed { self.output.events.append(.becameFollower(epoch: self.promised.epoch, leader: leader)) }
    }

    mutating func rejectPendingReads() {
        for read in self.pendingReads {
            self.output.rejected.append(Rejection(request: .read(read.request), reason: .notLeader(hint: nil)))
        }
        self.pendingReads.removeAll()
    }

    mutating func resetElectionTimeout() {
        self.electionElapsedTicks = 0
        self.electionTimeoutTicks = self.random.integer(
            in: self.options.electionTimeoutTicksMin...self.options.electionTimeoutTicksMax)
    }

    mutating func send(_ message: MultiPaxosMessage, to member: NodeID, afterSync: Bool) {
        self.output.messages.append(Envelope(to: member, message: message, afterSync: afterSync))
    }

    mutating func broadcast(_ message: MultiPaxosMessage, afterSync: Bool) {
        for member in self.members { self.send(message, to: member, afterSync: afterSync) }
    }
}
