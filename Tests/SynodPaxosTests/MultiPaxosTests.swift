@testable @_spi(Testing) import SynodPaxos
import SynodCore
import Testing

@Suite("Multi-Paxos core")
struct MultiPaxosTests {
    static let members = (1...5).map { NodeID(UInt16($0)) }

    static func replica(_ id: UInt16, records: [MultiPaxosRecord] = []) -> MultiPaxosReplica {
        MultiPaxosReplica(
            config: ReplicaConfig(id: NodeID(id), members: Self.members), restoring: Recovered(records: records),
            randomSeed: UInt64(id))
    }

    static func command(_ sequence: UInt64) -> Command { Command(client: 1, sequence: sequence, payload: [UInt8(sequence)]) }

    static func accepts(_ ready: Ready<MultiPaxosMessage, MultiPaxosRecord>) -> [AcceptRequest] {
        ready.messages.compactMap { if case .accept(let request) = $0.message { return request } else { return nil } }
    }

    /// Drives `replica` through phase 1 with the given promises (its own included).
    static func elect(_ replica: inout MultiPaxosReplica, promises: [UInt16: [SlotAcceptance]]) -> Ready<MultiPaxosMessage, MultiPaxosRecord> {
        replica.startPhase1()
        let prepare = replica.ready()
        #expect(prepare.records == [.round(replica.ballot.round)])
        #expect(prepare.messages.allSatisfy { $0.afterSync }, "a ballot leaves only once its round is durable")
        for (node, accepted) in promises.sorted(by: { $0.key < $1.key }) {
            replica.receive(.promise(replica.ballot, fromSlot: 1, accepted: accepted, complete: true), from: NodeID(node))
        }
        return replica.ready()
    }

    @Test("a new leader proposes each open slot's highest-ballot value, never the most frequent, and fills gaps with no-ops")
    func recovery() {
        var leader = Self.replica(1)
        let low = Ballot(round: 0, node: NodeID(2))
        let high = Ballot(round: 0, node: NodeID(5))
        // Exactly a phase-1 quorum (3 of 5): the low ballot's value is reported twice.
        let ready = Self.elect(&leader, promises: [
            2: [SlotAcceptance(slot: 1, ballot: low, value: .command(Self.command(7)))],
            3: [SlotAcceptance(slot: 1, ballot: low, value: .command(Self.command(7))),
                SlotAcceptance(slot: 3, ballot: low, value: .command(Self.command(9)))],
            4: [SlotAcceptance(slot: 1, ballot: high, value: .command(Self.command(8)))],
        ])
        #expect(leader.role == .leader)
        let batch = Self.accepts(ready).first { !$0.values.isEmpty }
        #expect(batch?.firstSlot == 1)
        #expect(batch?.values == [.command(Self.command(8)), .noop, .command(Self.command(9))])
        // The next client command goes after the recovered slots.
        leader.propose(Self.command(10))
        #expect(Self.accepts(leader.ready()).first?.firstSlot == 4)
    }

    @Test("accept batches stay under the byte budget (at least one slot each), so large commands never make an oversized frame")
    func byteBudget() {
        var leader = Self.replica(1)
        _ = Self.elect(&leader, promises: [1: [], 2: [], 3: []])
        for sequence in 1...5 {
            leader.propose(Command(client: 9, sequence: UInt64(sequence), payload: Array(repeating: 7, count: 900_000)))
        }
        let batches = Self.accepts(leader.ready()).filter { !$0.values.isEmpty && $0.ballot == leader.ballot }
        let perMember = batches.count / Self.members.count
        // 2 MiB budget, 0.9 MB commands: two per message, so three messages per member.
        #expect(perMember == 3)
        #expect(batches.allSatisfy { $0.values.reduce(0) { $0 + $1.payloadBytes } <= 2 << 20 })
    }

