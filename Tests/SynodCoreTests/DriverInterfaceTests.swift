import SynodCore
import SynodDriver
import Testing

/// A toy leader-based core whose members authenticate requests and replies with a keyed hash
/// (a stand-in for a MAC: the driver's plumbing is under test, not the cryptography). Node 2
/// always leads and commits what it is given at once; node 1 redirects to it. It remembers
/// what the driver handed it: the authenticator of each proposal, the footprint function, the
/// last read.
struct SigningReplica: Replica {
    typealias Message = LocalLogReplica.Message
    typealias Options = LocalLogReplica.Options
    typealias Session = LeaderFollowingSession
    typealias Monitor = NoMonitor<SigningReplica>
    static var protocolName: String { "signing" }
    static var coordination: Coordination { .leader }
    static let leader = NodeID(2)

    let id: NodeID
    let keys: KeyRing
    let footprint: @Sendable ([UInt8]) -> Footprint
    var position: UInt64 = 0
    var proposals: [(Command, Authenticator?)] = []
    var lastRead: ReadRequest?
    var output = Ready<Message, Command>()

    init(config: ReplicaConfig<Options>, restoring: Recovered<Command>, randomSeed: UInt64) {
        self.id = config.id
        self.keys = config.keys
        self.footprint = config.footprint
        self.output.events = [self.id == Self.leader ? .becameLeader(epoch: 1) : .becameFollower(epoch: 1, leader: Self.leader)]
    }

    static func tag(_ key: [UInt8]?, _ content: [UInt64]) -> [UInt8] {
        var hasher = StableHasher()
        hasher.combine(bytes: key ?? [])
        for word in content { hasher.combine(word) }
        return (0..<8).map { UInt8(truncatingIfNeeded: hasher.value >> ($0 * 8)) }
    }

    static func content(_ reply: ClientReply) -> [UInt64] {
        var words = [reply.commandID.client, reply.commandID.sequence]
        if case .ok(_, let result) = reply { words += result.map(UInt64.init) }
        return words
    }

    func authenticate(_ request: ClientRequest) -> Authenticator? {
        Authenticator(scheme: .hmacSHA256, signer: UInt64(self.id.rawValue),
                      bytes: Self.tag(self.keys.signing, [request.command.client, request.command.sequence]))
    }

    func authenticate(_ reply: ClientReply) -> Authenticator? {
        Authenticator(scheme: .hmacSHA256, signer: UInt64(self.id.rawValue), bytes: Self.tag(self.keys.signing, Self.content(reply)))
    }

    func verify(_ reply: ClientReply, from sender: NodeID, authenticator: Authenticator?) -> Bool {
        guard let authenticator, authenticator.signer == UInt64(sender.rawValue), let key = self.keys.verifying[sender] else { return false }
        return authenticator.bytes == Self.tag(key, Self.content(reply))
    }

    mutating func tick() {}
    mutating func receive(_ message: Message, from sender: NodeID) {}
    mutating func propose(_ command: Command) { self.propose(command, authenticator: nil) }
    mutating func propose(_ command: Command, authenticator: Authenticator?) {
        self.proposals.append((command, authenticator))
        guard self.id == Self.leader else {
            self.output.rejected.append(Rejection(request: .proposal(command), reason: .notLeader(hint: Self.leader)))
            return
        }
        self.position += 1
        self.output.committed.append(Committed(position: self.position, command: command))
    }
    mutating func read(_ request: ReadRequest) {
        self.lastRead = request
        self.output.reads.append(request)
    }
    mutating func ready() -> Ready<Message, Command> {
        defer { self.output = Ready() }
        return self.output
    }
    var committedThrough: UInt64 { self.position }
}

/// A register per key, where a payload is a key and the reply the number of writes to it: its
/// footprint is that one key.
struct KeyedMachine: StateMachine {
    var writes: [[UInt8]: UInt8] = [:]
    mutating func apply(_ payload: [UInt8]) -> [UInt8] {
        self.writes[payload, default: 0] += 1
        return [self.writes[payload]!]
    }
    func query(_ payload: [UInt8]) -> [UInt8] { [self.writes[payload] ?? 0] }
    static func footprint(of payload: [UInt8]) -> Footprint { Footprint(spans: [.key(payload)], writes: true) }
}

