import Logging
import Metrics
import NIOCore
import NIOPosix
import SynodCore
import SynodDriver
import SynodKV
import SynodStorage
import Synchronization

/// How one node runs.
public struct NodeConfiguration: Sendable {
    /// This node.
    public var id: NodeID
    /// The cluster's first configuration: every member it started with and its peer address
    /// (this node's included, unless it joins later). A protocol whose membership changes
    /// (Raft) keeps every later configuration, with the addresses of members that joined, in
    /// its log.
    public var peers: [NodeID: PeerAddress]
    /// Where this node listens for peers; its entry in `peers` when nil (a node that joins a
    /// running cluster is not in `peers`, and must give it).
    public var listenAddress: PeerAddress?
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
    /// Keep the figures `GET /metrics` shows (`NodeMetrics`); off only to measure their cost.
    public var metrics = true

    public init(id: NodeID, peers: [NodeID: PeerAddress], dataDirectory: String) {
        self.id = id
        self.peers = peers
        self.dataDirectory = dataDirectory
    }

    /// Where this node listens for peers.
    public var peerAddress: PeerAddress? { self.listenAddress ?? self.peers[self.id] }

    /// Whether this node joins a running cluster (it is not in the first configuration).
    public var joining: Bool { self.peers[self.id] == nil }

    /// The cluster this node belongs to, running `protocolName`.
    public func cluster(protocolName: String) -> ClusterIdentity {
        ClusterIdentity(
            clusterID: self.clusterID ?? ClusterIdentity.derive(token: self.clusterToken, members: self.peers),
            protocolName: protocolName, members: self.peers)
    }
}

/// Why a client request failed.
public enum RequestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request did not complete in time; a write's outcome is unknown.
    case timeout
    /// The node is overloaded or stopping.
    case unavailable(String)
    /// The protocol refused the request for good (the reason says why); retrying it as it is
    /// will not help.
    case refused(String)

    public var description: String {
        switch self {
        case .timeout: "the request timed out; a write may or may not have taken effect"
        case .unavailable(let reason): "unavailable: \(reason)"
        case .refused(let reason): "refused: \(reason)"
        }
    }
}