    @Test("promises come in pages: the candidate asks for each next page and counts an acceptor once it has them all")
    func promisePages() {
        var options = MultiPaxosOptions()
        options.maxPromiseSlots = 2
        var acceptor = MultiPaxosReplica(
            config: ReplicaConfig(id: NodeID(2), members: Self.members, options: options), restoring: .empty, randomSeed: 2)
        let old = Ballot(round: 0, node: NodeID(4))
        acceptor.receive(.accept(AcceptRequest(
            ballot: old, firstSlot: 1, values: [.noop, .command(Self.command(1)), .command(Self.command(2))], chosenThrough: 0,
            readContext: 0)), from: NodeID(4))
        _ = acceptor.ready()
        var candidate = MultiPaxosReplica(
            config: ReplicaConfig(id: NodeID(1), members: Self.members, options: options), restoring: .empty, randomSeed: 1)
        candidate.startPhase1()
        let prepare = candidate.ready().messages.first { $0.to == NodeID(2) }!.message
        // Page 1 (slots 1 and 2), then the candidate asks from slot 3, then page 2 (slot 3).
        acceptor.receive(prepare, from: NodeID(1))
        let page1 = acceptor.ready().messages[0].message
        guard case .promise(_, 1, let first, false) = page1 else { Issue.record("\(page1)"); return }
        #expect(first.map(\.slot) == [1, 2])
        candidate.receive(page1, from: NodeID(2))
        let next = candidate.ready().messages.map(\.message)
        #expect(next == [.prepare(candidate.ballot, fromSlot: 3)])
        acceptor.receive(next[0], from: NodeID(1))
        let page2 = acceptor.ready().messages[0].message
        #expect(page2 == .promise(candidate.ballot, fromSlot: 3, accepted: [SlotAcceptance(slot: 3, ballot: old, value: .command(Self.command(2)))], complete: true))
        candidate.receive(page2, from: NodeID(2))
        for node: UInt16 in [1, 3] {
            candidate.receive(.promise(candidate.ballot, fromSlot: 1, accepted: [], complete: true), from: NodeID(node))
        }
        #expect(candidate.role == .leader)
        // Every page was used: the recovered slots carry the reported values.
        let batch = Self.accepts(candidate.ready()).first { !$0.values.isEmpty }
        #expect(batch?.values == [.noop, .command(Self.command(1)), .command(Self.command(2))])
    }

    @Test("the most-frequent-value variant really picks the other value (what the mutation test relies on)")
    func mostFrequentVariant() {
        var options = MultiPaxosOptions()
        options.mutation = .mostFrequentValue
        var leader = MultiPaxosReplica(
            config: ReplicaConfig(id: NodeID(1), members: Self.members, options: options), restoring: .empty, randomSeed: 1)
        let low = Ballot(round: 0, node: NodeID(2))
        let high = Ballot(round: 0, node: NodeID(5))
        let ready = Self.elect(&leader, promises: [
            2: [SlotAcceptance(slot: 1, ballot: low, value: .command(Self.command(7)))],
            3: [SlotAcceptance(slot: 1, ballot: low, value: .command(Self.command(7)))],
            4: [SlotAcceptance(slot: 1, ballot: high, value: .command(Self.command(8)))],
        ])
        #expect(Self.accepts(ready).first { !$0.values.isEmpty }?.values == [.command(Self.command(7))])
    }

