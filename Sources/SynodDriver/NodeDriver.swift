import SynodCore

/// One node of protocol `R`, as a pure state machine: the core, the application state machine
/// beside it, and every step of the `Ready` contract, with nothing of disks, sockets or clocks.
///
/// Two executors run it, the simulator (virtual disk, network and time) and the server runtime
/// (a write-ahead log, TCP links, a timer), and neither adds logic of its own: they feed the
/// inputs (`tick`, `receive`, `submit`, `cancel`, `persisted`, `snapshotSaved`) and carry out
/// the `NodeAction`s that `drain()` returns. Inputs only record what they change; `drain()`
/// then handles the core's `Ready` once, so an executor that drains once per batch of inputs
/// gives the core one `Ready` (one append, one sync) for all of them.
///
/// A node plays two parts:
///
/// - **Replica.** It answers client requests (`ClientRequest`) from any node's gateway: a write
///   is proposed to the core (or answered from the exactly-once table when already applied)
///   and answered once applied; a read is answered when the core says it may be served.
///   Rejections are answered with the reason.
/// - **Gateway.** It runs the protocol's own `ClientSession` for each request of its local
///   clients (`submit`): the session decides where to send (the leader, any replica, every
///   replica), follows redirects and retries under the same command identity until it gets
///   its answer or the request times out.
///
/// Not `Sendable`: `restore` is the executor's closure, and the driver is confined to one
/// thread (the server's event loop, the simulator's run).
public struct NodeDriver<R: Replica, Machine: StateMachine> {
    public typealias Action = NodeAction<R.Message, R.Record, Machine>

    /// This node.
    public let id: NodeID
    /// The replicas the gateway's sessions send to, sorted: every member of the first
    /// configuration, and (a protocol whose membership changes) every member that joined
    /// since.
    public private(set) var members: [NodeID]
    public let options: NodeDriverOptions
    /// The protocol core.
    public private(set) var core: R
    /// The application state machine with its exactly-once session table.
    public private(set) var machine: ExactlyOnce<Machine>
    /// The position of the last command applied (or of the snapshot installed).
    public private(set) var appliedPosition: UInt64 = 0
    /// The core's role as its events tell it: `leader`, `follower`, `candidate`, or `replica`
    /// for a leaderless protocol.
    public private(set) var role = R.coordination == .leaderless ? "replica" : "follower"
    /// The leader the core knows of.
    public private(set) var leader: NodeID?
    /// The core's epoch (term, ballot, view).
    public private(set) var epoch: UInt64 = 0
    /// Why the node stopped, once it did.
    public private(set) var stopped: String?

    let restore: (Snapshot) throws -> ExactlyOnce<Machine>
    var actions: [Action] = []
    var random: DeterministicRandom
    var ticks: UInt64 = 0

    // Storage.
    var unpersisted: [StorageStep<R.Record>] = []
    var waitingMessages: [Envelope<R.Message>] = []
    var syncingMessages: [Envelope<R.Message>] = []
    var syncing = false

    // Snapshots.
    var lastCompactedPosition: UInt64 = 0
    var savingSnapshot = false

    // Replica side.
    var servedWrites: [CommandID: ClientEndpoint] = [:]
    var servedReads: [UInt64: ServedRead] = [:]
    var nextReadID: UInt64 = 1

    // Gateway side.
    let clientBase: UInt64
    var clients: [GatewayClient] = []
    var sessions: [R.Session] = []
    var idleClients: [Int] = []
    var busyCount = 0
    var tokens: [UInt64: Int] = [:]

    /// Restores a node from what its storage recovered.
    ///
    /// - Parameters:
    ///   - config: the core's identity, membership and options.
    ///   - recovered: the durable snapshot and records (`Replica.problem(restoring:)` must
    ///     have accepted them).
    ///   - options: the driver's own options.
    ///   - clientBase: the gateway's client identities are `clientBase | n` for n from 1:
    ///     unique to this node and incarnation (its low 20 bits zero).
    ///   - randomSeed: the seed of the core's and the sessions' randomness.
    ///   - restore: rebuilds the state machine from a snapshot's bytes; throws when they do
    ///     not restore.
    public init(
        config: ReplicaConfig<R.Options>, recovered: Recovered<R.Record>, options: NodeDriverOptions = NodeDriverOptions(),
        clientBase: UInt64, randomSeed: UInt64, empty: Machine,
        restore: @escaping (Snapshot) throws -> ExactlyOnce<Machine>
    ) throws {
        var config = config
        config.footprint = { Machine.footprint(of: $0) }
        try config.validate()
        try options.validate()
        precondition(clientBase & 0xF_FFFF == 0, "the low 20 bits of a client base are the gateway's")
        self.id = config.id
        self.members = config.members
        self.options = options
        self.clientBase = clientBase
        self.restore = restore
        self.random = DeterministicRandom(seed: randomSeed)
        self.machine = ExactlyOnce(empty)
        if let snapshot = recovered.snapshot {
            self.machine = try restore(snapshot)
            self.appliedPosition = snapshot.position
            self.lastCompactedPosition = snapshot.position
        }
        self.core = R(config: config, restoring: recovered, randomSeed: self.random.fork())
    }

