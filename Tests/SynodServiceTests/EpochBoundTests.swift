import SynodCore
import SynodPaxos
import SynodRaft
import SynodRuntime
import Testing

/// Issue 11, finding 2: a RequestVote of term 2^48 - 1 made nodes campaign with a term their
/// own WAL could not read back. Epochs in a peer's frame are now refused at the door above
/// `peerEpochLimit`, which leaves 2^32 elections of room below what a record holds.
@Suite("Epochs from peers stay storable")
struct EpochBoundTests {
    static let highest = WireReader.peerEpochLimit - 1
    static let unstorable = WireReader.storableEpochLimit - 1

    /// A peer's message as the node decodes it from a frame (nil: refused at the door).
    static func arrive<Message: WireCodable & Sendable>(_ message: Message) -> Message? {
        guard case .message(let decoded) = try? PeerFrame<Message>.decode(PeerFrame<Message>.message(message).encoded()) else { return nil }
        return decoded
    }

    /// Node 1 of three receives `message` from node 2, then ticks through several elections of
    /// its own (alone: `options` without Pre-Vote, which would wait for a quorum's yes); every
    /// record it asks to write must decode back to itself.
    static func recordsReadBack<R: Replica>(
        _ type: R.Type, after message: R.Message, options: R.Options = R.Options()
    ) -> (records: Int, unreadable: [String]) {
        let members = [NodeID(1), NodeID(2), NodeID(3)]
        var core = R(config: ReplicaConfig(id: members[0], members: members, options: options), restoring: Recovered(), randomSeed: 7)
        core.receive(message, from: members[1])
        var records: [R.Record] = []
        for _ in 0..<5_000 {
            core.tick()
            records += core.ready().records
        }
        let unreadable = records.compactMap { record -> String? in
            let bytes = record.encoded()
            guard let decoded = try? R.Record.decode(bytes), decoded.encoded() == bytes else { return "\(record)" }
            return nil
        }
        return (records.count, unreadable)
    }

    @Test("Raft: every message with a term past the peer limit is refused; at the limit, the node's records read back")
    func raft() {
        func messages(_ raw: UInt64) -> [RaftMessage] {
            let term = Term(raw)
            return [
                .requestVote(RequestVote(term: term, lastLogIndex: LogIndex(0), lastLogTerm: Term(0))),
                .requestVote(RequestVote(term: Term(1), lastLogIndex: LogIndex(0), lastLogTerm: term)),
                .voteResponse(VoteResponse(term: term, granted: false)),
                .appendEntries(AppendEntries(term: term, prevLogIndex: LogIndex(0), prevLogTerm: Term(0), entries: [],
                                             leaderCommit: LogIndex(0), readContext: 0)),
                .appendResponse(AppendResponse(term: term, success: false, matchIndex: LogIndex(0), rejectedIndex: LogIndex(0),
                                               hintIndex: LogIndex(0), readContext: 0)),
                .installSnapshot(InstallSnapshot(term: term, snapshot: Snapshot(position: 1, tag: 1, data: []))),
                .preVote(RequestVote(term: term, lastLogIndex: LogIndex(0), lastLogTerm: Term(0))),
                .preVoteResponse(VoteResponse(term: term, granted: true)),
                .timeoutNow(TimeoutNow(term: term)),
            ]
        }
        for message in messages(Self.unstorable) + messages(WireReader.peerEpochLimit) {
            #expect(Self.arrive(message) == nil, "refused: \(message)")
        }
        for message in messages(Self.highest) { #expect(Self.arrive(message) != nil, "accepted: \(message)") }
        let vote = RaftMessage.requestVote(RequestVote(term: Term(Self.highest), lastLogIndex: LogIndex(0), lastLogTerm: Term(0)))
        var options = RaftOptions()
        options.preVote = false
        let (count, unreadable) = Self.recordsReadBack(RaftReplica.self, after: Self.arrive(vote)!, options: options)
        #expect(count >= 3, "the node adopted the term and campaigned")
        #expect(unreadable.isEmpty, "\(unreadable)")
    }

    @Test("Multi-Paxos: ballots past the peer limit are refused; at the limit, the node's rounds read back")
    func multiPaxos() {
        func messages(_ round: UInt64) -> [MultiPaxosMessage] {
            let ballot = Ballot(round: round, node: NodeID(2))
            return [
                .prepare(ballot, fromSlot: 1),
                .promise(ballot, fromSlot: 1, accepted: [], complete: true),
                .nack(Ballot(round: 1, node: NodeID(2)), promised: ballot),
                .accept(AcceptRequest(ballot: ballot, firstSlot: 1, values: [], chosenThrough: 0, readContext: 0)),
                .accepted(AcceptReply(ballot: ballot, firstSlot: 1, count: 0, learnedThrough: 0, readContext: 0)),
                .prePrepare(ballot),
                .prePrepareReply(ballot, granted: true),
            ]
        }
        for message in messages(Self.unstorable) { #expect(Self.arrive(message) == nil, "refused: \(message)") }
        for message in messages(Self.highest) { #expect(Self.arrive(message) != nil, "accepted: \(message)") }
        let prepare = MultiPaxosMessage.prepare(Ballot(round: Self.highest, node: NodeID(2)), fromSlot: 1)
        var options = MultiPaxosOptions()
        options.preVote = false
        let (count, unreadable) = Self.recordsReadBack(MultiPaxosReplica.self, after: Self.arrive(prepare)!, options: options)
        #expect(count >= 3, "the node promised, then campaigned above the round it saw")
        #expect(unreadable.isEmpty, "\(unreadable)")
    }

    @Test("the Paxos log: ballots past the peer limit are refused; at the limit, the node's records read back")
    func paxosLog() {
        let refused = PaxosLogMessage.instance(slot: 1, .prepare(Ballot(round: Self.unstorable, node: NodeID(2))))
        #expect(Self.arrive(refused) == nil)
        let prepare = PaxosLogMessage.instance(slot: 1, .prepare(Ballot(round: Self.highest, node: NodeID(2))))
        let (count, unreadable) = Self.recordsReadBack(PaxosLogReplica.self, after: Self.arrive(prepare)!)
        #expect(count >= 1, "the node promised")
        #expect(unreadable.isEmpty, "\(unreadable)")
    }

    @Test("records may hold epochs up to the storable limit: a node restarts on what it wrote")
    func recordsKeepTheirRange() throws {
        let record = MultiPaxosRecord.promised(Ballot(round: Self.unstorable, node: NodeID(1)))
        #expect(try MultiPaxosRecord.decode(record.encoded()).encoded() == record.encoded())
        #expect(throws: WireError.self) { try MultiPaxosRecord.decode(MultiPaxosRecord.round(WireReader.storableEpochLimit).encoded()) }
    }
}
