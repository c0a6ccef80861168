import Logging
import NIOCore
import NIOPosix
import SynodCore
import SynodKV
import SynodStorage
import Synchronization

/// How one node runs.
public struct NodeConfiguration: Sendable {
    /// This node.
    public var id: NodeID
    /// Every member's peer address, this node's included.
    public var peers: [NodeID: PeerAddress]
    /// The directory of this node's write-ahead log.
    public var dataDirectory: String
    /// One core tick (the protocols' timeouts are counted in ticks).
    public var tickMilliseconds: Int64 = 10
    /// How long a client request may wait for its answer.
    public var requestTimeoutMilliseconds: Int64 = 5_000
    /// Limits on client requests.
    public var limits = KVLimits()
    /// Log compaction: snapshot the state machine every this many applied positions, and let
    /// the core discard its log behind it (0: never).
    public var snapshotInterval: UInt64 = 100_000
    /// Mixed into the cluster id (etcd's `--initial-cluster-token`): two clusters with the same
    /// members but different tokens never take each other's connections or data.
    public var clusterToken = "synod"
    /// The cluster id, derived from `clusterToken` and `peers` unless given.
    public var clusterID: UInt64?
    /// Mutual TLS on the peer port; nil only when plain TCP was asked for (`--insecure-peers`).
    public var peerTLS: TLSFiles?
    /// A new write-ahead log segment starts once the current one holds this many bytes.
    public var walSegmentBytes = WriteAheadLog.Options().segmentBytes

    public init(id: NodeID, peers: [NodeID: PeerAddress], dataDirectory: String) {
        self.id = id
        self.peers = peers
        self.dataDirectory = dataDirectory
    }

    /// The cluster this node belongs to, running `protocolName`.
    public func cluster(protocolName: String) -> ClusterIdentity {
        ClusterIdentity(
            clusterID: self.clusterID ?? ClusterIdentity.derive(token: self.clusterToken, members: self.peers),
            protocolName: protocolName, members: self.peers)
    }
}

/// Why a client request failed.
public enum RequestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No leader is known yet (an election is under way).
    case noLeader
    /// The request did not complete in time; a write's outcome is unknown.
    case timeout
    /// The node is overloaded or stopping.
    case unavailable(String)

    public var description: String {
        switch self {
        case .noLeader: "no leader yet; try again"
        case .timeout: "the request timed out; a write may or may not have taken effect"
        case .unavailable(let reason): "unavailable: \(reason)"
        }
    }
}

/// What a node reports about itself.
public struct NodeStatus: Sendable, Codable, Equatable {
    public var id: Int
    public var role: String
    public var leader: Int?
    public var epoch: UInt64
    /// Every position up to here is known committed (the core's `committedThrough`).
    public var commitPosition: UInt64
    public var appliedPosition: UInt64
    public var revision: Int64
    public var framesSent: Int
    public var framesDropped: Int
    /// Members this node reaches over proven peer links, itself included.
    public var reachable: Int = 1
    /// Able to serve clients, as the protocol defines it (`Coordination`): a leader is known,
    /// or (leaderless) a majority of the members is reachable.
    public var healthy: Bool = false
}

/// One replica of protocol `R` as a live server: the pure core driven on one event loop, its
/// records on a write-ahead log with group commit on a separate thread, its messages over TCP,
/// and the etcd-semantics key-value store as its state machine. Nothing here knows which
/// protocol it runs.
///
/// Driver contract (`Ready`): records are appended and synced in order, one batch at a time,
/// off the event loop; messages marked `afterSync` leave only once every record emitted before
/// them is durable; the others leave at once, so a leader writes its log while replicating it.
/// Committed commands are applied in order through the exactly-once session table, then reads
/// are served.
///
/// `@unchecked Sendable` because of confinement, not locks: every mutable property is read and
/// written only on `loop` (the public entry points hop there with `execute`/`submit`; the peer
/// handlers, timers and sync completions run there; `preconditionInEventLoop` guards the
/// transport); the storage thread touches only the `log` box; `currentEpoch` is an atomic.
public final class ReplicaNode<R: Replica>: @unchecked Sendable {
    typealias Frame = PeerFrame<R.Message>