    // MARK: Inputs

    /// One tick of the node's clock: the core's timeouts, the sessions' retries, the
    /// requests' deadlines.
    public mutating func tick() {
        guard self.stopped == nil else { return }
        self.ticks += 1
        self.core.tick()
        guard self.busyCount > 0 else { return }
        for index in self.clients.indices where self.clients[index].token != nil {
            if self.clients[index].deadline <= self.ticks {
                self.finish(index, .failure(.timeout))
                continue
            }
            self.sessions[index].tick()
            self.drainSession(index)
        }
    }

    /// A message from node `sender` (or from this node itself, for a self-addressed `send`).
    public mutating func receive(_ message: PeerMessage<R.Message>, from sender: NodeID) {
        guard self.stopped == nil else { return }
        switch message {
        case .replica(let message): self.core.receive(message, from: sender)
        case .request(let request): self.serve(request, from: sender == self.id ? .local : .peer(sender))
        case .reply(let reply, let authenticator):
            guard self.core.verify(reply, from: sender, authenticator: authenticator) else { return }
            self.gatewayReceives(reply, from: sender)
        }
    }

    /// A local client's request: a write (ordered through the protocol) or a linearizable
    /// read, answered by a `complete` action carrying `token`.
    public mutating func submit(_ kind: ClientRequest.Kind, payload: [UInt8], token: UInt64) {
        guard self.stopped == nil else {
            self.actions.append(.complete(token: token, command: CommandID(client: 0, sequence: 0), .failure(.refused("the node stopped"))))
            return
        }
        guard self.busyCount < self.options.maximumRequests else {
            self.actions.append(.complete(token: token, command: CommandID(client: 0, sequence: 0), .failure(.overloaded)))
            return
        }
        let index: Int
        if let idle = self.idleClients.popLast() {
            index = idle
        } else {
            index = self.clients.count
            let client = self.clientBase | UInt64(index + 1)
            self.clients.append(GatewayClient())
            self.sessions.append(R.Session(client: client, members: self.members, randomSeed: self.random.fork()))
        }
        let client = self.clientBase | UInt64(index + 1)
        let command = Command(client: client, sequence: self.clients[index].nextSequence, payload: payload)
        self.clients[index].nextSequence += 1
        self.clients[index].token = token
        self.clients[index].command = command.id
        self.clients[index].deadline = self.ticks + self.options.requestTimeoutTicks
        self.busyCount += 1
        self.tokens[token] = index
        if let preferred = self.preferredReplica { self.sessions[index].prefer(preferred) }
        self.sessions[index].submit(ClientRequest(kind: kind, command: command))
        self.drainSession(index)
    }

    /// The local client of `token` gave up: the gateway forgets the request (a write sent
    /// may still take effect; the session's next command supersedes it if not).
    public mutating func cancel(token: UInt64) {
        guard let index = self.tokens.removeValue(forKey: token) else { return }
        self.release(index)
    }

    /// A request from a client connected directly, which runs the protocol's session itself;
    /// answered by an `answer` action for `connection`.
    public mutating func serve(_ request: ClientRequest, connection: UInt64) {
        guard self.stopped == nil else { return }
        self.serve(request, from: .external(connection))
    }

    /// Every storage step of the last `persist` action is durable.
    public mutating func persisted() {
        guard self.stopped == nil else { return }
        precondition(self.syncing, "persisted() without a persist in flight")
        self.syncing = false
        let messages = self.syncingMessages
        self.syncingMessages = []
        for envelope in messages { self.emit(envelope) }
        if !self.unpersisted.isEmpty || !self.waitingMessages.isEmpty { self.startPersist() }
    }

    /// The snapshot of a `saveSnapshot` action is durable; `data` are its bytes.
    public mutating func snapshotSaved(position: UInt64, data: [UInt8]) {
        self.savingSnapshot = false
        guard self.stopped == nil else { return }
        self.core.compact(through: position, state: data)
    }

