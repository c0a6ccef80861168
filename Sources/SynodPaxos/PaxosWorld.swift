import SynodCore

/// A deterministic little world for single-decree Paxos: a network that delays, reorders,
/// loses and duplicates; disks where records become durable only at a sync and unsynced ones
/// vanish at a crash; messages that wait for their sync. Checked after every step:
/// agreement (no two nodes decide differently), validity (only a proposed value is decided),
/// and the text's Lemma 1: once a value is chosen in ballot b (accepted durably by a
/// majority), every proposal of a higher ballot carries it.
public struct PaxosWorld {
    /// One node: its core (nil while crashed) and its disk.
    public struct Node {
        public internal(set) var paxos: SingleDecreePaxos?
        public internal(set) var disk: [PaxosRecord] = []
        var synced = 0
        var waiting: [Envelope<PaxosMessage>] = []
    }

    public internal(set) var nodes: [Node]
    let members: [NodeID]
    let options: SingleDecreePaxos.Options
    var network: [(from: Int, envelope: Envelope<PaxosMessage>)] = []
    var random: DeterministicRandom
    var faults: Bool
    /// Deliver prepares and promises before anything else: the schedule that makes two
    /// proposers preempt each other.
    public var adversarial = false
    /// Percent of steps that crash or restart a node (with faults on), and that sync one.
    public var crashPercent = 2
    public var syncPercent = 23
    var proposals: Set<[UInt8]> = []
    var wanted: [Int: [UInt8]] = [:]
    /// Durable acceptances per ballot: node → value.
    var durablyAccepted: [Ballot: [NodeID: [UInt8]]] = [:]
    public internal(set) var chosen: AcceptedValue?
    public internal(set) var violations: [String] = []
    public internal(set) var steps = 0

    /// A world of `size` nodes; `faults` turns on loss, duplication and crashes.
    public init(size: Int, seed: UInt64, faults: Bool, options: SingleDecreePaxos.Options = .init()) {
        self.members = (1...size).map { NodeID(UInt16($0)) }
        self.options = options
        self.random = DeterministicRandom(seed: seed)
        self.faults = faults
        self.nodes = []
        for member in self.members {
            self.nodes.append(Node(paxos: SingleDecreePaxos(id: member, members: self.members, options: options, randomSeed: self.random.fork())))
        }
    }

    var quorum: Int { self.members.count / 2 + 1 }

    /// Node `position` (0-based) starts proposing `value`.
    public mutating func propose(at position: Int, _ value: [UInt8]) {
        self.proposals.insert(value)
        self.wanted[position] = value
        self.nodes[position].paxos?.propose(value)
        self.drain(position)
    }

    /// Node `position` (0-based) runs phase 1 ahead of a value (`SingleDecreePaxos.prepare()`).
    public mutating func prepare(at position: Int) {
        self.nodes[position].paxos?.prepare()
        self.drain(position)
    }

    /// Everything a node asked for: records to its disk, messages to the network or to wait.
    mutating func drain(_ position: Int) {
        guard let output = self.nodes[position].paxos?.ready() else { return }
        defer { if self.adversarial { self.sync(position) } }  // the adversary's disks are instant
        self.nodes[position].disk += output.records
        for envelope in output.messages {
            if envelope.afterSync {
                self.nodes[position].waiting.append(envelope)
            } else {
                self.network.append((position, envelope))
            }
            if case .accept(let ballot, let value) = envelope.message, let chosen, ballot > chosen.ballot, value != chosen.value {
                self.violations.append("Lemma 1: \(chosen.value) chosen in \(chosen.ballot), but \(ballot) proposes \(value)")
            }
        }
        self.checkDecisions()
    }

    mutating func sync(_ position: Int) {
        let node = self.nodes[position]
        for record in node.disk[node.synced...] {
            guard case .accepted(let accepted) = record else { continue }
            self.durablyAccepted[accepted.ballot, default: [:]][self.members[position]] = accepted.value
            let votes = self.durablyAccepted[accepted.ballot]!.values.filter { $0 == accepted.value }.count
            if votes >= self.quorum && self.chosen == nil { self.chosen = accepted }
        }
        self.nodes[position].synced = node.disk.count
        for envelope in node.waiting { self.network.append((position, envelope)) }
        self.nodes[position].waiting = []
    }

