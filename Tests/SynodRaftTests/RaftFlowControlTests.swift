@_spi(Testing) import SynodRaft
import SynodCore
import Testing

/// Flow control: the pipelining window in messages and bytes, the bound on a leader's
/// uncommitted bytes, and the follower states (probe, replicate, snapshot).
@Suite("Raft: flow control")
struct RaftFlowControlTests {
    static func command(_ sequence: UInt64, bytes: Int) -> Command {
        Command(client: 1, sequence: sequence, payload: Array(repeating: UInt8(sequence & 0xff), count: bytes))
    }

    /// A cluster of three with `options`, led by 1, to which `count` commands of `bytes` bytes
    /// were proposed one by one (the leader drained after each), nothing delivered yet.
    static func ledCluster(_ options: RaftOptions = RaftOptions(), proposing count: Int, bytes: Int) -> TestCluster {
        var cluster = TestCluster(size: 3, options: options)
        cluster.elect(1)
        for sequence in 1...count {
            cluster.replicas[0].propose(Self.command(UInt64(sequence), bytes: bytes))
            cluster.drain(1)
        }
        return cluster
    }

    /// The AppendEntries with entries waiting in the mailbox for `number`, as entry counts.
    static func appends(to number: Int, in cluster: TestCluster) -> [Int] {
        cluster.mailbox.compactMap { message -> Int? in
            guard message.envelope.to == TestCluster.node(number), case .appendEntries(let append) = message.envelope.message,
                  !append.entries.isEmpty
            else { return nil }
            return append.entries.count
        }
    }

    @Test("the window stops sending once its bytes are in flight (one message may cross it), and resumes as they are acknowledged")
    func windowInBytes() {
        var options = RaftOptions()
        options.maxInflightBytes = 100
        var cluster = Self.ledCluster(options, proposing: 20, bytes: 30)
        // One message per proposal while the window has room: 30, 60, 90, then 120 bytes.
        #expect(Self.appends(to: 2, in: cluster) == [1, 1, 1, 1])
        #expect(Self.appends(to: 3, in: cluster) == [1, 1, 1, 1])
        cluster.deliverAll()
        #expect(cluster.committed[0].count == 20, "acknowledgements reopen the window until everything commits")
        cluster.replicas[0].tick()
        cluster.replicas[0].tick()
        cluster.drain(1)
        cluster.deliverAll()
        #expect(cluster.committed[1].count == 20, "the next heartbeat carries the commit index")

        // Without the byte bound every proposal leaves at once (the message window is 64).
        let unbounded = Self.ledCluster(proposing: 20, bytes: 30)
        #expect(Self.appends(to: 2, in: unbounded).count == 20)
    }

    @Test("the message window holds too: at most maxInflightMessages messages in flight")
    func windowInMessages() {
        var options = RaftOptions()
        options.maxInflightMessages = 3
        var cluster = Self.ledCluster(options, proposing: 10, bytes: 5)
        #expect(Self.appends(to: 2, in: cluster) == [1, 1, 1])
        cluster.deliverAll()
        #expect(cluster.committed[0].count == 10)
    }

    @Test("a leader refuses proposals beyond its uncommitted bytes (always accepting one when none are), and takes them again once committed")
    func uncommittedBytes() {
        var options = RaftOptions()
        options.maxUncommittedBytes = 100
        var cluster = TestCluster(size: 3, options: options)
        cluster.elect(1)
        cluster.mailbox.removeAll()  // followers hear nothing: nothing commits
        var refused = 0
        for sequence in 1...5 {
            cluster.replicas[0].propose(Self.command(UInt64(sequence), bytes: 30))
            refused += cluster.drain(1).rejected.filter { $0.reason == .overloaded }.count
        }
        #expect(refused == 2, "30, 60 and 90 bytes fit; 120 and more do not")
        cluster.mailbox.removeAll()
        cluster.deliverAll()
        for _ in 0..<3 {
            cluster.replicas[0].tick()
            cluster.replicas[0].tick()
            cluster.drain(1)
            cluster.deliverAll()
        }
        #expect(cluster.committed[0].count == 3, "the accepted three commit")
        // Nothing uncommitted: even a command larger than the bound is accepted, alone.
        cluster.replicas[0].propose(Self.command(9, bytes: 500))
        #expect(cluster.drain(1).rejected.isEmpty)
        cluster.replicas[0].propose(Self.command(10, bytes: 1))
        #expect(cluster.drain(1).rejected.count == 1)
        cluster.deliverAll()
        #expect(cluster.committed[0].count == 4)
    }
}

