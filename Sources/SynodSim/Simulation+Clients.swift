import SynodCausal
import SynodClocks
import SynodCheck
import SynodCore
import SynodDriver

extension Simulation {
    // MARK: Client side

    /// Starts the client's next operation at a random live node's gateway (as an HTTP client
    /// picks any endpoint); with every node down, tries again a tick later.
    func startNextOperation(client: Int) {
        guard self.clients[client].remainingOperations > 0 else {
            self.clients[client].currentOperation = nil
            return
        }
        let live = self.nodes.indices.filter { self.nodes[$0].driver != nil && self.onClientSide(client, node: $0) }
        guard !live.isEmpty || self.clients[client].session != nil else {
            self.clients[client].currentOperation = nil
            self.schedule(after: self.options.tickNanoseconds, .clientStart(client: client))
            return
        }
        self.clients[client].remainingOperations -= 1
        let clientID = ClientID(client + 1)
        let sequence = self.clients[client].nextSequence
        self.clients[client].nextSequence += 1
        let key = UInt8(self.random.integer(in: 0..<self.options.keys))
        let operation = self.options.workload.makeOperation(
            key: key, client: clientID, sequence: sequence, options: self.options,
            recentValues: self.recentValues[key, default: []], context: self.clients[client].contexts[key] ?? VectorClock(),
            random: &self.random, now: self.now,
            // A gateway's client loses an operation with every crash of its gateway; an append
            // of unknown outcome can land anywhere among the others, the checker's hardest
            // case, so these clients put instead.
            // A quorum register orders no appends (`CommandSupport.singleKeyOverwrites`).
            appends: self.clients[client].session != nil && R.commandSupport == .any)
        if let value = operation.record.value {
            self.recentValues[key, default: []].append(value)
            if self.recentValues[key]!.count > 3 { self.recentValues[key]!.removeFirst() }
        }
        self.history.append(operation.record)
        self.clients[client].currentKey = key
        if self.clients[client].session != nil {
            let command = Command(client: clientID, sequence: sequence, payload: operation.payload)
            self.clients[client].currentOperation = self.history.count - 1
            self.clients[client].currentCommand = command.id
            self.clients[client].session!.submit(ClientRequest(kind: operation.kind, command: command))
            self.drainClient(client)
            return
        }
        let gateway = live[self.random.integer(in: 0..<live.count)]
        self.tokenCounter += 1
        let token = UInt64(client) << 40 | self.tokenCounter
        self.clients[client].currentOperation = self.history.count - 1
        self.clients[client].token = token
        self.clients[client].gateway = gateway
        self.clients[client].gatewayIncarnation = self.nodes[gateway].incarnation
        self.schedule(after: self.latency([]), .submit(client: client, token: token, kind: operation.kind, payload: operation.payload))
    }

    /// Whether a client may use the node's gateway: always, except that with a fixed partition
    /// clients stay on their side of it.
    func onClientSide(_ client: Int, node: Int) -> Bool {
        guard let partition = self.options.fixedPartition else { return true }
        let minorityClient = client >= self.options.clients - partition.minorityClients
        return partition.minority.contains(node) == minorityClient
    }

    /// Starts the client's next operation, at once or after a think time.
    func operationEnded(client: Int) {
        self.clients[client].currentOperation = nil
        self.clients[client].currentCommand = nil
        self.clients[client].token = 0
        guard self.options.thinkTimeNanoseconds.upperBound > 0 else {
            self.startNextOperation(client: client)
            return
        }
        self.schedule(after: self.random.uniform(self.options.thinkTimeNanoseconds), .clientStart(client: client))
    }

    /// The client's operation ends without an answer: a write may or may not take effect,
    /// now or later.
    func abandon(_ client: Int) {
        guard let operation = self.clients[client].currentOperation else { return }
        self.history[operation].unknown = true
        self.statistics.unknownOperations += 1
        self.operationEnded(client: client)
    }

    func clientTick(_ client: Int) {
        if let operation = self.clients[client].currentOperation, self.faultPhaseEnd == nil,
            self.now - self.history[operation].call >= self.options.operationTimeoutNanoseconds
        {
            // The client gives up (and hangs up: the gateway forgets the request).
            let gateway = self.clients[client].gateway
            if self.clients[client].session == nil && self.nodes[gateway].incarnation == self.clients[client].gatewayIncarnation {
                self.nodes[gateway].driver?.cancel(token: self.clients[client].token)
            }
            self.abandon(client)
        }
        if self.clients[client].session != nil {
            self.clients[client].session!.tick()
            self.drainClient(client)
        }
        self.schedule(after: self.options.tickNanoseconds, .clientTick(client: client))
    }

    /// A client's request reaches a gateway: submitted, unless the node restarted or is down
    /// since the client picked it (the connection is refused).
    func gatewayReceives(client: Int, token: UInt64, kind: ClientRequest.Kind, payload: [UInt8]) {
        guard self.clients[client].token == token else { return }
        let position = self.clients[client].gateway
        guard self.nodes[position].incarnation == self.clients[client].gatewayIncarnation, self.nodes[position].driver != nil else {
            self.abandon(client)
            return
        }
        self.nodes[position].driver!.submit(kind, payload: payload, token: token)
        self.drain(position)
    }

    /// A gateway's answer reaches its client.
    func clientReceives(_ client: Int, token: UInt64, command: CommandID, result: Result<[UInt8], RequestFailure>) {
        guard self.clients[client].token == token, self.clients[client].currentOperation != nil else { return }
        switch result {
        case .success(let reply): self.operationReturned(client, command: command, reply: reply)
        case .failure: self.abandon(client)
        }
    }

