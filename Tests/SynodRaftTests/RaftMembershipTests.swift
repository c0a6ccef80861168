@_spi(Testing) import SynodRaft
import SynodCore
import Testing

extension TestCluster {
    /// Asks replica `number` to move to `voters` and `learners` (1-based numbers), then drains it.
    @discardableResult
    mutating func change(_ number: Int, voters: [Int], learners: [Int] = []) -> MembershipChangeRefusal? {
        let refusal = self.replicas[number - 1].changeMembership(
            voters: voters.map(Self.node), learners: learners.map(Self.node))
        self.drain(number)
        return refusal
    }

    func membership(_ number: Int) -> Membership { self.replicas[number - 1].membership! }
}

func members(_ voters: [Int], learners: [Int] = [], outgoing: [Int] = []) -> Membership {
    Membership(
        voters: voters.map(TestCluster.node), learners: learners.map(TestCluster.node), outgoing: outgoing.map(TestCluster.node))
}

/// Membership changes by joint consensus (thesis §4.3), learners, and a leader removed from
/// its own configuration.
@Suite("Raft: joint consensus and learners")
struct RaftMembershipTests {
    /// A 3-voter cluster of 1...3 made out of a 5-replica one (4 and 5 left out), led by 1.
    static func threeOfFive(options: RaftOptions = RaftOptions()) -> TestCluster {
        var cluster = TestCluster(size: 5, options: options)
        cluster.elect(1)
        #expect(cluster.change(1, voters: [1, 2, 3]) == nil)
        cluster.deliverAll()
        #expect(cluster.membership(1) == members([1, 2, 3]))
        return cluster
    }

    @Test("a change of voters goes through a joint configuration, left on its own once committed")
    func jointThenLeft() {
        var cluster = TestCluster(size: 4)
        cluster.elect(1)
        #expect(cluster.change(1, voters: [1, 2, 3]) == nil)
        #expect(cluster.membership(1) == members([1, 2, 3], outgoing: [1, 2, 3, 4]), "in effect when appended")
        cluster.deliverAll()
        for number in 1...3 { #expect(cluster.membership(number) == members([1, 2, 3])) }
        let changes = cluster.replicas[0].log.configurations.map(\.membership)
        #expect(changes == [members([1, 2, 3], outgoing: [1, 2, 3, 4]), members([1, 2, 3])])
        // Replica 4 saw the joint entry, never the one that left it out: no more log for it.
        #expect(cluster.membership(4) == members([1, 2, 3], outgoing: [1, 2, 3, 4]))
        cluster.propose(1, 1)
        cluster.deliverAll()
        #expect(cluster.replicas[0].commitIndex == cluster.replicas[0].log.lastIndex)
        #expect(cluster.replicas[3].log.lastIndex < cluster.replicas[0].log.lastIndex)
    }

    @Test("while joint, a commit needs a majority of the old voters as well as of the new")
    func jointNeedsBothMajorities() {
        for mutated in [false, true] {
            var options = RaftOptions()
            if mutated { options.mutation = .jointCommitByNewVoters }
            var cluster = Self.threeOfFive(options: options)
            #expect(cluster.change(1, voters: [1, 4, 5]) == nil)
            let joint = cluster.replicas[0].log.lastIndex
            // Only the new voters 4 and 5 hear of it: a new majority, but 1 alone of the old.
            cluster.deliverAll(isolated: [2, 3])
            if mutated {
                #expect(cluster.replicas[0].commitIndex >= joint, "the mutation commits with the new voters alone")
            } else {
                #expect(cluster.replicas[0].commitIndex < joint, "1, 4 and 5 are not a majority of 1, 2, 3")
                cluster.run(ticks: 6, isolated: [3])
                #expect(cluster.replicas[0].commitIndex > joint, "with 2 back, both majorities hold")
                #expect(cluster.membership(1) == members([1, 4, 5]))
            }
        }
    }

    @Test("a learner receives the log, counts toward no quorum, and never campaigns")
    func learner() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        #expect(cluster.change(1, voters: [1, 2], learners: [3]) == nil)
        cluster.deliverAll()
        #expect(cluster.membership(3) == members([1, 2], learners: [3]))
        cluster.propose(1, 1)
        cluster.deliverAll(isolated: [2])
        #expect(cluster.replicas[2].log.lastIndex == cluster.replicas[0].log.lastIndex, "the learner has the entry")
        #expect(cluster.replicas[0].commitIndex < cluster.replicas[0].log.lastIndex, "1 and a learner are no majority of 1, 2")
        for _ in 0..<200 { cluster.replicas[2].tick() }
        #expect(cluster.replicas[2].role == .follower && cluster.replicas[2].term == cluster.replicas[0].term)
        cluster.drain(3)
        #expect(cluster.lastReady[2].messages.isEmpty, "a learner asks nobody for votes")
    }