@Suite("Raft: snapshots in chunks")
struct RaftSnapshotChunkTests {
    /// The InstallSnapshot messages to `number` in the mailbox: (offset, bytes).
    static func chunks(to number: Int, in cluster: TestCluster) -> [(offset: UInt64, bytes: Int)] {
        cluster.mailbox.compactMap { message in
            guard message.envelope.to == TestCluster.node(number), case .installSnapshot(let install) = message.envelope.message else { return nil }
            return (install.offset, install.snapshot.data.count)
        }
    }

    @Test("a snapshot travels in chunks, one at a time; a lost chunk is sent again from where the follower stood, and the follower installs the whole")
    func chunkedAndResumed() throws {
        var options = RaftOptions()
        options.maxSnapshotChunkBytes = 16
        var cluster = TestCluster(size: 3, options: options)
        cluster.elect(1)
        for sequence: UInt64 in 1...10 {
            cluster.propose(1, sequence)
            cluster.deliverAll(isolated: [3])
        }
        let state = (0..<100).map { UInt8($0) }
        cluster.replicas[0].compact(through: 8, state: state)
        cluster.drain(1)
        cluster.mailbox.removeAll()
        // Replica 3 comes back: probes find it behind the base, and chunks start.
        var steps = 0
        var lost = false
        var offsets: [UInt64] = []
        while cluster.replicas[2].log.base < LogIndex(8) && steps < 5_000 {
            steps += 1
            guard !cluster.mailbox.isEmpty else {
                cluster.replicas[0].tick()
                cluster.drain(1)
                continue
            }
            let (from, envelope) = cluster.mailbox.removeFirst()
            let to = Int(envelope.to.rawValue)
            if case .installSnapshot(let install) = envelope.message {
                offsets.append(install.offset)
                if install.offset == 48 && !lost {
                    lost = true  // the chunk at byte 48 is lost, once
                    continue
                }
            }
            cluster.replicas[to - 1].receive(envelope.message, from: from)
            cluster.drain(to)
        }
        #expect(cluster.replicas[2].log.base == LogIndex(8), "replica 3 installed the snapshot")
        #expect(cluster.replicas[2].snapshot?.data == state, "whole and in order")
        #expect(lost)
        #expect(offsets.first == 0 && offsets.allSatisfy { $0 % 16 == 0 })
        #expect(offsets.filter { $0 == 0 }.count == 1, "never from the start again: \(offsets)")
        #expect(offsets.filter { $0 == 48 }.count == 2, "the lost chunk, sent again: \(offsets)")
        #expect(cluster.replicas[0].counters["snapshotChunksResumed"] == 1)
        #expect(cluster.replicas[0].counters["snapshotChunks"] == UInt64(offsets.count))
        // Then it replicates from after the snapshot.
        cluster.propose(1, 11)
        cluster.deliverAll()
        cluster.replicas[0].tick()
        cluster.replicas[0].tick()
        cluster.drain(1)
        cluster.deliverAll()
        #expect(cluster.replicas[2].commitIndex == cluster.replicas[0].commitIndex)
    }

