import SynodCore

/// Tuning of the ABD register.
public struct ABDOptions: ReplicaOptions, Equatable {
    /// Ticks without enough answers before a phase is sent again to the replicas that have
    /// not answered (messages may be lost).
    public var resendTicks = 5
    /// Most operations one replica coordinates at once before it answers `overloaded`.
    public var maximumOperations = 10_000
    /// Log compaction: once this many records were appended since the last checkpoint (and at
    /// least twice as many as there are keys and clients to write again), the replica writes
    /// its whole state as a checkpoint and the records before it may go. 0: never.
    public var checkpointRecords = 10_000
    /// Test-only: reads return what the first phase found without writing it back to a
    /// majority (the classic mistake: a later read may then see an older value).
    @_spi(Testing) public var unsafeReadsSkipWriteBack = false
    /// Test-only: checkpoints leave out every other key, so a restart after the records before
    /// them are gone forgets completed writes. The monitor must catch it.
    @_spi(Testing) public var unsafeCheckpointSkipsKeys = false

    public init() {}

    public func validate() throws {
        guard self.resendTicks >= 1 else { throw ConfigurationError("resendTicks must be positive") }
        guard self.maximumOperations >= 1 else { throw ConfigurationError("maximumOperations must be positive") }
        guard self.checkpointRecords >= 0 else { throw ConfigurationError("checkpointRecords must not be negative") }
    }

    public mutating func set(_ name: String, to value: String) throws {
        switch name {
        case "resend-ticks":
            guard let ticks = Int(value), ticks >= 1 else { throw ConfigurationError("option 'resend-ticks' takes a positive number, got '\(value)'") }
            self.resendTicks = ticks
        case "checkpoint-records":
            guard let records = Int(value), records >= 0 else {
                throw ConfigurationError("option 'checkpoint-records' takes a number of records (0: never), got '\(value)'")
            }
            self.checkpointRecords = records
        case "unsafe-reads-skip-write-back":
            self.unsafeReadsSkipWriteBack = try ConfigurationError.flag(name, value)
        case "unsafe-checkpoint-skips-keys":
            self.unsafeCheckpointSkipsKeys = try ConfigurationError.flag(name, value)
        default:
            throw ConfigurationError(
                "unknown option '\(name)' for abd; known: resend-ticks, checkpoint-records, unsafe-reads-skip-write-back, "
                    + "unsafe-checkpoint-skips-keys")
        }
    }
}

/// The multi-writer ABD register (Attiya, Bar-Noy and Dolev; Lynch and Shvartsman's
/// multi-writer form): a linearizable register per key with no consensus and no leader.
///
/// Every replica keeps, for each key, the newest write it knows with its tag (counter,
/// coordinator), durably. Any replica coordinates the operations its clients send it:
///
/// - **write**: phase 1 asks a majority for their tags; the write takes the highest counter
///   plus one, with this replica as the tie-breaker, and is made durable here before phase 2
///   stores it at a majority (each replica keeps it unless it holds a newer tag, and answers
///   once that is durable). The write is complete when a majority answered.
/// - **read**: phase 1 asks a majority for their registers and takes the newest; phase 2
///   writes it back to a majority; only then does the read return it. Without the write-back a
///   read could return a value a later read does not see (the mutation
///   `unsafeReadsSkipWriteBack` shows the checker catches it). A read that finds nothing
///   written returns at once: no write completed before it.
///
/// A write keeps its tag for good: a client's retry of it, at the same replica, stores it
/// again under the same tag (the tag is durable with the coordinator's own copy, and found
/// again after a restart), so one write never takes effect twice. Sessions
/// (`CoordinatorSession`) therefore send one operation to one coordinator only.
///
/// With the driver: the protocol is `ExecutionOrder.unordered`. Once an operation completes,
/// the coordinator hands the driver the write it completed, or the write the read returns
/// followed by the read: the driver applies it to its state machine and answers from there.
/// Only single-key puts and gets can be ordered this way (`CommandSupport.singleKeyOverwrites`):
/// a read-modify-write needs consensus, and is refused with the reason.
public struct ABDReplica: Replica {
    public typealias Message = ABDMessage
    public typealias Record = ABDRecord
    public typealias Options = ABDOptions
    public typealias Session = CoordinatorSession
    public typealias Monitor = ABDMonitor

    public static let protocolName = "abd"
    public static let coordination = Coordination.leaderless
    public static let executionOrder = ExecutionOrder.unordered
    public static let commandSupport = CommandSupport.singleKeyOverwrites