@Suite("The driver carries what leaderless and Byzantine cores need: footprints and authenticators")
struct DriverInterfaceTests {
    typealias Driver = NodeDriver<SigningReplica, KeyedMachine>
    static let secrets: [NodeID: [UInt8]] = [NodeID(1): [1, 1, 1], NodeID(2): [2, 2, 2]]

    static func driver(_ id: UInt16) throws -> Driver {
        let keys = KeyRing(signing: Self.secrets[NodeID(id)], verifying: Self.secrets)
        return try Driver(
            config: ReplicaConfig(id: NodeID(id), members: [NodeID(1), NodeID(2)], keys: keys), recovered: .empty,
            clientBase: UInt64(id) << 20, randomSeed: 5, empty: KeyedMachine(),
            restore: { _ in throw ConfigurationError("no snapshots here") })
    }

    static func sends(_ actions: [Driver.Action], to node: NodeID) -> [PeerMessage<SigningReplica.Message>] {
        actions.compactMap { if case .send(let to, let message) = $0, to == node { message } else { nil } }
    }

    @Test("requests leave signed by the gateway; the core gets the authenticator; a forged reply is dropped, a signed one believed")
    func authenticatedRoundTrip() throws {
        var gateway = try Self.driver(1)
        var leader = try Self.driver(2)
        _ = leader.drain()
        gateway.submit(.write, payload: Array("k".utf8), token: 1)
        let requests = Self.sends(gateway.drain(), to: NodeID(2)).compactMap { if case .request(let request) = $0 { request } else { nil } }
        let request = try #require(requests.last)
        #expect(request.authenticator?.signer == 1, "the gateway's core signed the request it sends")

        leader.receive(.request(request), from: NodeID(1))
        let replies = Self.sends(leader.drain(), to: NodeID(1)).compactMap { message -> (ClientReply, Authenticator?)? in
            if case .reply(let reply, let authenticator) = message { (reply, authenticator) } else { nil }
        }
        let (reply, authenticator) = try #require(replies.first)
        #expect(reply == .ok(request.command.id, result: [1]))
        #expect(leader.core.proposals.last?.1 == request.authenticator, "the core saw the request's authenticator")

        func completions(_ actions: [Driver.Action]) -> [Result<[UInt8], RequestFailure>] {
            actions.compactMap { if case .complete(1, _, let result) = $0 { result } else { nil } }
        }
        // Forgeries: a different result under the real tag, no authenticator, another's signer.
        gateway.receive(.reply(.ok(request.command.id, result: [99]), authenticator: authenticator), from: NodeID(2))
        gateway.receive(.reply(.ok(request.command.id, result: [99]), authenticator: nil), from: NodeID(2))
        let stolen = Authenticator(scheme: .hmacSHA256, signer: 1, bytes: SigningReplica.tag([1, 1, 1], SigningReplica.content(reply)))
        gateway.receive(.reply(reply, authenticator: stolen), from: NodeID(2))
        #expect(completions(gateway.drain()).isEmpty, "no forged reply reached the session")
        gateway.receive(.reply(reply, authenticator: authenticator), from: NodeID(2))
        let done = completions(gateway.drain())
        #expect(done.count == 1 && (try? done[0].get()) == [1])
    }

    @Test("the core sees the state machine's footprints: for any payload, and on every read")
    func footprintsReachTheCore() throws {
        var leader = try Self.driver(2)
        #expect(leader.core.footprint(Array("x".utf8)) == Footprint(spans: [.key(Array("x".utf8))], writes: true))
        leader.submit(.read, payload: Array("y".utf8), token: 7)
        _ = leader.drain()
        #expect(leader.core.lastRead?.footprint == KeyedMachine.footprint(of: Array("y".utf8)))
    }
}
