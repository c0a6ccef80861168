import SynodCore

/// What travels between two nodes' drivers: the protocol's own messages, and client requests
/// and replies between one node's gateway and another node's replica.
public enum PeerMessage<Message: Sendable>: Sendable {
    /// A protocol message, for the core.
    case replica(Message)
    /// A client request, sent by a gateway's session to this replica.
    case request(ClientRequest)
    /// A replica's answer to a request this node's gateway sent, with the replica's
    /// authenticator if its protocol makes one (`Replica.authenticate(_:)`).
    case reply(ClientReply, authenticator: Authenticator?)
}

/// One piece of storage work, in `Ready` order.
public enum StorageStep<Record: Sendable>: Sendable {
    /// Make this snapshot the durable one (atomically), before the records after it.
    case snapshot(Snapshot)
    /// The next records are a checkpoint: start them afresh (a new segment), and discard
    /// everything written before them once they are durable.
    case checkpoint
    /// Append these records.
    case records([Record])
}

/// Where a client request came from, so its answer goes back there.
public enum ClientEndpoint: Hashable, Sendable {
    /// This node's own gateway.
    case local
    /// The gateway of another node.
    case peer(NodeID)
    /// A client connected to this node directly that runs the protocol's session itself (a
    /// client library), by the executor's number for its connection.
    case external(UInt64)
}

/// Why a gateway request failed.
public enum RequestFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// No answer within the request timeout; a write may or may not take effect.
    case timeout
    /// Too many requests are in flight on this node; nothing was sent.
    case overloaded
    /// A replica refused it for good (the reason says why).
    case refused(String)

    public var description: String {
        switch self {
        case .timeout: "the request timed out; a write may or may not have taken effect"
        case .overloaded: "overloaded; try again later"
        case .refused(let reason): reason
        }
    }
}

/// What a driver asks its executor to do (or tells it, for the observations).
///
/// Executors carry actions out in the order given. `send` to the node itself is delivered back
/// through `NodeDriver.receive` later (never from inside the executor's handling of the list).
public enum NodeAction<Message: Sendable, Record: Sendable, Machine: StateMachine> {
    /// Send `message` to node `to` (possibly this node).
    case send(to: NodeID, PeerMessage<Message>)
    /// Carry out these storage steps in order and make them durable (one fdatasync), then call
    /// `NodeDriver.persisted()`. The driver never asks for a second before that call.
    case persist([StorageStep<Record>])
    /// Serialise `machine` (the state after applying everything through `position`), make it
    /// durable as the snapshot (`position`, `tag`, `identity`), then call
    /// `NodeDriver.snapshotSaved` with the bytes, or `snapshotFailed` when it could not be
    /// written.
    case saveSnapshot(position: UInt64, tag: UInt64, identity: [UInt8], machine: ExactlyOnce<Machine>)
    /// Answer the directly connected client `connection` (`NodeDriver.serve(_:connection:)`),
    /// with the replica's authenticator if its protocol makes one.
    case answer(connection: UInt64, ClientReply, authenticator: Authenticator?)
    /// The gateway request `token` is over: its command identity and its result.
    case complete(token: UInt64, command: CommandID, Result<[UInt8], RequestFailure>)
    /// The node cannot go on (a snapshot received from a replica does not restore).
    case stop(String)
    /// A role, leader or epoch change of the core.
    case event(ReplicaEvent)
    /// The state machine was replaced by a snapshot another replica sent.
    case installed(Snapshot)
    /// Observation (with `NodeDriverOptions.observe`): a committed command was applied.
    case applied(Committed, ExactlyOnce<Machine>.Outcome)
    /// Observation (with `NodeDriverOptions.observe`): the core's `Ready`, after the driver
    /// handled it (for invariant monitors).
    case observed(Ready<Message, Record>)
}

/// How one node's driver behaves; every field has a default.
public struct NodeDriverOptions: Sendable {
    /// Snapshot the state machine every this many applied positions and let the core compact
    /// its log behind it (0: never).
    public var snapshotInterval: UInt64 = 0
    /// Requests this node's gateway holds at once; beyond, a new request fails `overloaded`.
    public var maximumRequests = 16_384
    /// Client requests this node's replica serves at once (proposed or read, not yet
    /// answered); beyond, a new one is answered `overloaded`.
    public var maximumServed = 65_536
    /// Ticks a gateway request may take before it fails with `timeout`.
    public var requestTimeoutTicks: UInt64 = 500
    /// Largest reply sent to another node's gateway; a larger one is refused with a reason.
    public var maximumReplyBytes = Int.max
    /// Emit `applied` and `observed` actions (the simulator's checks).
    public var observe = false
    /// Test-only breakage: messages that must wait for a sync leave at once.
    public var unsafeSendBeforeSync = false
    /// Test-only breakage: a retried command already applied is applied again.
    public var unsafeApplyRetriesAgain = false

    /// The defaults.
    public init() {}

    /// Checks bounds.
    public func validate() throws {
        guard (1..<(1 << 20)).contains(self.maximumRequests) else {
            throw ConfigurationError("maximumRequests \(self.maximumRequests) must be in 1..<1048576")
        }
        guard self.maximumServed >= 1 else { throw ConfigurationError("maximumServed must be at least 1") }
        guard self.requestTimeoutTicks >= 1 else { throw ConfigurationError("requestTimeoutTicks must be at least 1") }
        guard self.maximumReplyBytes >= 1 else { throw ConfigurationError("maximumReplyBytes must be at least 1") }
    }
}
