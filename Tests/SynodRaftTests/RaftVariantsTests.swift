@_spi(Testing) import SynodRaft
import SynodCore
import Testing

extension TestCluster {
    /// Advances every replica by `ticks` ticks, delivering what they send after each round,
    /// except to and from the replicas in `isolated`.
    mutating func run(ticks: Int, isolated: Set<Int> = []) {
        for _ in 0..<ticks {
            for number in 1...self.replicas.count {
                self.replicas[number - 1].tick()
                self.drain(number)
            }
            self.deliverAll(isolated: isolated)
        }
    }

    func leaders() -> [Int] {
        (1...self.replicas.count).filter { self.replicas[$0 - 1].role == .leader }
    }
}

/// Pre-Vote, check-quorum and leadership transfer (thesis §9.6, §6.2, §3.10), each against the
/// same scenario with the feature off, so every test shows what the feature changes.
@Suite("Raft: Pre-Vote, check-quorum, leadership transfer")
struct RaftVariantsTests {
    static func messages(_ ready: Ready<RaftMessage, RaftRecord>) -> [RaftMessage] { ready.messages.map(\.message) }

    @Test("Pre-Vote: an election timeout first asks, leaving term, vote and disk as they are")
    func timeoutAsksFirst() {
        var cluster = TestCluster(size: 3)
        cluster.campaign(1)
        let replica = cluster.replicas[0]
        #expect(replica.role == .preCandidate)
        #expect(replica.term == .zero && replica.votedFor == nil)
        #expect(cluster.lastReady[0].records.isEmpty, "asking writes nothing")
        let asked = cluster.lastReady[0].messages.compactMap { envelope -> (NodeID, Term)? in
            if case .preVote(let request) = envelope.message { return (envelope.to, request.term) }
            return nil
        }
        #expect(Set(asked.map(\.0)) == [TestCluster.node(2), TestCluster.node(3)])
        #expect(asked.allSatisfy { $0.1 == Term(1) })
    }

    @Test("Pre-Vote: a quorum's yes starts the real election, which the replica wins", arguments: [1, 3, 5])
    func preVoteThenElection(size: Int) {
        var cluster = TestCluster(size: size)
        cluster.elect(1)
        #expect(cluster.replicas[0].term == Term(1), "one term: the pre-vote raised none")
        #expect(cluster.replicas.allSatisfy { $0.term == Term(1) })
    }