    public let id: NodeID
    public let members: [NodeID]
    let options: ABDOptions
    let quorum: QuorumSystem
    let footprint: @Sendable ([UInt8]) -> Footprint

    /// Each key's newest write here.
    public private(set) var registers: [[UInt8]: ABDRegister] = [:]
    /// Per client, the latest write this replica coordinated: its key and tag (restored from
    /// the records, so that a retry after a restart keeps its tag).
    var assigned: [ClientID: (sequence: UInt64, key: [UInt8], tag: ABDTag, write: Command)] = [:]
    /// Operations in progress, by identity.
    var operations: [UInt64: Operation] = [:]
    /// Writes in progress, by command: a retry joins the operation under way.
    var writesInProgress: [CommandID: UInt64] = [:]
    /// Operation identities: random high bits per incarnation, so answers to a former
    /// incarnation's operations are never taken for this one's.
    var nextOperation: UInt64
    var position: UInt64 = 0
    /// Records appended since the last checkpoint (or the restart).
    var recordsSinceCheckpoint = 0
    var pending = Ready<ABDMessage, ABDRecord>()
    /// Operations completed since the last `ready()`: key and tag (for the monitor).
    public private(set) var completions: [(key: [UInt8], tag: ABDTag, isWrite: Bool)] = []
    var completedSinceReady: [(key: [UInt8], tag: ABDTag, isWrite: Bool)] = []

    struct Operation {
        enum Kind {
            case write(Command)
            case read(ReadRequest)
        }
        enum Phase {
            case query
            case store
        }
        var kind: Kind
        var key: [UInt8]
        var phase: Phase
        var answered: Set<NodeID>
        /// Phase 1: the newest register among the answers. Phase 2: what is stored.
        var newest: ABDRegister
        var ticksSinceSend = 0
    }

    public init(config: ReplicaConfig<ABDOptions>, restoring: Recovered<ABDRecord>, randomSeed: UInt64) {
        self.id = config.id
        self.members = config.members
        self.options = config.options
        self.quorum = .majority(of: config.members.count)
        self.footprint = config.footprint
        var random = DeterministicRandom(seed: randomSeed)
        self.nextOperation = random.next() & ~0xFFFF_FFFF
        for record in restoring.records {
            self.adopt(record.key, ABDRegister(tag: record.tag, write: record.write), recording: false)
            if record.tag.writer == self.id.rawValue { self.noteAssigned(record) }
        }
        self.recordsSinceCheckpoint = restoring.records.count
    }

    public var committedThrough: UInt64 { self.position }

    public var counters: [String: UInt64] { [:] }

    // MARK: Clients

    public mutating func propose(_ command: Command) {
        let footprint = self.footprint(command.payload)
        guard let key = footprint.singleKey, footprint.overwrites else {
            self.pending.rejected.append(Rejection(request: .proposal(command), reason: .unsupported(
                "abd is a quorum register: it orders only single-key writes that overwrite (a put, a delete), not \(footprint)")))
            return
        }
        if let operation = self.writesInProgress[command.id], self.operations[operation] != nil { return }
        if let assigned = self.assigned[command.client], assigned.sequence >= command.sequence {
            // A retry of a write whose tag is settled: store it again under that tag (stores
            // are idempotent). An older command's client has moved on: refused, so that the
            // driver lets go of the request (a delayed duplicate nobody waits for).
            guard assigned.sequence == command.sequence else {
                self.pending.rejected.append(Rejection(request: .proposal(command), reason: .unsupported(
                    "stale: this client's later command \(assigned.sequence) was taken already")))
                return
            }
            guard self.admit(.proposal(command)) else { return }
            let operation = self.begin(.write(command), key: assigned.key)
            self.writesInProgress[command.id] = operation
            self.startStore(operation, ABDRegister(tag: assigned.tag, write: assigned.write))
            return
        }
        guard self.admit(.proposal(command)) else { return }
        let operation = self.begin(.write(command), key: key)
        self.writesInProgress[command.id] = operation
        self.startQuery(operation)
    }

    public mutating func read(_ request: ReadRequest) {
        guard let key = request.footprint.singleKey, !request.footprint.writes else {
            self.pending.rejected.append(Rejection(request: .read(request), reason: .unsupported(
                "abd is a quorum register: it reads one key at a time, not \(request.footprint)")))
            return
        }
        guard self.admit(.read(request)) else { return }
        self.startQuery(self.begin(.read(request), key: key))
    }

    mutating func admit(_ request: Rejection.Request) -> Bool {
        guard self.operations.count < self.options.maximumOperations else {
            self.pending.rejected.append(Rejection(request: request, reason: .overloaded))
            return false
        }
        return true
    }

