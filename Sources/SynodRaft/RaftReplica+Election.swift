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
        let granted = canVote && self.role == .follower
            && Self.isUpToDate(
                lastLogTerm: request.lastLogTerm, lastLogIndex: request.lastLogIndex,
                comparedTo: self.log.lastTerm, self.log.lastIndex)
        if granted {
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
        let votes = self.votesGranted.reduce(0) { $0 + ($1 ? 1 : 0) }
        if self.quorum.isPhase1Quorum(votes) {
            self.becomeLeader()
        }
    }
}
