import SynodCore

extension RaftReplica {
    /// §5.2 and §5.4.1: grant at most one vote per term, and only to a candidate whose log is
    /// at least as up to date as ours. The vote is durable before the reply leaves.
    mutating func handleRequestVote(_ request: RequestVote, from candidate: NodeID) {
        guard request.term == self.term else {
            // A stale candidate learns our term from the rejection.
            self.send(.voteResponse(VoteResponse(term: self.term, granted: false)), to: candidate, afterSync: false)
            return
        }
        let canVote = self.votedFor == nil || self.votedFor == candidate
        let granted = canVote && (self.role == .follower || self.role == .preCandidate)
            && Self.isUpToDate(
                lastLogTerm: request.lastLogTerm, lastLogIndex: request.lastLogIndex,
                comparedTo: self.log.lastTerm, self.log.lastIndex)
        if granted {
            if self.role == .preCandidate { self.becomeFollower(term: self.term, leader: nil) }
            self.votedFor = candidate
            self.electionElapsedTicks = 0
            if self.options.mutation != .volatileVotes { self.hardStateDirty = true }
        }
        let afterSync = self.options.mutation != .volatileVotes
        self.send(.voteResponse(VoteResponse(term: self.term, granted: granted)), to: candidate, afterSync: afterSync)
    }

    /// §5.4.1: a log is more up to date if its last term is higher, or the terms are equal and
    /// it is at least as long.
    public static func isUpToDate(
        lastLogTerm: Term, lastLogIndex: LogIndex, comparedTo otherTerm: Term, _ otherIndex: LogIndex
    ) -> Bool {
        lastLogTerm > otherTerm || (lastLogTerm == otherTerm && lastLogIndex >= otherIndex)
    }

    /// §5.2: a candidate that gathers votes from a quorum in its term becomes leader.
    mutating func handleVoteResponse(_ response: VoteResponse, from voter: Int) {
        guard self.role == .candidate, response.term == self.term, response.granted else { return }
        self.votesGranted[voter] = true
        if self.isQuorum(self.votesGranted) {
            self.becomeLeader()
        }
    }

    /// Pre-Vote (thesis §9.6): would this replica vote for the sender in `request.term`? Yes
    /// when it has not heard from a leader within the minimum election timeout, could still
    /// vote in that term, and the sender's log is at least as up to date. Nothing changes
    /// here: no term, no vote, no timer, nothing to make durable.
    mutating func handlePreVote(_ request: RequestVote, from candidate: NodeID) {
        let leaderKnown = self.refusesElections && self.options.mutation != .preVoteIgnoresLeader
        let canVote = request.term > self.term
            || (request.term == self.term && (self.votedFor == nil || self.votedFor == candidate) && self.leader == nil)
        let granted = !leaderKnown && canVote
            && Self.isUpToDate(
                lastLogTerm: request.lastLogTerm, lastLogIndex: request.lastLogIndex,
                comparedTo: self.log.lastTerm, self.log.lastIndex)
        let response = VoteResponse(term: granted ? request.term : self.term, granted: granted)
        self.send(.preVoteResponse(response), to: candidate, afterSync: false)
    }

    /// A pre-candidate that a quorum would vote for starts the real election.
    mutating func handlePreVoteResponse(_ response: VoteResponse, from voter: Int) {
        guard self.role == .preCandidate, response.granted, response.term == self.term.next else { return }
        self.votesGranted[voter] = true
        if self.isQuorum(self.votesGranted) {
            self.becomeCandidate(transfer: false)
        }
    }

    /// The leader of this term hands leadership over: campaign at once, skipping Pre-Vote,
    /// with vote requests that replicas still hearing from that leader answer anyway.
    mutating func handleTimeoutNow(_ request: TimeoutNow, from sender: NodeID) {
        guard request.term == self.term, self.role == .follower || self.role == .preCandidate, self.mayCampaign else { return }
        self.becomeCandidate(transfer: true)
    }

    /// Whether this replica heard from the leader of its term within the minimum election
    /// timeout (a leader hears from itself; check-quorum makes it step down otherwise).
    var hearsFromLeader: Bool {
        self.role == .leader || (self.leader != nil && self.electionElapsedTicks < self.options.electionTimeoutTicksMin)
    }
}