    @Test("a learner is promoted only once caught up")
    func promotion() {
        var options = RaftOptions()
        options.maxLearnerLagEntries = 2
        var cluster = TestCluster(size: 3, options: options)
        cluster.elect(1)
        #expect(cluster.change(1, voters: [1, 2], learners: [3]) == nil)
        cluster.deliverAll()
        for sequence in 1...5 { cluster.propose(1, UInt64(sequence)) }
        cluster.deliverAll(isolated: [3])
        guard case .learnerBehind(let node, let entries) = cluster.change(1, voters: [1, 2, 3]) else {
            Issue.record("a learner 5 entries behind was promoted")
            return
        }
        #expect(node == TestCluster.node(3) && entries == 5)
        // Heartbeats find the pipelined entries lost, and replicate them again.
        cluster.run(ticks: 6)
        #expect(cluster.change(1, voters: [1, 2, 3]) == nil)
        cluster.deliverAll()
        #expect(cluster.membership(3) == members([1, 2, 3]))
    }

    @Test("changes are refused while one is under way, by a follower, and when invalid")
    func refusals() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        #expect(cluster.change(2, voters: [1, 2]) == .notLeader(hint: TestCluster.node(1)))
        #expect(cluster.change(1, voters: []) == .invalid("a configuration needs at least one voter"))
        #expect(cluster.change(1, voters: [1, 2], learners: [2]) == .invalid("n2 cannot be both a voter and a learner"))
        #expect(cluster.change(1, voters: [1, 2]) == nil)
        guard case .busy = cluster.change(1, voters: [1, 3]) else {
            Issue.record("a second change started while the first was joint")
            return
        }
        #expect(cluster.replicas[0].transferLeadership(to: TestCluster.node(3)) == .unknownTarget(TestCluster.node(3)),
                "3 is no voter of the new configuration")
    }

    @Test("a leader removed from the configuration hands leadership over, steps down, and stays quiet")
    func removedLeaderHandsOver() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        #expect(cluster.change(1, voters: [2, 3]) == nil)
        cluster.deliverAll()
        cluster.run(ticks: 30)
        let leaders = cluster.leaders()
        #expect(leaders.count == 1 && leaders != [1], "leaders: \(leaders)")
        #expect(cluster.replicas[0].role == .follower)
        let term = cluster.replicas[0].term
        cluster.run(ticks: 100, isolated: Set([2, 3].filter { !leaders.contains($0) }))
        #expect(cluster.replicas[0].role == .follower && cluster.replicas[0].term == term, "1 never campaigns again")
    }

    @Test("a configuration entry that is truncated is undone")
    func truncatedChangeUndone() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        #expect(cluster.change(1, voters: [1, 2]) == nil)
        cluster.mailbox.removeAll()  // nobody hears of it
        #expect(cluster.membership(1) == members([1, 2], outgoing: [1, 2, 3]))
        cluster.run(ticks: 60, isolated: [1])
        let leader = try! #require(cluster.leaders().first { $0 != 1 })
        cluster.propose(leader, 7)
        cluster.run(ticks: 10)
        #expect(cluster.replicas[0].role == .follower)
        #expect(cluster.membership(1) == members([1, 2, 3]), "the joint entry was overwritten: back to the bootstrap voters")
        #expect(cluster.replicas[0].log.configurations.isEmpty)
    }

    @Test("the configuration survives a restart and travels with a snapshot")
    func durableConfiguration() throws {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        #expect(cluster.change(1, voters: [1, 2], learners: [3]) == nil)
        cluster.deliverAll()
        let restarted = cluster.restarted(2)
        #expect(restarted.membership == members([1, 2], learners: [3]))
        let index = cluster.replicas[0].commitIndex
        let identity = cluster.replicas[0].snapshotIdentity(at: index.rawValue)
        #expect(try Membership.decode(identity) == members([1, 2], learners: [3]))
        cluster.replicas[0].compact(through: index.rawValue, state: [1])
        let snapshot = try #require(cluster.drain(1).snapshot)
        let fresh = RaftReplica(
            config: ReplicaConfig(id: TestCluster.node(2), members: [1, 2, 3].map(TestCluster.node)),
            restoring: Recovered(snapshot: snapshot, records: []), randomSeed: 3)
        #expect(fresh.membership == members([1, 2], learners: [3]), "restored from the snapshot alone")
    }

    @Test("configuration entries round-trip through the codec; a bad one is refused")
    func codec() throws {
        let addressed = Membership(
            voters: [TestCluster.node(1), TestCluster.node(4)], learners: [TestCluster.node(2)],
            outgoing: [1, 2, 3].map(TestCluster.node), addresses: [TestCluster.node(4): "10.0.0.4:7004", TestCluster.node(9): "dropped"])
        #expect(addressed.addresses == [TestCluster.node(4): "10.0.0.4:7004"], "only members' addresses are kept")
        #expect(addressed.leavingJoint.addresses == addressed.addresses)
        let entry = RaftEntry(term: Term(3), configuration: addressed)
        let record = RaftRecord.entries(first: LogIndex(5), [entry, RaftEntry(term: Term(3), command: nil)])
        #expect(try RaftRecord.decode(record.encoded()) == record)
        var bytes = record.encoded()
        // The first entry's kind byte follows tag, index, count and term.
        #expect(bytes[4] == 2)
        bytes[4] = 7
        #expect(throws: WireError.self) { try RaftRecord.decode(bytes) }
        // A voter that is also a learner is no configuration.
        var writer = WireWriter()
        for list in [[1], [1], []] as [[UInt16]] {
            writer.varint(UInt64(list.count))
            for node in list { NodeID(node).encode(into: &writer) }
        }
        writer.varint(0)
        #expect(throws: WireError.self) { try Membership.decode(writer.bytes) }
        // An address of a replica that is not a member is refused.
        var stranger = WireWriter()
        for list in [[1], [], []] as [[UInt16]] {
            stranger.varint(UInt64(list.count))
            for node in list { NodeID(node).encode(into: &stranger) }
        }
        stranger.varint(1)
        NodeID(5).encode(into: &stranger)
        stranger.data(Array("127.0.0.1:7005".utf8))
        #expect(throws: WireError.self) { try Membership.decode(stranger.bytes) }
        // Every truncation of a valid encoding is refused, never trapped on.
        let valid = addressed.encoded()
        #expect(try Membership.decode(valid) == addressed)
        for length in 0..<valid.count { #expect(throws: WireError.self) { try Membership.decode(Array(valid.prefix(length))) } }
    }
}

