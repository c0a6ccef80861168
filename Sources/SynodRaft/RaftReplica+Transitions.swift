import SynodCore

extension RaftReplica {
    /// Becomes a follower of `term`; a change of term clears the vote (§5.1, §5.2).
    mutating func becomeFollower(term: Term, leader: NodeID?) {
        precondition(term >= self.term, "terms never go backwards")
        let changed = term != self.term || self.role != .follower || leader != self.leader
        if term != self.term {
            self.term = term
            self.votedFor = nil
            self.hardStateDirty = true
        }
        if self.role == .leader { self.rejectPendingReads() }
        self.role = .follower
        self.leader = leader
        self.resetElectionTimeout()
        if changed {
            self.output.events.append(.becameFollower(epoch: term.rawValue, leader: leader))
        }
    }

    /// Starts an election for the next term, voting for itself (§5.2).
    mutating func becomeCandidate() {
        if self.role == .leader { self.rejectPendingReads() }
        self.term = self.term.next
        self.votedFor = self.id
        self.hardStateDirty = true
        self.role = .candidate
        self.leader = nil
        self.resetElectionTimeout()
        self.votesGranted = Array(repeating: false, count: self.members.count)
        self.output.events.append(.becameCandidate(epoch: self.term.rawValue))
        let request = RequestVote(term: self.term, lastLogIndex: self.log.lastIndex, lastLogTerm: self.log.lastTerm)
        for peer in self.members where peer != self.id {
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
        self.lastReadAcknowledgement = Array(repeating: 0, count: self.members.count)
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

    mutating func resetElectionTimeout() {
        self.electionElapsedTicks = 0
        self.electionTimeoutTicks = self.random.integer(
            in: self.options.electionTimeoutTicksMin...self.options.electionTimeoutTicksMax)
    }

    mutating func send(_ message: RaftMessage, to peer: NodeID, afterSync: Bool) {
        self.output.messages.append(Envelope(to: peer, message: message, afterSync: afterSync))
    }

    mutating func rejectPendingReads() {
        for read in self.pendingReads {
            self.output.rejected.append(Rejection(request: .read(read.request), reason: .notLeader(hint: nil)))
        }
        self.pendingReads.removeAll()
    }
}