    @Test("a follower keeps what it holds: a chunk beyond a gap is not kept, one of another snapshot asks for the start, a bad checksum is refused")
    func followerRules() throws {
        let members = (1...3).map { NodeID(UInt16($0)) }
        var follower = RaftReplica(config: ReplicaConfig(id: members[0], members: members), restoring: .empty, randomSeed: 1)
        let data = (0..<40).map { UInt8($0) }
        let checksum = InstallSnapshot.checksum(of: data)
        func chunk(_ offset: Int, _ count: Int, checksum: UInt64 = checksum, position: UInt64 = 9) -> RaftMessage {
            .installSnapshot(InstallSnapshot(
                term: Term(2), snapshot: Snapshot(position: position, tag: 1, data: Array(data[offset..<offset + count])),
                offset: UInt64(offset), totalBytes: 40, checksum: checksum))
        }
        func acks() -> [UInt64] {
            follower.ready().messages.compactMap { if case .snapshotAck(let ack) = $0.message { ack.received } else { nil } }
        }
        follower.receive(chunk(10, 10), from: members[1])
        #expect(acks() == [0], "nothing held of it: from the start")
        follower.receive(chunk(0, 10), from: members[1])
        #expect(acks() == [10])
        follower.receive(chunk(20, 10), from: members[1])
        #expect(acks() == [10], "beyond a gap: not kept")
        follower.receive(chunk(0, 10), from: members[1])
        #expect(acks() == [10], "a repeat: not kept twice")
        follower.receive(chunk(10, 30), from: members[1])
        #expect(follower.log.base == LogIndex(9) && follower.snapshot?.data == data)

        follower = RaftReplica(config: ReplicaConfig(id: members[0], members: members), restoring: .empty, randomSeed: 1)
        follower.receive(chunk(0, 40, checksum: checksum ^ 1), from: members[1])
        #expect(acks() == [0] && follower.log.base == .zero, "a whole that does not match its checksum is refused")
    }

    /// The chunks in `records`, as (offset, bytes).
    static func chunkRecords(_ records: [RaftRecord]) -> [(offset: UInt64, bytes: Int)] {
        records.compactMap { if case .snapshotChunk(let chunk) = $0 { (chunk.offset, chunk.snapshot.data.count) } else { nil } }
    }

    @Test("a follower keeps each chunk as a record and acknowledges it once durable; restarted, it resumes from the chunks it kept")
    func resumesAfterRestart() throws {
        let members = (1...3).map { NodeID(UInt16($0)) }
        let config = ReplicaConfig<RaftOptions>(id: members[0], members: members)
        var follower = RaftReplica(config: config, restoring: .empty, randomSeed: 1)
        let data = (0..<40).map { UInt8($0) }
        let checksum = InstallSnapshot.checksum(of: data)
        func chunk(_ offset: Int, _ count: Int) -> RaftMessage {
            .installSnapshot(InstallSnapshot(
                term: Term(2), snapshot: Snapshot(position: 9, tag: 1, data: Array(data[offset..<offset + count])),
                offset: UInt64(offset), totalBytes: 40, checksum: checksum))
        }
        var disk: [RaftRecord] = []
        for offset in [0, 10] {
            follower.receive(chunk(offset, 10), from: members[1])
            let ready = follower.ready()
            disk += ready.records
            #expect(Self.chunkRecords(ready.records).map(\.offset) == [UInt64(offset)], "the chunk kept is written")
            let acks = ready.messages.filter { if case .snapshotAck = $0.message { true } else { false } }
            #expect(acks.count == 1 && acks.allSatisfy { $0.afterSync }, "acknowledged once durable")
        }
        follower.receive(chunk(10, 10), from: members[1])
        #expect(Self.chunkRecords(follower.ready().records).isEmpty, "a repeat is not written again")
        #expect(RaftReplica.problem(restoring: Recovered(records: disk)) == nil)

        // The follower restarts: it holds 20 bytes, says so, and the transfer goes on from there.
        follower = RaftReplica(config: config, restoring: Recovered(records: disk), randomSeed: 2)
        follower.receive(chunk(0, 10), from: members[1])
        let acks = follower.ready().messages.compactMap { if case .snapshotAck(let ack) = $0.message { ack.received } else { nil } }
        #expect(acks == [20], "a restarted follower reports the bytes it kept")
        follower.receive(chunk(20, 20), from: members[1])
        _ = follower.ready()
        #expect(follower.log.base == LogIndex(9) && follower.snapshot?.data == data)
        #expect(follower.counters["snapshotTransfersResumedAfterRestart"] == 1)

        // Records of another snapshot's chunks, or beyond a gap, restore nothing of them.
        let other = RaftRecord.snapshotChunk(InstallSnapshot(
            term: Term(2), snapshot: Snapshot(position: 9, tag: 1, data: [1]), offset: 30, totalBytes: 40, checksum: checksum))
        let firstChunk = try #require(disk.firstIndex { if case .snapshotChunk = $0 { true } else { false } })
        follower = RaftReplica(config: config, restoring: Recovered(records: Array(disk[...firstChunk]) + [other]), randomSeed: 2)
        follower.receive(chunk(30, 10), from: members[1])
        #expect(follower.ready().messages.contains { if case .snapshotAck(let ack) = $0.message { ack.received == 10 } else { false } })
    }