    /// A request from one of this node's clients, until it is answered or times out.
    struct ClientRequestState {
        var kind: ForwardedRequest
        var promise: EventLoopPromise<[UInt8]>
        var deadline: NIODeadline
        /// The exactly-once session the write's command belongs to (released at the end).
        var session: ClientID?
        /// Where the request waits now: this node's core, a peer, or nowhere (about to retry).
        var target: NodeID?
    }

    enum ReadOwner {
        case local(UInt64)
        case forwarded(peer: NodeID, id: UInt64, payload: [UInt8])
    }

    public let configuration: NodeConfiguration
    public let loop: any EventLoop
    let group: MultiThreadedEventLoopGroup
    let threadPool: NIOThreadPool
    /// Serialises and writes this node's own snapshots, off the event loop and the storage thread.
    let snapshotPool: NIOThreadPool
    let snapshots: SnapshotStore
    /// A snapshot of this node's state is being written.
    var compacting = false
    let logger: Logger
    let transport: PeerTransport<R.Message>
    let log: SendableBox<DurableRecordLog<R.Record>>
    /// The locked data directory, held for the node's life.
    let dataDirectory: DataDirectory
    /// The cluster this node belongs to.
    public let cluster: ClusterIdentity

    var core: R
    var machine = ExactlyOnce(KeyValueStore())
    /// Storage work not yet handed to the storage thread, in order.
    var pendingSteps: [StorageStep<R.Record>] = []
    var lastCompactedPosition: UInt64 = 0
    var waitingMessages: [Envelope<R.Message>] = []
    var syncing = false
    var failed: String?

    /// A leaderless protocol's replicas are all alike; a leader-based one starts as follower.
    var role = R.coordination == .leaderless ? "replica" : "follower"
    var leader: NodeID?
    var epoch: UInt64 = 0 {
        didSet { self.publishedEpoch.store(self.epoch, ordering: .relaxed) }
    }
    private let publishedEpoch = Atomic<UInt64>(0)

    /// The protocol epoch (term, ballot, view) this node last saw, readable from any thread:
    /// what the HTTP API reports as `raft_term`.
    public var currentEpoch: UInt64 { self.publishedEpoch.load(ordering: .relaxed) }

    /// The node's event loop group (one thread), which the HTTP server may share.
    public var eventLoopGroup: any EventLoopGroup { self.group }
    var appliedPosition: UInt64 = 0

    let sessionBase: UInt64
    var freeSessions: [ClientID] = []
    var sessionCount: UInt64 = 0
    var sequences: [ClientID: UInt64] = [:]
    var requests: [UInt64: ClientRequestState] = [:]
    var requestCounter: UInt64 = 0
    /// Writes of this node's clients proposed to this node's core.
    var localWrites: [CommandID: UInt64] = [:]
    /// Writes peers forwarded here, with the peer and its request number.
    var remoteWrites: [CommandID: (NodeID, UInt64)] = [:]
    var readOwners: [UInt64: ReadOwner] = [:]
    var readCounter: UInt64 = 0
    var tickTask: RepeatedTask?
    var statusCounter: UInt64 = 0
    var statusQueries: [UInt64: (EventLoopPromise<[NodeStatus]>, [NodeStatus])] = [:]
    var drainScheduled = false

    /// Called once if the node must stop (its disk failed): the process should exit.
    public var onFatal: (@Sendable (String) -> Void)?