    @Test("an acceptor promises durably before replying and refuses accepts below its promise")
    func acceptorRules() {
        var acceptor = Self.replica(2)
        let high = Ballot(round: 5, node: NodeID(3))
        acceptor.receive(.prepare(high, fromSlot: 1), from: NodeID(3))
        let promised = acceptor.ready()
        #expect(promised.records == [.promised(high)])
        #expect(promised.messages.count == 1 && promised.messages[0].afterSync)
        let low = Ballot(round: 4, node: NodeID(1))
        acceptor.receive(.accept(AcceptRequest(ballot: low, firstSlot: 1, values: [.noop], chosenThrough: 0, readContext: 0)),
                         from: NodeID(1))
        let refused = acceptor.ready()
        #expect(refused.records.isEmpty)
        #expect(refused.messages.map(\.message) == [.nack(low, promised: high)])
        // An accept in the promised ballot is durable before its reply.
        acceptor.receive(.accept(AcceptRequest(ballot: high, firstSlot: 1, values: [.noop], chosenThrough: 0, readContext: 0)),
                         from: NodeID(3))
        let accepted = acceptor.ready()
        #expect(accepted.records == [.accepted(firstSlot: 1, ballot: high, values: [.noop])])
        #expect(accepted.messages.count == 1 && accepted.messages[0].afterSync)
        // A promise reports what was accepted.
        let higher = Ballot(round: 6, node: NodeID(4))
        acceptor.receive(.prepare(higher, fromSlot: 1), from: NodeID(4))
        #expect(acceptor.ready().messages.map(\.message)
            == [.promise(higher, fromSlot: 1, accepted: [SlotAcceptance(slot: 1, ballot: high, value: .noop)], complete: true)])
    }

    @Test("ballots never repeat across restarts: the round is durable and restored")
    func ballotsAcrossRestarts() {
        var replica = Self.replica(1)
        replica.startPhase1()
        let first = replica.ballot
        let records = replica.ready().records
        var restarted = Self.replica(1, records: records)
        restarted.startPhase1()
        #expect(restarted.ballot > first)
    }

    @Test("Pre-Vote: a timed-out replica asks first, writing nothing; a quorum's yes starts phase 1")
    func preVote() {
        var replica = Self.replica(1)
        while replica.role == .follower { replica.tick() }
        #expect(replica.role == .preCandidate)
        let asked = replica.ready()
        #expect(asked.records.isEmpty, "asking is not durable")
        let ballots = asked.messages.compactMap { if case .prePrepare(let ballot) = $0.message { return ballot } else { return nil } }
        #expect(ballots.count == 4 && ballots.allSatisfy { $0 == Ballot(round: 1, node: NodeID(1)) })
        replica.receive(.prePrepareReply(ballots[0], granted: true), from: NodeID(2))
        replica.receive(.prePrepareReply(ballots[0], granted: false), from: NodeID(3))
        #expect(replica.role == .preCandidate, "two of five is not a quorum")
        replica.receive(.prePrepareReply(ballots[0], granted: true), from: NodeID(4))
        #expect(replica.role == .candidate)
        #expect(replica.ready().records == [.round(1)])
    }

    @Test("Pre-Vote: a replica that hears from its leader says no and changes nothing; one that does not says yes")
    func preVoteAnswers() {
        var follower = Self.replica(2)
        follower.receive(.accept(AcceptRequest(ballot: Ballot(round: 3, node: NodeID(1)), firstSlot: 1, values: [],
                                               chosenThrough: 0, readContext: 0)), from: NodeID(1))
        _ = follower.ready()
        let ask = Ballot(round: 9, node: NodeID(4))
        follower.receive(.prePrepare(ask), from: NodeID(4))
        #expect(follower.ready().messages.map(\.message) == [.prePrepareReply(ask, granted: false)])
        #expect(follower.promised == Ballot(round: 3, node: NodeID(1)) && follower.leader == NodeID(1))
        // After a minimum election timeout without the leader, the answer is yes (and still
        // nothing changes).
        for _ in 0..<MultiPaxosOptions().electionTimeoutTicksMin { follower.tick() }
        _ = follower.ready()
        follower.receive(.prePrepare(ask), from: NodeID(4))
        #expect(follower.ready().messages.map(\.message) == [.prePrepareReply(ask, granted: true)])
        #expect(follower.promised == Ballot(round: 3, node: NodeID(1)))
        // A ballot at or below the promise is refused whatever the leader.
        follower.receive(.prePrepare(Ballot(round: 2, node: NodeID(4))), from: NodeID(4))
        #expect(follower.ready().messages.map(\.message) == [.prePrepareReply(Ballot(round: 2, node: NodeID(4)), granted: false)])
    }

    @Test("a follower learns a slot from the chosen prefix only if it accepted that slot in the leader's ballot")
    func followerLearning() {
        var follower = Self.replica(2)
        let old = Ballot(round: 1, node: NodeID(3))
        let leader = Ballot(round: 2, node: NodeID(1))
        follower.receive(.accept(AcceptRequest(ballot: old, firstSlot: 1, values: [.noop, .noop], chosenThrough: 0, readContext: 0)),
                         from: NodeID(3))
        follower.receive(.accept(AcceptRequest(
            ballot: leader, firstSlot: 1, values: [.command(Self.command(1))], chosenThrough: 2, readContext: 0)), from: NodeID(1))
        // Slot 1 was accepted in the leader's ballot; slot 2 only in an older one.
        #expect(follower.chosenThrough == 1)
        #expect(follower.ready().committed.map(\.command) == [Self.command(1)])
        follower.receive(.chosen(firstSlot: 2, values: [.command(Self.command(2))]), from: NodeID(1))
        #expect(follower.chosenThrough == 2)
    }

    @Test("reads wait for a quorum to confirm the leader after they arrive")
    func readIndex() {
        var leader = Self.replica(1)
        _ = Self.elect(&leader, promises: [1: [], 2: [], 3: []])
        leader.read(ReadRequest(id: 1))
        let heartbeat = leader.ready()
        #expect(heartbeat.reads.isEmpty)
        let context = Self.accepts(heartbeat).first!.readContext
        #expect(context == 1)
        for node: UInt16 in [2, 3] {
            leader.receive(.accepted(AcceptReply(ballot: leader.ballot, firstSlot: 1, count: 0, learnedThrough: 0, readContext: 1)),
                           from: NodeID(node))
        }
        #expect(leader.ready().reads == [ReadRequest(id: 1)])
    }

    @Test("records that accept above their promise are refused on restore")
    func restoreProblem() {
        let ballot = Ballot(round: 3, node: NodeID(2))
        #expect(MultiPaxosReplica.problem(restoring: Recovered(records: [
            .promised(ballot), .accepted(firstSlot: 1, ballot: ballot, values: [.noop]),
        ])) == nil)
        #expect(MultiPaxosReplica.problem(restoring: Recovered(records: [
            .accepted(firstSlot: 1, ballot: ballot, values: [.noop]),
        ])) != nil)
    }
}

