import SynodCore

// Linearizable reads (thesis §6.4): ReadIndex on the leader (one heartbeat round confirms it
// still leads), lease reads (no round while a quorum's acknowledgement is recent enough that no
// other leader can have been elected), and follower reads (a follower asks the leader for the
// read index, then serves from its own state machine once applied that far).

extension RaftReplica {
    /// Whether this replica serves linearizable reads itself: the leader, or (with follower
    /// reads) a member that heard from its leader within the minimum election timeout.
    public var readsLocally: Bool {
        self.role == .leader || self.canAskForReadIndex
    }

    /// Whether a follower may ask its leader for a read index: follower reads are on, it is a
    /// member, and it hears from that leader (a replica removed without learning it, or cut
    /// off, stops hearing from it and sends its reads elsewhere).
    var canAskForReadIndex: Bool {
        self.options.followerReads && self.role == .follower && self.hearsFromLeader && self.configuration.contains(self.id)
    }

    /// Reads served under a lease (by this leader) and as a follower, and snapshot chunks sent
    /// (and sent again from where a follower stopped), since this replica started.
    public var counters: [String: UInt64] {
        [
            "leaseReads": self.leaseReadsServed, "followerReads": self.followerReadsServed,
            "snapshotChunks": self.snapshotChunksSent, "snapshotChunksResumed": self.snapshotChunksResumed,
            "snapshotTransfersResumedAfterRestart": self.snapshotTransfersResumedAfterRestart,
        ]
    }

    public mutating func read(_ request: ReadRequest) {
        guard self.role == .leader else {
            self.readAsFollower(request)
            return
        }
        guard self.pendingReads.count < self.options.maxPendingReads else {
            self.output.rejected.append(Rejection(request: .read(request), reason: .overloaded))
            return
        }
        if self.options.mutation == .readsWithoutQuorumCheck {
            self.output.reads.append(request)
            return
        }
        self.pendingReads.append(self.confirmation(for: .local(request)))
    }

    /// The index a read arriving now must see applied: max(commitIndex, this leader's no-op),
    /// which holds every write acknowledged so far.
    var readIndex: LogIndex { max(self.commitIndex, self.termStartIndex) }

    /// A read arriving at this leader, its own or a follower's: it may be answered once this
    /// leader has confirmed it still leads (a heartbeat round after it arrived, or a lease that
    /// holds now) and, for its own, has applied up to `readIndex`.
    mutating func confirmation(for asker: PendingRead.Asker) -> PendingRead {
        if self.leaseHolds {
            if case .local = asker { self.leaseReadsServed += 1 }
            return PendingRead(asker: asker, readIndex: self.readIndex, context: 0)
        }
        self.readContextCounter += 1
        return PendingRead(asker: asker, readIndex: self.readIndex, context: self.readContextCounter)
    }

    /// Whether this leader's lease holds: a quorum acknowledged a message it sent less than
    /// `leaseTicks` of its ticks ago. Those followers refuse to elect anyone else for an
    /// election timeout of theirs after receiving it (check-quorum), and a replica that
    /// restarts refuses for one election timeout after starting. A leader that asked another
    /// to take over (TimeoutNow) gives its lease up for the rest of its term.
    public var leaseHolds: Bool {
        guard self.options.leaseReads, self.role == .leader, self.transferee == nil, !self.leaseForfeited, !self.handingOver
        else { return false }
        let confirmed = self.confirmedReadContext()
        guard let sent = self.contextSentAt.last(where: { $0.context <= confirmed }) else { return false }
        return self.ticksElapsed < sent.tick + UInt64(self.options.leaseTicks)
    }

    /// Notes that the newest read context is being sent now, for the lease's start.
    mutating func noteContextSent() {
        guard self.options.leaseReads else { return }
        let context = self.readContextCounter
        if context > (self.contextSentAt.last?.context ?? 0) { self.contextSentAt.append((context, self.ticksElapsed)) }
        // Only the newest context a quorum acknowledged, and those after it, still matter.
        let confirmed = self.confirmedReadContext()
        if let keep = self.contextSentAt.lastIndex(where: { $0.context <= confirmed }), keep > 0 {
            self.contextSentAt.removeFirst(keep)
        }
    }

    /// Whether this replica refuses to help elect anyone but the leader it hears from: it
    /// heard from that leader within the minimum election timeout, or (with leases) it
    /// restarted less than that long ago and may have acknowledged a lease before it stopped
    /// (a replica restored at term 0 never acknowledged anything).
    var refusesElections: Bool {
        self.hearsFromLeader || self.ticksElapsed < self.quietUntilTick
    }

    // MARK: Follower reads

    mutating func readAsFollower(_ request: ReadRequest) {
        guard self.canAskForReadIndex, let leader = self.leader else {
            self.output.rejected.append(Rejection(request: .read(request), reason: .notLeader(hint: self.leader)))
            return
        }
        guard self.followerReads.count < self.options.maxPendingReads else {
            self.output.rejected.append(Rejection(request: .read(request), reason: .overloaded))
            return
        }
        self.nextFollowerReadID += 1
        self.followerReads.append(FollowerRead(id: self.nextFollowerReadID, request: request, index: nil, askedAt: self.ticksElapsed))
        self.send(.readIndex(ReadIndexMessage(term: self.term, id: self.nextFollowerReadID)), to: leader, afterSync: false)
    }

