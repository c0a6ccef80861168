import SynodCore
@testable import SynodRaft
import Testing

/// The Raft invariant checker must be able to fail: each test feeds it a history that breaks
/// one invariant, and one that a correct (if stale) replica may legally produce.
@Suite("RaftMonitor catches each broken invariant")
struct RaftMonitorTests {
    static let members = (1...3).map { NodeID(UInt16($0)) }

    static func replica(_ number: Int, term: UInt64 = 1, role: RaftRole = .follower, commit: UInt64 = 0) -> RaftReplica {
        var replica = RaftReplica(
            config: ReplicaConfig(id: NodeID(UInt16(number)), members: Self.members), restoring: .empty, randomSeed: 1)
        replica.term = Term(term)
        replica.role = role
        replica.commitIndex = LogIndex(commit)
        return replica
    }

    static func entries(_ first: UInt64, _ list: [(term: UInt64, sequence: UInt64)]) -> Ready<RaftMessage, RaftRecord> {
        var ready = Ready<RaftMessage, RaftRecord>()
        ready.records = [.entries(first: LogIndex(first), list.map {
            RaftEntry(term: Term($0.term), command: Command(client: 1, sequence: $0.sequence, payload: []))
        })]
        return ready
    }

    @Test("election safety: two leaders of one term are caught")
    func twoLeadersCaught() {
        var monitor = RaftMonitor(members: Self.members)
        var ready = Ready<RaftMessage, RaftRecord>()
        ready.events = [.becameLeader(epoch: 4)]
        #expect(monitor.observe(node: Self.members[0], replica: Self.replica(1, term: 4, role: .leader), ready: ready).isEmpty)
        let found = monitor.observe(node: Self.members[1], replica: Self.replica(2, term: 4, role: .leader), ready: ready)
        #expect(found.map(\.invariant) == ["election-safety"])
    }

    @Test("log matching: the same index and term over different prefixes is caught")
    func logMismatchCaught() {
        var monitor = RaftMonitor(members: Self.members)
        _ = monitor.observe(node: Self.members[0], replica: Self.replica(1), ready: Self.entries(1, [(1, 10), (2, 11)]))
        let found = monitor.observe(
            node: Self.members[1], replica: Self.replica(2), ready: Self.entries(1, [(1, 99), (2, 11)]))
        #expect(found.map(\.invariant).contains("log-matching"))
    }

    @Test("state-machine safety: committing a different entry than another replica is caught")
    func divergentCommitCaught() {
        var monitor = RaftMonitor(members: Self.members)
        _ = monitor.observe(node: Self.members[0], replica: Self.replica(1, commit: 1), ready: Self.entries(1, [(1, 10)]))
        let found = monitor.observe(
            node: Self.members[1], replica: Self.replica(2, commit: 1), ready: Self.entries(1, [(1, 20)]))
        #expect(found.map(\.invariant).contains("state-machine-safety"))
    }

    @Test("state-machine safety: a replica overwriting an entry it knew committed is caught")
    func overwriteOfOwnCommitCaught() {
        var monitor = RaftMonitor(members: Self.members)
        _ = monitor.observe(node: Self.members[0], replica: Self.replica(1, commit: 1), ready: Self.entries(1, [(1, 10)]))
        let found = monitor.observe(
            node: Self.members[0], replica: Self.replica(1, term: 2, commit: 1), ready: Self.entries(1, [(2, 30)]))
        #expect(found.contains { $0.invariant == "state-machine-safety" && $0.detail.contains("overwrote") })
    }

    @Test("a stale follower may take entries at indexes that only others know are committed")
    func staleFollowerAllowed() {
        var monitor = RaftMonitor(members: Self.members)
        // Replica 1 (leader of t2) committed [(t1, 5), (t2, 10)]; replica 3 holds only (t1, 5),
        // never learned of t2, and takes (t1, 6) at i2 from the old leader of t1: legal, and
        // fixed later by the leader of t2.
        _ = monitor.observe(
            node: Self.members[0], replica: Self.replica(1, term: 2, commit: 2), ready: Self.entries(1, [(1, 5), (2, 10)]))
        _ = monitor.observe(node: Self.members[2], replica: Self.replica(3), ready: Self.entries(1, [(1, 5)]))
        let found = monitor.observe(node: Self.members[2], replica: Self.replica(3), ready: Self.entries(2, [(1, 6)]))
        #expect(found.isEmpty)
    }

    @Test("leader completeness: a leader missing an entry committed in an earlier term is caught")
    func incompleteLeaderCaught() {
        var monitor = RaftMonitor(members: Self.members)
        _ = monitor.observe(node: Self.members[0], replica: Self.replica(1, commit: 2), ready: Self.entries(1, [(1, 10), (1, 11)]))
        _ = monitor.observe(node: Self.members[1], replica: Self.replica(2), ready: Self.entries(1, [(1, 10)]))
        var ready = Ready<RaftMessage, RaftRecord>()
        ready.events = [.becameLeader(epoch: 2)]
        let found = monitor.observe(node: Self.members[1], replica: Self.replica(2, term: 2, role: .leader), ready: ready)
        #expect(found.map(\.invariant) == ["leader-completeness"])
    }
}

@Suite("Raft log slicing")
struct RaftLogSliceTests {
    @Test("AppendEntries slices respect the byte budget and always carry at least one entry")
    func byteBudget() {
        var log = RaftLog()
        for sequence in 1...5 {
            log.append(RaftEntry(term: Term(1), command: Command(client: 1, sequence: UInt64(sequence), payload: Array(repeating: 1, count: 900))))
        }
        #expect(log.entries(from: LogIndex(1), maxCount: 10, maxPayloadBytes: 2_000).count == 2)
        #expect(log.entries(from: LogIndex(1), maxCount: 10, maxPayloadBytes: 100).count == 1)
        #expect(log.entries(from: LogIndex(4), maxCount: 10).count == 2)
        #expect(log.entries(from: LogIndex(6), maxCount: 10).isEmpty)
    }
}
