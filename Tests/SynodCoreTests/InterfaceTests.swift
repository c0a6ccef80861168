import SynodCore
import Testing

@Suite("The interface for leaderless and Byzantine protocols: footprints, authenticators, checkpoints, f+1 replies")
struct InterfaceTests {
    static let members = (1...4).map { NodeID(UInt16($0)) }
    static let request = ClientRequest(kind: .write, command: Command(client: 9, sequence: 1, payload: [1]))
    static var id: CommandID { Self.request.command.id }

    @Test("f+1 matching replies complete an operation; f faulty replicas cannot, nor one replica twice")
    func matchingReplies() {
        var session = MatchingRepliesSession(client: 9, members: Self.members, randomSeed: 1)
        #expect(session.needed == 2, "n = 4 tolerates f = 1: f + 1 = 2 replies")
        session.submit(Self.request)
        #expect(session.ready().sends.map(\.to) == Self.members, "a request goes to every replica")
        // A faulty replica's answer, repeated, never completes the operation.
        session.receive(.ok(Self.id, result: [66]), from: NodeID(4))
        session.receive(.ok(Self.id, result: [66]), from: NodeID(4))
        #expect(session.ready().completed == nil)
        // A correct replica disagrees with it: still one vote each.
        session.receive(.ok(Self.id, result: [7]), from: NodeID(1))
        #expect(session.ready().completed == nil)
        // Replies from strangers, for other commands, or "not the primary" count for nothing.
        session.receive(.ok(Self.id, result: [7]), from: NodeID(9))
        session.receive(.ok(CommandID(client: 9, sequence: 2), result: [7]), from: NodeID(2))
        session.receive(.notLeader(Self.id, hint: NodeID(3)), from: NodeID(2))
        #expect(session.ready().completed == nil)
        // A second correct replica agrees: done, with the correct result.
        session.receive(.ok(Self.id, result: [7]), from: NodeID(2))
        let completed = session.ready().completed
        #expect(completed?.id == Self.id && completed?.result == [7])
    }

    @Test("silence: the request is broadcast again after the retry interval")
    func matchingRepliesRetry() {
        var session = MatchingRepliesSession(client: 9, members: Self.members, randomSeed: 1)
        session.submit(Self.request)
        _ = session.ready()
        for _ in 1..<MatchingRepliesSession.retryTicks { session.tick() }
        #expect(session.ready().sends.isEmpty)
        session.tick()
        #expect(session.ready().sends.map(\.to) == Self.members)
    }

    @Test("footprints conflict when they share a key and one writes; everything conflicts with any write")
    func footprints() {
        let a = Footprint(spans: [.key(Array("a".utf8))], writes: true)
        let b = Footprint(spans: [.key(Array("b".utf8))], writes: true)
        let readA = Footprint(spans: [.key(Array("a".utf8))], writes: false)
        let range = Footprint(spans: [KeySpan(start: Array("a".utf8), end: Array("b".utf8))], writes: false)
        let tail = Footprint(spans: [KeySpan(start: Array("b".utf8), end: [])], writes: false)
        #expect(!a.conflicts(with: b))
        #expect(a.conflicts(with: readA) && readA.conflicts(with: a))
        #expect(!readA.conflicts(with: range), "two reads never conflict")
        #expect(range.conflicts(with: a) && !range.conflicts(with: b), "[a, b) holds a, not b")
        #expect(tail.conflicts(with: b) && !tail.conflicts(with: a), "[b, ∞) holds b, not a")
        #expect(Footprint.everything.conflicts(with: b) && Footprint.everything.conflicts(with: readA))
        #expect(!Footprint(spans: nil, writes: false).conflicts(with: readA))
        #expect(KeySpan(start: [0x01, 0xFF], end: nil).description == "0x01ff")
    }

    @Test("authenticators round-trip; unknown schemes and oversized tags are refused")
    func authenticators() throws {
        let authenticator = Authenticator(scheme: .ed25519, signer: 3, bytes: Array(repeating: 7, count: 64))
        #expect(try Authenticator.decode(authenticator.encoded()) == authenticator)
        var unknown = authenticator.encoded()
        unknown[0] = 9
        #expect(throws: WireError.self) { try Authenticator.decode(unknown) }
        let huge = Authenticator(scheme: .hmacSHA256, signer: 1, bytes: Array(repeating: 0, count: Authenticator.maximumBytes + 1))
        #expect(throws: WireError.self) { try Authenticator.decode(huge.encoded()) }
        #expect(!"\(KeyRing(signing: [1, 2, 3], verifying: [NodeID(1): [4]]))".contains("1, 2, 3"), "a key ring never prints its secret")
    }

    @Test("a key ring naming a non-member is a configuration error")
    func keyRingMembers() {
        struct Options: ReplicaOptions {
            init() {}
            func validate() throws {}
        }
        let config = ReplicaConfig<Options>(id: NodeID(1), members: [NodeID(1), NodeID(2)], keys: KeyRing(verifying: [NodeID(5): [1]]))
        #expect(throws: ConfigurationError.self) { try config.validate() }
    }

    @Test("a checkpoint's protocol identity round-trips; snapshots written before identities still decode")
    func snapshotIdentity() throws {
        let snapshot = Snapshot(position: 40, tag: 3, data: [1, 2, 3], identity: Array(repeating: 0xD1, count: 32))
        #expect(try Snapshot.decode(snapshot.encoded()) == snapshot)
        // The encoding before identities: position, tag, data, and nothing after.
        var old = WireWriter()
        old.varint(40)
        old.varint(3)
        old.data([1, 2, 3])
        #expect(try Snapshot.decode(old.bytes) == Snapshot(position: 40, tag: 3, data: [1, 2, 3]))
    }
}
