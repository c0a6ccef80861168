@_spi(Testing) import SynodRaft
import SynodCore
import Testing

/// One test per rule of the Raft paper's section 5 (and §8 for the leader's no-op), named
/// after the rule, in the spirit of etcd-raft's `raft_paper_test.go`.
@Suite("Raft §5 rules")
struct RaftPaperTests {
    // MARK: §5.1 Terms

    @Test("§5.1 a message with a newer term turns a leader into a follower of that term")
    func newerTermMakesFollower() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        let leaderTerm = cluster.replicas[0].term
        let newer = AppendEntries(term: leaderTerm.next, prevLogIndex: .zero, prevLogTerm: .zero, entries: [],
                                  leaderCommit: .zero, readContext: 0)
        cluster.replicas[0].receive(.appendEntries(newer), from: TestCluster.node(2))
        #expect(cluster.replicas[0].role == .follower)
        #expect(cluster.replicas[0].term == leaderTerm.next)
        #expect(cluster.replicas[0].leader == TestCluster.node(2))
        let ready = cluster.drain(1)
        #expect(ready.records.contains(.hardState(term: leaderTerm.next, votedFor: nil)))
    }

    @Test("§5.1 a request with a stale term is rejected and told the current term")
    func staleTermRejected() {
        var replica = follower(logTerms: [1], term: 3)
        replica.receive(.appendEntries(AppendEntries(term: Term(2), prevLogIndex: .zero, prevLogTerm: .zero,
                                                     entries: [], leaderCommit: .zero, readContext: 0)),
                        from: NodeID(2))
        let ready = replica.ready()
        guard case .appendResponse(let response) = ready.messages.first?.message else {
            Issue.record("expected an append response"); return
        }
        #expect(!response.success)
        #expect(response.term == Term(3))
        #expect(replica.term == Term(3))
    }

    // MARK: §5.2 Leader election

    @Test("§5.2 an election timeout starts an election: new term, vote for self, RequestVote to all")
    func electionTimeoutStartsElection() {
        var cluster = TestCluster(size: 3, options: .paper)
        cluster.campaign(1)
        let replica = cluster.replicas[0]
        #expect(replica.role == .candidate)
        #expect(replica.term == Term(1))
        #expect(replica.votedFor == TestCluster.node(1))
        let ready = cluster.lastReady[0]
        #expect(ready.records == [.hardState(term: Term(1), votedFor: TestCluster.node(1))])
        let requests = ready.messages.filter { if case .requestVote = $0.message { true } else { false } }
        #expect(Set(requests.map(\.to)) == [TestCluster.node(2), TestCluster.node(3)])
    }

    @Test("§5.2 election timeouts are randomized within the configured range", arguments: [3, 5])
    func randomizedElectionTimeouts(size: Int) {
        var timeouts: Set<Int> = []
        let options = RaftOptions()
        for seed in 1...20 {
            let members = (1...size).map { NodeID(UInt16($0)) }
            var replica = RaftReplica(config: ReplicaConfig(id: members[0], members: members), restoring: .empty,
                                      randomSeed: UInt64(seed))
            var ticks = 0
            while replica.role == .follower { replica.tick(); ticks += 1 }
            #expect((options.electionTimeoutTicksMin...options.electionTimeoutTicksMax).contains(ticks))
            timeouts.insert(ticks)
        }
        #expect(timeouts.count > 3, "timeouts should vary with the seed")
    }

    @Test("§5.2 a candidate that wins votes from a majority becomes leader", arguments: [1, 3, 5])
    func majorityElectsLeader(size: Int) {
        var cluster = TestCluster(size: size)
        cluster.campaign(1)
        cluster.deliverAll(isolated: Set((size / 2 + 2)...(size + 1)))
        #expect(cluster.replicas[0].role == .leader)
    }

    @Test("§5.2 a candidate without a majority does not become leader")
    func minorityDoesNotElect() {
        var cluster = TestCluster(size: 5, options: .paper)
        cluster.campaign(1)
        cluster.deliverAll(isolated: [3, 4, 5])
        #expect(cluster.replicas[0].role == .candidate)
    }

    @Test("§5.2 a replica grants at most one vote per term, first come first served")
    func oneVotePerTerm() {
        var voter = follower(logTerms: [], term: 0)
        let request = RequestVote(term: Term(1), lastLogIndex: .zero, lastLogTerm: .zero)
        voter.receive(.requestVote(request), from: NodeID(2))
        voter.receive(.requestVote(request), from: NodeID(3))
        voter.receive(.requestVote(request), from: NodeID(2))
        let grants = voter.ready().messages.compactMap { envelope -> (NodeID, Bool)? in
            guard case .voteResponse(let response) = envelope.message else { return nil }
            return (envelope.to, response.granted)
        }
        #expect(grants.map(\.1) == [true, false, true])
        #expect(grants.map(\.0) == [NodeID(2), NodeID(3), NodeID(2)])
        #expect(voter.votedFor == NodeID(2))
    }

    @Test("§5.2 a candidate that hears from a leader of its own term steps down")
    func candidateStepsDownForLeader() {
        var cluster = TestCluster(size: 3)
        cluster.campaign(2)
        cluster.mailbox.removeAll()
        cluster.elect(1)
        // Replica 1 won term 2 (replica 2 campaigned in term 1, replica 1 then in term 1 too,
        // or later); whatever the term, replica 2 now follows replica 1.
        #expect(cluster.replicas[1].role == .follower)
        #expect(cluster.replicas[1].leader == TestCluster.node(1))
    }

    // MARK: §5.4.1 Election restriction

    struct UpToDateCase: Sendable, CustomTestStringConvertible {
        var candidateLastTerm: UInt64
        var candidateLastIndex: UInt64
        var voterLogTerms: [UInt64]
        var granted: Bool
        var testDescription: String { "candidate (t\(candidateLastTerm), i\(candidateLastIndex)) vs voter \(voterLogTerms): \(granted)" }
    }

    @Test("§5.4.1 a vote goes only to a candidate whose log is at least as up to date", arguments: [
        UpToDateCase(candidateLastTerm: 3, candidateLastIndex: 1, voterLogTerms: [1, 2, 2], granted: true),
        UpToDateCase(candidateLastTerm: 2, candidateLastIndex: 3, voterLogTerms: [1, 2, 2], granted: true),
        UpToDateCase(candidateLastTerm: 2, candidateLastIndex: 4, voterLogTerms: [1, 2, 2], granted: true),
        UpToDateCase(candidateLastTerm: 2, candidateLastIndex: 2, voterLogTerms: [1, 2, 2], granted: false),
        UpToDateCase(candidateLastTerm: 1, candidateLastIndex: 9, voterLogTerms: [1, 2, 2], granted: false),
        UpToDateCase(candidateLastTerm: 0, candidateLastIndex: 0, voterLogTerms: [], granted: true),
    ])
    func logUpToDateComparison(testCase: UpToDateCase) {
        var voter = follower(logTerms: testCase.voterLogTerms, term: 3)
        let request = RequestVote(term: Term(4), lastLogIndex: LogIndex(testCase.candidateLastIndex),
                                  lastLogTerm: Term(testCase.candidateLastTerm))
        voter.receive(.requestVote(request), from: NodeID(2))
        guard case .voteResponse(let response) = voter.ready().messages.last?.message else {
            Issue.record("expected a vote response"); return
        }
        #expect(response.granted == testCase.granted)
    }

    // MARK: §5.3 Log replication

    @Test("§5.3 AppendEntries is rejected when the log has no entry at prevLogIndex with prevLogTerm")
    func appendEntriesConsistencyCheck() {
        var replica = follower(logTerms: [1, 1, 2], term: 3)
        let entry = RaftEntry(term: Term(3), command: nil)
        // Term mismatch at index 3.
        replica.receive(.appendEntries(AppendEntries(term: Term(3), prevLogIndex: LogIndex(3), prevLogTerm: Term(3),
                                                     entries: [entry], leaderCommit: .zero, readContext: 0)), from: NodeID(2))
        // Index past the end.
        replica.receive(.appendEntries(AppendEntries(term: Term(3), prevLogIndex: LogIndex(5), prevLogTerm: Term(3),
                                                     entries: [entry], leaderCommit: .zero, readContext: 0)), from: NodeID(2))
        let responses = replica.ready().messages.compactMap { envelope -> AppendResponse? in
            if case .appendResponse(let response) = envelope.message { return response } else { return nil }
        }
        #expect(responses.count == 2)
        #expect(responses.allSatisfy { !$0.success })
        #expect(responses[0].rejectedIndex == LogIndex(3))
        #expect(responses[0].hintIndex == LogIndex(2), "the hint skips the whole conflicting term")
        #expect(responses[1].hintIndex == LogIndex(3), "the hint is the follower's last index")
        #expect(replica.log.lastIndex == LogIndex(3), "a rejected append changes nothing")
    }

    @Test("§5.3 a conflicting entry and all that follow it are deleted, then new entries appended")
    func conflictingEntriesTruncated() {
        var replica = follower(logTerms: [1, 1, 2, 2], term: 3)
        let entries = [RaftEntry(term: Term(1), command: Command(client: 9, sequence: 2, payload: [])),
                       RaftEntry(term: Term(3), command: nil)]
        replica.receive(.appendEntries(AppendEntries(term: Term(3), prevLogIndex: LogIndex(1), prevLogTerm: Term(1),
                                                     entries: entries, leaderCommit: .zero, readContext: 0)), from: NodeID(2))
        #expect(replica.log.entries.map(\.term.rawValue) == [1, 1, 3])
        let ready = replica.ready()
        #expect(ready.records == [.entries(first: LogIndex(3), [RaftEntry(term: Term(3), command: nil)])],
                "only the changed suffix is written")
    }

    @Test("§5.3 an entry already present is not rewritten; an old, shorter append truncates nothing")
    func duplicateAppendIsIdempotent() {
        var replica = follower(logTerms: [1, 1, 1], term: 1)
        let entries = [RaftEntry(term: Term(1), command: Command(client: 9, sequence: 2, payload: []))]
        replica.receive(.appendEntries(AppendEntries(term: Term(1), prevLogIndex: LogIndex(1), prevLogTerm: Term(1),
                                                     entries: entries, leaderCommit: .zero, readContext: 0)), from: NodeID(2))
        #expect(replica.log.lastIndex == LogIndex(3))
        #expect(replica.ready().records.isEmpty)
    }

    @Test("§5.3 a follower commits up to min(leaderCommit, index of the last new entry)")
    func followerCommitRule() {
        var replica = follower(logTerms: [1, 1, 1, 1], term: 1)
        replica.receive(.appendEntries(AppendEntries(term: Term(1), prevLogIndex: LogIndex(2), prevLogTerm: Term(1),
                                                     entries: [], leaderCommit: LogIndex(4), readContext: 0)), from: NodeID(2))
        #expect(replica.commitIndex == LogIndex(2), "entries 3 and 4 are not known to match the leader")
        let committed = replica.ready().committed.map(\.position)
        #expect(committed == [1, 2])
    }

    @Test("§5.3 committed commands come out once, in log order, on every replica")
    func committedInOrder() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        for sequence in 1...10 { cluster.propose(1, UInt64(sequence)) }
        cluster.deliverAll()
        // Heartbeats carry the leader's commit index to the followers.
        for _ in 0..<RaftOptions().heartbeatIntervalTicks { cluster.replicas[0].tick() }
        cluster.drain(1)
        cluster.deliverAll()
        for number in 1...3 {
            #expect(cluster.committed[number - 1].map(\.command.sequence) == Array(1...10))
            #expect(cluster.committed[number - 1].map(\.position) == Array(2...11), "index 1 is the leader's no-op")
        }
    }

    @Test("§5.3 a follower redirects proposals to the leader it knows")
    func followerRedirects() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        let command = Command(client: 1, sequence: 1, payload: [])
        cluster.replicas[1].propose(command)
        let ready = cluster.drain(2)
        #expect(ready.rejected.count == 1)
        #expect(ready.rejected.first?.reason == .notLeader(hint: TestCluster.node(1)))
        #expect(cluster.replicas[1].log.lastIndex == LogIndex(1), "a follower appends nothing")
    }

    // MARK: §5.4.2 Committing entries from previous terms (Figure 8)

    /// Figure 8 (c): the leader of term 4 holds an entry of term 2 that is now on a majority;
    /// it must not count it as committed until an entry of its own term is, too.
    static func figure8Leader(mutation: RaftMutation?) -> (RaftReplica, LogIndex) {
        var options = RaftOptions.paper
        options.mutation = mutation
        let members = (1...5).map { NodeID(UInt16($0)) }
        let records: [RaftRecord] = [
            .hardState(term: Term(3), votedFor: nil),
            .entries(first: LogIndex(1), [RaftEntry(term: Term(1), command: Command(client: 1, sequence: 1, payload: [])),
                                          RaftEntry(term: Term(2), command: Command(client: 1, sequence: 2, payload: []))]),
        ]
        var leader = RaftReplica(config: ReplicaConfig(id: members[0], members: members, options: options),
                                 restoring: Recovered(records: records), randomSeed: 1)
        while leader.role != .candidate { leader.tick() }
        _ = leader.ready()
        for voter in [members[0], members[1], members[2]] {
            leader.receive(.voteResponse(VoteResponse(term: Term(4), granted: true)), from: voter)
        }
        #expect(leader.role == .leader)
        _ = leader.ready()
        // Replicas 1, 2 and 3 (a majority of five) now store the term-2 entry at index 2.
        for peer in [members[0], members[1], members[2]] {
            leader.receive(.appendResponse(AppendResponse(term: Term(4), success: true, matchIndex: LogIndex(2),
                                                          rejectedIndex: .zero, hintIndex: .zero, readContext: 0)), from: peer)
        }
        return (leader, LogIndex(2))
    }

    @Test("§5.4.2 a leader never commits an entry of an earlier term by counting replicas (Figure 8)")
    func figure8() {
        var (leader, oldEntry) = Self.figure8Leader(mutation: nil)
        #expect(leader.commitIndex < oldEntry)
        // Once the leader's own no-op (index 3, term 4) is on a majority, both commit.
        for peer in [NodeID(1), NodeID(2), NodeID(3)] {
            leader.receive(.appendResponse(AppendResponse(term: Term(4), success: true, matchIndex: LogIndex(3),
                                                          rejectedIndex: .zero, hintIndex: .zero, readContext: 0)), from: peer)
        }
        #expect(leader.commitIndex == LogIndex(3))
    }

    @Test("§5.4.2 the unsafe variant does commit the earlier-term entry (the mutation is real)")
    func figure8Mutation() {
        let (leader, oldEntry) = Self.figure8Leader(mutation: .commitPreviousTermByCounting)
        #expect(leader.commitIndex == oldEntry)
    }

    // MARK: Persistence before replies (§5.1 Figure 2: "respond after persisting")

    @Test("a vote is durable before the reply that grants it")
    func votePersistedBeforeReply() {
        var voter = follower(logTerms: [], term: 0)
        voter.receive(.requestVote(RequestVote(term: Term(1), lastLogIndex: .zero, lastLogTerm: .zero)), from: NodeID(2))
        let ready = voter.ready()
        #expect(ready.records == [.hardState(term: Term(1), votedFor: NodeID(2))])
        #expect(ready.messages.count == 1)
        #expect(ready.messages[0].afterSync, "the grant must wait for the vote to be synced")
    }

    @Test("entries are durable before the acknowledgement that they are stored")
    func entriesPersistedBeforeAcknowledgement() {
        var replica = follower(logTerms: [1], term: 1)
        let entry = RaftEntry(term: Term(1), command: Command(client: 1, sequence: 5, payload: [1]))
        replica.receive(.appendEntries(AppendEntries(term: Term(1), prevLogIndex: LogIndex(1), prevLogTerm: Term(1),
                                                     entries: [entry], leaderCommit: .zero, readContext: 0)), from: NodeID(2))
        let ready = replica.ready()
        #expect(ready.records == [.entries(first: LogIndex(2), [entry])])
        #expect(ready.messages.count == 1)
        #expect(ready.messages[0].afterSync)
    }

    @Test("a leader counts itself toward a commit only once its own entries are synced")
    func leaderCountsItselfAfterSync() {
        var cluster = TestCluster(size: 1)
        cluster.campaign(1)
        cluster.deliverAll()  // the self-vote arrives after the sync
        #expect(cluster.replicas[0].role == .leader)
        cluster.deliverAll()  // the no-op's self-acknowledgement
        let before = cluster.replicas[0].commitIndex
        cluster.propose(1, 1)
        #expect(cluster.replicas[0].commitIndex == before, "nothing commits before the sync")
        let selfAcks = cluster.lastReady[0].messages.filter { $0.to == TestCluster.node(1) && $0.afterSync }
        #expect(selfAcks.count == 1)
        cluster.deliverAll()
        #expect(cluster.replicas[0].commitIndex == before.next)
    }

    @Test("a candidate counts its own vote only once it is synced")
    func candidateCountsItselfAfterSync() {
        var cluster = TestCluster(size: 1)
        cluster.campaign(1)
        #expect(cluster.replicas[0].role == .candidate)
        #expect(cluster.lastReady[0].messages.allSatisfy { $0.afterSync })
    }

    @Test("a restarted replica recovers term, vote and log from its records")
    func restartRecoversDurableState() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        for sequence in 1...5 { cluster.propose(1, UInt64(sequence)) }
        cluster.deliverAll()
        let original = cluster.replicas[1]
        let recovered = cluster.restarted(2)
        #expect(recovered.term == original.term)
        #expect(recovered.votedFor == original.votedFor)
        #expect(recovered.log.entries == original.log.entries)
        #expect(recovered.role == .follower)
        #expect(recovered.commitIndex == .zero, "the commit index is relearned from the leader")
    }

    // MARK: Reads

    @Test("a ReadIndex read is served only after a quorum confirms the leadership")
    func readIndexNeedsQuorum() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        cluster.replicas[0].read(ReadRequest(id: 7))
        cluster.drain(1)
        cluster.deliverAll(isolated: [2, 3])
        #expect(cluster.served[0].isEmpty, "no follower confirmed the leadership")
        cluster.replicas[0].read(ReadRequest(id: 8))
        cluster.drain(1)
        cluster.deliverAll()
        #expect(cluster.served[0].map(\.id) == [7, 8])
    }

    @Test("without follower reads, a follower rejects reads and names the leader")
    func followerRejectsReads() {
        var options = RaftOptions()
        options.followerReads = false
        var cluster = TestCluster(size: 3, options: options)
        cluster.elect(1)
        cluster.replicas[2].read(ReadRequest(id: 1))
        #expect(cluster.drain(3).rejected.first?.reason == .notLeader(hint: TestCluster.node(1)))
    }

    @Test("forged append responses naming indexes beyond the leader's log are dropped, never trapped on",
          arguments: [UInt64.max, 1_000])
    func forgedResponsesDropped(index: UInt64) {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        let term = cluster.replicas[0].term
        let commit = cluster.replicas[0].commitIndex
        for forged in [
            AppendResponse(term: term, success: true, matchIndex: LogIndex(index), rejectedIndex: .zero, hintIndex: .zero, readContext: 0),
            AppendResponse(term: term, success: false, matchIndex: .zero, rejectedIndex: LogIndex(index), hintIndex: LogIndex(index), readContext: 0),
            AppendResponse(term: term, success: true, matchIndex: .zero, rejectedIndex: .zero, hintIndex: .zero, readContext: index),
        ] {
            cluster.replicas[0].receive(.appendResponse(forged), from: TestCluster.node(2))
            cluster.replicas[0].receive(.appendResponse(forged), from: TestCluster.node(3))
            cluster.drain(1)
        }
        #expect(cluster.replicas[0].commitIndex == commit)
        #expect(cluster.replicas[0].role == .leader)
    }
}
