import SynodCheck
import SynodCore

extension Simulation {
    // MARK: Client side

    func startNextOperation(client: Int) {
        guard self.clients[client].remainingOperations > 0 else {
            self.clients[client].currentOperation = nil
            self.clients[client].currentCommand = nil
            return
        }
        self.clients[client].remainingOperations -= 1
        let clientID = ClientID(client + 1)
        let sequence = self.clients[client].nextSequence
        self.clients[client].nextSequence += 1
        let key = UInt8(self.random.integer(in: 0..<self.options.keys))
        let operation = self.options.workload.makeOperation(
            key: key, client: clientID, sequence: sequence, options: self.options,
            recentValues: self.recentValues[key, default: []], random: &self.random, now: self.now)
        if let value = operation.record.value {
            self.recentValues[key, default: []].append(value)
            if self.recentValues[key]!.count > 3 { self.recentValues[key]!.removeFirst() }
        }
        let command = Command(client: clientID, sequence: sequence, payload: operation.payload)
        self.history.append(operation.record)
        self.clients[client].currentOperation = self.history.count - 1
        self.clients[client].currentCommand = command.id
        self.clients[client].session.submit(ClientRequest(kind: operation.kind, command: command))
        self.drainClient(client)
    }

    /// Starts the client's next operation, at once or after a think time.
    func operationEnded(client: Int) {
        guard self.options.thinkTimeNanoseconds.upperBound > 0 else {
            self.startNextOperation(client: client)
            return
        }
        self.clients[client].currentOperation = nil
        self.clients[client].currentCommand = nil
        self.schedule(after: self.random.uniform(self.options.thinkTimeNanoseconds), .clientStart(client: client))
    }

    func clientTick(_ client: Int) {
        if let operation = self.clients[client].currentOperation, self.faultPhaseEnd == nil,
            self.now - self.history[operation].call >= self.options.operationTimeoutNanoseconds
        {
            // The client gives up: the write may or may not take effect, now or later.
            self.history[operation].unknown = true
            self.statistics.unknownOperations += 1
            self.operationEnded(client: client)
        }
        self.clients[client].session.tick()
        self.drainClient(client)
        self.schedule(after: self.options.tickNanoseconds, .clientTick(client: client))
    }

    func drainClient(_ client: Int) {
        let ready = self.clients[client].session.ready()
        for (destination, request) in ready.sends {
            if self.clientLinkDrops() { continue }
            self.schedule(after: self.latency([]), .clientRequest(
                client: client, node: Int(destination.rawValue) - 1, request: request))
        }
        if let completed = ready.completed, completed.id == self.clients[client].currentCommand,
            let operation = self.clients[client].currentOperation
        {
            self.history[operation].returnTime = self.now
            let kind = self.history[operation].kind
            guard let output = self.options.workload.output(of: kind, reply: completed.result) else {
                self.violations.append(InvariantViolation(
                    invariant: "state-machine-reply", node: nil,
                    detail: "\(completed.id) (\(kind.rawValue)) got a reply that does not decode: \(completed.result)"))
                return
            }
            self.history[operation].output = output
            if kind != .get {
                // An acknowledged write was applied somewhere first: it has a position.
                self.ackedWrites.insert(completed.id)
                if let position = self.writePositions[completed.id] {
                    self.highestAckedPosition = max(self.highestAckedPosition, position)
                } else {
                    self.violations.append(InvariantViolation(
                        invariant: "acknowledged-write-applied", node: nil,
                        detail: "\(completed.id) was acknowledged but no replica applied it"))
                }
            }
            self.completedOperations += 1
            self.operationEnded(client: client)
        }
    }

    func clientReceives(_ client: Int, reply: ClientReply, from position: Int) {
        self.clients[client].session.receive(reply, from: self.members[position])
        self.drainClient(client)
    }

    // MARK: Replica side

