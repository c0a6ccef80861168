import SynodCore
import SynodDriver
import Testing

// Skeletons of EPaxos and PBFT written against the real interface, to show it fits them (issue
// 12): their messages, records, sessions, quorums and checkpoint identities, and the first step
// of each protocol (EPaxos's PreAccept with dependencies from footprints; PBFT's signed
// PrePrepare), driven through the real `NodeDriver`. Not protocols: nothing commits. They live
// in the tests so that no command line offers them before they are built.

/// A replica's numbered instance: EPaxos orders commands per (replica, number), not in one log.
struct InstanceID: Hashable, Comparable, Sendable {
    var replica: NodeID
    var number: UInt64
    static func < (a: InstanceID, b: InstanceID) -> Bool { (a.replica, a.number) < (b.replica, b.number) }
}

/// The message and record coding the skeletons need to be a `Replica`; they never go on a wire.
protocol SkeletonCodable: Sendable, TraceDigestible, WireCodable {}
extension SkeletonCodable {
    func digest(into hasher: inout StableHasher) {}
    func encode(into writer: inout WireWriter) {}
    static func decode(from reader: inout WireReader) throws(WireError) -> Self { throw .malformed("a skeleton's message") }
}

/// What the skeletons do not do yet: time, messages, reads, commits.
protocol SkeletonCore: Replica {
    var output: Ready<Message, Record> { get set }
}

extension SkeletonCore {
    mutating func tick() {}
    mutating func receive(_ message: Message, from sender: NodeID) {}
    mutating func read(_ request: ReadRequest) {}
    mutating func ready() -> Ready<Message, Record> {
        defer { self.output = Ready() }
        return self.output
    }
    var committedThrough: UInt64 { 0 }
}

/// Options and a monitor for the test cores, which have nothing to tune or check.
struct NoOptions: ReplicaOptions {
    init() {}
    func validate() throws {}
}

struct NoMonitor<R: Replica>: SafetyMonitor {
    init(members: [NodeID]) {}
    mutating func observe(node: NodeID, replica: R, ready: Ready<R.Message, R.Record>) -> [InvariantViolation] { [] }
    mutating func restarted(node: NodeID, replica: R, recovered: Recovered<R.Record>) {}
}

/// EPaxos (Moraru et al., SOSP 2013): any replica leads its own instances; a command's
/// dependencies are the instances of conflicting commands it has seen, told apart with the
/// state machine's footprints (`ReplicaConfig.footprint`); replicas agree on the order of
/// conflicting commands only (`executionOrder: .conflicting`). A checkpoint is identified by
/// the executed prefix of every replica's instances (`snapshotIdentity`).
struct EPaxosSkeleton: SkeletonCore {
    enum Message: SkeletonCodable {
        case preAccept(InstanceID, ballot: UInt64, Command, sequence: UInt64, dependencies: [InstanceID])
        case preAcceptReply(InstanceID, ballot: UInt64, sequence: UInt64, dependencies: [InstanceID], changed: Bool)
        case accept(InstanceID, ballot: UInt64, sequence: UInt64, dependencies: [InstanceID])
        case acceptReply(InstanceID, ballot: UInt64, ok: Bool)
        case commit(InstanceID, Command, sequence: UInt64, dependencies: [InstanceID])
        case prepare(InstanceID, ballot: UInt64)
    }
    enum Record: SkeletonCodable {
        case instance(InstanceID, ballot: UInt64, Command, sequence: UInt64, dependencies: [InstanceID], committed: Bool)
    }
    typealias Options = NoOptions
    typealias Monitor = NoMonitor<EPaxosSkeleton>
    /// Any replica will do: the gateway prefers itself (`Coordination.leaderless`).
    typealias Session = LeaderFollowingSession
    static var protocolName: String { "epaxos-skeleton" }
    static var executionOrder: ExecutionOrder { .conflicting }
    static var coordination: Coordination { .leaderless }

    let id: NodeID
    let members: [NodeID]
    let quorums: EPaxosQuorums
    let footprint: @Sendable ([UInt8]) -> Footprint
    var nextNumber: UInt64 = 1
    /// Every instance this replica knows, with its command's footprint.
    var instances: [InstanceID: (command: Command, footprint: Footprint, sequence: UInt64)] = [:]
    /// Per replica, the highest instance executed here.
    var executed: [NodeID: UInt64] = [:]
    var output = Ready<Message, Record>()

    init(config: ReplicaConfig<Options>, restoring: Recovered<Record>, randomSeed: UInt64) {
        self.id = config.id
        self.members = config.members
        self.quorums = EPaxosQuorums(memberCount: config.members.count)
        self.footprint = config.footprint
    }

