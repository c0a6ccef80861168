import SynodCore

// Membership changes by joint consensus (Ongaro's thesis §4.3, the paper's §6), as etcd-raft
// does them: a change of voters first moves the cluster to a joint configuration (old and new
// voters, each needing its own majority), which the leader leaves by appending the new
// configuration alone once the joint one is committed. A configuration takes effect on each
// replica when its entry is appended, committed or not, and is undone if the entry is
// truncated. Learners receive the log and never vote.

extension RaftReplica {
    public var membership: Membership? { self.configuration }

    public var membershipIsCommitted: Bool { self.log.membershipIndex <= self.commitIndex }

    /// Starts moving the cluster to `voters` and `learners`. Refused while a change is under
    /// way (an uncommitted configuration, or a joint one not yet left), before this leader has
    /// committed an entry of its own term (so that it knows the committed configuration), and
    /// when a learner to promote is more than `maxLearnerLagEntries` behind.
    public mutating func changeMembership(
        voters: [NodeID], learners: [NodeID], addresses: [NodeID: String]
    ) -> MembershipChangeRefusal? {
        guard self.role == .leader else { return .notLeader(hint: self.leader) }
        if let problem = Membership.problem(voters: voters, learners: learners) { return .invalid(problem) }
        let current = self.configuration
        guard !current.isJoint, self.log.membershipIndex <= self.commitIndex else {
            return .busy("a membership change is under way (\(current)); try again once it is committed")
        }
        guard self.commitIndex >= self.termStartIndex else {
            return .busy("this leader has not yet committed an entry of its term; try again shortly")
        }
        if let transferee = self.transferee { return .busy("leadership is being handed to \(transferee)") }
        if let (node, _) = addresses.first(where: { $0.value.utf8.count > Membership.maximumAddressBytes }) {
            return .invalid("the address of \(node) is longer than \(Membership.maximumAddressBytes) bytes")
        }
        let target = Membership(voters: voters, learners: learners, addresses: current.addresses.merging(addresses) { $1 })
        if target == current { return nil }
        for node in target.voters where current.learners.contains(node) {
            let behind = self.log.lastIndex.rawValue - self.progress[self.position(of: node)!].matchIndex.rawValue
            if behind > UInt64(self.options.maxLearnerLagEntries) { return .learnerBehind(node, entries: behind) }
        }
        // Learners never count toward a quorum: changing only them needs no joint step.
        let entry = target.voters == current.voters
            ? target
            : Membership(
                voters: target.voters, learners: target.learners, outgoing: current.voters,
                addresses: current.addresses.merging(target.addresses) { $1 })
        self.appendToOwnLog(configuration: entry)
        return nil
    }

    /// Whether this replica may stand for election: it votes in its newest configuration, or
    /// in the newest one it knows committed while a later one is not (thesis §4.2.2: a
    /// replica outside its newest configuration may still be needed until that is committed;
    /// without this, the up-to-date replicas that a change removes or demotes stop
    /// campaigning, and the voters that lack the change cannot win without their votes).
    var mayCampaign: Bool {
        if self.configuration.isVoter(self.id) { return true }
        return self.log.membershipIndex > self.commitIndex && self.log.membership(at: self.commitIndex).isVoter(self.id)
    }

    /// The position of `node` in `known`, if this replica knows of it.
    func position(of node: NodeID) -> Int? { self.known.firstIndex(of: node) }

    /// The position of `node`, which becomes known (with fresh per-replica state) if it was not.
    mutating func learn(_ node: NodeID) -> Int {
        if let position = self.position(of: node) { return position }
        self.known.append(node)
        self.votesGranted.append(false)
        var progress = FollowerProgress()
        progress.nextIndex = self.log.lastIndex.next
        self.progress.append(progress)
        self.lastReadAcknowledgement.append(0)
        self.recentlyActive.append(false)
        return self.known.count - 1
    }

    /// Takes up the log's newest configuration if it changed (after any change to the log).
    mutating func refreshMembership() {
        let membership = self.log.membership
        guard membership != self.configuration else { return }
        self.configuration = membership
        for node in membership.everyone { _ = self.learn(node) }
        let known = self.known
        let positions = { (nodes: [NodeID]) -> [Int] in nodes.map { known.firstIndex(of: $0)! } }
        self.voterPositions = positions(membership.voters)
        self.outgoingPositions = positions(membership.outgoing)
        let previous = self.replicationPositions
        self.replicationPositions = positions(membership.everyone.filter { $0 != self.id })
        for position in self.replicationPositions where !previous.contains(position) {
            // A replica (re)joining starts from a probe (what this leader knew of it may be
            // stale) that carries the newest entry: the change that added it.
            self.progress[position] = FollowerProgress()
            self.progress[position].nextIndex = max(self.log.lastIndex, self.log.base.next)
        }
        if !self.mayCampaign && (self.role == .candidate || self.role == .preCandidate) {
            self.becomeFollower(term: self.term, leader: nil)
        }
        if let transferee = self.transferee, !membership.voters.contains(transferee) { self.transferee = nil }
    }

    /// Whether the replicas marked in `granted` (by position) form a quorum of the current
    /// configuration: a majority of its voters, and while joint, of the outgoing voters too.
    func isQuorum(_ granted: [Bool]) -> Bool {
        func majority(_ positions: [Int]) -> Bool {
            let count = positions.reduce(0) { $0 + (granted[$1] ? 1 : 0) }
            return QuorumSystem.majority(of: positions.count).isPhase1Quorum(count)
        }
        return majority(self.voterPositions) && (self.outgoingPositions.isEmpty || majority(self.outgoingPositions))
    }

    /// The largest value a quorum of the current configuration reaches, given one value per
    /// known replica (the commit index from match indexes, the confirmed read context).
    func quorumValue(_ values: [UInt64], newVotersOnly: Bool = false) -> UInt64 {
        func value(_ positions: [Int]) -> UInt64 {
            QuorumSystem.majority(of: positions.count).phase2QuorumValue(positions.map { values[$0] })
        }
        let incoming = value(self.voterPositions)
        return self.outgoingPositions.isEmpty || newVotersOnly ? incoming : min(incoming, value(self.outgoingPositions))
    }

    /// After the commit index moved on a leader: leave a committed joint configuration, and
    /// hand leadership over once a committed configuration no longer counts this leader as a
    /// voter (it led the change through, without counting itself toward the new majority).
    mutating func leaderCommitted() {
        guard self.role == .leader, self.log.membershipIndex <= self.commitIndex else { return }
        let current = self.configuration
        if current.isJoint {
            self.appendToOwnLog(configuration: current.leavingJoint)
        } else if !current.isVoter(self.id) && !self.handingOver {
            self.handOver()
        }
    }

    /// A leader outside the configuration hands leadership to the voter whose log is most up
    /// to date, and steps down when that one wins or an election timeout passes.
    mutating func handOver() {
        self.handingOver = true
        guard let best = self.voterPositions.max(by: {
            (self.progress[$0].matchIndex, $1) < (self.progress[$1].matchIndex, $0)
        }) else { return }
        self.transferee = nil
        _ = self.transferLeadership(to: self.known[best])
    }

    @discardableResult
    mutating func appendToOwnLog(configuration: Membership) -> LogIndex {
        let index = self.log.append(RaftEntry(term: self.term, configuration: configuration))
        self.markDirty(from: index)
        self.refreshMembership()
        return index
    }
}
