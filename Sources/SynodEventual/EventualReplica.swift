@_spi(Testing) import SynodCausal
import SynodClocks
import SynodCore

/// Tuning of the eventually consistent store.
public struct EventualOptions: ReplicaOptions, Equatable {
    /// Ticks between two anti-entropy rounds (a digest sent to a random peer).
    public var antiEntropyTicks = 10
    /// Buckets of the anti-entropy digest: keys hash into buckets, and replicas compare one
    /// digest per bucket, then exchange only the keys of buckets that differ.
    public var digestBuckets = 64
    /// Log compaction: once this many records were appended since the last checkpoint (and at
    /// least twice as many as there are keys, so a checkpoint's cost is paid for by the records
    /// it retires), the replica writes its whole state as a checkpoint and the records before
    /// it may go. 0: never.
    public var checkpointRecords = 10_000
    /// Test-only: a last-writer-wins store, which keeps one sibling per key (the greatest
    /// dot) and so drops a concurrent write nobody saw. The convergence check must fail it.
    @_spi(Testing) public var unsafeLastWriterWins = false
    /// Test-only: checkpoints leave out every other key, so a restart after the records before
    /// them are gone loses acknowledged writes. The monitor must catch it.
    @_spi(Testing) public var unsafeCheckpointSkipsKeys = false

    public init() {}

    public func validate() throws {
        guard self.antiEntropyTicks >= 1 else { throw ConfigurationError("antiEntropyTicks must be positive") }
        guard (1...4096).contains(self.digestBuckets) else { throw ConfigurationError("digestBuckets must lie in 1...4096") }
        guard self.checkpointRecords >= 0 else { throw ConfigurationError("checkpointRecords must not be negative") }
    }

    public mutating func set(_ name: String, to value: String) throws {
        switch name {
        case "anti-entropy-ticks":
            guard let ticks = Int(value), ticks >= 1 else {
                throw ConfigurationError("option 'anti-entropy-ticks' takes a positive number, got '\(value)'")
            }
            self.antiEntropyTicks = ticks
        case "checkpoint-records":
            guard let records = Int(value), records >= 0 else {
                throw ConfigurationError("option 'checkpoint-records' takes a number of records (0: never), got '\(value)'")
            }
            self.checkpointRecords = records
        case "unsafe-last-writer-wins":
            self.unsafeLastWriterWins = try ConfigurationError.flag(name, value)
        case "unsafe-checkpoint-skips-keys":
            self.unsafeCheckpointSkipsKeys = try ConfigurationError.flag(name, value)
        default:
            throw ConfigurationError(
                "unknown option '\(name)' for eventual; known: anti-entropy-ticks, checkpoint-records, unsafe-last-writer-wins, "
                    + "unsafe-checkpoint-skips-keys")
        }
    }
}

/// Messages between replicas of the eventually consistent store.
public enum EventualMessage: Sendable, Equatable {
    /// A key's state: replication of a write, an answer to `fetch`, read repair, anti-entropy.
    case push(key: [UInt8], state: CausalRegister)
    /// Read repair: "send me your state of `key`".
    case fetch(key: [UInt8])
    /// Anti-entropy: the sender's digest of each bucket of keys.
    case digest([UInt64])
    /// Anti-entropy: "send me your keys of these buckets" (they differ from the sender's).
    case want(buckets: [Int])
    /// To the replica itself, after its sync: the write of `operation` is durable here.
    case synced(operation: UInt64)
}

/// A durable fact of a replica; replaying them in any order restores the same state (states
/// merge by a join, tables by the maximum), so a checkpoint may leave any older records behind.
public enum EventualRecord: Sendable, Equatable {
    /// The state of `key` at this replica.
    case state(key: [UInt8], state: CausalRegister)
    /// Each client's latest write this replica accepted (in a checkpoint: once older records
    /// are gone, the key states no longer show the writes that were overwritten).
    case accepted([ClientID: UInt64])
}

/// An eventually consistent key-value store (the reference text's `EventuallyConsistentStore`,
/// §2.2, and the AP side of its CAP table, §2.1): every replica accepts reads and writes on
/// its own, through any partition, and replicas converge once they can talk.
///
/// Each key's state is a `CausalRegister`: concurrent writes are kept as siblings with their
/// dots, and a write replaces exactly the siblings its client read (the context it sends back).
/// Replication is by whole key states, whose merge is a join, so messages may be lost,
/// duplicated and reordered freely:
///
/// - a write is accepted by the replica the client's session picked, made durable there,
///   answered with the key's state (siblings and the new context), and pushed to every peer;
/// - a read is answered at once from the replica's state; the replica also fetches the key
///   from its peers and pushes the merged state back to any that lacked part of it (read
///   repair);
/// - every `antiEntropyTicks`, a replica sends a random peer one digest per bucket of keys;
///   the peer pushes its keys of the buckets that differ and asks for the sender's.
///
/// A replica shows its state to others only once it is durable, so a dot a crash took back
/// was seen by nobody and may be given out again.
public struct EventualReplica: Replica {
    public typealias Message = EventualMessage
    public typealias Record = EventualRecord
    public typealias Options = EventualOptions
    public typealias Session = CoordinatorSession
    public typealias Monitor = EventualMonitor