    /// The instances of commands that conflict with `footprint` (one per replica suffices in
    /// the paper: the latest; all are kept here for the test to read).
    func dependencies(of footprint: Footprint) -> [InstanceID] {
        self.instances.filter { $0.value.footprint.conflicts(with: footprint) }.map(\.key).sorted()
    }

    mutating func propose(_ command: Command) {
        let instance = InstanceID(replica: self.id, number: self.nextNumber)
        self.nextNumber += 1
        let footprint = self.footprint(command.payload)
        let dependencies = self.dependencies(of: footprint)
        let sequence = 1 + (dependencies.compactMap { self.instances[$0]?.sequence }.max() ?? 0)
        self.instances[instance] = (command, footprint, sequence)
        self.output.records.append(.instance(instance, ballot: 0, command, sequence: sequence, dependencies: dependencies, committed: false))
        // PreAccept goes to the rest of a fast quorum once the instance is durable.
        for member in self.members.filter({ $0 != self.id }).prefix(self.quorums.fastSize - 1) {
            self.output.messages.append(Envelope(
                to: member, message: .preAccept(instance, ballot: 0, command, sequence: sequence, dependencies: dependencies), afterSync: true))
        }
    }

    func snapshotIdentity(at position: UInt64) -> [UInt8] {
        var writer = WireWriter()
        for member in self.members {
            writer.varint(UInt64(member.rawValue))
            writer.varint(self.executed[member] ?? 0)
        }
        return writer.bytes
    }

}

/// PBFT (Castro and Liskov, OSDI 1999): 3f+1 replicas, a primary per view; every protocol
/// message carries its sender's authenticator (`ReplicaConfig.keys`); clients take a result
/// once f+1 replicas sent it (`MatchingRepliesSession`); a checkpoint is identified by its
/// sequence number and the state's digest (`Snapshot.identity`, set by the core when it builds
/// the snapshot from the state's bytes in `compact(through:state:)`).
struct PBFTSkeleton: SkeletonCore {
    enum Message: SkeletonCodable {
        case prePrepare(view: UInt64, sequence: UInt64, digest: UInt64, ClientRequest, Authenticator?)
        case prepare(view: UInt64, sequence: UInt64, digest: UInt64, Authenticator?)
        case commit(view: UInt64, sequence: UInt64, digest: UInt64, Authenticator?)
        case checkpoint(sequence: UInt64, stateDigest: [UInt8], Authenticator?)
        case viewChange(newView: UInt64, checkpoint: UInt64, prepared: [UInt64], Authenticator?)
        case newView(view: UInt64, viewChanges: [NodeID], Authenticator?)
    }
    enum Record: SkeletonCodable {
        case view(UInt64)
        case prePrepared(view: UInt64, sequence: UInt64, ClientRequest)
    }
    typealias Options = NoOptions
    typealias Monitor = NoMonitor<PBFTSkeleton>
    typealias Session = MatchingRepliesSession
    static var protocolName: String { "pbft-skeleton" }
    static var coordination: Coordination { .leader }

    let id: NodeID
    let members: [NodeID]
    let keys: KeyRing
    let quorums: ByzantineQuorums
    var view: UInt64 = 0
    var nextSequence: UInt64 = 1
    var output = Ready<Message, Record>()

    init(config: ReplicaConfig<Options>, restoring: Recovered<Record>, randomSeed: UInt64) {
        self.id = config.id
        self.members = config.members
        self.keys = config.keys
        self.quorums = try! ByzantineQuorums(memberCount: config.members.count)
    }

    var primary: NodeID { self.members[Int(self.view % UInt64(self.members.count))] }

    /// A stand-in for a signature (a keyed hash): enough to see where authenticators travel.
    func sign(_ words: [UInt64]) -> Authenticator {
        var hasher = StableHasher()
        hasher.combine(bytes: self.keys.signing ?? [])
        for word in words { hasher.combine(word) }
        return Authenticator(scheme: .ed25519, signer: UInt64(self.id.rawValue), bytes: (0..<8).map { UInt8(truncatingIfNeeded: hasher.value >> ($0 * 8)) })
    }

    mutating func propose(_ command: Command) { self.propose(command, authenticator: nil) }

