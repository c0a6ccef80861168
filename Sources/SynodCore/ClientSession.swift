/// A client's request to the replicated service.
public struct ClientRequest: Sendable, Equatable {
    /// How the request is ordered.
    public enum Kind: Sendable, Equatable {
        /// A command that changes state: ordered through the protocol's log.
        case write
        /// A query served through the protocol's linearizable read path.
        case read
    }

    /// How the request is ordered.
    public var kind: Kind
    /// The command (for a read, its payload is the query).
    public var command: Command
    /// The sender's signature or MAC over the request, for protocols that authenticate their
    /// clients (`Replica.authenticate(_:)`); `nil` otherwise.
    public var authenticator: Authenticator?

    /// Creates a request.
    public init(kind: Kind, command: Command, authenticator: Authenticator? = nil) {
        self.kind = kind
        self.command = command
        self.authenticator = authenticator
    }
}

/// A replica's answer to a client request.
public enum ClientReply: Sendable, Equatable {
    /// Applied (or read); `result` is the state machine's reply.
    case ok(CommandID, result: [UInt8])
    /// This replica does not lead; try `hint` if given.
    case notLeader(CommandID, hint: NodeID?)
    /// The replica is overloaded; try again later.
    case overloaded(CommandID)
    /// The replica will not serve this request, for a reason no retry changes (a reply too
    /// large for the link it would travel on): the operation fails.
    case refused(CommandID, reason: String)

    /// The request this reply answers.
    public var commandID: CommandID {
        switch self {
        case .ok(let id, _), .notLeader(let id, _), .overloaded(let id), .refused(let id, _): return id
        }
    }
}

/// What a client session wants done after an input.
public struct SessionReady: Sendable {
    /// Requests to send, with their destination replica.
    public var sends: [(to: NodeID, request: ClientRequest)]
    /// The operation that completed, with its result, if one did.
    public var completed: (id: CommandID, result: [UInt8])?
    /// The operation that failed for good (a replica refused it), with the reason, if one did.
    public var refused: (id: CommandID, reason: String)?

    /// Nothing to do.
    public init() {
        self.sends = []
        self.completed = nil
        self.refused = nil
    }
}

/// Client-side protocol logic as a pure state machine, run unchanged by the simulator and by
/// real clients: Raft and Multi-Paxos find and follow the leader, EPaxos goes to the nearest
/// replica, PBFT broadcasts and waits for f+1 matching replies.
///
/// A session has at most one operation outstanding; it keeps retrying it (same command
/// identity, so the service applies it once) until it completes or the caller gives up.
public protocol ClientSession: Sendable {
    /// Creates a session for `client` against a cluster of `members`.
    init(client: ClientID, members: [NodeID], randomSeed: UInt64)
    /// Starts an operation. Any earlier one is abandoned.
    mutating func submit(_ request: ClientRequest)
    /// Handles a reply from replica `sender`.
    mutating func receive(_ reply: ClientReply, from sender: NodeID)
    /// Advances the session's clock by one tick (retries, backoff).
    mutating func tick()
    /// Drains what the session wants done.
    mutating func ready() -> SessionReady
    /// The replica that runs this session (a node's gateway) suggests where requests should
    /// go now: the leader it knows of, or itself for a leaderless protocol. A session may
    /// follow the hint (and re-send an outstanding request there) or ignore it (the default).
    mutating func prefer(_ replica: NodeID)
    /// The cluster's members changed (a protocol whose membership changes): requests go to
    /// `members` from now on. Default: ignored (a fixed membership).
    mutating func follow(members: [NodeID])
}

extension ClientSession {
    public mutating func prefer(_ replica: NodeID) {}
    public mutating func follow(members: [NodeID]) {}
}

/// The session of leader-based protocols (Raft, Multi-Paxos): send to the presumed leader,
/// follow redirects, and on silence try the next replica.
public struct LeaderFollowingSession: ClientSession {
    /// Ticks without an answer before the request is sent to the next replica.
    public static let retryTicks = 30

    private var members: [NodeID]
    private var random: DeterministicRandom
    private var leaderIndex: Int
    private var outstanding: ClientRequest?
    private var ticksSinceSend = 0
    private var resendAtNextTick = false
    private var redirectsInARow = 0
    private var pending = SessionReady()

    public init(client: ClientID, members: [NodeID], randomSeed: UInt64) {
        precondition(!members.isEmpty, "a session needs at least one replica")
        self.members = members.sorted()
        self.random = DeterministicRandom(seed: randomSeed)
        self.leaderIndex = self.random.integer(in: 0..<members.count)
    }

    public mutating func submit(_ request: ClientRequest) {
        self.outstanding = request
        self.redirectsInARow = 0
        self.send()
    }

    public mutating func receive(_ reply: ClientReply, from sender: NodeID) {
        guard let request = self.outstanding, reply.commandID == request.command.id else { return }
        switch reply {
        case .ok(let id, let result):
            self.outstanding = nil
            self.resendAtNextTick = false
            self.pending.completed = (id, result)
        case .notLeader(_, let hint):
            self.redirectsInARow += 1
            if let hint, hint != sender, let index = self.members.firstIndex(of: hint) {
                self.leaderIndex = index
            } else if self.members[self.leaderIndex] == sender {
                self.leaderIndex = (self.leaderIndex + 1) % self.members.count
            }
            // Follow a fresh hint at once; when redirects go round in circles (an election is
            // under way) wait for the next tick so the session does not spin.
            if hint != nil && hint != sender && self.redirectsInARow <= 2 {
                self.send()
            } else {
                self.resendAtNextTick = true
            }
        case .overloaded:
            self.resendAtNextTick = true
        case .refused(let id, let reason):
            self.outstanding = nil
            self.resendAtNextTick = false
            self.pending.refused = (id, reason)
        }
    }

    /// Follows the gateway's hint: later requests go to `replica`, and an outstanding request
    /// sent elsewhere is sent there at once (a new leader is known).
    public mutating func prefer(_ replica: NodeID) {
        guard let index = self.members.firstIndex(of: replica), index != self.leaderIndex else { return }
        self.leaderIndex = index
        if self.outstanding != nil {
            self.redirectsInARow = 0
            self.send()
        }
    }

    /// Sends to `members` from now on; the presumed leader stays presumed if it is still one.
    public mutating func follow(members: [NodeID]) {
        guard !members.isEmpty else { return }
        let presumed = self.members[self.leaderIndex]
        self.members = members.sorted()
        self.leaderIndex = self.members.firstIndex(of: presumed) ?? self.random.integer(in: 0..<self.members.count)
    }

    public mutating func tick() {
        guard self.outstanding != nil else { return }
        self.ticksSinceSend += 1
        if self.resendAtNextTick {
            self.resendAtNextTick = false
            self.redirectsInARow = 0
            self.send()
        } else if self.ticksSinceSend >= Self.retryTicks {
            self.leaderIndex = (self.leaderIndex + 1) % self.members.count
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
        self.pending.sends.append((self.members[self.leaderIndex], request))
    }
}