    /// A follower asks this leader for a read index: granted once leadership is confirmed.
    mutating func handleReadIndex(_ request: ReadIndexMessage, from follower: NodeID) {
        // A replica outside the configuration no longer receives the log: it could not apply
        // up to the index it would be given.
        guard self.role == .leader, request.term == self.term, self.configuration.contains(follower),
              self.pendingReads.count < self.options.maxPendingReads
        else {
            self.send(.readIndexResponse(ReadIndexMessage(term: self.term, id: request.id)), to: follower, afterSync: false)
            return
        }
        if self.options.mutation == .readsWithoutQuorumCheck {
            let answer = ReadIndexMessage(term: self.term, id: request.id, index: self.readIndex, granted: true)
            self.send(.readIndexResponse(answer), to: follower, afterSync: false)
            return
        }
        self.pendingReads.append(self.confirmation(for: .follower(follower, id: request.id)))
    }

    /// The leader's answer: the read is served once applied up to its index, or refused.
    mutating func handleReadIndexResponse(_ response: ReadIndexMessage, from leader: NodeID) {
        guard let position = self.followerReads.firstIndex(where: { $0.id == response.id && $0.index == nil }) else { return }
        // A bogus index (beyond anything a leader could have committed) is no answer.
        if response.granted && response.term == self.term && leader == self.leader && response.index.rawValue < Term.maximum {
            self.followerReads[position].index = response.index
        } else {
            let read = self.followerReads.remove(at: position)
            self.output.rejected.append(Rejection(request: .read(read.request), reason: .notLeader(hint: self.leader)))
        }
    }

    /// Refuses the follower reads still waiting for a read index (their leader is gone, or
    /// this replica campaigns); those with an index keep it, since it stays a valid bound
    /// (until they expire).
    mutating func abandonUnansweredFollowerReads() {
        guard self.followerReads.contains(where: { $0.index == nil }) else { return }
        for read in self.followerReads where read.index == nil {
            self.output.rejected.append(Rejection(request: .read(read.request), reason: .notLeader(hint: nil)))
        }
        self.followerReads.removeAll { $0.index == nil }
    }

    /// Refuses follower reads not served within two election timeouts: the leader did not
    /// answer, or this replica does not catch up with the index (it was removed from the
    /// configuration without learning it, and receives no more log). The client tries again.
    mutating func expireFollowerReads() {
        let limit = UInt64(2 * self.options.electionTimeoutTicksMax)
        while let oldest = self.followerReads.first, self.ticksElapsed - oldest.askedAt >= limit {
            self.followerReads.removeFirst()
            self.output.rejected.append(Rejection(request: .read(oldest.request), reason: .notLeader(hint: self.leader)))
        }
    }

    // MARK: Serving

    /// Serves the reads that may now be served: this leader's own once confirmed and applied;
    /// followers' read indexes once confirmed; this replica's follower reads once applied.
    mutating func emitReads() {
        if self.role == .leader && !self.pendingReads.isEmpty {
            let confirmed = self.confirmedReadContext()
            var waiting: [PendingRead] = []
            for read in self.pendingReads {
                guard read.context <= confirmed else {
                    waiting.append(read)
                    continue
                }
                switch read.asker {
                case .follower(let node, let id):
                    let answer = ReadIndexMessage(term: self.term, id: id, index: read.readIndex, granted: true)
                    self.send(.readIndexResponse(answer), to: node, afterSync: false)
                case .local(let request) where read.readIndex <= self.emittedCommitIndex:
                    self.output.reads.append(request)
                case .local:
                    waiting.append(read)
                }
            }
            self.pendingReads = waiting
        }
        if !self.followerReads.isEmpty {
            var waiting: [FollowerRead] = []
            for read in self.followerReads {
                if let index = read.index, index <= self.emittedCommitIndex {
                    self.output.reads.append(read.request)
                    self.followerReadsServed += 1
                } else {
                    waiting.append(read)
                }
            }
            self.followerReads = waiting
        }
    }

    /// The newest read context acknowledged by a quorum (this leader included).
    func confirmedReadContext() -> UInt64 {
        var acknowledgements = self.lastReadAcknowledgement
        acknowledgements[self.selfPosition] = self.readContextCounter
        return self.quorumValue(acknowledgements)
    }

    mutating func rejectPendingReads() {
        for read in self.pendingReads {
            switch read.asker {
            case .local(let request):
                self.output.rejected.append(Rejection(request: .read(request), reason: .notLeader(hint: nil)))
            case .follower(let node, let id):
                self.send(.readIndexResponse(ReadIndexMessage(term: self.term, id: id)), to: node, afterSync: false)
            }
        }
        self.pendingReads.removeAll()
    }
}
