import SynodCore
import SynodRaft
import SynodStorage
import Testing

@Suite("Raft on the write-ahead log")
struct DurableRaftTests {
    /// A one-replica cluster: it elects itself and commits alone.
    static func drive(_ replica: inout RaftReplica, into log: DurableRecordLog<RaftRecord>, commands: Range<UInt64>) throws {
        var pending = commands.makeIterator()
        for round in 0..<400 {
            if replica.role == .leader, let next = pending.next() {
                replica.propose(Command(client: 1, sequence: next, payload: Array("value \(next)".utf8)))
            } else if round % 2 == 0 {
                replica.tick()
            }
            // The driver's contract: write the records, sync, then send what waited on the sync
            // (here only the replica's notes to itself).
            let ready = replica.ready()
            try log.append(ready.records)
            try log.sync()
            for envelope in ready.messages where envelope.to == replica.id {
                replica.receive(envelope.message, from: replica.id)
                let follow = replica.ready()
                try log.append(follow.records)
                try log.sync()
            }
        }
    }

    @Test("a replica restored from its log has its term, vote and log back")
    func restoreFromLog() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        let config = ReplicaConfig<RaftOptions>(id: NodeID(1), members: [NodeID(1)])
        var replica = RaftReplica(config: config, restoring: .empty, randomSeed: 7)
        do {
            let (log, recovered, _) = try DurableRecordLog<RaftRecord>.open(directory: directory.path)
            #expect(recovered.records.isEmpty)
            try Self.drive(&replica, into: log, commands: 1..<50)
        }
        #expect(replica.role == .leader)
        let (_, recovered, _) = try DurableRecordLog<RaftRecord>.open(directory: directory.path)
        let restored = RaftReplica(config: config, restoring: recovered, randomSeed: 8)
        #expect(restored.term == replica.term)
        #expect(restored.votedFor == replica.votedFor)
        #expect(restored.log.entries == replica.log.entries)
        #expect(restored.log.lastIndex.rawValue >= 49)
        #expect(RaftReplica.problem(restoring: recovered) == nil)
    }

    @Test("records that contradict each other are refused before a restore, with the reason")
    func contradictoryRecords() {
        let entry = RaftEntry(term: Term(2), command: nil)
        let gap = Recovered<RaftRecord>(records: [.hardState(term: Term(2), votedFor: nil), .entries(first: LogIndex(3), [entry])])
        #expect(RaftReplica.problem(restoring: gap)?.contains("leave a gap") == true)
        let early = Recovered<RaftRecord>(records: [.hardState(term: Term(1), votedFor: nil), .entries(first: LogIndex(1), [entry])])
        #expect(RaftReplica.problem(restoring: early)?.contains("before any record of that term") == true)
        let backwards = Recovered<RaftRecord>(records: [.hardState(term: Term(3), votedFor: nil), .hardState(term: Term(2), votedFor: nil)])
        #expect(RaftReplica.problem(restoring: backwards)?.contains("goes back") == true)
    }

    @Test("Raft records and messages survive the wire encoding")
    func codecRoundTrip() throws {
        let command = Command(client: 9, sequence: 3, payload: [0, 1, 255])
        let records: [RaftRecord] = [
            .hardState(term: Term(5), votedFor: NodeID(3)), .hardState(term: Term(0), votedFor: nil),
            .entries(first: LogIndex(7), [RaftEntry(term: Term(5), command: command), RaftEntry(term: Term(5), command: nil)]),
        ]
        for record in records { #expect(try RaftRecord.decode(record.encoded()) == record) }
        let messages: [RaftMessage] = [
            .requestVote(RequestVote(term: Term(4), lastLogIndex: LogIndex(10), lastLogTerm: Term(3))),
            .requestVote(RequestVote(term: Term(4), lastLogIndex: LogIndex(10), lastLogTerm: Term(3), transfer: true)),
            .voteResponse(VoteResponse(term: Term(4), granted: true)),
            .preVote(RequestVote(term: Term(5), lastLogIndex: LogIndex(10), lastLogTerm: Term(3))),
            .preVoteResponse(VoteResponse(term: Term(4), granted: false)),
            .timeoutNow(TimeoutNow(term: Term(4))),
            .appendEntries(AppendEntries(
                term: Term(4), prevLogIndex: LogIndex(9), prevLogTerm: Term(3),
                entries: [RaftEntry(term: Term(4), command: command)], leaderCommit: LogIndex(8), readContext: 77)),
            .appendResponse(AppendResponse(
                term: Term(4), success: false, matchIndex: LogIndex(0), rejectedIndex: LogIndex(9), hintIndex: LogIndex(5), readContext: 2)),
        ]
        for message in messages { #expect(try RaftMessage.decode(message.encoded()) == message) }
    }

    @Test("fuzz: mutated Raft messages and records decode or throw, never trap", arguments: 1...3 as ClosedRange<UInt64>)
    func fuzzDecoders(seed: UInt64) {
        var random = DeterministicRandom(seed: seed)
        let valid = RaftMessage.appendEntries(AppendEntries(
            term: Term(4), prevLogIndex: LogIndex(9), prevLogTerm: Term(3),
            entries: (0..<5).map { RaftEntry(term: Term(4), command: Command(client: 1, sequence: UInt64($0), payload: [UInt8]($0..<($0 + 9)))) },
            leaderCommit: LogIndex(8), readContext: 77)).encoded()
        var refused = 0
        for _ in 0..<5_000 {
            var bytes = valid
            for _ in 0...random.integer(in: 0..<4) {
                bytes[random.integer(in: 0..<bytes.count)] = UInt8(random.integer(in: 0..<256))
            }
            if random.chance(0.2) { bytes = Array(bytes.prefix(random.integer(in: 0..<bytes.count))) }
            if (try? RaftMessage.decode(bytes)) == nil { refused += 1 }
            _ = try? RaftRecord.decode(bytes)
        }
        #expect(refused > 0)
    }

    @Test("a record that passes its checksum but does not decode stops recovery with a reason")
    func undecodableRecord() throws {
        let directory = ScratchDirectory()
        defer { directory.remove() }
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.path)
            try log.append([RaftRecord.hardState(term: Term(1), votedFor: nil).encoded(), [99, 1, 2]])
            try log.sync()
        }
        #expect(throws: StorageError.self) { _ = try DurableRecordLog<RaftRecord>.open(directory: directory.path) }
        do {
            _ = try DurableRecordLog<RaftRecord>.open(directory: directory.path)
        } catch {
            #expect(error.description.contains("record 1 passes its checksum but does not decode"))
        }
    }
}
