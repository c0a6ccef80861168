@_spi(Testing) import SynodRaft
import SynodCore

extension RaftOptions {
    /// The algorithm of the paper's §5, without Pre-Vote and check-quorum: for tests of the
    /// paper's rules as written (an election timeout starts an election at once).
    static var paper: RaftOptions {
        var options = RaftOptions()
        options.preVote = false
        options.checkQuorum = false
        return options
    }
}

/// A hand-stepped Raft cluster for rule tests: messages wait in a mailbox until delivered,
/// disks are record arrays, and a sync happens only when the test asks for it.
struct TestCluster {
    var replicas: [RaftReplica]
    var disks: [[RaftRecord]]
    var mailbox: [(from: NodeID, envelope: Envelope<RaftMessage>)] = []
    var committed: [[Committed]]
    var served: [[ReadRequest]]
    var lastReady: [Ready<RaftMessage, RaftRecord>]
    /// The bootstrap configuration's voters.
    let members: [NodeID]

    init(size: Int, options: RaftOptions = RaftOptions()) {
        let members = (1...size).map { NodeID(UInt16($0)) }
        self.members = members
        self.replicas = members.map {
            RaftReplica(config: ReplicaConfig(id: $0, members: members, options: options), restoring: .empty,
                        randomSeed: UInt64($0.rawValue))
        }
        self.disks = Array(repeating: [], count: size)
        self.committed = Array(repeating: [], count: size)
        self.served = Array(repeating: [], count: size)
        self.lastReady = Array(repeating: Ready(), count: size)
    }

    static func node(_ number: Int) -> NodeID { NodeID(UInt16(number)) }

    /// Drains replica `number` (1-based): records go to disk, messages to the mailbox.
    @discardableResult
    mutating func drain(_ number: Int) -> Ready<RaftMessage, RaftRecord> {
        let ready = self.replicas[number - 1].ready()
        self.disks[number - 1] += ready.records
        self.committed[number - 1] += ready.committed
        self.served[number - 1] += ready.reads
        for envelope in ready.messages { self.mailbox.append((Self.node(number), envelope)) }
        self.lastReady[number - 1] = ready
        return ready
    }

    /// Ticks replica `number` until it starts an election.
    mutating func campaign(_ number: Int) {
        for _ in 0..<1000 where self.replicas[number - 1].role == .follower {
            self.replicas[number - 1].tick()
        }
        self.drain(number)
    }

    /// Delivers every message (syncs are instant) until the mailbox is empty, dropping messages
    /// to or from the replicas in `isolated`.
    mutating func deliverAll(isolated: Set<Int> = [], limit: Int = 100_000) {
        var steps = 0
        while !self.mailbox.isEmpty && steps < limit {
            steps += 1
            let (from, envelope) = self.mailbox.removeFirst()
            let to = Int(envelope.to.rawValue)
            if isolated.contains(to) || isolated.contains(Int(from.rawValue)) { continue }
            self.replicas[to - 1].receive(envelope.message, from: from)
            self.drain(to)
        }
    }

    /// Elects replica `number` with every other replica reachable.
    mutating func elect(_ number: Int) {
        self.campaign(number)
        self.deliverAll()
        precondition(self.replicas[number - 1].role == .leader, "replica \(number) did not win")
    }

    mutating func propose(_ number: Int, _ sequence: UInt64) {
        self.replicas[number - 1].propose(Command(client: 1, sequence: sequence, payload: [UInt8(sequence & 0xff)]))
        self.drain(number)
    }

    func restarted(_ number: Int) -> RaftReplica {
        RaftReplica(
            config: ReplicaConfig(id: Self.node(number), members: self.members), restoring: Recovered(records: self.disks[number - 1]),
            randomSeed: 99)
    }
}

/// Builds a follower whose log holds entries of the given terms, at `term`.
func follower(logTerms: [UInt64], term: UInt64, members: Int = 3, id: Int = 1) -> RaftReplica {
    let entries = logTerms.enumerated().map { RaftEntry(term: Term($1), command: Command(client: 9, sequence: UInt64($0 + 1), payload: [])) }
    let records: [RaftRecord] = [.hardState(term: Term(term), votedFor: nil), .entries(first: LogIndex(1), entries)]
    let nodes = (1...members).map { NodeID(UInt16($0)) }
    return RaftReplica(config: ReplicaConfig(id: NodeID(UInt16(id)), members: nodes), restoring: Recovered(records: records), randomSeed: 7)
}