@Suite("Paxos monitors catch what they claim to")
struct PaxosMonitorTests {
    static let members = (1...3).map { NodeID(UInt16($0)) }

    static func ready(_ requests: [AcceptRequest]) -> Ready<MultiPaxosMessage, MultiPaxosRecord> {
        var ready = Ready<MultiPaxosMessage, MultiPaxosRecord>()
        ready.messages = requests.map { Envelope(to: NodeID(2), message: .accept($0), afterSync: false) }
        return ready
    }

    static let replica = MultiPaxosReplica(
        config: ReplicaConfig(id: NodeID(1), members: members), restoring: .empty, randomSeed: 1)

    @Test("Lemma 1: a higher ballot proposing another value for a chosen slot is reported, in either order")
    func lemmaOne() {
        let low = Ballot(round: 1, node: NodeID(1))
        let high = Ballot(round: 2, node: NodeID(2))
        let chosen = AcceptRequest(ballot: low, firstSlot: 1, values: [.noop], chosenThrough: 0, readContext: 0)
        let announced = AcceptRequest(ballot: low, firstSlot: 2, values: [], chosenThrough: 1, readContext: 0)
        let other = AcceptRequest(
            ballot: high, firstSlot: 1, values: [.command(Command(client: 1, sequence: 1, payload: []))], chosenThrough: 0,
            readContext: 0)
        var monitor = MultiPaxosMonitor(members: Self.members)
        #expect(monitor.observe(node: NodeID(1), replica: Self.replica, ready: Self.ready([chosen, announced])).isEmpty)
        #expect(monitor.observe(node: NodeID(2), replica: Self.replica, ready: Self.ready([other])).map(\.invariant) == ["lemma-1"])
        var reversed = MultiPaxosMonitor(members: Self.members)
        #expect(reversed.observe(node: NodeID(2), replica: Self.replica, ready: Self.ready([other])).isEmpty)
        #expect(reversed.observe(node: NodeID(1), replica: Self.replica, ready: Self.ready([chosen, announced]))
            .map(\.invariant) == ["lemma-1"])
        // The same value in the higher ballot is fine, and so is anything in a lower one.
        var fine = MultiPaxosMonitor(members: Self.members)
        let same = AcceptRequest(ballot: high, firstSlot: 1, values: [.noop], chosenThrough: 0, readContext: 0)
        #expect(fine.observe(node: NodeID(1), replica: Self.replica, ready: Self.ready([chosen, announced, same])).isEmpty)
    }

    @Test("one value per ballot, and agreement between replicas, are reported")
    func agreement() {
        let ballot = Ballot(round: 1, node: NodeID(1))
        var monitor = MultiPaxosMonitor(members: Self.members)
        let first = AcceptRequest(ballot: ballot, firstSlot: 1, values: [.noop], chosenThrough: 0, readContext: 0)
        let second = AcceptRequest(
            ballot: ballot, firstSlot: 1, values: [.command(Command(client: 1, sequence: 1, payload: []))], chosenThrough: 0,
            readContext: 0)
        #expect(monitor.observe(node: NodeID(1), replica: Self.replica, ready: Self.ready([first, second])).map(\.invariant)
            == ["one-value-per-ballot"])
        var learners = MultiPaxosMonitor(members: Self.members)
        var one = Self.replica
        one.learn(1, .noop)
        var two = Self.replica
        two.learn(1, .command(Command(client: 1, sequence: 1, payload: [])))
        #expect(learners.observe(node: NodeID(1), replica: one, ready: Ready()).isEmpty)
        #expect(learners.observe(node: NodeID(2), replica: two, ready: Ready()).map(\.invariant) == ["agreement"])
    }
}

