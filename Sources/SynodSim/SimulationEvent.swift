import SynodClocks
import SynodCore
import SynodDriver

/// What can happen in a simulation.
enum SimulationEventKind<R: Replica> {
    case nodeTick(node: Int, incarnation: UInt32)
    case deliver(from: Int, to: Int, message: PeerMessage<R.Message>)
    case syncDone(node: Int, incarnation: UInt32)
    case clientTick(client: Int)
    case clientStart(client: Int)
    /// A direct client's request reaches a replica, and the replica's answer the client.
    case clientRequest(client: Int, node: Int, request: ClientRequest)
    case clientReply(client: Int, node: Int, reply: ClientReply)
    /// A client's request reaches the gateway it picked (`SimulatedClient.gateway`).
    case submit(client: Int, token: UInt64, kind: ClientRequest.Kind, payload: [UInt8])
    /// A gateway's answer reaches its client.
    case completed(client: Int, token: UInt64, command: CommandID, result: Result<[UInt8], RequestFailure>)
    case nemesis
    case restart(node: Int)
    case heal(partition: UInt64)
    /// The fixed partition begins, or (begin false) heals and the fault phase ends.
    case fixedPartition(begin: Bool)
    /// The replica cut off by the `rejoin` fault comes back.
    case rejoin(node: Int)
}

/// A replica let back by the `rejoin` fault, watched for a while: the leader that kept its
/// majority while it was away must not lose leadership because it came back.
struct RejoinWatch {
    var node: Int
    var leader: Int
    var healedAt: UInt64
    var until: UInt64
}

/// One scheduled happening in virtual time: a plain value for the queue to move cheaply; what
/// happens lives in the simulation's side table at `slot`. Ties break by scheduling order, so
/// the queue is a total order and a seed determines the whole run.
struct ScheduledEvent: Comparable {
    var time: UInt64
    var sequence: UInt64
    var slot: Int

    static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.time, lhs.sequence) < (rhs.time, rhs.sequence)
    }

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.time == rhs.time && lhs.sequence == rhs.sequence
    }
}

/// One simulated node: its driver (absent while crashed), its disk, and what the checks know
/// of its state machine.
struct SimulatedNode<R: Replica> {
    var driver: NodeDriver<R, SimulatedMachine>?
    var incarnation: UInt32 = 0
    /// Every record written, synced or not; `syncedCount` of them are durable.
    var disk: [R.Record] = []
    var syncedCount = 0
    var syncInFlight = false
    /// The record count the sync in flight covers.
    var syncingCount = 0
    /// The sync in flight wrote a snapshot: the one it replaced, and where its records begin
    /// (a crash before the sync completes may leave the old snapshot and none of them).
    var syncingSnapshot: (previous: Snapshot?, firstRecord: Int)?
    var lastSyncDoneTime: UInt64 = 0
    /// The nemesis armed a crash in the middle of the next write.
    var crashAtNextWrite = false
    var tickNanoseconds: UInt64
    /// The durable snapshot (written atomically, before the records of its step).
    var snapshot: Snapshot?
    /// Disk positions of the newest checkpoint's records: once they are synced, the records
    /// before them are discarded.
    var checkpoint: Range<Int>?
    var lastAppliedPosition: UInt64 = 0
    /// The `Committed.index` applied last at `lastAppliedPosition` (`Int.max` once a snapshot
    /// holds the whole position; -1 before anything).
    var lastAppliedIndex = -1
    var appliedCommands: Set<CommandID> = []
    /// How many committed commands on each key this incarnation applied.
    var appliedPerKey: [String: Int] = [:]

    init(tickNanoseconds: UInt64) {
        self.tickNanoseconds = tickNanoseconds
    }
}

/// What a simulated snapshot holds: the state machine and what the checks know of it. A
/// snapshot's bytes name one of these (the simulator keeps them instead of serialising).
struct SnapshotState {
    /// The applied position the state was taken at.
    var position: UInt64
    var machine: ExactlyOnce<SimulatedMachine>
    var appliedCommands: Set<CommandID>
    var appliedPerKey: [String: Int]
}

/// One simulated client: either a plain client of one node's gateway per operation (the
/// protocol's session runs in the gateway's driver, as for HTTP clients in production), or a
/// client that runs the session itself and talks to the replicas directly.
struct SimulatedClient<Session: ClientSession> {
    /// The session of a direct client; nil for a gateway's client.
    var session: Session?
    var remainingOperations: Int
    var nextSequence: UInt64 = 1
    /// Index into the history of the operation in flight.
    var currentOperation: Int?
    /// The gateway request of that operation: its token, node and the node's incarnation.
    var token: UInt64 = 0
    var gateway = 0
    var gatewayIncarnation: UInt32 = 0
    /// The command of a direct client's operation in flight.
    var currentCommand: CommandID?
    /// The key of the operation in flight.
    var currentKey: UInt8 = 0
    /// The eventual workload: per key, the causal context of the client's last answer (its
    /// next put there replaces what it saw).
    var contexts: [UInt8: VectorClock] = [:]
}
