import SynodCore

extension RaftReplica {
    /// Becomes a follower of `term`; a change of term clears the vote (§5.1, §5.2).
    mutating func becomeFollower(term: Term, leader: NodeID?) {
        precondition(term >= self.term, "terms never go backwards")
        let changed = term != self.term || self.role != .follower || leader != self.leader
        if term != self.term || leader != self.leader { self.abandonUnansweredFollowerReads() }
        if term != self.term {
            self.term = term
            self.votedFor = nil
            self.hardStateDirty = true
        }
        if self.role == .leader { self.rejectPendingReads() }
        self.transferee = nil
        self.handingOver = false
        self.role = .follower
        self.leader = leader
        self.resetElectionTimeout()
        if changed {
            self.output.events.append(.becameFollower(epoch: term.rawValue, leader: leader))
        }
    }

    /// The election timer fired: ask first (Pre-Vote) or campaign at once. A replica that may
    /// not campaign (a learner, a removed or a joining replica) waits.
    mutating func campaign() {
        guard self.mayCampaign else {
            // It heard from no leader for an election timeout: it no longer knows one.
            if self.leader != nil {
                self.leader = nil
                self.output.events.append(.becameFollower(epoch: self.term.rawValue, leader: nil))
            }
            self.resetElectionTimeout()
            return
        }
        if self.options.preVote {
            self.becomePreCandidate()
        } else {
            self.becomeCandidate(transfer: false)
        }
    }

    /// Asks every member whether it would vote for this replica in the next term (thesis
    /// §9.6), without changing its own term or vote; its own answer counts at once.
    mutating func becomePreCandidate() {
        precondition(self.role != .leader, "a leader does not campaign")
        if self.leader != nil || self.role == .candidate {
            self.output.events.append(.becameFollower(epoch: self.term.rawValue, leader: nil))
        }
        self.abandonUnansweredFollowerReads()
        self.role = .preCandidate
        self.leader = nil
        self.resetElectionTimeout()
        self.votesGranted = Array(repeating: false, count: self.known.count)
        self.votesGranted[self.selfPosition] = true
        let request = RequestVote(term: self.term.next, lastLogIndex: self.log.lastIndex, lastLogTerm: self.log.lastTerm)
        for peer in self.voters where peer != self.id {
            self.send(.preVote(request), to: peer, afterSync: false)
        }
        if self.isQuorum(self.votesGranted) { self.becomeCandidate(transfer: false) }
    }

    /// Starts an election for the next term, voting for itself (§5.2); `transfer` when the
    /// leader asked for it (TimeoutNow).
    mutating func becomeCandidate(transfer: Bool) {
        if self.role == .leader { self.rejectPendingReads() }
        self.abandonUnansweredFollowerReads()
        self.term = self.term.next
        self.votedFor = self.id
        self.hardStateDirty = true
        self.role = .candidate
        self.leader = nil
        self.resetElectionTimeout()
        self.votesGranted = Array(repeating: false, count: self.known.count)
        self.output.events.append(.becameCandidate(epoch: self.term.rawValue))
        let request = RequestVote(
            term: self.term, lastLogIndex: self.log.lastIndex, lastLogTerm: self.log.lastTerm, transfer: transfer)
        for peer in self.voters where peer != self.id {
            self.send(.requestVote(request), to: peer, afterSync: false)
        }
        // The candidate's own vote counts only once it is durable.
        self.send(.voteResponse(VoteResponse(term: self.term, granted: true)), to: self.id, afterSync: true)
    }

    /// Takes leadership of the current term and appends a no-op so that entries of earlier
    /// terms become committed through it (§5.4.2, §8).
    mutating func becomeLeader() {
        precondition(self.role == .candidate, "only a candidate becomes leader")
        self.role = .leader
        self.leader = self.id
        self.heartbeatElapsedTicks = 0
        self.readContextCounter = 0
        self.readContextSent = 0
        self.lastReadAcknowledgement = Array(repeating: 0, count: self.known.count)
        self.recentlyActive = Array(repeating: false, count: self.known.count)
        self.quorumCheckElapsedTicks = 0
        self.transferee = nil
        self.handingOver = false
        self.leaseForfeited = false
        self.contextSentAt = []
        self.uncommittedBytes = 0  // the term is new: none of its entries exists yet
        for position in self.progress.indices {
            self.progress[position] = FollowerProgress()
            self.progress[position].nextIndex = self.log.lastIndex.next
        }
        self.output.events.append(.becameLeader(epoch: self.term.rawValue))
        if self.options.mutation == .commitPreviousTermByCounting {
            self.termStartIndex = self.log.lastIndex
            self.acknowledgeOwnLog()
        } else {
            self.termStartIndex = self.appendToOwnLog(nil)
        }
    }

    /// Check-quorum: a leader that heard from fewer than a quorum (itself included) since the
    /// last check steps down, so that its followers' leases lapse and a new leader can rise.
    mutating func checkQuorum() {
        self.quorumCheckElapsedTicks = 0
        self.recentlyActive[self.selfPosition] = true
        let quorumActive = self.isQuorum(self.recentlyActive)
        self.recentlyActive = Array(repeating: false, count: self.known.count)
        if !quorumActive {
            self.becomeFollower(term: self.term, leader: nil)
        }
    }

    /// Tells the transfer's target, whose log matches this leader's, to campaign now.
    mutating func sendTimeoutNow(to position: Int) {
        guard !self.timeoutNowSent else { return }
        self.timeoutNowSent = true
        // The target's election skips the followers' lease check: no more lease reads here.
        self.leaseForfeited = true
        self.send(.timeoutNow(TimeoutNow(term: self.term)), to: self.known[position], afterSync: false)
    }

    /// The voters of the configuration in effect (new and outgoing), sorted.
    var voters: [NodeID] { (self.voterPositions + self.outgoingPositions).map { self.known[$0] }.sorted() }

    mutating func resetElectionTimeout() {
        self.electionElapsedTicks = 0
        self.electionTimeoutTicks = self.random.integer(
            in: self.options.electionTimeoutTicksMin...self.options.electionTimeoutTicksMax)
    }

    mutating func send(_ message: RaftMessage, to peer: NodeID, afterSync: Bool) {
        self.output.messages.append(Envelope(to: peer, message: message, afterSync: afterSync))
    }
}
