import SynodCore

/// What can happen in a simulation.
enum SimulationEventKind<R: Replica> {
    case nodeTick(node: Int, incarnation: UInt32)
    case deliver(from: Int, to: Int, message: R.Message)
    case syncDone(node: Int, incarnation: UInt32)
    case clientTick(client: Int)
    case clientStart(client: Int)
    case clientRequest(client: Int, node: Int, request: ClientRequest)
    case clientReply(client: Int, node: Int, reply: ClientReply)
    case nemesis
    case restart(node: Int)
    case heal(partition: UInt64)
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

/// One simulated replica: the core (absent while crashed), its disk and its state machine.
struct SimulatedNode<R: Replica> {
    var replica: R?
    var incarnation: UInt32 = 0
    /// Every record written, synced or not; `syncedCount` of them are durable.
    var disk: [R.Record] = []
    var syncedCount = 0
    var syncInFlight = false
    /// Messages that leave when the sync in flight completes.
    var syncingMessages: [Envelope<R.Message>] = []
    /// The record count the sync in flight covers.
    var syncingCount = 0
    /// Messages waiting for the next sync.
    var waitingMessages: [Envelope<R.Message>] = []
    var lastSyncDoneTime: UInt64 = 0
    /// The nemesis armed a crash in the middle of the next write.
    var crashAtNextWrite = false
    var tickNanoseconds: UInt64
    /// The durable snapshot (written atomically, before the records of its `Ready`).
    var snapshot: Snapshot?
    /// Disk positions of the newest checkpoint's records: once they are synced, the records
    /// before them are discarded.
    var checkpoint: Range<Int>?
    /// The applied position of this incarnation's last compaction.
    var lastCompactedPosition: UInt64 = 0
    var machine: SimulatedStore
    var lastAppliedPosition: UInt64 = 0
    var appliedCommands: Set<CommandID> = []
    /// How many committed commands on each key this incarnation applied.
    var appliedPerKey: [String: Int] = [:]
    /// The latest write each client is waiting for at this replica.
    var pendingWrites: [ClientID: UInt64] = [:]
    var pendingReads: [UInt64: (client: Int, command: Command)] = [:]
    var nextReadID: UInt64 = 1

    init(tickNanoseconds: UInt64, workload: SimulationWorkload) {
        self.tickNanoseconds = tickNanoseconds
        self.machine = SimulatedStore(workload)
    }
}

/// What a simulated snapshot holds: the state machine and what the checks know of it. A
/// snapshot's bytes name one of these (the simulator keeps them instead of serialising).
struct SnapshotState {
    /// The applied position the state was taken at.
    var position: UInt64
    var machine: SimulatedStore
    var appliedCommands: Set<CommandID>
    var appliedPerKey: [String: Int]
}

/// One simulated client: its session and its current operation.
struct SimulatedClient<Session: ClientSession> {
    var session: Session
    var remainingOperations: Int
    var nextSequence: UInt64 = 1
    /// Index into the history of the operation in flight.
    var currentOperation: Int?
    var currentCommand: CommandID?
}