    /// Locks the data directory, opens the write-ahead log and restores the core; throws a
    /// readable error when the directory cannot be used or holds another node's data, when the
    /// log is corrupt or incomplete, or when its records contradict each other.
    public init(configuration: NodeConfiguration, options: R.Options = R.Options(), logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let cluster = configuration.cluster(protocolName: R.protocolName)
        self.cluster = cluster
        var tls: PeerTLS?
        if let files = configuration.peerTLS {
            do { tls = try PeerTLS(files: files, member: configuration.id) } catch { throw NodeStartError("peer TLS: \(error)") }
        }
        let dataDirectory: DataDirectory
        do {
            dataDirectory = try DataDirectory.open(
                path: configuration.dataDirectory,
                identity: DataDirectoryIdentity(protocolName: R.protocolName, clusterID: cluster.clusterID, node: configuration.id.rawValue))
        } catch {
            throw NodeStartError(error.description)
        }
        self.dataDirectory = dataDirectory
        let opened: (DurableRecordLog<R.Record>, Recovered<R.Record>, WriteAheadLog.Recovery)
        do {
            var walOptions = WriteAheadLog.Options()
            walOptions.segmentBytes = configuration.walSegmentBytes
            opened = try DurableRecordLog<R.Record>.open(
                directory: dataDirectory.writeAheadLogPath, options: walOptions, requireExisting: dataDirectory.existingIdentity != nil)
            try dataDirectory.recordIdentity()
        } catch {
            throw NodeStartError("cannot start on \(configuration.dataDirectory) (\(R.protocolName) node \(configuration.id.rawValue)): \(error)")
        }
        let (log, recovered, recovery) = opened
        if let (file, offset) = recovery.truncatedAt {
            logger.warning("repaired a torn write at the end of the log", metadata: [
                "file": "\(file)", "offset": "\(offset)", "bytes": "\(recovery.truncatedBytes)",
                "recordsDropped": "\(recovery.truncatedRecords)",
                "why": "never synced before the crash, so never acknowledged",
            ])
        }
        if let problem = R.problem(restoring: recovered) {
            throw NodeStartError("the write-ahead log in \(configuration.dataDirectory) holds records that contradict each other: \(problem)")
        }
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.loop = self.group.next()
        self.threadPool = NIOThreadPool(numberOfThreads: 1)
        self.snapshotPool = NIOThreadPool(numberOfThreads: 1)
        self.log = SendableBox(log)
        self.snapshots = log.snapshots
        if let snapshot = recovered.snapshot {
            do {
                self.machine = try KeyValueStore.restore(snapshot.data, limits: configuration.limits)
            } catch {
                throw NodeStartError("the snapshot in \(configuration.dataDirectory)/wal does not restore: \(error)")
            }
            self.appliedPosition = snapshot.position
            self.lastCompactedPosition = snapshot.position
        }
        let members = configuration.peers.keys.sorted()
        let config = ReplicaConfig(id: configuration.id, members: members, options: options)
        try config.validate()
        var generator = SystemRandomNumberGenerator()
        self.core = R(config: config, restoring: recovered, randomSeed: generator.next())
        // Fresh per incarnation: 44 random bits for sessions (a restarted node must never
        // reuse a session of its earlier life), and a random start for request numbers (a
        // late reply to an earlier life's forwarded request must not match a new one).
        self.sessionBase = generator.next() & ~UInt64(0xF_FFFF)
        self.requestCounter = generator.next() >> 2
        self.transport = PeerTransport(id: configuration.id, cluster: self.cluster, tls: tls, loop: self.loop, logger: logger)
        if tls == nil {
            logger.warning("the peer port is plain TCP (--insecure-peers): anyone who can reach it can act as a member", metadata: [
                "peer": "\(configuration.peers[configuration.id]!)",
            ])
        }
        logger.info("restored", metadata: [
            "records": "\(recovered.records.count)", "protocol": "\(R.protocolName)",
            "snapshot": "\(recovered.snapshot.map { "position \($0.position), \($0.data.count) bytes" } ?? "none")",
        ])
    }