    @Test("Pre-Vote: refused while the receiver hears from a leader, and the receiver's term stays")
    func preVoteRefusedUnderLeader() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        var voter = cluster.replicas[1]
        #expect(voter.leader == TestCluster.node(1))
        voter.receive(.preVote(RequestVote(term: Term(9), lastLogIndex: LogIndex(50), lastLogTerm: Term(8))), from: TestCluster.node(3))
        #expect(voter.term == Term(1))
        #expect(Self.messages(voter.ready()) == [.preVoteResponse(VoteResponse(term: Term(1), granted: false))])
    }

    @Test("Pre-Vote: granted by a replica with no leader, without changing its term or vote")
    func preVoteGrantedWithoutLeader() {
        var voter = follower(logTerms: [1, 1], term: 1)
        voter.receive(.preVote(RequestVote(term: Term(3), lastLogIndex: LogIndex(2), lastLogTerm: Term(1))), from: NodeID(2))
        #expect(Self.messages(voter.ready()) == [.preVoteResponse(VoteResponse(term: Term(3), granted: true))])
        #expect(voter.term == Term(1) && voter.votedFor == nil)
        // A pre-candidate whose log is behind is refused, with the voter's term.
        voter.receive(.preVote(RequestVote(term: Term(3), lastLogIndex: LogIndex(1), lastLogTerm: Term(1))), from: NodeID(3))
        #expect(Self.messages(voter.ready()) == [.preVoteResponse(VoteResponse(term: Term(1), granted: false))])
    }

    @Test("Pre-Vote: a replica cut off for 100 election timeouts raises no term and deposes nobody when it returns")
    func cutOffReplicaDisruptsNothing() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        cluster.run(ticks: 2_000, isolated: [3])
        #expect(cluster.replicas[2].term == Term(1), "asking raised no term")
        cluster.run(ticks: 100)
        #expect(cluster.leaders() == [1])
        #expect(cluster.replicas.allSatisfy { $0.term == Term(1) })
        #expect(cluster.replicas[2].leader == TestCluster.node(1))
    }

    @Test("without Pre-Vote, the same replica raises its term and deposes the leader when it returns")
    func cutOffReplicaDisruptsWithoutPreVote() {
        var options = RaftOptions()
        options.preVote = false
        var cluster = TestCluster(size: 3, options: options)
        cluster.elect(1)
        cluster.run(ticks: 2_000, isolated: [3])
        #expect(cluster.replicas[2].term > Term(10), "it campaigned again and again")
        cluster.run(ticks: 100)
        #expect(cluster.replicas[0].term > Term(1), "the leader of term 1 was deposed")
    }

    @Test("check-quorum: a leader cut off from its quorum steps down within the minimum election timeout")
    func checkQuorumStepsDown() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        let bound = RaftOptions().electionTimeoutTicksMin * 2
        cluster.run(ticks: bound, isolated: [2, 3])
        #expect(cluster.replicas[0].role == .follower)
        #expect(cluster.replicas[0].leader == nil)
        // Without check-quorum, the same leader still believes it leads.
        var options = RaftOptions()
        options.checkQuorum = false
        var unchecked = TestCluster(size: 3, options: options)
        unchecked.elect(1)
        unchecked.run(ticks: bound * 10, isolated: [2, 3])
        #expect(unchecked.replicas[0].role == .leader)
    }

    @Test("check-quorum: a replica hearing from its leader ignores a higher term's vote request, unless a transfer sent it")
    func leaseIgnoresVotes() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        var voter = cluster.replicas[1]
        voter.receive(.requestVote(RequestVote(term: Term(5), lastLogIndex: LogIndex(9), lastLogTerm: Term(4))), from: TestCluster.node(3))
        #expect(voter.term == Term(1))
        #expect(voter.ready().messages.isEmpty)
        voter.receive(
            .requestVote(RequestVote(term: Term(5), lastLogIndex: LogIndex(9), lastLogTerm: Term(4), transfer: true)),
            from: TestCluster.node(3))
        #expect(voter.term == Term(5) && voter.votedFor == TestCluster.node(3))
    }

    @Test("transfer: the target campaigns on TimeoutNow and wins; nothing committed is lost")
    func transferToCaughtUpFollower() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        for sequence in 1...5 { cluster.propose(1, UInt64(sequence)) }
        cluster.deliverAll()
        let committed = cluster.replicas[0].commitIndex
        #expect(cluster.replicas[0].transferLeadership(to: TestCluster.node(2)) == nil)
        cluster.drain(1)
        #expect(cluster.lastReady[0].messages.contains { $0.to == TestCluster.node(2) && $0.message == .timeoutNow(TimeoutNow(term: Term(1))) })
        // Proposals wait for the outcome: refused, so that clients retry.
        cluster.replicas[0].propose(Command(client: 1, sequence: 6, payload: []))
        #expect(cluster.drain(1).rejected.map(\.reason) == [.overloaded])
        cluster.deliverAll()
        #expect(cluster.leaders() == [2])
        #expect(cluster.replicas[1].term == Term(2))
        #expect(cluster.replicas[1].commitIndex >= committed)
        #expect(cluster.replicas[0].leader == TestCluster.node(2))
    }

    @Test("transfer: a lagging target is caught up first, then told to campaign")
    func transferCatchesUpTarget() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        for sequence in 1...5 { cluster.propose(1, UInt64(sequence)) }
        cluster.deliverAll(isolated: [3])
        #expect(cluster.replicas[2].log.lastIndex < cluster.replicas[0].log.lastIndex)
        #expect(cluster.replicas[0].transferLeadership(to: TestCluster.node(3)) == nil)
        cluster.drain(1)
        #expect(!cluster.lastReady[0].messages.contains { if case .timeoutNow = $0.message { true } else { false } })
        // The lost entries go again after the next heartbeat finds no progress.
        cluster.run(ticks: 2 * RaftOptions().heartbeatIntervalTicks + 1)
        #expect(cluster.leaders() == [3])
        #expect(cluster.replicas[2].log.lastIndex > LogIndex(6), "it holds every entry, and its own no-op")
    }

    @Test("transfer: a target that never wins ends the transfer after an election timeout; proposals resume")
    func transferTimesOut() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        #expect(cluster.replicas[0].transferLeadership(to: TestCluster.node(3)) == nil)
        cluster.drain(1)
        cluster.run(ticks: RaftOptions().electionTimeoutTicksMax, isolated: [3])
        #expect(cluster.leaders() == [1])
        #expect(cluster.replicas[0].transferee == nil)
        cluster.replicas[0].propose(Command(client: 1, sequence: 1, payload: []))
        #expect(cluster.drain(1).rejected.isEmpty)
    }

    @Test("transfer: refused by a follower, for a stranger, and while another is under way")
    func transferRefusals() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        #expect(cluster.replicas[1].transferLeadership(to: TestCluster.node(3)) == .notLeader(hint: TestCluster.node(1)))
        #expect(cluster.replicas[0].transferLeadership(to: NodeID(9)) == .unknownTarget(NodeID(9)))
        #expect(cluster.replicas[0].transferLeadership(to: TestCluster.node(1)) == nil, "already there")
        cluster.deliverAll(isolated: [3])
        #expect(cluster.replicas[0].transferLeadership(to: TestCluster.node(3)) == nil)
        #expect(cluster.replicas[0].transferLeadership(to: TestCluster.node(2)) == .inProgress(to: TestCluster.node(3)))
    }

    @Test("options are set by name, and bad names or values are refused with the known ones")
    func optionsByName() throws {
        var options = RaftOptions()
        try options.set("pre-vote", to: "off")
        try options.set("check-quorum", to: "false")
        #expect(!options.preVote && !options.checkQuorum)
        #expect(throws: ConfigurationError.self) { try options.set("pre-vote", to: "maybe") }
        let error = #expect(throws: ConfigurationError.self) { try options.set("prevote", to: "on") }
        #expect(error?.description.contains("pre-vote, check-quorum") == true)
        try options.set("max-inflight", to: "1")
        #expect(options.maxInflightMessages == 1)
        #expect(throws: ConfigurationError.self) { try options.set("max-inflight", to: "0") }
    }
}