    mutating func crash(_ position: Int) {
        var node = self.nodes[position]
        node.disk.removeSubrange(node.synced...)
        node.paxos = nil
        node.waiting = []
        self.nodes[position] = node
    }

    mutating func restart(_ position: Int) {
        var paxos = SingleDecreePaxos(
            id: self.members[position], members: self.members, options: self.options,
            restoring: self.nodes[position].disk, randomSeed: self.random.fork())
        if let value = self.wanted[position] { paxos.propose(value) }
        self.nodes[position].paxos = paxos
        self.drain(position)
    }

    mutating func checkDecisions() {
        let decided = self.nodes.compactMap { $0.paxos?.decided }
        for value in decided where !self.proposals.contains(value) {
            self.violations.append("validity: decided \(value), which nobody proposed")
        }
        if Set(decided).count > 1 { self.violations.append("agreement: decided \(Set(decided).sorted { $0.lexicographicallyPrecedes($1) })") }
        if let chosen, let other = decided.first(where: { $0 != chosen.value }) {
            self.violations.append("agreement: decided \(other) after \(chosen.value) was chosen")
        }
    }

    /// Every live node learned the decision.
    public var everyLiveNodeDecided: Bool { self.nodes.allSatisfy { $0.paxos == nil || $0.paxos?.decided != nil } }

    /// Ballots started by all proposers so far.
    public var roundsStarted: Int { self.nodes.compactMap { $0.paxos?.roundsStarted }.reduce(0, +) }

    /// One random step.
    public mutating func step() {
        self.steps += 1
        let roll = self.random.integer(in: 0..<100)
        if self.faults && roll < self.crashPercent {
            let position = self.random.integer(in: 0..<self.nodes.count)
            if self.nodes[position].paxos == nil { self.restart(position) } else { self.crash(position) }
            return
        }
        if !self.adversarial && roll < self.crashPercent + self.syncPercent {
            let position = self.random.integer(in: 0..<self.nodes.count)
            if self.nodes[position].paxos != nil { self.sync(position) }
            return
        }
        if self.network.isEmpty || (!self.adversarial && roll < self.crashPercent + self.syncPercent + 5) {
            for position in self.nodes.indices where self.nodes[position].paxos != nil {
                self.nodes[position].paxos!.tick()
                self.drain(position)
            }
            return
        }
        var index = self.random.integer(in: 0..<self.network.count)
        if self.adversarial {
            // Phase-1 traffic first; everything else in order. Ticks only when all is quiet.
            index = self.network.firstIndex {
                switch $0.envelope.message { case .prepare, .promise, .nack: true; default: false }
            } ?? 0
        }
        let (from, envelope) = self.network.remove(at: index)
        if self.faults && self.random.chance(0.05) { return }  // lost
        if self.faults && self.random.chance(0.03) { self.network.append((from, envelope)) }  // duplicated
        let to = Int(envelope.to.rawValue) - 1
        guard self.nodes[to].paxos != nil else { return }
        self.nodes[to].paxos!.receive(envelope.message, from: self.members[from])
        self.drain(to)
    }
}

extension PaxosWorld {
    /// What the dueling-proposers scenario saw.
    public struct DuelOutcome: Sendable {
        /// The chosen value, if any.
        public var decided: [UInt8]?
        /// Ballots started by the two proposers.
        public var rounds: Int
        /// Steps taken.
        public var steps: Int
        /// Safety violations (there should be none).
        public var violations: [String]
    }

    /// Two proposers on three nodes under an adversarial schedule (phase-1 traffic first,
    /// instant disks, ticks only when the network is quiet), for at most `stepBound` steps:
    /// without randomized backoff they preempt each other forever (FLP made visible); with
    /// it, one of them gets through.
    public static func duelingProposers(backoff: Bool, seed: UInt64 = 1, stepBound: Int = 20_000) -> DuelOutcome {
        var options = SingleDecreePaxos.Options()
        options.randomizedBackoff = backoff
        var world = PaxosWorld(size: 3, seed: seed, faults: false, options: options)
        world.adversarial = true
        world.propose(at: 0, Array("first".utf8))
        world.propose(at: 1, Array("second".utf8))
        while world.steps < stepBound && world.chosen == nil && world.violations.isEmpty { world.step() }
        return DuelOutcome(decided: world.chosen?.value, rounds: world.roundsStarted, steps: world.steps, violations: world.violations)
    }
}