    /// Listens for peers, dials them and starts ticking.
    public func start() async throws {
        self.threadPool.start()
        self.snapshotPool.start()
        let address = self.configuration.peers[self.configuration.id]!
        try await self.loop.flatSubmit {
            self.transport.listen(on: address) { frame, peer in self.receive(frame, from: peer) }
        }.get()
        try await self.loop.submit {
            self.transport.connectAll()
            let tick = TimeAmount.milliseconds(self.configuration.tickMilliseconds)
            self.tickTask = self.loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in self.tick() }
        }.get()
    }

    /// Stops: no more inputs, the sync in flight completes, links close.
    public func stop() async {
        try? await self.loop.flatSubmit { () -> EventLoopFuture<Void> in
            self.tickTask?.cancel()
            self.failed = self.failed ?? "stopping"
            self.failAll(.unavailable("the node is stopping"))
            return self.transport.stop()
        }.get()
        try? await self.threadPool.shutdownGracefully()
        try? await self.snapshotPool.shutdownGracefully()
        try? await self.group.shutdownGracefully()
    }

    // MARK: Client requests (any thread)

    /// Orders and applies a state-machine command; returns the state machine's reply.
    public func write(_ payload: [UInt8]) async throws -> [UInt8] {
        let promise = self.loop.makePromise(of: [UInt8].self)
        self.loop.execute {
            let session = self.acquireSession()
            let sequence = self.sequences[session, default: 0] + 1
            self.sequences[session] = sequence
            let command = Command(client: session, sequence: sequence, payload: payload)
            self.begin(.write(command), promise: promise, session: session)
        }
        return try await promise.futureResult.get()
    }

    /// A read-only query: linearizable through the protocol's read path, or `serializable`
    /// from this node's state, which may lag.
    public func read(_ payload: [UInt8], serializable: Bool = false) async throws -> [UInt8] {
        let promise = self.loop.makePromise(of: [UInt8].self)
        self.loop.execute {
            if serializable {
                promise.succeed(self.machine.machine.query(payload))
            } else {
                self.begin(.read(payload), promise: promise, session: nil)
            }
        }
        return try await promise.futureResult.get()
    }

    /// The node's role, leader, epoch and progress.
    public func status() async throws -> NodeStatus {
        try await self.loop.submit { self.localStatus() }.get()
    }

    func localStatus() -> NodeStatus {
        let reachable = 1 + self.transport.provenLinks
        let healthy = switch R.coordination {
        case .leader: self.leader != nil
        case .leaderless: QuorumSystem.majority(of: self.configuration.peers.count).isPhase2Quorum(reachable)
        }
        return NodeStatus(
            id: Int(self.configuration.id.rawValue), role: self.role, leader: self.leader.map { Int($0.rawValue) },
            epoch: self.epoch, commitPosition: self.core.committedThrough, appliedPosition: self.appliedPosition, revision: self.machine.machine.revision,
            framesSent: self.transport.sentFrames, framesDropped: self.transport.droppedFrames, reachable: reachable, healthy: healthy)
    }

    /// Every member's status, asked over the peer links in parallel; a member that does not
    /// answer within `timeout` is missing from the result.
    public func clusterStatus(timeout: TimeAmount = .milliseconds(500)) async throws -> [NodeStatus] {
        let promise = self.loop.makePromise(of: [NodeStatus].self)
        self.loop.execute {
            self.statusCounter += 1
            let id = self.statusCounter
            self.statusQueries[id] = (promise, [self.localStatus()])
            for peer in self.configuration.peers.keys.sorted() where peer != self.configuration.id {
                self.transport.send(.statusRequest(id: id), to: peer)
            }
            self.transport.flush()
            self.loop.scheduleTask(in: timeout) { self.finishStatusQuery(id) }
        }
        return try await promise.futureResult.get()
    }

    func finishStatusQuery(_ id: UInt64) {
        guard let (promise, statuses) = self.statusQueries.removeValue(forKey: id) else { return }
        promise.succeed(statuses.sorted { $0.id < $1.id })
    }

    // MARK: Inputs (on the loop)

    func tick() {
        guard self.failed == nil else { return }
        self.core.tick()
        self.requestDrain()
        self.expireRequests()
    }

    func receive(_ frame: Frame, from peer: NodeID) {
        guard self.failed == nil else { return }
        switch frame {
        case .hello, .ping, .fragment:
            return  // the transport's business: a hello names the link, fragments are joined there
        case .message(let message):
            self.core.receive(message, from: peer)
            self.requestDrain()
        case .forward(let id, let request):
            // A peer's client request: order it here, answer the peer when it is applied.
            switch request {
            case .write(let command):
                self.remoteWrites[command.id] = (peer, id)
                self.core.propose(command)
            case .read(let payload):
                self.readCounter += 1
                self.readOwners[self.readCounter] = .forwarded(peer: peer, id: id, payload: payload)
                self.core.read(ReadRequest(id: self.readCounter))
            }
            self.requestDrain()
        case .statusRequest(let id):
            self.transport.send(.statusReply(id: id, self.localStatus()), to: peer)
            self.transport.flush()
        case .statusReply(let id, let status):
            guard status.id == Int(peer.rawValue), let query = self.statusQueries[id],
                  !query.1.contains(where: { $0.id == status.id })
            else { return }
            self.statusQueries[id]!.1.append(status)
            if self.statusQueries[id]!.1.count == self.configuration.peers.count { self.finishStatusQuery(id) }
        case .forwardReply(let id, let reply):
            guard var request = self.requests[id], request.target == peer else { return }
            switch reply {
            case .ok(let result):
                self.complete(id, .success(result))
            case .unavailable(let reason):
                self.complete(id, .failure(RequestError.unavailable(reason)))
            case .notLeader(let hint):
                request.target = nil
                self.requests[id] = request
                self.dispatch(id, leader: hint, delay: hint == nil || hint == peer)
            }
        }
    }

    // MARK: Requests from this node's clients

    /// Registers a client request and sends it on its way.
    func begin(_ kind: ForwardedRequest, promise: EventLoopPromise<[UInt8]>, session: ClientID?) {
        guard self.failed == nil else {
            promise.fail(RequestError.unavailable("the node is stopping"))
            if let session { self.releaseSession(session) }
            return
        }
        self.requestCounter += 1
        let deadline = NIODeadline.now() + .milliseconds(self.configuration.requestTimeoutMilliseconds)
        self.requests[self.requestCounter] = ClientRequestState(kind: kind, promise: promise, deadline: deadline, session: session)
        self.dispatch(self.requestCounter, leader: self.leader, delay: false)
    }

    /// Sends request `id` to the leader: this node's core, or a peer (the same command every
    /// time, so that exactly-once application holds across leaders). With `delay`, waits a
    /// little first (an election is under way).
    func dispatch(_ id: UInt64, leader: NodeID?, delay: Bool) {
        if delay {
            self.loop.scheduleTask(in: .milliseconds(20)) {
                guard let request = self.requests[id], request.target == nil else { return }
                self.dispatch(id, leader: self.leader, delay: false)
            }
            return
        }
        guard var request = self.requests[id] else { return }
        let target = leader ?? self.configuration.id
        request.target = target
        self.requests[id] = request
        if target == self.configuration.id {
            switch request.kind {
            case .write(let command):
                self.localWrites[command.id] = id
                self.core.propose(command)
            case .read:
                self.readCounter += 1
                self.readOwners[self.readCounter] = .local(id)
                self.core.read(ReadRequest(id: self.readCounter))
            }
            self.requestDrain()
        } else if self.transport.send(.forward(id: id, request.kind), to: target) {
            self.requestDrain()  // which flushes the link
        } else {
            // The link to that leader is down: ask again shortly.
            request.target = nil
            self.requests[id] = request
            self.dispatch(id, leader: nil, delay: true)
        }
    }

    func complete(_ id: UInt64, _ result: Result<[UInt8], any Error>) {
        guard let request = self.requests.removeValue(forKey: id) else { return }
        if case .write(let command) = request.kind { self.localWrites[command.id] = nil }
        if let session = request.session { self.releaseSession(session) }
        request.promise.completeWith(result)
    }

    /// Requests past their deadline fail; a write's outcome is then unknown (it may still be
    /// applied; its session's next command supersedes it if not).
    func expireRequests() {
        let now = NIODeadline.now()
        for (id, request) in self.requests where request.deadline <= now {
            self.complete(id, .failure(RequestError.timeout))
        }
    }

    // MARK: Ready

    /// Asks for one `drain` after the inputs already queued on the loop: every proposal, read
    /// and message that arrives in one loop iteration shares one `Ready`, so one batch of
    /// records, one sync and one message per peer carry them all.
    func requestDrain() {
        guard !self.drainScheduled else { return }
        self.drainScheduled = true
        self.loop.execute {
            self.drainScheduled = false
            guard self.failed == nil else { return }
            self.drain()
        }
    }

    /// Carries out everything the core asked for (see `Ready` for the order), then flushes
    /// the peer links once.
    func drain() {
        defer { self.transport.flush() }
        let ready = self.core.ready()
        if let snapshot = ready.snapshot {
            // A received snapshot that does not restore stops the node before anything of it
            // reaches the disk (the log stays as it was, and so does the old snapshot).
            if ready.installsSnapshot {
                self.install(snapshot)
                guard self.failed == nil else { return }
            }
            self.pendingSteps.append(.snapshot(snapshot))
        }
        if ready.checkpoint { self.pendingSteps.append(.checkpoint) }
        if !ready.records.isEmpty { self.pendingSteps.append(.records(ready.records)) }
        for envelope in ready.messages {
            if envelope.afterSync { self.waitingMessages.append(envelope) } else { self.deliver(envelope) }
        }
        if !self.syncing && (!self.pendingSteps.isEmpty || !self.waitingMessages.isEmpty) { self.startSync() }
        for committed in ready.committed { self.apply(committed) }
        for read in ready.reads {
            guard let owner = self.readOwners.removeValue(forKey: read.id) else { continue }
            switch owner {
            case .local(let id):
                guard case .read(let payload) = self.requests[id]?.kind else { continue }
                self.complete(id, .success(self.machine.machine.query(payload)))
            case .forwarded(let peer, let id, let payload):
                self.replyToPeer(peer, id: id, .success(self.machine.machine.query(payload)))
            }
        }
        for rejection in ready.rejected { self.rejected(rejection) }
        for event in ready.events { self.note(event) }
        self.compactIfDue()
    }

    // MARK: Snapshots

    /// Every `snapshotInterval` applied positions, snapshots the state machine: a copy of it
    /// (copy-on-write, so the loop goes on applying) is serialised and made durable on the
    /// snapshot thread, and only then handed to the core, whose checkpoint follows it (its
    /// storage step finds the file already there). The loop never waits for the serialisation
    /// or the write, and neither do the log's syncs.
    func compactIfDue() {
        let interval = self.configuration.snapshotInterval
        guard interval > 0, !self.compacting, self.appliedPosition >= self.lastCompactedPosition + interval else { return }
        let position = self.appliedPosition
        self.lastCompactedPosition = position
        guard let tag = self.core.snapshotTag(at: position) else { return }
        self.compacting = true
        let machine = self.machine
        let store = self.snapshots
        self.snapshotPool.runIfActive(eventLoop: self.loop) { () throws -> [UInt8] in
            let data = KeyValueStore.snapshot(of: machine)
            try store.save(Snapshot(position: position, tag: tag, data: data))
            return data
        }.whenComplete { result in
            self.compacting = false
            guard self.failed == nil else { return }
            switch result {
            case .success(let data):
                self.core.compact(through: position, state: data)
                self.requestDrain()
            case .failure(let error):
                // The log still holds everything: nothing is lost, the log is only longer. The
                // next attempt comes after another interval (`lastCompactedPosition` moved on
                // above): a full disk or a lack of descriptors may pass.
                self.logger.error("writing a snapshot failed; the log is kept and the snapshot retried later", metadata: [
                    "position": "\(position)", "error": "\(error)",
                ])
            }
        }
    }

    /// Replaces the state machine with a snapshot another replica sent (made durable by the
    /// storage step queued right after, before anything that acknowledges it). Writes waiting
    /// here that it already holds are answered: they are committed, which is all a reply says.
    func install(_ snapshot: Snapshot) {
        do {
            self.machine = try KeyValueStore.restore(snapshot.data, limits: self.configuration.limits)
        } catch {
            self.fail("a snapshot received for position \(snapshot.position) does not restore: \(error)")
            return
        }
        self.logger.info("installed a snapshot", metadata: ["position": "\(snapshot.position)", "bytes": "\(snapshot.data.count)"])
        self.appliedPosition = snapshot.position
        self.lastCompactedPosition = snapshot.position
        for (command, id) in self.localWrites.sorted(by: { $0.value < $1.value }) {
            guard let reply = self.machine.cachedReply(for: command) else { continue }
            self.localWrites[command] = nil
            self.complete(id, .success(reply))
        }
        for (command, (peer, id)) in self.remoteWrites.sorted(by: { $0.value.1 < $1.value.1 }) {
            guard let reply = self.machine.cachedReply(for: command) else { continue }
            self.remoteWrites[command] = nil
            self.replyToPeer(peer, id: id, .success(reply))
        }
    }

    func deliver(_ envelope: Envelope<R.Message>) {
        if envelope.to == self.configuration.id {
            // A note to itself (a sync acknowledgement): back through `receive`, later.
            self.loop.execute {
                guard self.failed == nil else { return }
                self.core.receive(envelope.message, from: self.configuration.id)
                self.requestDrain()
            }
        } else {
            self.transport.send(.message(envelope.message), to: envelope.to)
        }
    }

    /// Group commit: every record emitted since the last sync goes out in one append and one
    /// fdatasync on the storage thread; the messages that waited for them leave afterwards.
    func startSync() {
        guard self.failed == nil else { return }
        let steps = self.pendingSteps
        let messages = self.waitingMessages
        self.pendingSteps = []
        self.waitingMessages = []
        guard !steps.isEmpty else {
            // Everything emitted so far is already durable.
            for envelope in messages { self.deliver(envelope) }
            return
        }
        self.syncing = true
        let log = self.log
        self.threadPool.runIfActive(eventLoop: self.loop) {
            // In the order the core asked: a snapshot before the records that assume it, a
            // checkpoint in a segment of its own; the older segments go once it is durable.
            var checkpoint: UInt64?
            for step in steps {
                switch step {
                case .snapshot(let snapshot): try log.value.save(snapshot)
                case .checkpoint: checkpoint = try log.value.beginCheckpoint()
                case .records(let records): try log.value.append(records)
                }
            }
            try log.value.sync()
            if let checkpoint { try log.value.discard(before: checkpoint) }
        }.whenComplete { result in
            self.syncing = false
            switch result {
            case .success:
                guard self.failed == nil else { return }
                for envelope in messages { self.deliver(envelope) }
                self.transport.flush()
                if !self.pendingSteps.isEmpty || !self.waitingMessages.isEmpty { self.startSync() }
            case .failure(let error):
                self.fail("the write-ahead log failed: \(error)")
            }
        }
    }

    func apply(_ committed: Committed) {
        self.appliedPosition = committed.position
        let outcome = self.machine.apply(committed.command)
        let result: Result<[UInt8], any Error> = switch outcome {
        case .applied(let reply), .duplicate(let reply): .success(reply)
        case .stale: .failure(RequestError.unavailable("superseded by a later request of the same session"))
        }
        if let id = self.localWrites.removeValue(forKey: committed.command.id) { self.complete(id, result) }
        if let (peer, id) = self.remoteWrites.removeValue(forKey: committed.command.id) {
            self.replyToPeer(peer, id: id, result)
        }
    }

    func rejected(_ rejection: Rejection) {
        switch rejection.request {
        case .proposal(let command):
            if let (peer, id) = self.remoteWrites.removeValue(forKey: command.id) {
                self.answerRefusal(rejection.reason, peer: peer, id: id)
            }
            if let id = self.localWrites.removeValue(forKey: command.id) { self.retry(id, after: rejection.reason) }
        case .read(let read):
            switch self.readOwners.removeValue(forKey: read.id) {
            case .local(let id): self.retry(id, after: rejection.reason)
            case .forwarded(let peer, let id, _): self.answerRefusal(rejection.reason, peer: peer, id: id)
            case nil: break
            }
        }
    }

    /// Answers a peer's forwarded request; a reply too large for one frame is refused with a
    /// reason rather than breaking the link (ask for fewer keys with `limit`).
    func replyToPeer(_ peer: NodeID, id: UInt64, _ result: Result<[UInt8], any Error>) {
        switch result {
        case .success(let reply) where reply.count <= Frame.maximumPayloadBytes:
            self.transport.send(.forwardReply(id: id, .ok(reply)), to: peer)
        case .success(let reply):
            self.transport.send(.forwardReply(id: id, .unavailable(
                "the response (\(reply.count) bytes) exceeds \(Frame.maximumPayloadBytes) bytes; ask the leader directly or use a limit")), to: peer)
        case .failure(let error):
            self.transport.send(.forwardReply(id: id, .unavailable("\(error)")), to: peer)
        }
    }

    func answerRefusal(_ reason: Rejection.Reason, peer: NodeID, id: UInt64) {
        switch reason {
        case .overloaded: self.transport.send(.forwardReply(id: id, .unavailable("overloaded; try again later")), to: peer)
        case .notLeader(let hint): self.transport.send(.forwardReply(id: id, .notLeader(hint: hint ?? self.leader)), to: peer)
        }
    }

    func retry(_ id: UInt64, after reason: Rejection.Reason) {
        guard var request = self.requests[id] else { return }
        switch reason {
        case .overloaded:
            self.complete(id, .failure(RequestError.unavailable("overloaded; try again later")))
        case .notLeader(let hint):
            request.target = nil
            self.requests[id] = request
            let leader = hint ?? self.leader
            self.dispatch(id, leader: leader, delay: leader == nil || leader == self.configuration.id)
        }
    }

    func note(_ event: ReplicaEvent) {
        let previous = self.leader
        switch event {
        case .becameLeader(let epoch):
            (self.role, self.leader, self.epoch) = ("leader", self.configuration.id, epoch)
        case .becameFollower(let epoch, let leader):
            (self.role, self.leader, self.epoch) = ("follower", leader, epoch)
        case .becameCandidate(let epoch):
            (self.role, self.leader, self.epoch) = ("candidate", nil, epoch)
        }
        if self.role != "leader" && !self.remoteWrites.isEmpty {
            // Proposals of peers' clients die with this leadership unless already replicated;
            // the peers re-send the same commands to the new leader (applied once either way).
            for (_, (peer, id)) in self.remoteWrites.sorted(by: { $0.value.1 < $1.value.1 }) {
                self.transport.send(.forwardReply(id: id, .notLeader(hint: self.leader)), to: peer)
            }
            self.remoteWrites = [:]
        }
        self.logger.info("\(self.role)", metadata: [
            "epoch": "\(self.epoch)", "leader": "\(self.leader.map { "\($0)" } ?? "none")",
        ])
        // Requests waiting on a former leader (this node included) go to the new one; a write
        // keeps its command identity, so it is applied once even if the old leader also
        // commits it.
        guard previous != self.leader, let leader = self.leader else { return }
        for (id, request) in self.requests.sorted(by: { $0.key < $1.key }) where request.target != nil && request.target != leader {
            var moved = request
            moved.target = nil
            self.requests[id] = moved
            if case .write(let command) = request.kind { self.localWrites[command.id] = nil }
            self.dispatch(id, leader: leader, delay: false)
        }
    }

    func fail(_ reason: String) {
        guard self.failed == nil else { return }
        self.failed = reason
        self.logger.critical("stopping: \(reason)")
        self.failAll(.unavailable(reason))
        self.onFatal?(reason)
    }

    func failAll(_ error: RequestError) {
        for id in self.statusQueries.keys.sorted() { self.finishStatusQuery(id) }
        for id in self.requests.keys.sorted() { self.complete(id, .failure(error)) }
        self.localWrites = [:]
        self.remoteWrites = [:]
        self.readOwners = [:]
    }

    /// Client sessions for exactly-once application: one per request in flight, reused one
    /// request at a time (so sequence numbers only grow), fresh per incarnation.
    func acquireSession() -> ClientID {
        if let session = self.freeSessions.popLast() { return session }
        self.sessionCount += 1
        precondition(self.sessionCount < 1 << 20, "over a million client requests in flight at once")
        return self.sessionBase | self.sessionCount
    }

    func releaseSession(_ session: ClientID) { self.freeSessions.append(session) }
}

/// One piece of storage work, in `Ready` order.
enum StorageStep<Record: Sendable>: Sendable {
    /// Make this snapshot the durable one.
    case snapshot(Snapshot)
    /// The next records are a checkpoint: start them in a new segment, and discard the older
    /// segments once they are durable.
    case checkpoint
    /// Append these records.
    case records([Record])
}

/// Why a node refuses to start.
public struct NodeStartError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A reference handed to the storage thread, which alone uses it after the node is built (one
/// sync at a time: `startSync` never overlaps two), hence `@unchecked Sendable`.
final class SendableBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