    public static let protocolName = "eventual"
    public static let coordination = Coordination.leaderless
    public static let executionOrder = ExecutionOrder.unordered
    public static let commandSupport = CommandSupport.causalStore
    public static let consistency = Consistency.eventual

    public let id: NodeID
    public let members: [NodeID]
    let options: EventualOptions

    /// Each key's state here.
    public private(set) var registers: [[UInt8]: CausalRegister] = [:]
    /// Per client, the latest write this replica accepted (a retry is answered, not written
    /// twice); rebuilt from the records at a restart.
    var accepted: [ClientID: UInt64] = [:]
    /// Writes accepted and waiting for their sync.
    var syncing: [UInt64: (command: CommandID, key: [UInt8])] = [:]
    var nextOperation: UInt64 = 0
    var position: UInt64 = 0
    var ticks = 0
    /// Records appended since the last checkpoint (or the restart).
    var recordsSinceCheckpoint = 0
    var random: DeterministicRandom
    var pending = Ready<EventualMessage, EventualRecord>()
    /// Writes accepted since the last `ready()` (for the monitor): the write, its key and
    /// dot, and the context its client had read.
    public private(set) var acceptedWrites: [(write: CommandID, key: [UInt8], dot: Dot, seen: VectorClock)] = []
    var acceptedSinceReady: [(write: CommandID, key: [UInt8], dot: Dot, seen: VectorClock)] = []

    public init(config: ReplicaConfig<EventualOptions>, restoring: Recovered<EventualRecord>, randomSeed: UInt64) {
        self.id = config.id
        self.members = config.members
        self.options = config.options
        self.random = DeterministicRandom(seed: randomSeed)
        for record in restoring.records {
            switch record {
            case .state(let key, let state):
                self.registers[key, default: CausalRegister()].merge(state)
                for sibling in state.siblings where sibling.dot.node == self.id {
                    self.accepted[sibling.write.client] = max(self.accepted[sibling.write.client] ?? 0, sibling.write.sequence)
                }
            case .accepted(let table):
                self.accepted.merge(table, uniquingKeysWith: max)
            }
        }
        self.recordsSinceCheckpoint = restoring.records.count
    }

    public var committedThrough: UInt64 { self.position }

    // MARK: Clients

    public mutating func propose(_ command: Command) {
        guard case .put(let key, let value, let seen)? = try? CausalRequest.decode(command.payload) else {
            self.pending.rejected.append(Rejection(request: .proposal(command), reason: .unsupported(
                "the eventual store takes its own put requests (a key, a value and the context read), not this payload")))
            return
        }
        if let latest = self.accepted[command.client], latest >= command.sequence {
            // A retry: answered with the key's state once the write is durable (the sync's
            // answer covers one still syncing), not written twice.
            if latest > command.sequence {
                // Refused, so that the driver lets go of the request (a delayed duplicate).
                self.pending.rejected.append(Rejection(request: .proposal(command), reason: .unsupported(
                    "stale: this client's later command \(latest) was taken already")))
            } else if !self.syncing.values.contains(where: { $0.command == command.id }) {
                self.answer(command.id, key: key)
            }
            return
        }
        var state = self.registers[key] ?? CausalRegister()
        let dot = state.write(value, seen: seen, at: self.id, command: command.id)
        if self.options.unsafeLastWriterWins { state.keepOnlyLastWriter() }
        let share = CausalLimits.replicaShare(members: self.members.count)
        let stateBytes = state.encoded().count
        if state.siblings.count > share.siblings || stateBytes > share.bytes {
            // Blind writes (no context) pile up siblings; past this replica's share of what
            // one key may hold, it takes only writes that resolve them.
            self.pending.rejected.append(Rejection(request: .proposal(command), reason: .unsupported(
                "the key would hold \(state.siblings.count) siblings in \(stateBytes) bytes, beyond this replica's "
                    + "share (\(share.siblings) siblings, \(share.bytes) bytes); read it and write with the context read, "
                    + "which replaces the siblings seen")))
            return
        }
        self.registers[key] = state
        self.accepted[command.client] = command.sequence
        self.pending.records.append(.state(key: key, state: state))
        self.acceptedSinceReady.append((command.id, key, dot, seen))
        self.nextOperation += 1
        self.syncing[self.nextOperation] = (command.id, key)
        self.send(.synced(operation: self.nextOperation), to: self.id, afterSync: true)
        for member in self.members where member != self.id {
            self.send(.push(key: key, state: state), to: member, afterSync: true)
        }
    }

    public mutating func read(_ request: ReadRequest) {
        guard let key = request.footprint.singleKey, !request.footprint.writes else {
            self.pending.rejected.append(Rejection(request: .read(request), reason: .unsupported(
                "the eventual store reads one key at a time, not \(request.footprint)")))
            return
        }
        self.answer(CommandID(client: 0, sequence: 0), key: key)
        self.pending.reads.append(request)
        for member in self.members where member != self.id {
            self.send(.fetch(key: key), to: member, afterSync: false)
        }
    }