    /// The snapshot of a `saveSnapshot` action could not be written: the log stays whole, and
    /// the next attempt comes after another interval.
    public mutating func snapshotFailed() {
        self.savingSnapshot = false
    }

    /// Asks the core to hand leadership to `target` (see `Replica.transferLeadership(to:)`);
    /// `nil` when the transfer started or there is nothing to do. Drain afterwards.
    public mutating func transferLeadership(to target: NodeID) -> LeadershipTransferRefusal? {
        guard self.stopped == nil else { return .notLeader(hint: nil) }
        return self.core.transferLeadership(to: target)
    }

    /// Asks the core to change the cluster's membership (see
    /// `Replica.changeMembership(voters:learners:)`); `nil` when the change started. Drain
    /// afterwards.
    public mutating func changeMembership(
        voters: [NodeID], learners: [NodeID], addresses: [NodeID: String] = [:]
    ) -> MembershipChangeRefusal? {
        guard self.stopped == nil else { return .notLeader(hint: nil) }
        return self.core.changeMembership(voters: voters, learners: learners, addresses: addresses)
    }

    /// Answers a query from this node's state machine, which may lag (a serializable read).
    public func query(_ payload: [UInt8]) -> [UInt8] {
        self.machine.machine.query(payload)
    }

    /// Gateway requests in flight.
    public var requestsInFlight: Int { self.busyCount }

    /// Writes this replica took (from any gateway or direct client) and has not answered yet.
    public var servedWriteCount: Int { self.servedWrites.count }

    /// Reads this replica took and has not answered yet (waiting for a read index or a lease).
    public var servedReadCount: Int { self.servedReads.count }

    // MARK: Ready

    /// Handles the core's `Ready` and returns everything to do since the last call.
    public mutating func drain() -> [Action] {
        if self.stopped == nil { self.handleReady() }
        if self.stopped == nil { self.followMembership() }
        if self.stopped == nil { self.compactIfDue() }
        defer { self.actions = [] }
        return self.actions
    }

    /// Members that join reach the gateway's sessions: requests may go to (and redirects are
    /// followed to) every replica ever a member. The list only grows: a replica removed from
    /// the configuration may not hear of later changes, and its sessions must still follow
    /// the redirects of the members it knew to a leader that joined after it left.
    mutating func followMembership() {
        guard let membership = self.core.membership, membership.everyone.contains(where: { !self.members.contains($0) }) else { return }
        self.members = Array(Set(self.members).union(membership.everyone)).sorted()
        for index in self.sessions.indices { self.sessions[index].follow(members: self.members) }
    }

    mutating func handleReady() {
        let ready = self.core.ready()
        guard !ready.isEmpty else { return }
        if let snapshot = ready.snapshot {
            // A received snapshot that does not restore stops the node before anything of it
            // reaches the disk.
            if ready.installsSnapshot {
                self.install(snapshot)
                guard self.stopped == nil else { return }
            }
            self.unpersisted.append(.snapshot(snapshot))
        }
        if ready.checkpoint { self.unpersisted.append(.checkpoint) }
        if !ready.records.isEmpty { self.unpersisted.append(.records(ready.records)) }
        for envelope in ready.messages {
            if envelope.afterSync && !self.options.unsafeSendBeforeSync {
                self.waitingMessages.append(envelope)
            } else {
                self.emit(envelope)
            }
        }
        if !self.syncing && (!self.unpersisted.isEmpty || !self.waitingMessages.isEmpty) { self.startPersist() }
        for committed in ready.committed { self.apply(committed) }
        for read in ready.reads {
            guard let served = self.servedReads.removeValue(forKey: read.id) else { continue }
            self.answer(.ok(served.command.id, result: self.machine.machine.query(served.command.payload)), to: served.endpoint)
        }
        for rejection in ready.rejected { self.answerRejection(rejection) }
        for event in ready.events { self.note(event) }
        if self.options.observe { self.actions.append(.observed(ready)) }
    }

    /// Hands every storage step so far to the executor as one `persist`; the messages that
    /// waited for them leave once it is durable. With nothing to write, they leave now.
    mutating func startPersist() {
        let steps = self.unpersisted
        let messages = self.waitingMessages
        self.unpersisted = []
        self.waitingMessages = []
        guard !steps.isEmpty else {
            for envelope in messages { self.emit(envelope) }
            return
        }
        self.syncing = true
        self.syncingMessages = messages
        self.actions.append(.persist(steps))
    }

    mutating func emit(_ envelope: Envelope<R.Message>) {
        self.actions.append(.send(to: envelope.to, .replica(envelope.message)))
    }

