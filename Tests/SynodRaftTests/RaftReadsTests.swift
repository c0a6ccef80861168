@_spi(Testing) @testable import SynodRaft
import SynodCore
import Testing

/// Follower reads (ReadIndex on a follower) and lease reads (thesis §6.4, §6.4.1).
@Suite("Raft: follower reads and lease reads")
struct RaftReadsTests {
    static func read(_ id: UInt64) -> ReadRequest { ReadRequest(id: id) }

    static var leased: RaftOptions {
        var options = RaftOptions()
        options.leaseReads = true
        return options
    }

    /// A 3-replica cluster with leases, led by 1, whose lease holds (a heartbeat round done).
    static func leasedCluster() -> TestCluster {
        var cluster = TestCluster(size: 3, options: Self.leased)
        cluster.elect(1)
        cluster.run(ticks: 2)
        #expect(cluster.replicas[0].leaseHolds)
        return cluster
    }

    /// Messages waiting in the mailbox from `from` to `to`.
    static func pending(_ cluster: TestCluster, from: Int, to: Int) -> [RaftMessage] {
        cluster.mailbox.filter { $0.from == TestCluster.node(from) && $0.envelope.to == TestCluster.node(to) }.map(\.envelope.message)
    }

    @Test("a follower serves a read once the leader confirmed its read index and the follower applied that far")
    func followerRead() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        cluster.propose(1, 1)
        // Replica 2 hears nothing of the new entry, which 1 and 3 commit.
        cluster.deliverAll(isolated: [2])
        let committed = cluster.replicas[0].commitIndex
        #expect(cluster.replicas[1].commitIndex < committed)
        #expect(cluster.replicas[1].readsLocally)
        cluster.replicas[1].read(Self.read(7))
        cluster.drain(2)
        #expect(Self.pending(cluster, from: 2, to: 1).contains { if case .readIndex = $0 { true } else { false } })
        // Only the read-index exchange and the leader's confirming round get through to 2.
        var steps = 0
        while let next = cluster.mailbox.firstIndex(where: { item in
            if case .appendEntries = item.envelope.message, item.envelope.to == TestCluster.node(2) { return false }
            return true
        }), steps < 100 {
            steps += 1
            let (from, envelope) = cluster.mailbox.remove(at: next)
            cluster.replicas[Int(envelope.to.rawValue) - 1].receive(envelope.message, from: from)
            cluster.drain(Int(envelope.to.rawValue))
        }
        #expect(cluster.served[1].isEmpty, "the index is known, but replica 2 has not applied it")
        cluster.deliverAll()
        cluster.run(ticks: 4)
        #expect(cluster.served[1].map(\.id) == [7], "served once applied")
        #expect(cluster.replicas[1].counters["followerReads"] == 1)
    }

    @Test("a follower with no leader, or with follower reads off, refuses the read")
    func followerReadRefused() {
        var cluster = TestCluster(size: 3)
        cluster.replicas[1].read(Self.read(1))
        #expect(cluster.drain(2).rejected.count == 1, "no leader known")
        var options = RaftOptions()
        options.followerReads = false
        var off = TestCluster(size: 3, options: options)
        off.elect(1)
        #expect(!off.replicas[1].readsLocally)
        off.replicas[1].read(Self.read(1))
        guard case .notLeader(let hint)? = off.drain(2).rejected.first?.reason else {
            Issue.record("the read was not refused")
            return
        }
        #expect(hint == TestCluster.node(1))
    }

    @Test("a replica that stops hearing from its leader stops serving reads itself; a learner forgets the leader")
    func silentLeaderEndsLocalReads() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        #expect(cluster.change(1, voters: [1, 2], learners: [3]) == nil)
        cluster.deliverAll()
        // A heartbeat tells the learner its configuration is committed (until then it may
        // still be needed as a voter of the one before, and would campaign: thesis §4.2.2).
        for _ in 0..<RaftOptions().heartbeatIntervalTicks { cluster.replicas[0].tick() }
        cluster.drain(1)
        cluster.deliverAll()
        #expect(cluster.replicas[2].readsLocally, "a learner that hears from the leader reads locally")
        // Found with the simulator: a learner cut off kept reading locally, and its clients'
        // reads went round forever between it and a leader that never answered.
        for _ in 0..<(RaftOptions().electionTimeoutTicksMin) { cluster.replicas[2].tick() }
        #expect(!cluster.replicas[2].readsLocally)
        for _ in 0..<(2 * RaftOptions().electionTimeoutTicksMax) { cluster.replicas[2].tick() }
        #expect(cluster.replicas[2].leader == nil && cluster.replicas[2].role == .follower)
    }

    @Test("a read index the leader cannot confirm is refused: the follower's read fails rather than waits")
    func deposedLeaderRefuses() {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        var follower = cluster.replicas[1]
        follower.read(Self.read(3))
        _ = follower.ready()
        follower.receive(.readIndexResponse(ReadIndexMessage(term: follower.term, id: 1)), from: TestCluster.node(1))
        #expect(follower.ready().rejected.count == 1)
    }

    @Test("under a lease a leader serves reads with no heartbeat round; when the lease lapses, it needs one again")
    func leaseRead() {
        var cluster = Self.leasedCluster()
        cluster.replicas[0].read(Self.read(1))
        let ready = cluster.drain(1)
        #expect(ready.reads.map(\.id) == [1], "served at once")
        #expect(ready.messages.isEmpty, "no round for it")
        #expect(cluster.replicas[0].counters["leaseReads"] == 1)
        // Cut off, the leader's lease runs out within leaseTicks, and reads wait for a round.
        for _ in 0..<Self.leased.leaseTicks { cluster.replicas[0].tick() }
        #expect(!cluster.replicas[0].leaseHolds)
        cluster.replicas[0].read(Self.read(2))
        #expect(cluster.drain(1).reads.isEmpty)
    }

    @Test("lease safety: a lease still held after a later leader's election is caught; a lapsed one is not")
    func leaseSafetyMonitor() {
        var cluster = Self.leasedCluster()
        var monitor = RaftMonitor(members: cluster.members)
        var newLeader = Ready<RaftMessage, RaftRecord>()
        newLeader.events = [.becameLeader(epoch: cluster.replicas[0].term.rawValue + 1)]
        _ = monitor.observe(node: TestCluster.node(2), replica: cluster.replicas[1], ready: newLeader)
        let found = monitor.observe(node: TestCluster.node(1), replica: cluster.replicas[0], ready: Ready())
        #expect(found.map(\.invariant) == ["lease-safety"])
        for _ in 0..<Self.leased.leaseTicks { cluster.replicas[0].tick() }
        #expect(monitor.observe(node: TestCluster.node(1), replica: cluster.replicas[0], ready: Ready()).isEmpty)
    }

    @Test("a leader whose clock runs slower than the drift bound allows still holds its lease when another is elected: caught; within the bound, never",
          arguments: [(0.1, true), (0.6, false)])
    func driftAgainstBound(leaderRate: Double, expectViolation: Bool) {
        // Within maxClockDrift 0.25, a leader's clock runs at least (1 - 0.25) / (1 + 0.25) = 0.6
        // as fast as a follower's; at 0.1 it is far beyond the bound.
        var cluster = Self.leasedCluster()
        var monitor = RaftMonitor(members: cluster.members)
        var found: [InvariantViolation] = []
        var leaderClock = 0.0
        var elected = false
        // The leader is cut off; each step is one tick of the followers' clocks.
        for _ in 0..<100 where found.isEmpty {
            for number in 2...3 {
                cluster.replicas[number - 1].tick()
                cluster.drain(number)
            }
            leaderClock += leaderRate
            while leaderClock >= 1 {
                cluster.replicas[0].tick()
                leaderClock -= 1
            }
            cluster.drain(1)
            cluster.deliverAll(isolated: [1])
            for number in 2...3 where cluster.replicas[number - 1].role == .leader {
                elected = true
                var ready = Ready<RaftMessage, RaftRecord>()
                ready.events = [.becameLeader(epoch: cluster.replicas[number - 1].term.rawValue)]
                found += monitor.observe(node: TestCluster.node(number), replica: cluster.replicas[number - 1], ready: ready)
            }
            found += monitor.observe(node: TestCluster.node(1), replica: cluster.replicas[0], ready: Ready())
        }
        #expect(elected, "the followers elected a new leader")
        #expect(found.map(\.invariant) == (expectViolation ? ["lease-safety"] : []))
    }

    @Test("a leader that sends TimeoutNow gives its lease up for the rest of its term")
    func transferForfeitsLease() {
        var cluster = Self.leasedCluster()
        #expect(cluster.replicas[0].transferLeadership(to: TestCluster.node(2)) == nil)
        cluster.drain(1)
        #expect(!cluster.replicas[0].leaseHolds)
    }

    @Test("with leases, a replica that restarts refuses to help elect anyone for an election timeout")
    func restartQuiet() {
        var cluster = TestCluster(size: 3, options: Self.leased)
        cluster.elect(1)
        var restarted = RaftReplica(
            config: ReplicaConfig(id: TestCluster.node(2), members: cluster.members, options: Self.leased),
            restoring: Recovered(records: cluster.disks[1]), randomSeed: 5)
        let request = RequestVote(term: Term(9), lastLogIndex: LogIndex(100), lastLogTerm: Term(8))
        restarted.receive(.preVote(request), from: TestCluster.node(3))
        restarted.receive(.requestVote(request), from: TestCluster.node(3))
        let refused = restarted.ready().messages.allSatisfy { envelope in
            switch envelope.message {
            case .preVoteResponse(let response), .voteResponse(let response): return !response.granted
            default: return true
            }
        }
        #expect(refused && restarted.term < Term(9))
        for _ in 0..<Self.leased.electionTimeoutTicksMin { restarted.tick() }
        _ = restarted.ready()
        restarted.receive(.preVote(request), from: TestCluster.node(3))
        let granted = restarted.ready().messages.contains { envelope in
            if case .preVoteResponse(let response) = envelope.message { return response.granted }
            return false
        }
        #expect(granted, "once the quiet period is over")
    }

    @Test("lease options: check-quorum required, the drift bound parsed and applied")
    func leaseOptions() throws {
        var options = RaftOptions()
        options.leaseReads = true
        options.checkQuorum = false
        #expect(throws: ConfigurationError.self) { try options.validate() }
        options = RaftOptions()
        try options.set("lease-reads", to: "on")
        try options.set("max-clock-drift", to: "0.25")
        try options.validate()
        #expect(options.leaseTicks == 5, "(10 - 1) × 0.75 / 1.25 = 5.4")
        #expect(options.clockDriftBound == 0.25)
        #expect(throws: ConfigurationError.self) { try options.set("max-clock-drift", to: "lots") }
        options.maxClockDrift = 0.9
        #expect(throws: ConfigurationError.self) { try options.validate() }
    }

    @Test("read-index messages round-trip through the codec")
    func codec() throws {
        for message in [
            RaftMessage.readIndex(ReadIndexMessage(term: Term(4), id: 9)),
            .readIndexResponse(ReadIndexMessage(term: Term(4), id: 9, index: LogIndex(77), granted: true)),
        ] {
            #expect(try RaftMessage.decode(message.encoded()) == message)
        }
    }
}