@Suite("Paxos codecs")
struct PaxosCodecTests {
    static let command = Command(client: 7, sequence: 3, payload: Array("put x 1".utf8))
    static let ballot = Ballot(round: 9, node: NodeID(2))

    static let messages: [MultiPaxosMessage] = [
        .prepare(ballot, fromSlot: 4),
        .promise(ballot, fromSlot: 4, accepted: [SlotAcceptance(slot: 5, ballot: ballot, value: .command(command))], complete: false),
        .accept(AcceptRequest(ballot: ballot, firstSlot: 5, values: [.noop, .command(command), .barrier(node: NodeID(3), nonce: 77)],
                              chosenThrough: 4, readContext: 2)),
        .accepted(AcceptReply(ballot: ballot, firstSlot: 5, count: 3, learnedThrough: 4, readContext: 2)),
        .nack(ballot, promised: Ballot(round: 10, node: NodeID(1))),
        .chosen(firstSlot: 1, values: [.noop, .command(command)]),
        .prePrepare(ballot),
        .prePrepareReply(ballot, granted: true),
    ]

    static let logMessages: [PaxosLogMessage] = [
        .instance(slot: 3, .prepare(ballot)),
        .instance(slot: 3, .promise(ballot, accepted: AcceptedValue(ballot: ballot, value: [1, 2]))),
        .instance(slot: 3, .promise(ballot, accepted: nil)),
        .instance(slot: 3, .accept(ballot, value: [9])),
        .instance(slot: 3, .accepted(ballot)),
        .instance(slot: 3, .nack(ballot, promised: ballot)),
        .instance(slot: 3, .decided([4])),
        .learn(fromSlot: 8),
        .proposing(fromSlot: 12),
        .decided(firstSlot: 8, values: [.noop]),
        .decided(firstSlot: 9, values: [.batch([.command(command), .barrier(node: NodeID(1), nonce: 5)]), .command(command)]),
    ]