    mutating func apply(_ committed: Committed) {
        self.appliedPosition = committed.position
        let outcome = R.executionOrder == .unordered
            ? .applied(self.machine.applyOutsideSessions(committed.command.payload)) : self.machine.apply(committed.command)
        if case .duplicate = outcome, self.options.unsafeApplyRetriesAgain {
            var machine = self.machine.machine
            _ = machine.apply(committed.command.payload)
            self.machine = ExactlyOnce(machine, sessions: self.machine.sessions)
        }
        if self.options.observe { self.actions.append(.applied(committed, outcome)) }
        guard let endpoint = self.servedWrites.removeValue(forKey: committed.command.id) else { return }
        switch outcome {
        case .applied(let reply), .duplicate(let reply): self.answer(.ok(committed.command.id, result: reply), to: endpoint)
        case .stale: break  // the client has moved on: nobody waits for this answer
        }
    }

    /// Replaces the state machine with a snapshot another replica sent (made durable by the
    /// storage step queued right after), and answers the writes waiting here that it holds.
    mutating func install(_ snapshot: Snapshot) {
        do {
            self.machine = try self.restore(snapshot)
        } catch {
            self.stop("a snapshot received for position \(snapshot.position) does not restore: \(error)")
            return
        }
        self.appliedPosition = snapshot.position
        self.lastCompactedPosition = snapshot.position
        self.actions.append(.installed(snapshot))
        for (command, endpoint) in self.servedWrites.sorted(by: { $0.key < $1.key }) {
            guard let reply = self.machine.cachedReply(for: command) else { continue }
            self.servedWrites[command] = nil
            self.answer(.ok(command, result: reply), to: endpoint)
        }
    }

    /// Every `snapshotInterval` applied positions, asks the executor to save the state machine;
    /// the core compacts once it is durable (`snapshotSaved`).
    mutating func compactIfDue() {
        let interval = self.options.snapshotInterval
        guard interval > 0, !self.savingSnapshot, self.appliedPosition >= self.lastCompactedPosition + interval else { return }
        let position = self.appliedPosition
        self.lastCompactedPosition = position
        guard let tag = self.core.snapshotTag(at: position) else { return }
        self.savingSnapshot = true
        self.actions.append(.saveSnapshot(
            position: position, tag: tag, identity: self.core.snapshotIdentity(at: position), machine: self.machine))
    }

    mutating func note(_ event: ReplicaEvent) {
        let previous = self.leader
        switch event {
        case .becameLeader(let epoch): (self.role, self.leader, self.epoch) = ("leader", self.id, epoch)
        case .becameFollower(let epoch, let leader): (self.role, self.leader, self.epoch) = ("follower", leader, epoch)
        case .becameCandidate(let epoch): (self.role, self.leader, self.epoch) = ("candidate", nil, epoch)
        }
        self.actions.append(.event(event))
        if self.role != "leader" && R.coordination == .leader && !self.servedWrites.isEmpty {
            // Proposals die with this leadership unless already replicated; their sessions
            // send the same commands to the new leader (applied once either way).
            for (command, endpoint) in self.servedWrites.sorted(by: { $0.key < $1.key }) {
                self.answer(.notLeader(command, hint: self.leader), to: endpoint)
            }
            self.servedWrites = [:]
        }
        // Requests waiting on a former leader go to the new one.
        guard previous != self.leader, let leader = self.leader, self.busyCount > 0 else { return }
        for index in self.clients.indices where self.clients[index].token != nil {
            self.sessions[index].prefer(leader)
            self.drainSession(index)
        }
    }

    mutating func stop(_ reason: String) {
        guard self.stopped == nil else { return }
        self.stopped = reason
        self.actions.append(.stop(reason))
        for index in self.clients.indices where self.clients[index].token != nil {
            self.finish(index, .failure(.refused("the node stopped: \(reason)")))
        }
    }

    // MARK: Replica side

    /// A client request from a gateway (this node's or a peer's).
    mutating func serve(_ request: ClientRequest, from endpoint: ClientEndpoint) {
        let command = request.command
        switch request.kind {
        case .write:
            if let reply = self.machine.cachedReply(for: command.id) {
                self.answer(.ok(command.id, result: reply), to: endpoint)
                return
            }
            if self.servedWrites[command.id] == nil && self.servedWrites.count + self.servedReads.count >= self.options.maximumServed {
                self.answer(.overloaded(command.id), to: endpoint)
                return
            }
            self.servedWrites[command.id] = endpoint
            self.core.propose(command, authenticator: request.authenticator)
        case .read:
            guard self.servedWrites.count + self.servedReads.count < self.options.maximumServed else {
                self.answer(.overloaded(command.id), to: endpoint)
                return
            }
            let id = self.nextReadID
            self.nextReadID += 1
            self.servedReads[id] = ServedRead(endpoint: endpoint, command: command)
            self.core.read(ReadRequest(id: id, footprint: Machine.footprint(of: command.payload)))
        }
    }