/// Why a leadership transfer did not happen.
public enum TransferError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The protocol does not transfer leadership (it has no leader, or no transfer yet).
    case unsupported(String)
    /// This node cannot start it (it does not lead, the target is unknown, another is under way).
    case refused(String)
    /// The target did not take leadership in time.
    case timeout(String)

    init(_ refusal: LeadershipTransferRefusal) {
        if case .unsupported = refusal { self = .unsupported(refusal.description) } else { self = .refused(refusal.description) }
    }

    public var description: String {
        switch self {
        case .unsupported(let reason), .refused(let reason), .timeout(let reason): reason
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
    /// The store's revision (`ServiceMachine.storeRevision`); nil for a store without one.
    public var revision: Int64?
    public var framesSent: Int
    public var framesDropped: Int
    /// Members this node reaches over proven peer links, itself included.
    public var reachable: Int = 1
    /// Able to serve clients, as the protocol defines it (`Coordination`): a leader is known,
    /// or (leaderless) a majority of the members is reachable, or (an eventually consistent
    /// store) always.
    public var healthy: Bool = false
}

/// One node of protocol `R` as a live server: the executor of the pure `NodeDriver` with a real
/// disk, real sockets and a real clock. The driver holds every step of the `Ready` contract
/// (sessions and routing of client requests, sync ordering, apply, replies, snapshots); this
/// class only carries out its actions: storage steps on the write-ahead log (one append and one
/// fdatasync per `persist`, on a storage thread), messages over the peer links, snapshots
/// serialised and written on a snapshot thread, answers to the HTTP layer's promises. Nothing
/// here knows which protocol it runs.
///
/// Inputs are batched: every request, message and tick that arrives in one event-loop iteration
/// is fed to the driver, which is drained once afterwards, so they share one `Ready` (one batch
/// of records, one sync, one flush of every peer link).
///
/// `@unchecked Sendable` because of confinement, not locks: every mutable property is read and
/// written only on `loop` (the public entry points hop there with `execute`/`submit`; the peer
/// handlers, timers and storage completions run there; `preconditionInEventLoop` guards the
/// transport); the storage thread touches only the `log` box; `currentEpoch` is an atomic.
public final class ReplicaNode<R: Replica, Machine: ServiceMachine>: @unchecked Sendable {
    typealias Frame = PeerFrame<R.Message>
    typealias Driver = NodeDriver<R, Machine>

    public let configuration: NodeConfiguration
    public let loop: any EventLoop
    let group: MultiThreadedEventLoopGroup
    let threadPool: NIOThreadPool
    /// Serialises and writes this node's own snapshots, off the event loop and the storage thread.
    let snapshotPool: NIOThreadPool
    let snapshots: SnapshotStore
    let logger: Logger
    let transport: PeerTransport<R.Message>
    let log: SendableBox<DurableRecordLog<R.Record>>
    /// The locked data directory, held for the node's life.
    let dataDirectory: DataDirectory
    /// The cluster this node belongs to.
    public let cluster: ClusterIdentity

    var driver: Driver
    var failed: String?
    /// The answers the HTTP layer waits for, by gateway token.
    var promises: [UInt64: EventLoopPromise<[UInt8]>] = [:]
    var tokenCounter: UInt64 = 0
    var tickTask: RepeatedTask?
    var statusCounter: UInt64 = 0
    var statusQueries: [UInt64: (EventLoopPromise<[NodeStatus]>, [NodeStatus])] = [:]
    var drainScheduled = false
    /// Leadership transfers waiting for their target to lead.
    var transferWaiters: [(target: NodeID, promise: EventLoopPromise<Void>)] = []
    /// Every member now and its peer address, this node included: the first configuration,
    /// then the core's newest (`Replica.membership`) with the addresses it carries.
    public internal(set) var members: [NodeID: PeerAddress]
    /// The core's configuration `members` was made from.
    var knownMembership: Membership?
    /// Membership changes waiting to be committed (and, for voters, their joint step left).
    var membershipWaiters: [(target: Membership, promise: EventLoopPromise<Membership>)] = []
    private let publishedEpoch = Atomic<UInt64>(0)
    /// What `GET /metrics` shows; nil when `configuration.metrics` is off.
    public let metrics: NodeMetrics?
    /// The leader last seen, and the transport's counters at the last drain (for the metrics).
    var metricsLeader: NodeID?
    var metricsFramesSent = 0
    var metricsFramesDropped = 0
    var metricsLinks = 0
    /// The peers whose queued bytes the metrics show.
    var metricsPeers: Set<NodeID> = []

    /// The protocol epoch (term, ballot, view) this node last saw, readable from any thread:
    /// what the HTTP API reports as `raft_term`.
    public var currentEpoch: UInt64 { self.publishedEpoch.load(ordering: .relaxed) }

    /// The node's event loop group (one thread), which the HTTP server may share.
    public var eventLoopGroup: any EventLoopGroup { self.group }

    /// Runs Swift tasks on the node's thread: the HTTP server's request handlers, run with this
    /// as their task executor preference, reach the core without a thread hop.
    public let taskExecutor: EventLoopTaskExecutor

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
        guard let listenAddress = configuration.peerAddress else {
            throw NodeStartError("node \(configuration.id) is not in the first configuration and has no address to listen on for peers")
        }
        do {
            try StoredCluster(
                clusterID: cluster.clusterID, protocolName: R.protocolName, initial: configuration.peers, listen: listenAddress
            ).write(dataDirectory: configuration.dataDirectory)
        } catch {
            throw NodeStartError("cannot start on \(configuration.dataDirectory): \(error)")
        }
        if let problem = R.problem(restoring: recovered) {
            throw NodeStartError("the write-ahead log in \(configuration.dataDirectory) holds records that contradict each other: \(problem)")
        }
        let members = configuration.peers.keys.sorted()
        var driverOptions = NodeDriverOptions()
        driverOptions.snapshotInterval = configuration.snapshotInterval
        driverOptions.requestTimeoutTicks = UInt64(max(1, configuration.requestTimeoutMilliseconds / max(1, configuration.tickMilliseconds)))
        driverOptions.maximumReplyBytes = Frame.maximumPayloadBytes
        var generator = SystemRandomNumberGenerator()
        let limits = configuration.limits
        let metrics = configuration.metrics ? NodeMetrics(node: configuration.id, protocolName: R.protocolName) : nil
        var config = ReplicaConfig(id: configuration.id, members: members, options: options)
        config.joining = configuration.joining
        try config.validate()
        do {
            // Fresh per incarnation: 44 random bits for the gateway's client sessions (a
            // restarted node must never reuse a session of its earlier life).
            self.driver = try Driver(
                config: config, recovered: recovered, options: driverOptions,
                clientBase: generator.next() & ~UInt64(0xF_FFFF), randomSeed: generator.next(),
                empty: Machine.empty(limits: limits),
                restore: { snapshot in
                    // At start (the node's own snapshot) and on an install (one another replica sent).
                    let started = ContinuousClock.now
                    defer { metrics?.snapshotRestore.record(duration: ContinuousClock.now - started) }
                    return try Machine.restore(snapshot.data, limits: limits)
                })
        } catch {
            throw NodeStartError("the snapshot in \(configuration.dataDirectory)/wal does not restore: \(error)")
        }
        if configuration.joining && self.driver.core.membership == nil {
            throw NodeStartError("\(R.protocolName) has a fixed membership: node \(configuration.id) cannot join; its members are \(cluster.membersDescription)")
        }
        self.members = configuration.peers
        self.members[configuration.id] = listenAddress
        self.metrics = metrics
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.loop = self.group.next()
        self.taskExecutor = EventLoopTaskExecutor(self.loop)
        self.threadPool = NIOThreadPool(numberOfThreads: 1)
        self.snapshotPool = NIOThreadPool(numberOfThreads: 1)
        self.log = SendableBox(log)
        self.snapshots = log.snapshots
        self.transport = PeerTransport(id: configuration.id, cluster: self.cluster, tls: tls, loop: self.loop, logger: logger)
        if tls == nil {
            logger.warning("the peer port is plain TCP (--insecure-peers): anyone who can reach it can act as a member", metadata: [
                "peer": "\(listenAddress)",
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
        let address = self.members[self.configuration.id]!
        try await self.loop.flatSubmit {
            self.transport.listen(on: address) { frame, peer in self.receive(frame, from: peer) }
        }.get()
        try await self.loop.submit {
            self.refreshMembers()
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
        try await self.submit(.write, payload)
    }

    /// A read-only query: linearizable through the protocol's read path, or `serializable`
    /// from this node's state, which may lag.
    public func read(_ payload: [UInt8], serializable: Bool = false) async throws -> [UInt8] {
        try await self.readFuture(payload, serializable: serializable).get()
    }

    /// `read` without a task, for handlers that run on the node's loop.
    public func readFuture(_ payload: [UInt8], serializable: Bool = false) -> EventLoopFuture<[UInt8]> {
        if serializable {
            if self.loop.inEventLoop { return self.loop.makeSucceededFuture(self.driver.query(payload)) }
            return self.loop.submit { self.driver.query(payload) }
        }
        return self.submitFuture(.read, payload)
    }

    /// `write` without a task, for handlers that run on the node's loop.
    public func writeFuture(_ payload: [UInt8]) -> EventLoopFuture<[UInt8]> {
        self.submitFuture(.write, payload)
    }

    func submit(_ kind: ClientRequest.Kind, _ payload: [UInt8]) async throws -> [UInt8] {
        try await self.submitFuture(kind, payload).get()
    }

    /// Hands a request to the driver's gateway, which runs the protocol's client session for
    /// it; the answer comes back as a `complete` action.
    func submitFuture(_ kind: ClientRequest.Kind, _ payload: [UInt8]) -> EventLoopFuture<[UInt8]> {
        let promise = self.loop.makePromise(of: [UInt8].self)
        // Handlers run on the node's thread (`taskExecutor`): hand the request over directly
        // (with no closure to allocate).
        if self.loop.inEventLoop {
            self.hand(kind, payload, promise)
        } else {
            self.loop.execute { self.hand(kind, payload, promise) }
        }
        return promise.futureResult
    }

    /// Gives a request to the driver, on the loop.
    private func hand(_ kind: ClientRequest.Kind, _ payload: [UInt8], _ promise: EventLoopPromise<[UInt8]>) {
        guard self.failed == nil else {
            promise.fail(RequestError.unavailable("the node is stopping"))
            return
        }
        self.tokenCounter += 1
        self.promises[self.tokenCounter] = promise
        if let metrics = self.metrics {
            (kind == .write ? metrics.writes : metrics.reads).increment()
            metrics.inFlight.set(self.promises.count)
        }
        self.driver.submit(kind, payload: payload, token: self.tokenCounter)
        self.requestDrain()
    }

    /// Moves leadership to `target` (etcd's MoveLeader): this node must lead. Returns once
    /// this node sees the target lead; throws `TransferError` when the core refuses, or when
    /// that does not happen within `timeout` (the transfer then ends by itself, and this node
    /// takes proposals again if it still leads).
    public func transferLeadership(to target: NodeID, timeout: TimeAmount) async throws {
        let promise = self.loop.makePromise(of: Void.self)
        self.loop.execute {
            guard self.failed == nil else {
                promise.fail(TransferError.refused("the node is stopping"))
                return
            }
            if let refusal = self.driver.transferLeadership(to: target) {
                promise.fail(TransferError(refusal))
                return
            }
            if self.driver.leader == target {
                promise.succeed()
                return
            }
            self.transferWaiters.append((target, promise))
            self.requestDrain()
            self.loop.scheduleTask(in: timeout) {
                guard let index = self.transferWaiters.firstIndex(where: { $0.promise.futureResult === promise.futureResult }) else { return }
                self.transferWaiters.remove(at: index)
                promise.fail(TransferError.timeout("\(target) did not take leadership within \(timeout.nanoseconds / 1_000_000) ms"))
            }
        }
        try await promise.futureResult.get()
    }

    /// The configuration now: the core's (nil when the protocol's membership is fixed) and
    /// every member's peer address.
    public func membership() async throws -> (membership: Membership?, members: [NodeID: PeerAddress]) {
        try await self.loop.submit { (self.driver.core.membership, self.members) }.get()
    }

    /// Changes the membership (etcd's MemberAdd, MemberRemove, MemberPromote): `change` turns
    /// the configuration now into the voters, learners and new members' addresses wanted (it
    /// runs on the node's loop, so no other change slips in between; it throws
    /// `MembershipError.invalid` to refuse). This node must lead. Returns the configuration
    /// once the change is committed and, for a change of voters, its joint step left; throws
    /// `MembershipError` when refused, or `.timeout` when that does not happen within `timeout`
    /// (the change may still complete).
    public func changeMembership(
        timeout: TimeAmount,
        _ change: @escaping @Sendable (Membership) throws(MembershipError) -> (voters: [NodeID], learners: [NodeID], addresses: [NodeID: String])
    ) async throws(MembershipError) -> Membership {
        let promise = self.loop.makePromise(of: Membership.self)
        self.loop.execute {
            guard self.failed == nil else { return promise.fail(MembershipError.unavailable("the node is stopping")) }
            guard let current = self.driver.core.membership else { return promise.fail(MembershipError.unsupported) }
            let wanted: (voters: [NodeID], learners: [NodeID], addresses: [NodeID: String])
            do { wanted = try change(current) } catch { return promise.fail(error) }
            if let refusal = self.driver.changeMembership(voters: wanted.voters, learners: wanted.learners, addresses: wanted.addresses) {
                return promise.fail(MembershipError(refusal))
            }
            self.membershipWaiters.append((Membership(voters: wanted.voters, learners: wanted.learners), promise))
            self.requestDrain()
            self.refreshMembers()  // a change to nothing completes at once
            self.loop.scheduleTask(in: timeout) {
                guard let index = self.membershipWaiters.firstIndex(where: { $0.promise.futureResult === promise.futureResult }) else { return }
                self.membershipWaiters.remove(at: index)
                promise.fail(MembershipError.timeout(
                    "the change was not committed within \(timeout.nanoseconds / 1_000_000) ms; it may still complete"))
            }
        }
        do {
            return try await promise.futureResult.get()
        } catch let error as MembershipError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
    }

    /// The node's role, leader, epoch and progress.
    public func status() async throws -> NodeStatus {
        try await self.loop.submit { self.localStatus() }.get()
    }

    func localStatus() -> NodeStatus {
        let reachable = 1 + self.transport.provenLinks
        let healthy = switch R.coordination {
        case .leader: self.driver.leader != nil
        case .leaderless:
            // An eventually consistent store serves on its own; others need a majority.
            R.consistency == .eventual || QuorumSystem.majority(of: self.members.count).isPhase2Quorum(reachable)
        }
        return NodeStatus(
            id: Int(self.configuration.id.rawValue), role: self.driver.role, leader: self.driver.leader.map { Int($0.rawValue) },
            epoch: self.driver.epoch, commitPosition: self.driver.core.committedThrough, appliedPosition: self.driver.appliedPosition,
            revision: self.driver.machine.machine.storeRevision,
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
            for peer in self.members.keys.sorted() where peer != self.configuration.id {
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
        self.driver.tick()
        self.requestDrain()
    }

    func receive(_ frame: Frame, from peer: NodeID) {
        guard self.failed == nil else { return }
        switch frame {
        case .hello, .ping, .fragment:
            return  // the transport's business: a hello names the link, fragments are joined there
        case .message(let message):
            self.driver.receive(.replica(message), from: peer)
            self.requestDrain()
        case .request(let request):
            self.driver.receive(.request(request), from: peer)
            self.requestDrain()
        case .reply(let reply, let authenticator):
            self.driver.receive(.reply(reply, authenticator: authenticator), from: peer)
            self.requestDrain()
        case .statusRequest(let id):
            self.transport.send(.statusReply(id: id, self.localStatus()), to: peer)
            self.transport.flush()
        case .statusReply(let id, let status):
            guard status.id == Int(peer.rawValue), let query = self.statusQueries[id],
                  !query.1.contains(where: { $0.id == status.id })
            else { return }
            self.statusQueries[id]!.1.append(status)
            if self.statusQueries[id]!.1.count == self.members.count { self.finishStatusQuery(id) }
        }
    }

    // MARK: Actions

    /// Asks for one `drain` after the inputs already queued on the loop: every proposal, read
    /// and message that arrives in one loop iteration shares one `Ready`.
    func requestDrain() {
        guard !self.drainScheduled else { return }
        self.drainScheduled = true
        self.loop.execute {
            self.drainScheduled = false
            guard self.failed == nil else { return }
            self.drain()
        }
    }

    /// Carries out everything the driver asks for, in order, then flushes the peer links once.
    func drain() {
        let actions = self.driver.drain()
        guard !actions.isEmpty else { return }
        defer {
            self.refreshMembers()
            self.transport.flush()
            self.updateMetrics()
        }
        for action in actions {
            switch action {
            case .send(let to, let message):
                guard to != self.configuration.id else {
                    // A note to itself (a sync acknowledgement, a local reply): back through
                    // the driver, later.
                    self.loop.execute {
                        guard self.failed == nil else { return }
                        self.driver.receive(message, from: self.configuration.id)
                        self.requestDrain()
                    }
                    continue
                }
                switch message {
                case .replica(let message): self.transport.send(.message(message), to: to)
                case .request(let request): self.transport.send(.request(request), to: to)
                case .reply(let reply, let authenticator): self.transport.send(.reply(reply, authenticator: authenticator), to: to)
                }
            case .persist(let steps):
                self.persist(steps)
            case .saveSnapshot(let position, let tag, let identity, let machine):
                self.saveSnapshot(position: position, tag: tag, identity: identity, machine: machine)
            case .complete(let token, _, let result):
                guard let promise = self.promises.removeValue(forKey: token) else { continue }
                switch result {
                case .success(let reply): promise.succeed(reply)
                case .failure(.timeout):
                    self.metrics?.timeouts.increment()
                    promise.fail(RequestError.timeout)
                case .failure(.refused(let reason)):
                    self.metrics?.refusals.increment()
                    promise.fail(RequestError.refused(reason))
                case .failure(let failure):
                    self.metrics?.refusals.increment()
                    promise.fail(RequestError.unavailable(failure.description))
                }
            case .stop(let reason):
                self.fail(reason)
                return
            case .event(let event):
                if case .becameCandidate = event { self.metrics?.campaigns.increment() }
                self.publishedEpoch.store(self.driver.epoch, ordering: .relaxed)
                if let leader = self.driver.leader, self.transferWaiters.contains(where: { $0.target == leader }) {
                    for waiter in self.transferWaiters where waiter.target == leader { waiter.promise.succeed() }
                    self.transferWaiters.removeAll { $0.target == leader }
                }
                self.logger.info("\(self.driver.role)", metadata: [
                    "epoch": "\(self.driver.epoch)", "leader": "\(self.driver.leader.map { "\($0)" } ?? "none")",
                ])
            case .installed(let snapshot):
                self.metrics?.snapshotsInstalled.increment()
                self.logger.info("installed a snapshot", metadata: ["position": "\(snapshot.position)", "bytes": "\(snapshot.data.count)"])
            case .applied, .observed, .answer:
                break  // observations for the simulator's checks (off here); no direct clients
            }
        }
    }

    /// Group commit: every storage step the driver gathered goes out in one append and one
    /// fdatasync on the storage thread; the driver learns when they are durable.
    func persist(_ steps: [StorageStep<R.Record>]) {
        let log = self.log
        let metrics = self.metrics
        self.threadPool.runIfActive(eventLoop: self.loop) {
            // In the order the core asked: a snapshot before the records that assume it, a
            // checkpoint in a segment of its own; the older segments go once it is durable.
            var checkpoint: UInt64?
            let clock = ContinuousClock()
            let started = clock.now
            var records = 0
            for step in steps {
                switch step {
                case .snapshot(let snapshot): try log.value.save(snapshot)
                case .checkpoint: checkpoint = try log.value.beginCheckpoint()
                case .records(let batch):
                    try log.value.append(batch)
                    records += batch.count
                }
            }
            let written = clock.now
            try log.value.sync()
            if let metrics {
                metrics.walWrite.record(duration: written - started)
                metrics.walSync.record(duration: clock.now - written)
                metrics.batchRecords.record(records)
            }
            if let checkpoint { try log.value.discard(before: checkpoint) }
        }.whenComplete { result in
            guard self.failed == nil else { return }
            switch result {
            case .success:
                self.driver.persisted()
                self.drain()
            case .failure(let error):
                self.fail("the write-ahead log failed: \(error)")
            }
        }
    }

    /// Brings the gauges up to date after a drain, and the counters the transport keeps.
    func updateMetrics() {
        guard let metrics = self.metrics else { return }
        metrics.commitPosition.set(self.driver.core.committedThrough)
        metrics.appliedPosition.set(self.driver.appliedPosition)
        metrics.epoch.set(self.driver.epoch)
        let leader = self.driver.leader
        metrics.isLeader.set(leader == self.configuration.id ? 1 : 0)
        if leader != self.metricsLeader {
            if leader != nil { metrics.leaderChanges.increment() }
            self.metricsLeader = leader
        }
        metrics.inFlight.set(self.promises.count)
        metrics.replicaWrites.set(self.driver.servedWriteCount)
        metrics.replicaReads.set(self.driver.servedReadCount)
        let sent = self.transport.sentFrames
        let dropped = self.transport.droppedFrames
        let links = self.transport.establishedLinks
        if sent > self.metricsFramesSent { metrics.peerFramesSent.increment(by: sent - self.metricsFramesSent) }
        if dropped > self.metricsFramesDropped { metrics.peerFramesDropped.increment(by: dropped - self.metricsFramesDropped) }
        if links > self.metricsLinks { metrics.peerConnections.increment(by: links - self.metricsLinks) }
        (self.metricsFramesSent, self.metricsFramesDropped, self.metricsLinks) = (sent, dropped, links)
    }

    /// Sampled when `/metrics` is read (not on every drain): reachable peers and bytes queued
    /// on the peer links.
    public func sampleMetrics() async {
        guard let metrics = self.metrics else { return }
        try? await self.loop.submit {
            metrics.peersReachable.set(1 + self.transport.provenLinks)
            var queued = self.transport.queuedBytesByPeer
            // A member removed since the last sample: its link is gone, nothing waits for it.
            for peer in self.metricsPeers where queued[peer] == nil { queued[peer] = 0 }
            self.metricsPeers = Set(queued.keys)
            metrics.setPeerQueuedBytes(queued)
            self.updateMetrics()
        }.get()
    }

    /// Serialises a copy of the state machine (copy-on-write, so the loop goes on applying)
    /// and makes it durable on the snapshot thread; the core compacts once it is written (its
    /// storage step then finds the file already there). Neither the loop nor the log's syncs
    /// wait for it.
    func saveSnapshot(position: UInt64, tag: UInt64, identity: [UInt8], machine: ExactlyOnce<Machine>) {
        let store = self.snapshots
        let metrics = self.metrics
        self.snapshotPool.runIfActive(eventLoop: self.loop) { () throws -> [UInt8] in
            let started = ContinuousClock.now
            let data = Machine.snapshot(of: machine)
            try store.save(Snapshot(position: position, tag: tag, data: data, identity: identity))
            metrics?.snapshotSave.record(duration: ContinuousClock.now - started)
            return data
        }.whenComplete { result in
            guard self.failed == nil else { return }
            switch result {
            case .success(let data):
                self.driver.snapshotSaved(position: position, data: data)
                self.requestDrain()
            case .failure(let error):
                // The log still holds everything: nothing is lost, the log is only longer. The
                // next attempt comes after another interval: a full disk may pass.
                self.driver.snapshotFailed()
                self.logger.error("writing a snapshot failed; the log is kept and the snapshot retried later", metadata: [
                    "position": "\(position)", "error": "\(error)",
                ])
            }
        }
    }

    /// Takes up the core's newest configuration, if it changed: the members' addresses, the
    /// peer links; and completes the membership changes it completes.
    func refreshMembers() {
        guard let membership = self.driver.core.membership else { return }
        if membership != self.knownMembership {
            self.knownMembership = membership
            var members: [NodeID: PeerAddress] = [:]
            for node in membership.everyone {
                if let text = membership.addresses[node], let address = PeerAddress(text) {
                    members[node] = address
                } else if let address = self.configuration.peers[node] {
                    members[node] = address
                } else {
                    self.logger.warning("a member has no known peer address", metadata: ["member": "\(node)"])
                }
            }
            members[self.configuration.id] = self.members[self.configuration.id]
            if members != self.members {
                self.members = members
                self.transport.setMembers(members)
            }
            self.logger.info("configuration", metadata: ["membership": "\(membership)"])
        }
        // Committed; or this node removed itself, which it appended only once the joint step
        // was committed: from there the change completes under whichever member leads next
        // (it appends the final configuration itself if it is missing), while this node, no
        // longer a member, hears of it no more.
        guard !self.membershipWaiters.isEmpty, !membership.isJoint,
              self.driver.core.membershipIsCommitted || !membership.contains(self.configuration.id)
        else { return }
        for waiter in self.membershipWaiters
        where waiter.target.voters == membership.voters && waiter.target.learners == membership.learners {
            waiter.promise.succeed(membership)
        }
        self.membershipWaiters.removeAll { $0.target.voters == membership.voters && $0.target.learners == membership.learners }
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
        for waiter in self.membershipWaiters { waiter.promise.fail(MembershipError.unavailable(error.description)) }
        self.membershipWaiters.removeAll()
        for token in self.promises.keys.sorted() { self.promises.removeValue(forKey: token)?.fail(error) }
    }
}

/// Why a membership change did not happen.
public enum MembershipError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The protocol's membership is fixed.
    case unsupported
    /// This node does not lead.
    case notLeader(String)
    /// Another change is under way, or the leader is not ready yet: try again shortly.
    case busy(String)
    /// The change asked for is not valid (an unknown member, a learner behind, …).
    case invalid(String)
    /// Not committed in time; the change may still complete.
    case timeout(String)
    /// The node is stopping.
    case unavailable(String)

    init(_ refusal: MembershipChangeRefusal) {
        switch refusal {
        case .unsupported: self = .unsupported
        case .notLeader: self = .notLeader(refusal.description)
        case .busy: self = .busy(refusal.description)
        case .invalid, .learnerBehind: self = .invalid(refusal.description)
        }
    }

    public var description: String {
        switch self {
        case .unsupported: "this protocol's membership cannot change"
        case .notLeader(let reason), .busy(let reason), .invalid(let reason), .timeout(let reason), .unavailable(let reason): reason
        }
    }
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