    mutating func begin(_ kind: Operation.Kind, key: [UInt8]) -> UInt64 {
        self.nextOperation += 1
        self.operations[self.nextOperation] = Operation(kind: kind, key: key, phase: .query, answered: [], newest: .empty)
        return self.nextOperation
    }

    // MARK: Phases

    /// Phase 1: this replica answers itself at once; the others are asked.
    mutating func startQuery(_ operation: UInt64) {
        guard var state = self.operations[operation] else { return }
        state.phase = .query
        state.answered = [self.id]
        state.newest = self.registers[state.key] ?? .empty
        state.ticksSinceSend = 0
        self.operations[operation] = state
        for member in self.members where member != self.id {
            self.send(.query(operation: operation, key: state.key), to: member, afterSync: false)
        }
        self.checkQuery(operation)
    }

    mutating func checkQuery(_ operation: UInt64) {
        guard let state = self.operations[operation], state.phase == .query, self.quorum.isPhase1Quorum(state.answered.count) else { return }
        switch state.kind {
        case .write(let command):
            // The tag exceeds every tag a majority holds and every tag this replica holds or
            // gave out (its own register for the key is among the answers, and holds every
            // write it coordinated there, durably before any other replica saw it).
            let newest = max(state.newest.tag, self.registers[state.key]?.tag ?? .zero)
            let tag = ABDTag(counter: newest.counter + 1, writer: self.id.rawValue)
            let record = ABDRecord(key: state.key, tag: tag, write: command)
            self.noteAssigned(record)
            self.startStore(operation, ABDRegister(tag: tag, write: command))
        case .read(let request):
            if state.newest.tag == .zero || self.options.unsafeReadsSkipWriteBack {
                self.complete(operation, returning: state.newest, read: request)
            } else {
                self.startStore(operation, state.newest)
            }
        }
    }

    /// Phase 2: stores `register` here (durably: this replica's own answer comes back through
    /// the sync) and at the others.
    mutating func startStore(_ operation: UInt64, _ register: ABDRegister) {
        guard var state = self.operations[operation], let write = register.write else { return }
        state.phase = .store
        state.answered = []
        state.newest = register
        state.ticksSinceSend = 0
        self.operations[operation] = state
        self.adopt(state.key, register, recording: true)
        // Every message waits for the sync: other replicas never hold a tag this replica could
        // forget in a crash and give out again.
        for member in self.members {
            self.send(.store(operation: operation, key: state.key, tag: register.tag, write: write), to: member, afterSync: member != self.id)
        }
    }

    mutating func checkStore(_ operation: UInt64) {
        guard let state = self.operations[operation], state.phase == .store, self.quorum.isPhase2Quorum(state.answered.count) else { return }
        switch state.kind {
        case .write: self.complete(operation, returning: state.newest, read: nil)
        case .read(let request): self.complete(operation, returning: state.newest, read: request)
        }
    }

    /// The operation is done: the driver applies the write it completed or the write the read
    /// returns, then (a read) serves the read from its state machine.
    mutating func complete(_ operation: UInt64, returning register: ABDRegister, read: ReadRequest?) {
        guard let state = self.operations.removeValue(forKey: operation) else { return }
        if case .write(let command) = state.kind, self.writesInProgress[command.id] == operation {
            self.writesInProgress[command.id] = nil
        }
        if let write = register.write {
            self.position += 1
            self.pending.committed.append(Committed(position: self.position, command: write))
        }
        if let read { self.pending.reads.append(read) }
        self.completedSinceReady.append((state.key, register.tag, read == nil))
    }

    // MARK: Replicas

    public mutating func receive(_ message: ABDMessage, from sender: NodeID) {
        guard self.members.contains(sender) else { return }
        switch message {
        case .query(let operation, let key):
            // Answered once what it reveals is durable: a tag leaves its coordinator only
            // durably, or a restarted coordinator could give it out again while a read writes
            // the forgotten write back.
            self.send(.current(operation: operation, register: self.registers[key] ?? .empty), to: sender, afterSync: true)
        case .current(let operation, let register):
            guard var state = self.operations[operation], state.phase == .query, !state.answered.contains(sender) else { return }
            state.answered.insert(sender)
            if register.tag > state.newest.tag { state.newest = register }
            self.operations[operation] = state
            self.checkQuery(operation)
        case .store(let operation, let key, let tag, let write):
            if sender != self.id { self.adopt(key, ABDRegister(tag: tag, write: write), recording: true) }
            // Answered once everything this replica recorded so far is durable, this store
            // (or the newer write that made it unnecessary) included.
            self.send(.stored(operation: operation), to: sender, afterSync: true)
        case .stored(let operation):
            guard var state = self.operations[operation], state.phase == .store, !state.answered.contains(sender) else { return }
            state.answered.insert(sender)
            self.operations[operation] = state
            self.checkStore(operation)
        }
    }