    mutating func answerRejection(_ rejection: Rejection) {
        let endpoint: ClientEndpoint
        let id: CommandID
        switch rejection.request {
        case .proposal(let command):
            guard let served = self.servedWrites.removeValue(forKey: command.id) else { return }
            (endpoint, id) = (served, command.id)
        case .read(let read):
            guard let served = self.servedReads.removeValue(forKey: read.id) else { return }
            (endpoint, id) = (served.endpoint, served.command.id)
        }
        switch rejection.reason {
        case .notLeader(let hint): self.answer(.notLeader(id, hint: hint ?? self.leader), to: endpoint)
        case .overloaded: self.answer(.overloaded(id), to: endpoint)
        case .unsupported(let reason): self.answer(.refused(id, reason: reason), to: endpoint)
        }
    }

    mutating func answer(_ reply: ClientReply, to endpoint: ClientEndpoint) {
        switch endpoint {
        case .local:
            self.gatewayReceives(reply, from: self.id)
        case .external(let connection):
            self.actions.append(.answer(connection: connection, reply, authenticator: self.core.authenticate(reply)))
        case .peer(let node):
            var reply = reply
            if case .ok(let id, let result) = reply, result.count > self.options.maximumReplyBytes {
                reply = .refused(id, reason: "the response (\(result.count) bytes) exceeds \(self.options.maximumReplyBytes) bytes; ask the leader directly or use a limit")
            }
            self.actions.append(.send(to: node, .reply(reply, authenticator: self.core.authenticate(reply))))
        }
    }

    // MARK: Gateway side

    /// Where a new request should go first: the known leader, or this node itself for a
    /// leaderless protocol.
    var preferredReplica: NodeID? {
        R.coordination == .leaderless ? self.id : self.leader
    }

    mutating func gatewayReceives(_ reply: ClientReply, from sender: NodeID) {
        let id = reply.commandID
        guard id.client & ~0xF_FFFF == self.clientBase else { return }
        let index = Int(id.client & 0xF_FFFF) - 1
        guard self.clients.indices.contains(index), self.clients[index].command == id, self.clients[index].token != nil else { return }
        self.sessions[index].receive(reply, from: sender)
        self.drainSession(index)
    }

    mutating func drainSession(_ index: Int) {
        let ready = self.sessions[index].ready()
        for (to, request) in ready.sends {
            var request = request
            if request.authenticator == nil { request.authenticator = self.core.authenticate(request) }
            // A replica that serves linearizable reads itself (a follower with ReadIndex)
            // takes this node's clients' reads: no hop through the leader's gateway.
            if to == self.id || (request.kind == .read && self.stopped == nil && self.core.readsLocally) {
                self.serve(request, from: .local)
            } else {
                self.actions.append(.send(to: to, .request(request)))
            }
            // Serving locally may have answered (and released) this client already.
            guard self.clients[index].command == request.command.id, self.clients[index].token != nil else { return }
        }
        if let completed = ready.completed, completed.id == self.clients[index].command {
            self.finish(index, .success(completed.result))
        } else if let refused = ready.refused, refused.id == self.clients[index].command {
            self.finish(index, .failure(.refused(refused.reason)))
        }
    }

    mutating func finish(_ index: Int, _ result: Result<[UInt8], RequestFailure>) {
        guard let token = self.clients[index].token, let command = self.clients[index].command else { return }
        self.actions.append(.complete(token: token, command: command, result))
        self.tokens[token] = nil
        self.release(index)
    }

    mutating func release(_ index: Int) {
        guard self.clients[index].token != nil else { return }
        self.clients[index].token = nil
        self.clients[index].command = nil
        self.busyCount -= 1
        self.idleClients.append(index)
    }
}

/// One gateway client's request, if it carries one. Its session lives in `NodeDriver.sessions`
/// at the same index, and the type sits outside `NodeDriver`: this bookkeeping does not depend
/// on the protocol's types, so it stays cheap where the driver runs unspecialised.
struct GatewayClient {
    var nextSequence: UInt64 = 1
    var token: UInt64?
    var command: CommandID?
    var deadline: UInt64 = 0
}

/// A read this replica serves once the core allows it.
struct ServedRead {
    var endpoint: ClientEndpoint
    var command: Command
}
