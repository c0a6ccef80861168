/// Everything a core asks its driver to do after one input: the one contract between a pure
/// protocol core and the outside world (etcd-raft's Ready/Advance idea).
///
/// A driver handles a `Ready` in this order:
///
/// 0. If `snapshot` is set, make it durable (atomically: a crash leaves the previous snapshot
///    or this one, never a mix) before any of `records`, which may assume it. If
///    `installsSnapshot` is also set, replace the state machine with the snapshot's state
///    before applying `committed` (a replica that fell behind receives another's state).
/// 1. Append `records` to stable storage, in order. Records are durable facts; replaying them
///    in order through `Replica.init(config:restoring:randomSeed:)` rebuilds the core.
/// 2. Send every message whose `afterSync` is false. These may leave before the records are
///    durable (a leader's appends to followers, vote requests).
/// 3. Once every record emitted so far (in this and all earlier `Ready`s) is durable, send the
///    messages whose `afterSync` is true. Replies that promise durability (a vote, an append
///    acknowledgement, a Paxos promise) are marked so by the core; the driver cannot skip it.
///    Messages addressed to the replica itself are delivered back to it through `receive`:
///    that is how a core learns that its own records are durable.
/// 4. Apply `committed` to the application state machine, in order.
/// 5. Serve `reads` from the state machine (after step 4), and answer `rejected` requests.
///
/// When `checkpoint` is set, `records` begin with records that restore the core's whole durable
/// state given `snapshot`: once they are durable, every record written before them may be
/// discarded (log compaction). Discarding is optional and may stop part way if it removes the
/// newest of those records first: the core restores from all its records, from those from the
/// checkpoint on, or from some oldest of them followed by everything from the checkpoint on.
///
/// `events` are informational: role, leader and epoch changes for logs, metrics and checkers.
public struct Ready<Message: Sendable, Record: Sendable>: Sendable {
    /// Durable records to append, in order.
    public var records: [Record]
    /// Messages to send.
    public var messages: [Envelope<Message>]
    /// Commands committed, in execution order.
    public var committed: [Committed]
    /// Reads that may now be served locally, after applying `committed`.
    public var reads: [ReadRequest]
    /// Proposals and reads this replica will not handle, with the reason.
    public var rejected: [Rejection]
    /// Role, leader and epoch changes.
    public var events: [ReplicaEvent]
    /// A snapshot to make durable before `records` (step 0).
    public var snapshot: Snapshot?
    /// The snapshot came from another replica: the state machine becomes its state.
    public var installsSnapshot: Bool
    /// `records` begin with a checkpoint; records written before it may be discarded once it
    /// is durable.
    public var checkpoint: Bool

    /// An empty `Ready`.
    public init() {
        self.snapshot = nil
        self.installsSnapshot = false
        self.checkpoint = false
        self.records = []
        self.messages = []
        self.committed = []
        self.reads = []
        self.rejected = []
        self.events = []
    }

    /// True when there is nothing to do.
    public var isEmpty: Bool {
        self.records.isEmpty && self.messages.isEmpty && self.committed.isEmpty && self.reads.isEmpty
            && self.rejected.isEmpty && self.events.isEmpty && self.snapshot == nil && !self.checkpoint
    }
}

/// A message with its destination and its durability requirement.
public struct Envelope<Message: Sendable>: Sendable {
    /// The destination replica (may be the sender itself).
    public var to: NodeID
    /// The message.
    public var message: Message
    /// True when the message may leave only after every record emitted so far is durable.
    public var afterSync: Bool

    /// Creates an envelope.
    public init(to: NodeID, message: Message, afterSync: Bool) {
        self.to = to
        self.message = message
        self.afterSync = afterSync
    }
}

/// A command the protocol has committed, with its position in the replica's execution order.
public struct Committed: Sendable {
    /// The protocol's position for the command (Raft log index, Paxos slot, PBFT sequence).
    /// Together with `index`, strictly increasing within one replica incarnation.
    public var position: UInt64
    /// The command's place among the commands of one position (a Paxos slot holding a batch),
    /// from 0; always 0 where a position holds one command. The commands of one position are
    /// handed over in one `ready()`, so a snapshot taken at a position holds all of them.
    public var index: Int
    /// The command to apply.
    public var command: Command

    /// Creates a committed command.
    public init(position: UInt64, index: Int = 0, command: Command) {
        self.position = position
        self.index = index
        self.command = command
    }
}

/// A proposal or read the replica declines, and why.
public struct Rejection: Sendable {
    /// What was declined.
    public enum Request: Sendable {
        /// A proposed command.
        case proposal(Command)
        /// A linearizable read.
        case read(ReadRequest)
    }

    /// Why it was declined.
    public enum Reason: Sendable, Equatable {
        /// This replica does not lead; `hint` is the leader it knows of, if any.
        case notLeader(hint: NodeID?)
        /// Too many requests are in flight; try again later.
        case overloaded
        /// The protocol cannot order this request (a quorum register asked for a
        /// compare-and-set); no retry changes that: the client's operation fails with the reason.
        case unsupported(String)
    }

    /// What was declined.
    public var request: Request
    /// Why.
    public var reason: Reason

    /// Creates a rejection.
    public init(request: Request, reason: Reason) {
        self.request = request
        self.reason = reason
    }
}

/// A change in a replica's role, leader or epoch (term, view, ballot), for logs, metrics and
/// checkers. Epochs are protocol numbers mapped to `UInt64` so they order the same way.
public enum ReplicaEvent: Sendable, Equatable {
    /// The replica became the leader (or primary, or distinguished proposer) of `epoch`.
    case becameLeader(epoch: UInt64)
    /// The replica became a follower (or backup, or acceptor) in `epoch`, following `leader`.
    case becameFollower(epoch: UInt64, leader: NodeID?)
    /// The replica started campaigning for `epoch`.
    case becameCandidate(epoch: UInt64)
}