    public mutating func tick() {
        for (operation, state) in self.operations.sorted(by: { $0.key < $1.key }) {
            var state = state
            state.ticksSinceSend += 1
            guard state.ticksSinceSend >= self.options.resendTicks else {
                self.operations[operation] = state
                continue
            }
            state.ticksSinceSend = 0
            self.operations[operation] = state
            for member in self.members where !state.answered.contains(member) {
                switch state.phase {
                case .query:
                    self.send(.query(operation: operation, key: state.key), to: member, afterSync: false)
                case .store:
                    guard let write = state.newest.write else { continue }
                    self.send(.store(operation: operation, key: state.key, tag: state.newest.tag, write: write), to: member, afterSync: member != self.id)
                }
            }
        }
    }

    public mutating func ready() -> Ready<ABDMessage, ABDRecord> {
        defer {
            self.pending = Ready()
            self.completedSinceReady = []
        }
        self.completions = self.completedSinceReady
        self.recordsSinceCheckpoint += self.pending.records.count
        let threshold = self.options.checkpointRecords
        if threshold > 0 && self.recordsSinceCheckpoint >= max(threshold, 2 * (self.registers.count + self.assigned.count)) {
            self.pending.records = self.checkpoint()
            self.pending.checkpoint = true
            self.recordsSinceCheckpoint = 0
        }
        return self.pending
    }

    /// The replica's whole durable state as records: each key's newest write, and each
    /// client's latest write this replica coordinated (its tag, so that a retry after a
    /// restart keeps it). Replaying records keeps the newest per key, so they restore it in
    /// any order, with or without older records before them. It covers this `Ready`'s own
    /// records (they are in the registers already), so it replaces them.
    func checkpoint() -> [ABDRecord] {
        var records: [ABDRecord] = []
        records.reserveCapacity(self.registers.count + self.assigned.count)
        for (index, key) in self.registers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }).enumerated() {
            if self.options.unsafeCheckpointSkipsKeys && index % 2 == 1 { continue }
            let register = self.registers[key]!
            if let write = register.write { records.append(ABDRecord(key: key, tag: register.tag, write: write)) }
        }
        for client in self.assigned.keys.sorted() {
            let entry = self.assigned[client]!
            records.append(ABDRecord(key: entry.key, tag: entry.tag, write: entry.write))
        }
        return records
    }

    // MARK: State

    /// Keeps `register` for `key` if it is newer than what this replica holds; records it when
    /// asked (a restore replays records without recording them again).
    mutating func adopt(_ key: [UInt8], _ register: ABDRegister, recording: Bool) {
        guard let write = register.write, register.tag > (self.registers[key]?.tag ?? .zero) else { return }
        self.registers[key] = register
        if recording { self.pending.records.append(ABDRecord(key: key, tag: register.tag, write: write)) }
    }

    mutating func noteAssigned(_ record: ABDRecord) {
        if let known = self.assigned[record.write.client], known.sequence > record.write.sequence { return }
        self.assigned[record.write.client] = (record.write.sequence, record.key, record.tag, record.write)
    }

    mutating func send(_ message: ABDMessage, to member: NodeID, afterSync: Bool) {
        self.pending.messages.append(Envelope(to: member, message: message, afterSync: afterSync))
    }

    /// The register this replica holds for `key`.
    public func register(for key: [UInt8]) -> ABDRegister { self.registers[key] ?? .empty }

    /// Why `recovered` cannot be restored: two records give one tag to different writes of a
    /// key (a bug, or damage that passed the checksums).
    public static func problem(restoring recovered: Recovered<ABDRecord>) -> String? {
        var seen: [ABDKeyTag: CommandID] = [:]
        for (index, record) in recovered.records.enumerated() {
            let name = ABDKeyTag(key: record.key, tag: record.tag)
            if let known = seen[name], known != record.write.id {
                return "record \(index) gives tag \(record.tag) of a key to \(record.write.id), an earlier record to \(known)"
            }
            seen[name] = record.write.id
        }
        return nil
    }
}

/// A key and a tag: the name of one write.
public struct ABDKeyTag: Hashable, Sendable {
    public var key: [UInt8]
    public var tag: ABDTag
}