@Suite("Raft: a replica that joins a running cluster")
struct RaftJoiningTests {
    /// Replicas 1...3 bootstrap as voters; replica 4 starts outside the first configuration
    /// (`joining`), as a node that `synod serve --join` starts.
    static func cluster() -> TestCluster {
        var cluster = TestCluster(size: 4)
        let first = (1...3).map(TestCluster.node)
        for number in 1...3 {
            cluster.replicas[number - 1] = RaftReplica(
                config: ReplicaConfig(id: TestCluster.node(number), members: first), restoring: .empty, randomSeed: UInt64(number))
        }
        var config = ReplicaConfig<RaftOptions>(id: TestCluster.node(4), members: first)
        config.joining = true
        cluster.replicas[3] = RaftReplica(config: config, restoring: .empty, randomSeed: 4)
        return cluster
    }

    @Test("a joined replica is added as a learner, promoted, leads, and commits")
    func joinedReplicaLeads() {
        var cluster = Self.cluster()
        #expect(cluster.membership(4) == members([1, 2, 3]))
        cluster.elect(1)
        #expect(cluster.change(1, voters: [1, 2, 3], learners: [4]) == nil)
        cluster.deliverAll()
        #expect(cluster.membership(4) == members([1, 2, 3], learners: [4]))
        #expect(cluster.change(1, voters: [1, 2, 3, 4]) == nil)
        cluster.deliverAll()
        #expect(cluster.membership(4) == members([1, 2, 3, 4]))
        #expect(cluster.replicas[0].transferLeadership(to: TestCluster.node(4)) == nil)
        cluster.drain(1)
        cluster.deliverAll(limit: 10_000)
        #expect(cluster.replicas[3].role == .leader)
        cluster.propose(4, 1)
        cluster.deliverAll(limit: 10_000)
        #expect(cluster.mailbox.isEmpty, "the cluster went quiet")
        #expect(cluster.committed[3].contains { $0.command.sequence == 1 }, "the joined leader commits")
    }
}

