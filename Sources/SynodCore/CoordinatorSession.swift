/// The session of protocols where any replica coordinates an operation but no two may
/// coordinate the same one (the ABD register, the eventually consistent store): each
/// operation goes to one coordinator and stays with it, retried there on silence, until it
/// completes or the caller gives up.
///
/// A write two coordinators handle would take effect twice: in ABD under two tags (a read
/// seeing it, then another write, then it again), in the eventual store as two siblings. The
/// coordinator remembers durably which writes it took, so retrying at the same replica is
/// safe, even across its restarts. The coordinator is the gateway's own replica (the driver's
/// hint), or for a client that runs the session itself a random replica per operation.
public struct CoordinatorSession: ClientSession {
    /// Ticks without an answer before the request is sent again (to the same replica).
    public static let retryTicks = 30

    private var members: [NodeID]
    private var random: DeterministicRandom
    private var preferred: NodeID?
    private var coordinator: NodeID
    private var outstanding: ClientRequest?
    private var ticksSinceSend = 0
    private var resendAtNextTick = false
    private var pending = SessionReady()

    public init(client: ClientID, members: [NodeID], randomSeed: UInt64) {
        precondition(!members.isEmpty, "a session needs at least one replica")
        self.members = members.sorted()
        self.random = DeterministicRandom(seed: randomSeed)
        self.coordinator = self.members[0]
    }

    public mutating func submit(_ request: ClientRequest) {
        self.outstanding = request
        self.resendAtNextTick = false
        self.coordinator = self.preferred ?? self.members[self.random.integer(in: 0..<self.members.count)]
        self.send()
    }

    /// The gateway's own replica coordinates its operations from the next one on; an
    /// operation already sent stays where it is.
    public mutating func prefer(_ replica: NodeID) {
        guard self.members.contains(replica) else { return }
        self.preferred = replica
    }

    public mutating func receive(_ reply: ClientReply, from sender: NodeID) {
        guard let request = self.outstanding, reply.commandID == request.command.id, sender == self.coordinator else { return }
        switch reply {
        case .ok(let id, let result):
            self.outstanding = nil
            self.pending.completed = (id, result)
        case .notLeader, .overloaded:
            self.resendAtNextTick = true
        case .refused(let id, let reason):
            self.outstanding = nil
            self.pending.refused = (id, reason)
        }
    }

    public mutating func tick() {
        guard self.outstanding != nil else { return }
        self.ticksSinceSend += 1
        if self.resendAtNextTick || self.ticksSinceSend >= Self.retryTicks {
            self.resendAtNextTick = false
            self.send()
        }
    }

    public mutating func ready() -> SessionReady {
        defer { self.pending = SessionReady() }
        return self.pending
    }

    private mutating func send() {
        guard let request = self.outstanding else { return }
        self.ticksSinceSend = 0
        self.pending.sends.append((self.coordinator, request))
    }
}