    /// Hands the driver the key's state to answer `command` from (a write's client, or none
    /// for a read, which follows in `Ready.reads`).
    mutating func answer(_ command: CommandID, key: [UInt8]) {
        self.position += 1
        let payload = CausalRequest.install(key: key, state: self.registers[key] ?? CausalRegister()).encoded()
        self.pending.committed.append(Committed(
            position: self.position, command: Command(client: command.client, sequence: command.sequence, payload: payload)))
    }

    // MARK: Replicas

    public mutating func receive(_ message: EventualMessage, from sender: NodeID) {
        guard self.members.contains(sender) else { return }
        switch message {
        case .synced(let operation):
            guard sender == self.id, let write = self.syncing.removeValue(forKey: operation) else { return }
            self.answer(write.command, key: write.key)
        case .push(let key, let incoming):
            let merged = self.merge(key, incoming)
            // Two-way repair: the sender lacks part of what this replica holds.
            if merged != incoming { self.send(.push(key: key, state: merged), to: sender, afterSync: true) }
        case .fetch(let key):
            self.send(.push(key: key, state: self.registers[key] ?? CausalRegister()), to: sender, afterSync: true)
        case .digest(let theirs):
            guard theirs.count == self.options.digestBuckets else { return }
            let mine = self.bucketDigests()
            let differing = mine.indices.filter { mine[$0] != theirs[$0] }
            guard !differing.isEmpty else { return }
            self.pushBuckets(differing, to: sender)
            self.send(.want(buckets: differing), to: sender, afterSync: false)
        case .want(let buckets):
            self.pushBuckets(buckets.filter { (0..<self.options.digestBuckets).contains($0) }, to: sender)
        }
    }

    /// Merges `incoming` into the key's state (recording a change) and returns the result.
    mutating func merge(_ key: [UInt8], _ incoming: CausalRegister) -> CausalRegister {
        let current = self.registers[key] ?? CausalRegister()
        var merged = current.merging(incoming)
        if self.options.unsafeLastWriterWins { merged.keepOnlyLastWriter() }
        if merged != current {
            self.registers[key] = merged
            self.pending.records.append(.state(key: key, state: merged))
        }
        return merged
    }

    public mutating func tick() {
        self.ticks += 1
        guard self.ticks % self.options.antiEntropyTicks == 0, self.members.count > 1 else { return }
        let peers = self.members.filter { $0 != self.id }
        let peer = peers[self.random.integer(in: 0..<peers.count)]
        self.send(.digest(self.bucketDigests()), to: peer, afterSync: false)
    }

    /// One digest per bucket of keys: a hash of its keys' states, in key order.
    func bucketDigests() -> [UInt64] {
        var hashers = Array(repeating: StableHasher(), count: self.options.digestBuckets)
        for key in self.registers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let bucket = self.bucket(of: key)
            hashers[bucket].combine(bytes: key)
            hashers[bucket].combine(self.registers[key]!.digest)
        }
        return hashers.map(\.value)
    }

    func bucket(of key: [UInt8]) -> Int { Int(StableHasher.hash(bytes: key) % UInt64(self.options.digestBuckets)) }

    mutating func pushBuckets(_ buckets: [Int], to peer: NodeID) {
        let wanted = Set(buckets)
        for key in self.registers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where wanted.contains(self.bucket(of: key)) {
            self.send(.push(key: key, state: self.registers[key]!), to: peer, afterSync: true)
        }
    }

    public mutating func ready() -> Ready<EventualMessage, EventualRecord> {
        defer {
            self.pending = Ready()
            self.acceptedSinceReady = []
        }
        self.acceptedWrites = self.acceptedSinceReady
        self.recordsSinceCheckpoint += self.pending.records.count
        let threshold = self.options.checkpointRecords
        if threshold > 0 && self.recordsSinceCheckpoint >= max(threshold, 2 * self.registers.count) {
            self.pending.records = self.checkpoint()
            self.pending.checkpoint = true
            self.recordsSinceCheckpoint = 0
        }
        return self.pending
    }

    /// The replica's whole durable state as records: every key's state and the table of
    /// accepted writes. It covers this `Ready`'s own records (they are merged into the states
    /// already), so it replaces them.
    func checkpoint() -> [EventualRecord] {
        var records: [EventualRecord] = []
        records.reserveCapacity(self.registers.count + 1)
        for (index, key) in self.registers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }).enumerated() {
            if self.options.unsafeCheckpointSkipsKeys && index % 2 == 1 { continue }
            records.append(.state(key: key, state: self.registers[key]!))
        }
        if !self.accepted.isEmpty { records.append(.accepted(self.accepted)) }
        return records
    }

    mutating func send(_ message: EventualMessage, to member: NodeID, afterSync: Bool) {
        self.pending.messages.append(Envelope(to: member, message: message, afterSync: afterSync))
    }
}