@Suite("Raft: elections while a change is not yet committed")
struct RaftUncommittedChangeElectionTests {
    @Test("a replica outside its newest, uncommitted configuration still campaigns (thesis §4.2.2): the change completes when its leader dies mid-way")
    func removedButNeededReplicaCampaigns() {
        // Voters 1, 2, 3 (4 a learner), led by 1, move to voters 3 and 4, 2 demoted to learner.
        var cluster = TestCluster(size: 4)
        cluster.elect(1)
        #expect(cluster.change(1, voters: [1, 2, 3], learners: [4]) == nil)
        cluster.deliverAll()
        for _ in 0..<2 { cluster.replicas[0].tick() }
        cluster.drain(1)
        cluster.deliverAll()
        #expect(cluster.change(1, voters: [3, 4], learners: [2]) == nil)
        // The joint configuration commits; the final one reaches 2 only, then 1 dies.
        var steps = 0
        while !cluster.mailbox.isEmpty && steps < 10_000 {
            steps += 1
            let (from, envelope) = cluster.mailbox.removeFirst()
            let to = Int(envelope.to.rawValue)
            if case .appendEntries(let append) = envelope.message, to == 3 || to == 4,
               append.entries.contains(where: { $0.configuration == members([3, 4], learners: [2]) }) {
                continue
            }
            cluster.replicas[to - 1].receive(envelope.message, from: from)
            cluster.drain(to)
        }
        // A heartbeat round that only 2 hears carries the final configuration to it.
        for _ in 0..<2 { cluster.replicas[0].tick() }
        cluster.drain(1)
        cluster.deliverAll(isolated: [3, 4])
        #expect(cluster.membership(2) == members([3, 4], learners: [2]), "2 holds the final configuration, in which it is a learner")
        #expect(cluster.membership(3) == members([3, 4], learners: [2], outgoing: [1, 2, 3]), "3 and 4 hold the joint one")
        #expect(cluster.membership(4) == members([3, 4], learners: [2], outgoing: [1, 2, 3]))
        // Without 1: 3 and 4 cannot win (2 holds a longer log and refuses them), so 2, which
        // votes in the joint configuration it knows committed, must stand.
        var leader: Int?
        for _ in 0..<300 where leader == nil {
            for number in 2...4 {
                cluster.replicas[number - 1].tick()
                cluster.drain(number)
            }
            cluster.deliverAll(isolated: [1])
            leader = (2...4).first { cluster.replicas[$0 - 1].role == .leader }
        }
        #expect(leader != nil, "someone leads again")
        // The change completes: the final configuration commits on 3 and 4, and whoever led
        // without being a voter of it hands over to one that is.
        for _ in 0..<300 {
            for number in 2...4 {
                cluster.replicas[number - 1].tick()
                cluster.drain(number)
            }
            cluster.deliverAll(isolated: [1])
        }
        #expect(cluster.membership(3) == members([3, 4], learners: [2]) && cluster.membership(4) == members([3, 4], learners: [2]))
        let finalLeader = (2...4).first { cluster.replicas[$0 - 1].role == .leader }
        #expect(finalLeader == 3 || finalLeader == 4, "a voter of the final configuration leads: \(String(describing: finalLeader))")
    }
}
