@_spi(Testing) import SynodRaft
import SynodCore
import Testing

@Suite("Raft §7: log compaction and InstallSnapshot")
struct RaftSnapshotTests {
    static func entry(_ term: UInt64, _ sequence: UInt64) -> RaftEntry {
        RaftEntry(term: Term(term), command: Command(client: 1, sequence: sequence, payload: [UInt8(sequence)]))
    }

    @Test("a log with a base: indexes, terms and slices account for the compacted prefix")
    func logBase() {
        var log = RaftLog()
        for sequence in 1...6 { log.append(Self.entry(sequence <= 3 ? 1 : 2, UInt64(sequence))) }
        log.compact(through: LogIndex(4))
        #expect(log.base == LogIndex(4) && log.baseTerm == Term(2))
        #expect(log.lastIndex == LogIndex(6) && log.lastTerm == Term(2))
        #expect(log.term(at: LogIndex(4)) == Term(2))
        #expect(log.term(at: LogIndex(3)) == nil, "compacted: unknown")
        #expect(log.entries(from: LogIndex(5), maxCount: 10).map(\.command?.sequence) == [5, 6])
        #expect(log.firstIndex(ofTermAt: LogIndex(6)) == LogIndex(5), "a term's run stops at the base")
        // Replaying a record that starts below the base replaces everything after the base.
        log.apply(first: LogIndex(3), [Self.entry(1, 3), Self.entry(2, 4), Self.entry(3, 50)])
        #expect(log.lastIndex == LogIndex(5) && log.entry(at: LogIndex(5)).command?.sequence == 50)
        // Installing a snapshot the log agrees with keeps the suffix; one it does not, drops it.
        var agreeing = log
        agreeing.install(base: LogIndex(5), term: Term(3))
        #expect(agreeing.base == LogIndex(5) && agreeing.lastIndex == LogIndex(5))
        log.append(Self.entry(3, 51))
        var kept = log
        kept.install(base: LogIndex(5), term: Term(3))
        #expect(kept.lastIndex == LogIndex(6) && kept.entry(at: LogIndex(6)).command?.sequence == 51)
        var dropped = log
        dropped.install(base: LogIndex(5), term: Term(9))
        #expect(dropped.lastIndex == LogIndex(5) && dropped.lastTerm == Term(9))
    }

    /// A three-node cluster where replica 3 misses entries 2...n while the leader compacts.
    static func clusterWithCompactedLeader() -> TestCluster {
        var cluster = TestCluster(size: 3)
        cluster.elect(1)
        for sequence: UInt64 in 1...10 {
            cluster.propose(1, sequence)
            cluster.deliverAll(isolated: [3])
        }
        cluster.drain(1)
        cluster.deliverAll(isolated: [3])
        return cluster
    }

    @Test("compaction drops the log up to the applied position and emits a checkpoint after the snapshot")
    func compactionCheckpoint() throws {
        var cluster = Self.clusterWithCompactedLeader()
        let applied = try #require(cluster.committed[0].last?.position)
        #expect(applied == 11, "the no-op at 1, then ten commands")
        cluster.replicas[0].compact(through: 8, state: [42])
        let ready = cluster.drain(1)
        let membership = Membership(voters: cluster.members)
        #expect(ready.snapshot == Snapshot(position: 8, tag: 1, data: [42], identity: membership.encoded()),
                "the snapshot carries the configuration at its position")
        #expect(!ready.installsSnapshot && ready.checkpoint)
        guard case .hardState(let term, _)? = ready.records.first,
              case .checkpoint(let base, let baseTerm)? = ready.records.dropFirst().first,
              case .entries(let first, let entries)? = ready.records.dropFirst(2).first
        else { Issue.record("checkpoint is hard state, marker, then entries: \(ready.records)"); return }
        #expect(base == LogIndex(8) && baseTerm == Term(1))
        #expect(term == Term(1) && first == LogIndex(9) && entries.count == 3)
        #expect(cluster.replicas[0].log.base == LogIndex(8))
        // Positions already compacted or never applied are ignored.
        cluster.replicas[0].compact(through: 5, state: [])
        cluster.replicas[0].compact(through: 99, state: [])
        #expect(cluster.drain(1).snapshot == nil)

