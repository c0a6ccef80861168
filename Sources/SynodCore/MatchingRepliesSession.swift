/// The session of Byzantine protocols (PBFT): send every request to every replica and accept a
/// result once f + 1 distinct replicas have answered it identically, so at least one of them
/// is correct (`ByzantineQuorums.replyQuorum`). Up to f replicas may answer anything, or
/// nothing, or say they are not the primary: none of it completes or fails the operation.
///
/// A reply's sender is the replica the link (or a verified `Authenticator`) says it came from;
/// a replica's later reply replaces its earlier one, so one replica never counts twice.
public struct MatchingRepliesSession: ClientSession {
    /// Ticks without f + 1 matching replies before the request is sent to every replica again.
    public static let retryTicks = 30

    /// The replicas, and the faults tolerated among them.
    public let members: [NodeID]
    /// Matching replies needed: f + 1.
    public let needed: Int
    private var outstanding: ClientRequest?
    private var answers: [NodeID: Answer] = [:]
    private var ticksSinceSend = 0
    private var pending = SessionReady()

    private enum Answer: Equatable {
        case result([UInt8])
        case refused(String)
    }

    public init(client: ClientID, members: [NodeID], randomSeed: UInt64) {
        precondition(!members.isEmpty, "a session needs at least one replica")
        self.members = members.sorted()
        self.needed = (members.count - 1) / 3 + 1
    }

    public mutating func submit(_ request: ClientRequest) {
        self.outstanding = request
        self.answers = [:]
        self.broadcast()
    }

    public mutating func receive(_ reply: ClientReply, from sender: NodeID) {
        guard let request = self.outstanding, reply.commandID == request.command.id, self.members.contains(sender) else { return }
        switch reply {
        case .ok(_, let result): self.answers[sender] = .result(result)
        case .refused(_, let reason): self.answers[sender] = .refused(reason)
        case .notLeader, .overloaded: return  // the retry asks again
        }
        guard let answer = self.answers[sender], self.answers.values.filter({ $0 == answer }).count >= self.needed else { return }
        self.outstanding = nil
        self.answers = [:]
        switch answer {
        case .result(let result): self.pending.completed = (request.command.id, result)
        case .refused(let reason): self.pending.refused = (request.command.id, reason)
        }
    }

    public mutating func tick() {
        guard self.outstanding != nil else { return }
        self.ticksSinceSend += 1
        if self.ticksSinceSend >= Self.retryTicks { self.broadcast() }
    }

    public mutating func ready() -> SessionReady {
        defer { self.pending = SessionReady() }
        return self.pending
    }

    private mutating func broadcast() {
        guard let request = self.outstanding else { return }
        self.ticksSinceSend = 0
        for member in self.members { self.pending.sends.append((member, request)) }
    }
}