    @Test("messages and records round-trip")
    func roundTrip() throws {
        for message in Self.messages { #expect(try MultiPaxosMessage.decode(message.encoded()) == message) }
        for message in Self.logMessages { #expect(try PaxosLogMessage.decode(message.encoded()) == message) }
        let records: [MultiPaxosRecord] = [
            .round(3), .promised(Self.ballot), .accepted(firstSlot: 2, ballot: Self.ballot, values: [.noop, .command(Self.command)]),
        ]
        for record in records { #expect(try MultiPaxosRecord.decode(record.encoded()) == record) }
        let logRecord = PaxosLogRecord(slot: 4, record: .accepted(AcceptedValue(ballot: Self.ballot, value: [1])))
        #expect(try PaxosLogRecord.decode(logRecord.encoded()) == logRecord)
    }

    @Test("rounds and slots from peers are bounded, so no arithmetic on them can overflow")
    func bounds() {
        let huge = Ballot(round: UInt64.max, node: NodeID(1))
        #expect(throws: WireError.self) { try MultiPaxosMessage.decode(MultiPaxosMessage.prepare(huge, fromSlot: 1).encoded()) }
        #expect(throws: WireError.self) {
            try MultiPaxosMessage.decode(MultiPaxosMessage.chosen(firstSlot: UInt64.max - 1, values: [.noop]).encoded())
        }
        #expect(throws: WireError.self) { try PaxosLogMessage.decode(PaxosLogMessage.learn(fromSlot: 1 << 60).encoded()) }
        #expect(PaxosLogReplica.problem(restoring: Recovered(records: [
            PaxosLogRecord(slot: 3, record: .accepted(AcceptedValue(ballot: Self.ballot, value: [1]))),
        ])) != nil)
        #expect(PaxosLogReplica.problem(restoring: Recovered(records: [
            PaxosLogRecord(slot: 3, record: .promised(Self.ballot)),
            PaxosLogRecord(slot: 3, record: .accepted(AcceptedValue(ballot: Self.ballot, value: [1]))),
        ])) == nil)
    }

    @Test("slot 0, node 0 and unknown tags are refused")
    func refusals() {
        #expect(throws: WireError.self) { try MultiPaxosMessage.decode(MultiPaxosMessage.prepare(Self.ballot, fromSlot: 0).encoded()) }
        #expect(throws: WireError.self) { try MultiPaxosMessage.decode([1, 3, 0, 1]) }
        #expect(throws: WireError.self) { try MultiPaxosMessage.decode([42]) }
        #expect(throws: WireError.self) { try PaxosLogMessage.decode([2, 0]) }
    }

    @Test("a batch holds two or more commands and barriers: never a no-op, another batch, or fewer")
    func batchShapes() throws {
        let barrier = SlotValue.barrier(node: NodeID(1), nonce: 5)
        let batch = SlotValue.batch([.command(Self.command), barrier, .command(Self.command)])
        #expect(try SlotValue.decode(batch.encoded()) == batch)
        #expect(batch.commands == [Self.command, Self.command])
        #expect(batch.payloadBytes == 2 * Self.command.payload.count)
        for refused: SlotValue in [
            .batch([]), .batch([.command(Self.command)]), .batch([.command(Self.command), .noop]),
            .batch([barrier, .batch([barrier, barrier])]),
        ] {
            #expect(throws: WireError.self) { try SlotValue.decode(refused.encoded()) }
        }
        // A count beyond the bytes left, or beyond the bound, is refused before any allocation.
        #expect(throws: WireError.self) { try SlotValue.decode([3, 0xFF, 0xFF, 0x03]) }
        // Batches nested a million deep are refused at the second level, not by recursing.
        #expect(throws: WireError.self) { try SlotValue.decode(Array(repeating: [3, 2], count: 1 << 20).flatMap { $0 }) }
        #expect(SlotValue.noop.commands.isEmpty && barrier.commands.isEmpty)
    }

    @Test("fuzzing: random and mutated frames decode or are refused, never trap")
    func fuzz() {
        var random = DeterministicRandom(seed: 99)
        let encoded = Self.messages.map { $0.encoded() } + Self.logMessages.map { $0.encoded() }
        var decoded = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<random.integer(in: 0..<40)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                bytes = encoded[random.integer(in: 0..<encoded.count)]
                for _ in 0..<random.integer(in: 1...3) where !bytes.isEmpty {
                    bytes[random.integer(in: 0..<bytes.count)] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            if (try? MultiPaxosMessage.decode(bytes)) != nil { decoded += 1 }
            if (try? PaxosLogMessage.decode(bytes)) != nil { decoded += 1 }
            _ = try? MultiPaxosRecord.decode(bytes)
            _ = try? PaxosLogRecord.decode(bytes)
        }
        // Some mutations leave valid frames: the decoders were really exercised on both paths.
        #expect(decoded > 100)
    }
}

@Suite("Multi-Paxos log compaction")
struct MultiPaxosCompactionTests {
    /// A leader of five that chose and executed slots 1...6 (its own acceptances only: the
    /// others' accepts are acknowledged by hand).
    static func leaderWithSixSlots() -> MultiPaxosReplica {
        var leader = MultiPaxosTests.replica(1)
        _ = MultiPaxosTests.elect(&leader, promises: [1: [], 2: [], 3: []])
        for sequence: UInt64 in 1...6 { leader.propose(MultiPaxosTests.command(sequence)) }
        let ready = leader.ready()
        // The same accept goes to every member: answer one copy.
        for request in MultiPaxosTests.accepts(ready).prefix(1) {
            for node: UInt16 in 1...3 {
                if node == 1 {
                    leader.receive(.accept(request), from: NodeID(1))
                    _ = leader.ready()
                }
                leader.receive(.accepted(AcceptReply(
                    ballot: request.ballot, firstSlot: request.firstSlot, count: UInt64(request.values.count),
                    learnedThrough: 0, readContext: 0)), from: NodeID(node))
            }
        }
        #expect(leader.ready().committed.count == 6)
        return leader
    }