        // Restoring from the snapshot and only the checkpoint gives the same log...
        let members = cluster.members
        let checkpointOnly = RaftReplica(
            config: ReplicaConfig(id: members[0], members: members),
            restoring: Recovered(snapshot: ready.snapshot, records: ready.records), randomSeed: 5)
        #expect(checkpointOnly.log.base == LogIndex(8) && checkpointOnly.log.lastIndex == LogIndex(11))
        #expect(checkpointOnly.commitIndex == LogIndex(8))
        // ...as from every record ever written (a crash before the old ones were deleted), and
        // as from the oldest few followed by the checkpoint (deletion stopped part way).
        let everything = cluster.disks[0]
        #expect(RaftReplica.problem(restoring: Recovered(snapshot: ready.snapshot, records: everything)) == nil)
        let all = RaftReplica(
            config: ReplicaConfig(id: members[0], members: members),
            restoring: Recovered(snapshot: ready.snapshot, records: everything), randomSeed: 5)
        #expect(all.log.entries == checkpointOnly.log.entries && all.log.base == checkpointOnly.log.base)
        let checkpointStart = everything.count - ready.records.count
        let partial = Array(everything.prefix(2)) + everything[checkpointStart...]
        let fromPartial = RaftReplica(
            config: ReplicaConfig(id: members[0], members: members),
            restoring: Recovered(snapshot: ready.snapshot, records: partial), randomSeed: 5)
        #expect(fromPartial.log.entries == checkpointOnly.log.entries)
    }

    @Test("a follower behind the leader's base receives the snapshot, installs it, and then replicates normally")
    func laggingFollowerInstalls() throws {
        var cluster = Self.clusterWithCompactedLeader()
        cluster.replicas[0].compact(through: 8, state: [7, 7])
        cluster.drain(1)
        // Replica 3 comes back: heartbeats find it behind the base, so the snapshot goes out.
        for _ in 0..<4 { cluster.replicas[0].tick() }
        cluster.drain(1)
        var installs: [Ready<RaftMessage, RaftRecord>] = []
        var steps = 0
        while !cluster.mailbox.isEmpty && steps < 1000 {
            steps += 1
            let (from, envelope) = cluster.mailbox.removeFirst()
            let to = Int(envelope.to.rawValue)
            cluster.replicas[to - 1].receive(envelope.message, from: from)
            let ready = cluster.drain(to)
            if to == 3 && ready.snapshot != nil { installs.append(ready) }
        }
        let install = try #require(installs.first, "replica 3 installed a snapshot")
        #expect(installs.count == 1, "sent once, not on every heartbeat")
        #expect(install.installsSnapshot && install.checkpoint && install.snapshot?.data == [7, 7])
        #expect(cluster.replicas[2].log.base == LogIndex(8))
        #expect(cluster.replicas[2].log.lastIndex == cluster.replicas[0].log.lastIndex, "caught up past the snapshot")
        #expect(cluster.committed[2].map(\.position) == [9, 10, 11], "only what follows the snapshot is emitted")
        // The follower's acknowledgement waits for the snapshot to be durable.
        #expect(install.messages.allSatisfy { !($0.to == TestCluster.node(1)) || $0.afterSync })
    }

    @Test("a forged snapshot from a stale term is refused; one at or below the commit index only acknowledged")
    func staleSnapshots() {
        let cluster = Self.clusterWithCompactedLeader()
        var replica = cluster.replicas[1]
        let term = replica.term
        replica.receive(.installSnapshot(InstallSnapshot(term: Term(0), snapshot: Snapshot(position: 50, tag: 0, data: []))),
                        from: TestCluster.node(1))
        var ready = replica.ready()
        #expect(ready.snapshot == nil && replica.log.base == .zero)
        replica.receive(.installSnapshot(InstallSnapshot(term: term, snapshot: Snapshot(position: 3, tag: 1, data: []))),
                        from: TestCluster.node(1))
        ready = replica.ready()
        #expect(ready.snapshot == nil && replica.log.base == .zero, "already committed there: nothing to install")
        guard case .appendResponse(let response)? = ready.messages.first?.message else {
            Issue.record("an acknowledgement"); return
        }
        #expect(response.success && response.matchIndex == LogIndex(3))
    }

    @Test("InstallSnapshot round-trips through the codec; a snapshot newer than its message's term is malformed")
    func codec() throws {
        let message = RaftMessage.installSnapshot(InstallSnapshot(term: Term(4), snapshot: Snapshot(position: 9, tag: 3, data: [1, 2, 3])))
        #expect(try RaftMessage.decode(message.encoded()) == message)
        let forged = RaftMessage.installSnapshot(InstallSnapshot(term: Term(2), snapshot: Snapshot(position: 9, tag: 3, data: [])))
        #expect(throws: WireError.self) { try RaftMessage.decode(forged.encoded()) }
    }

    @Test("a crash after an installed snapshot is durable but before its checkpoint restores what install made: no conflicting suffix, the snapshot's term")
    func crashBetweenSnapshotAndCheckpoint() {
        let members = [NodeID(1), NodeID(2), NodeID(3)]
        // The follower's durable log: 1...5 of term 1. The leader's snapshot says index 4 has term 2.
        let old: [RaftRecord] = [
            .hardState(term: Term(1), votedFor: nil),
            .entries(first: LogIndex(1), (1...3).map { Self.entry(1, $0) }),
            .entries(first: LogIndex(4), [Self.entry(1, 4), Self.entry(1, 5)]),
        ]
        var follower = RaftReplica(
            config: ReplicaConfig(id: members[0], members: members), restoring: Recovered(records: old), randomSeed: 1)
        let snapshot = Snapshot(position: 4, tag: 2, data: [4])
        follower.receive(.installSnapshot(InstallSnapshot(term: Term(2), snapshot: snapshot)), from: members[1])
        let ready = follower.ready()
        #expect(follower.log.lastIndex == LogIndex(4), "install drops the conflicting entry 5")
        #expect(ready.records.contains(.checkpoint(base: LogIndex(4), term: Term(2))))
        // Crash: the snapshot file made it, its checkpoint records did not.
        #expect(RaftReplica.problem(restoring: Recovered(snapshot: snapshot, records: old)) == nil)
        let restored = RaftReplica(
            config: ReplicaConfig(id: members[0], members: members), restoring: Recovered(snapshot: snapshot, records: old),
            randomSeed: 1)
        #expect(restored.log.base == LogIndex(4) && restored.log.lastIndex == LogIndex(4))
        #expect(restored.log.lastTerm == Term(2) && restored.term >= Term(2))
        // With the checkpoint durable too, the same state.
        let full = RaftReplica(
            config: ReplicaConfig(id: members[0], members: members),
            restoring: Recovered(snapshot: snapshot, records: old + ready.records), randomSeed: 1)
        #expect(full.log.lastIndex == LogIndex(4) && full.term == Term(2))
        // A snapshot agreeing with the records at its base keeps the entries after it.
        let agreeing = RaftReplica(
            config: ReplicaConfig(id: members[0], members: members),
            restoring: Recovered(snapshot: Snapshot(position: 4, tag: 1, data: []), records: old), randomSeed: 1)
        #expect(agreeing.log.lastIndex == LogIndex(5))
        // A checkpoint beyond the snapshot cannot be restored.
        #expect(RaftReplica.problem(restoring: Recovered(snapshot: snapshot, records: [.checkpoint(base: LogIndex(9), term: Term(2))])) != nil)
    }

    @Test("recovering a snapshot whose term is newer than the recorded hard state enters that term")
    func snapshotNewerThanHardState() {
        let members = [NodeID(1), NodeID(2), NodeID(3)]
        let replica = RaftReplica(
            config: ReplicaConfig(id: members[0], members: members),
            restoring: Recovered(snapshot: Snapshot(position: 20, tag: 5, data: []), records: [.hardState(term: Term(3), votedFor: nil)]),
            randomSeed: 1)
        #expect(replica.term == Term(5) && replica.votedFor == nil)
        #expect(replica.log.lastIndex == LogIndex(20) && replica.commitIndex == LogIndex(20))
    }
}