    mutating func propose(_ command: Command, authenticator: Authenticator?) {
        guard self.id == self.primary else {
            self.output.rejected.append(Rejection(request: .proposal(command), reason: .notLeader(hint: self.primary)))
            return
        }
        let request = ClientRequest(kind: .write, command: command, authenticator: authenticator)
        let sequence = self.nextSequence
        self.nextSequence += 1
        var hasher = StableHasher()
        hasher.combine(bytes: command.payload)
        let digest = hasher.value
        self.output.records.append(.prePrepared(view: self.view, sequence: sequence, request))
        for member in self.members where member != self.id {
            let signed = self.sign([self.view, sequence, digest])
            self.output.messages.append(Envelope(
                to: member, message: .prePrepare(view: self.view, sequence: sequence, digest: digest, request, signed), afterSync: true))
        }
    }

    func authenticate(_ reply: ClientReply) -> Authenticator? { self.sign([reply.commandID.client, reply.commandID.sequence]) }

}

@Suite("EPaxos and PBFT skeletons run through the real driver")
struct ProtocolSkeletonTests {
    static let five = (1...5).map { NodeID(UInt16($0)) }
    static let four = (1...4).map { NodeID(UInt16($0)) }

    @Test("EPaxos: dependencies come from the state machine's footprints; PreAccept waits for the sync, to a fast quorum")
    func epaxos() throws {
        var driver = try NodeDriver<EPaxosSkeleton, KeyedMachine>(
            config: ReplicaConfig(id: NodeID(3), members: Self.five), recovered: .empty,
            clientBase: 1 << 20, randomSeed: 1, empty: KeyedMachine(), restore: { _ in throw ConfigurationError("none") })
        for (token, key) in [(1, "a"), (2, "b"), (3, "a")] { driver.submit(.write, payload: Array(key.utf8), token: UInt64(token)) }
        let actions = driver.drain()
        #expect(!actions.contains { if case .send = $0 { true } else { false } }, "nothing leaves before the instances are durable")
        driver.persisted()
        let preAccepts = driver.drain().compactMap { action -> (NodeID, InstanceID, [InstanceID])? in
            if case .send(let to, .replica(.preAccept(let instance, _, _, _, let dependencies))) = action { (to, instance, dependencies) } else { nil }
        }
        // n = 5: f = 2, fast quorum f + ⌊(f+1)/2⌋ = 3: the leader and two others.
        #expect(preAccepts.count == 3 * 2)
        let first = InstanceID(replica: NodeID(3), number: 1)
        let byInstance = Dictionary(preAccepts.map { ($0.1, $0.2) }, uniquingKeysWith: { a, _ in a })
        #expect(byInstance[first] == [])
        #expect(byInstance[InstanceID(replica: NodeID(3), number: 2)] == [], "b conflicts with nothing")
        #expect(byInstance[InstanceID(replica: NodeID(3), number: 3)] == [first], "the second a depends on the first, not on b")
        #expect(driver.core.snapshotIdentity(at: 0).count == 10, "a checkpoint names every replica's executed prefix")
    }

    @Test("PBFT: the gateway broadcasts and waits for f+1 (a backup's own redirect does not end it); the primary signs its PrePrepares")
    func pbft() throws {
        func driver(_ id: UInt16) throws -> NodeDriver<PBFTSkeleton, KeyedMachine> {
            try NodeDriver(
                config: ReplicaConfig(id: NodeID(id), members: Self.four, keys: KeyRing(signing: [UInt8(id)])), recovered: .empty,
                clientBase: UInt64(id) << 20, randomSeed: 1, empty: KeyedMachine(), restore: { _ in throw ConfigurationError("none") })
        }
        var backup = try driver(2)
        backup.submit(.write, payload: Array("k".utf8), token: 1)
        let actions = backup.drain()
        let requests = actions.compactMap { if case .send(let to, .request(let request)) = $0 { (to, request) } else { nil } }
        #expect(Set(requests.map(\.0)) == [NodeID(1), NodeID(3), NodeID(4)], "the session sends to every replica (itself locally)")
        #expect(backup.core.quorums.quorumSize == 3 && backup.core.quorums.replyQuorum == 2)
        #expect(!actions.contains { if case .complete = $0 { true } else { false } } && backup.requestsInFlight == 1,
                "the backup's own notLeader answer neither completes nor fails the request")

        var primary = try driver(1)
        primary.receive(.request(try #require(requests.first { $0.0 == NodeID(1) }?.1)), from: NodeID(2))
        _ = primary.drain()
        primary.persisted()
        let prePrepares = primary.drain().compactMap { action -> (NodeID, Authenticator?)? in
            if case .send(let to, .replica(.prePrepare(_, _, _, _, let signed))) = action { (to, signed) } else { nil }
        }
        #expect(prePrepares.map(\.0) == [NodeID(2), NodeID(3), NodeID(4)])
        #expect(prePrepares.allSatisfy { $0.1?.signer == 1 && $0.1?.bytes.count == 8 })
    }
}