    func nodeReceivesClientRequest(_ position: Int, client: Int, request: ClientRequest) {
        guard self.nodes[position].replica != nil else { return }
        let command = request.command
        switch request.kind {
        case .write:
            if let reply = self.nodes[position].machine.cachedReply(for: command.id) {
                self.reply(.ok(command.id, result: reply), to: client, from: position)
                return
            }
            self.nodes[position].pendingWrites[command.client] = command.sequence
            self.nodes[position].replica!.propose(command)
        case .read:
            let id = self.nodes[position].nextReadID
            self.nodes[position].nextReadID += 1
            self.nodes[position].pendingReads[id] = (client, command)
            self.nodes[position].replica!.read(ReadRequest(id: id))
        }
        self.drain(position)
    }

    func reply(_ reply: ClientReply, to client: Int, from position: Int) {
        if self.clientLinkDrops() { return }
        self.schedule(after: self.latency([]), .clientReply(client: client, node: position, reply: reply))
    }

    /// Applies a committed command and checks state-machine safety: positions only increase on
    /// each replica; conflicting commands (same key) execute in one order on every replica; and
    /// with a total execution order, every replica executes the same command at each position.
    func apply(_ committed: Committed, at position: Int) {
        let id = committed.command.id
        if committed.position <= self.nodes[position].lastAppliedPosition {
            self.violations.append(InvariantViolation(
                invariant: "state-machine-safety", node: self.members[position],
                detail: "applied position \(committed.position) after \(self.nodes[position].lastAppliedPosition)"))
            return
        }
        self.nodes[position].lastAppliedPosition = committed.position
        if R.executionOrder == .total, let known = self.recordTotalOrder(id, at: committed.position), known != id {
            self.violations.append(InvariantViolation(
                invariant: "state-machine-safety", node: self.members[position],
                detail: "applied \(id) at position \(committed.position) where another replica applied \(known)"))
            return
        }
        if let key = self.options.workload.conflictKey(of: committed.command.payload) {
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
        let outcome = self.nodes[position].machine.apply(committed.command)
        if case .duplicate = outcome {
            self.statistics.duplicateCommits += 1
            if self.options.unsafeApplyRetriesAgain {
                self.nodes[position].machine.applyAgainIgnoringSessions(committed.command.payload)
            }
        }
        if case .applied = outcome, self.writePositions[id] == nil { self.writePositions[id] = committed.position }
        guard self.nodes[position].pendingWrites[id.client] == id.sequence else { return }
        self.nodes[position].pendingWrites[id.client] = nil
        switch outcome {
        case .applied(let result), .duplicate(let result):
            self.reply(.ok(id, result: result), to: Int(id.client) - 1, from: position)
        case .stale:
            break
        }
    }

    /// Notes the command at a position of the total order; returns the command first seen there.
    func recordTotalOrder(_ id: CommandID, at position: UInt64) -> CommandID? {
        let slot = Int(position)
        if slot >= self.positionHistory.count {
            self.positionHistory.append(contentsOf: repeatElement(nil, count: slot - self.positionHistory.count + 1))
        }
        if let known = self.positionHistory[slot] { return known }
        self.positionHistory[slot] = id
        return id
    }

    func serveRead(_ read: ReadRequest, at position: Int) {
        guard let pending = self.nodes[position].pendingReads.removeValue(forKey: read.id) else { return }
        let result = self.nodes[position].machine.query(pending.command.payload)
        self.reply(.ok(pending.command.id, result: result), to: pending.client, from: position)
    }

    func answerRejection(_ rejection: Rejection, at position: Int) {
        let client: Int
        let id: CommandID
        switch rejection.request {
        case .proposal(let command):
            client = Int(command.client) - 1
            id = command.id
            if self.nodes[position].pendingWrites[command.client] == command.sequence {
                self.nodes[position].pendingWrites[command.client] = nil
            }
        case .read(let read):
            guard let pending = self.nodes[position].pendingReads.removeValue(forKey: read.id) else { return }
            client = pending.client
            id = pending.command.id
        }
        switch rejection.reason {
        case .notLeader(let hint): self.reply(.notLeader(id, hint: hint), to: client, from: position)
        case .overloaded: self.reply(.overloaded(id), to: client, from: position)
        }
    }
}