    @Test("a compaction while a snapshot arrives writes the partial snapshot again after its checkpoint")
    func checkpointKeepsPartialSnapshot() throws {
        let members = (1...3).map { NodeID(UInt16($0)) }
        var follower = follower(logTerms: [1, 1], term: 1)
        follower.receive(.appendEntries(AppendEntries(
            term: Term(2), prevLogIndex: LogIndex(2), prevLogTerm: Term(1), entries: [], leaderCommit: LogIndex(2), readContext: 0)),
            from: members[1])
        _ = follower.ready()
        let data = (0..<40).map { UInt8($0) }
        let checksum = InstallSnapshot.checksum(of: data)
        for offset in [0, 10, 20] {
            follower.receive(.installSnapshot(InstallSnapshot(
                term: Term(2), snapshot: Snapshot(position: 9, tag: 2, data: Array(data[offset..<offset + 10])),
                offset: UInt64(offset), totalBytes: 40, checksum: checksum)), from: members[1])
            _ = follower.ready()
        }
        follower.compact(through: 2, state: [7])
        let ready = follower.ready()
        #expect(ready.checkpoint)
        let checkpoint = try #require(ready.records.firstIndex { if case .checkpoint = $0 { true } else { false } })
        let chunks = Self.chunkRecords(Array(ready.records[checkpoint...]))
        #expect(chunks.map(\.offset) == [0] && chunks.map(\.bytes) == [30], "the 30 bytes held, after the checkpoint")
        // Restored from the snapshot and the checkpoint's records alone, it still holds them.
        let restored = RaftReplica(
            config: ReplicaConfig(id: members[0], members: members), restoring: Recovered(snapshot: ready.snapshot, records: ready.records),
            randomSeed: 3)
        var resumed = restored
        resumed.receive(.installSnapshot(InstallSnapshot(
            term: Term(2), snapshot: Snapshot(position: 9, tag: 2, data: Array(data[30..<40])),
            offset: 30, totalBytes: 40, checksum: checksum)), from: members[1])
        _ = resumed.ready()
        #expect(resumed.log.base == LogIndex(9) && resumed.snapshot?.data == data)
    }

    @Test("chunks, acknowledgements and chunk records round-trip through the codec; a chunk beyond its snapshot's size is malformed")
    func codec() throws {
        let install = RaftMessage.installSnapshot(InstallSnapshot(
            term: Term(4), snapshot: Snapshot(position: 9, tag: 3, data: [1, 2, 3]), offset: 5, totalBytes: 8, checksum: 77))
        #expect(try RaftMessage.decode(install.encoded()) == install)
        let ack = RaftMessage.snapshotAck(SnapshotAck(term: Term(4), position: 9, received: 5))
        #expect(try RaftMessage.decode(ack.encoded()) == ack)
        let beyond = RaftMessage.installSnapshot(InstallSnapshot(
            term: Term(4), snapshot: Snapshot(position: 9, tag: 3, data: [1, 2, 3]), offset: 6, totalBytes: 8, checksum: 77))
        #expect(throws: WireError.self) { try RaftMessage.decode(beyond.encoded()) }
        let encoded = install.encoded()
        for length in 0..<encoded.count { #expect(throws: WireError.self) { try RaftMessage.decode(Array(encoded.prefix(length))) } }
        let record = RaftRecord.snapshotChunk(InstallSnapshot(
            term: Term(4), snapshot: Snapshot(position: 9, tag: 3, data: [1, 2, 3]), offset: 5, totalBytes: 8, checksum: 77))
        #expect(try RaftRecord.decode(record.encoded()) == record)
        let recordBytes = record.encoded()
        for length in 0..<recordBytes.count { #expect(throws: WireError.self) { try RaftRecord.decode(Array(recordBytes.prefix(length))) } }
    }
}