    @Test("compaction drops chosen values and acceptances up to the executed point and emits a checkpoint that restores the rest")
    func compactAndRestore() throws {
        var leader = Self.leaderWithSixSlots()
        leader.compact(through: 9, state: [1])
        #expect(leader.ready().snapshot == nil, "a position not executed yet is ignored")
        leader.compact(through: 4, state: [4, 4])
        let ready = leader.ready()
        #expect(ready.snapshot == Snapshot(position: 4, tag: 0, data: [4, 4]))
        #expect(ready.checkpoint && !ready.installsSnapshot)
        #expect(leader.compactedThrough == 4 && leader.chosenThrough == 6)
        #expect(leader.accepted(at: 4) == nil && leader.accepted(at: 5) != nil)
        #expect(leader.chosenValue(at: 4) == nil && leader.chosenValue(at: 5) == .command(MultiPaxosTests.command(5)))
        // The checkpoint, with the snapshot, restores the round, the promise and the acceptances after it.
        let restored = MultiPaxosReplica(
            config: ReplicaConfig(id: NodeID(1), members: MultiPaxosTests.members),
            restoring: Recovered(snapshot: ready.snapshot, records: ready.records), randomSeed: 3)
        #expect(restored.promised == leader.promised && restored.maxRound == leader.maxRound)
        #expect(restored.compactedThrough == 4)
        for slot: UInt64 in 5...6 { #expect(restored.accepted(at: slot)?.value == leader.accepted(at: slot)?.value) }
        #expect(restored.accepted(at: 3) == nil)
    }

    @Test("an acceptor compacted past a prepare's first slot sends its snapshot, never a promise without those slots; the candidate installs it and asks again from after it")
    func prepareBelowCompaction() throws {
        var acceptor = Self.leaderWithSixSlots()
        acceptor.compact(through: 6, state: [6])
        _ = acceptor.ready()
        var candidate = MultiPaxosTests.replica(2)
        candidate.startPhase1()
        _ = candidate.ready()
        acceptor.receive(.prepare(candidate.ballot, fromSlot: 1), from: NodeID(2))
        let answer = acceptor.ready()
        let snapshot = try #require(answer.messages.compactMap { envelope -> Snapshot? in
            if case .snapshot(let snapshot) = envelope.message { return snapshot } else { return nil }
        }.first)
        #expect(!answer.messages.contains { if case .promise = $0.message { true } else { false } })
        candidate.receive(.snapshot(snapshot), from: NodeID(1))
        let installed = candidate.ready()
        #expect(installed.installsSnapshot && installed.snapshot?.position == 6)
        #expect(candidate.chosenThrough == 6 && candidate.role == .candidate)
        let prepares = installed.messages.compactMap { envelope -> UInt64? in
            if case .prepare(let ballot, let from) = envelope.message, ballot == candidate.ballot { return from } else { return nil }
        }
        #expect(prepares.count == MultiPaxosTests.members.count && prepares.allSatisfy { $0 == 7 })
        // The unsafe variant answers with an ordinary promise that lacks slots 1...6.
        var options = MultiPaxosOptions()
        options.mutation = .promiseOverCompactedSlots
        var mutated = MultiPaxosReplica(
            config: ReplicaConfig(id: NodeID(3), members: MultiPaxosTests.members, options: options),
            restoring: Recovered(snapshot: snapshot), randomSeed: 1)
        mutated.receive(.prepare(Ballot(round: 9, node: NodeID(2)), fromSlot: 1), from: NodeID(2))
        #expect(mutated.ready().messages.contains { if case .promise(_, 1, [], true) = $0.message { true } else { false } })
    }

    @Test("the snapshot message round-trips; a snapshot past the slot range is malformed")
    func codec() throws {
        let message = MultiPaxosMessage.snapshot(Snapshot(position: 12, tag: 0, data: [5, 6]))
        #expect(try MultiPaxosMessage.decode(message.encoded()) == message)
        let forged = MultiPaxosMessage.snapshot(Snapshot(position: maximumPaxosSlot, tag: 0, data: []))
        #expect(throws: WireError.self) { try MultiPaxosMessage.decode(forged.encoded()) }
    }
}