    /// A replica's answer reaches a direct client's session.
    func directClientReceives(_ client: Int, reply: ClientReply, from position: Int) {
        self.clients[client].session?.receive(reply, from: self.members[position])
        self.drainClient(client)
    }

    /// Sends what a direct client's session asks for, and ends its operation when it completes.
    func drainClient(_ client: Int) {
        guard let ready = self.clients[client].session?.ready() else { return }
        for (destination, request) in ready.sends {
            if self.clientLinkDrops() { continue }
            self.schedule(after: self.latency([]), .clientRequest(
                client: client, node: Int(destination.rawValue) - 1, request: request))
        }
        if let completed = ready.completed, completed.id == self.clients[client].currentCommand {
            self.operationReturned(client, command: completed.id, reply: completed.result)
        } else if let refused = ready.refused, refused.id == self.clients[client].currentCommand {
            self.abandon(client)
        }
    }

    /// The client's operation returned `reply`: the history records what it saw.
    func operationReturned(_ client: Int, command: CommandID, reply: [UInt8]) {
        guard let operation = self.clients[client].currentOperation else { return }
        self.history[operation].returnTime = self.now
        let kind = self.history[operation].kind
        guard let output = self.options.workload.output(of: kind, reply: reply) else {
            self.violations.append(InvariantViolation(
                invariant: "state-machine-reply", node: nil,
                detail: "\(command) (\(kind.rawValue)) got a reply that does not decode: \(reply)"))
            return
        }
        self.history[operation].output = output
        if self.options.workload == .eventual, let state = try? CausalRegister.decode(reply) {
            self.clients[client].contexts[self.clients[client].currentKey] = state.context
        }
        if kind != .get {
            // An acknowledged write was applied somewhere first: it has a position.
            self.ackedWrites.insert(command)
            if let position = self.writePositions[command] {
                self.highestAckedPosition = max(self.highestAckedPosition, position)
            } else {
                self.violations.append(InvariantViolation(
                    invariant: "acknowledged-write-applied", node: nil,
                    detail: "\(command) was acknowledged but no replica applied it"))
            }
        }
        self.completedOperations += 1
        self.operationEnded(client: client)
    }

    // MARK: Replica side

    /// Checks a command a node's driver applied: positions (with their index among a batch's
    /// commands) only increase on each replica;
    /// conflicting commands (same key) execute in one order on every replica; and with a total
    /// execution order, every replica executes the same command at each position.
    func applied(_ committed: Committed, _ outcome: ExactlyOnce<SimulatedMachine>.Outcome, at position: Int) {
        let id = committed.command.id
        let last = (self.nodes[position].lastAppliedPosition, self.nodes[position].lastAppliedIndex)
        /// A position as text, with its index when one is meaningful ("7", "7.2").
        func place(_ position: UInt64, _ index: Int) -> String {
            index <= 0 || index == Int.max ? "\(position)" : "\(position).\(index)"
        }
        if committed.index < 0 || (committed.position, committed.index) <= last {
            self.violations.append(InvariantViolation(
                invariant: "state-machine-safety", node: self.members[position],
                detail: "applied position \(place(committed.position, committed.index)) after \(place(last.0, last.1))"))
            return
        }
        self.nodes[position].lastAppliedPosition = committed.position
        self.nodes[position].lastAppliedIndex = committed.index
        if self.trace != nil {
            self.mark("commit", node: position, "applied position \(place(committed.position, committed.index)): command \(committed.command.id), \(committed.command.payload.count) bytes")
        }
        if R.executionOrder == .total, let known = self.recordTotalOrder(id, at: committed.position, index: committed.index),
           known != id
        {
            self.violations.append(InvariantViolation(
                invariant: "state-machine-safety", node: self.members[position],
                detail: "applied \(id) at position \(place(committed.position, committed.index)) where another replica applied \(known)"))
            return
        }
        // An unordered protocol (ABD, the eventual store) applies writes only where operations
        // complete, in no agreed order: its monitor and the history judge it instead.
        if R.executionOrder != .unordered, let key = self.options.workload.conflictKey(of: committed.command.payload) {
            let index = self.nodes[position].appliedPerKey[key, default: 0]
            self.nodes[position].appliedPerKey[key] = index + 1
            if index == self.keyHistory[key, default: []].count {
                self.keyHistory[key, default: []].append(id)
            } else if let known = self.keyHistory[key]?[index], known != id {
                self.violations.append(InvariantViolation(
                    invariant: "state-machine-safety", node: self.members[position],
                    detail: "executed \(id) as command \(index) on key \(key) where another replica executed \(known)"))
                return
            }
        }
        self.nodes[position].appliedCommands.insert(id)
        if case .duplicate = outcome { self.statistics.duplicateCommits += 1 }
        if case .applied = outcome, self.writePositions[id] == nil { self.writePositions[id] = committed.position }
    }

    /// Notes the command at a place of the total order; returns the command first seen there.
    func recordTotalOrder(_ id: CommandID, at position: UInt64, index: Int) -> CommandID? {
        let slot = Int(position)
        if slot >= self.positionHistory.count {
            self.positionHistory.append(contentsOf: repeatElement([], count: slot - self.positionHistory.count + 1))
        }
        if index >= self.positionHistory[slot].count {
            self.positionHistory[slot].append(contentsOf: repeatElement(nil, count: index - self.positionHistory[slot].count + 1))
        }
        if let known = self.positionHistory[slot][index] { return known }
        self.positionHistory[slot][index] = id
        return id
    }
}
