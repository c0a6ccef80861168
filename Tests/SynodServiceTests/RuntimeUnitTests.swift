import Foundation
@testable import SynodRuntime
import SynodCore
import SynodKV
import SynodRaft
import Testing

@Suite("Runtime codecs and the HTTP API's request parsing")
struct RuntimeUnitTests {
    typealias Frame = PeerFrame<RaftMessage>

    static let frames: [Frame] = [
        .hello(PeerHello(node: NodeID(3), cluster: ClusterIdentity(
            clusterID: 0xFEED, protocolName: "raft",
            members: [NodeID(1): PeerAddress(host: "10.0.0.1", port: 7001), NodeID(3): PeerAddress(host: "node3.example", port: 7003)]))),
        .ping,
        .message(.voteResponse(VoteResponse(term: Term(4), granted: true))),
        .request(ClientRequest(kind: .write, command: Command(client: 77, sequence: 2, payload: [1, 2, 3]))),
        .request(ClientRequest(kind: .read, command: Command(client: 1 << 50, sequence: 9, payload: [4, 5]))),
        .request(ClientRequest(
            kind: .write, command: Command(client: 78, sequence: 1, payload: [7]),
            authenticator: Authenticator(scheme: .ed25519, signer: 2, bytes: Array(repeating: 0xAB, count: 64)))),
        .reply(.ok(CommandID(client: 77, sequence: 2), result: [6]), authenticator: nil),
        .reply(.ok(CommandID(client: 77, sequence: 2), result: [6]), authenticator: Authenticator(scheme: .hmacSHA256, signer: 3, bytes: [1, 2])),
        .reply(.notLeader(CommandID(client: 77, sequence: 2), hint: NodeID(2)), authenticator: nil),
        .reply(.notLeader(CommandID(client: 77, sequence: 2), hint: nil), authenticator: nil),
        .reply(.overloaded(CommandID(client: 77, sequence: 3)), authenticator: nil),
        .reply(.refused(CommandID(client: 77, sequence: 3), reason: "too large"), authenticator: nil),
        .statusRequest(id: 5),
        .statusReply(id: 5, NodeStatus(id: 2, role: "leader", leader: 2, epoch: 7, commitPosition: 41, appliedPosition: 40, revision: 12,
                                       framesSent: 100, framesDropped: 1)),
    ]

    @Test("peer frames round-trip, and random or mutated frames decode or are refused, never trap")
    func peerFrames() {
        let encoded = Self.frames.map { $0.encoded() }
        for (frame, bytes) in zip(Self.frames, encoded) {
            #expect((try? Frame.decode(bytes))?.encoded() == bytes, "\(frame)")
        }
        var random = DeterministicRandom(seed: 5)
        var decoded = 0
        for round in 0..<20_000 {
            var bytes = encoded[random.integer(in: 0..<encoded.count)]
            if round % 2 == 0 {
                bytes = (0..<random.integer(in: 0..<48)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                for _ in 0..<random.integer(in: 1...3) where !bytes.isEmpty {
                    bytes[random.integer(in: 0..<bytes.count)] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            if (try? Frame.decode(bytes)) != nil { decoded += 1 }
        }
        #expect(decoded > 100)
    }

    @Test("etcd-shaped JSON becomes the store's requests; bad fields are refused with a reason")
    func requestParsing() throws {
        typealias API = ClientAPI<RaftReplica>
        let key = Data("foo".utf8).base64EncodedString()
        let value = Data("bar".utf8).base64EncodedString()
        #expect(try API.request(.put, ["key": key, "value": value]).0 == .put(key: Array("foo".utf8), value: Array("bar".utf8), previous: false))
        let (range, serializable) = try API.request(.range, ["key": key, "range_end": value, "limit": "10", "serializable": true])
        #expect(range == .range(KeyRange(key: Array("foo".utf8), end: Array("bar".utf8)), limit: 10) && serializable)
        let txn = try API.request(.txn, [
            "compare": [["key": key, "target": "VERSION", "result": "EQUAL", "version": "0"]],
            "success": [["request_put": ["key": key, "value": value]]],
            "failure": [["request_range": ["key": key]]],
        ]).0
        #expect(txn == .transaction(
            compare: [Comparison(key: Array("foo".utf8), target: .version, relation: .equal, number: 0)],
            success: [.put(key: Array("foo".utf8), value: Array("bar".utf8), previous: false)],
            failure: [.range(KeyRange(key: Array("foo".utf8)), limit: 0)]))
        // Numbers as parsed JSON numbers, 0 and 1 included (on Linux NSNumber(1) passes `is
        // Bool`: a limit of 1 was refused); JSON booleans are still not numbers.
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(#"{"a": 1, "b": 0, "c": 7, "d": true}"#.utf8)) as? [String: Any])
        #expect(try API.number(parsed, "a") == 1 && API.number(parsed, "b") == 0 && API.number(parsed, "c") == 7)
        #expect(throws: API.BadRequest.self) { try API.number(parsed, "d") }
        for bad: [String: Any] in [
            [:], ["key": "%%%"], ["key": key, "value": 5], ["key": key, "prev_kv": "yes"],
        ] {
            #expect(throws: API.BadRequest.self) { try API.request(.put, bad) }
        }
        #expect(throws: API.BadRequest.self) { try API.request(.range, ["key": key, "limit": "-1"]) }
        #expect(throws: API.BadRequest.self) { try API.request(.range, ["key": key, "limit": 1.5]) }
        #expect(throws: API.BadRequest.self) { try API.request(.txn, ["compare": [["key": key, "target": "COLOUR"]]]) }
        #expect(throws: API.BadRequest.self) { try API.request(.txn, ["success": [["request_nothing": [:]]]]) }
        // etcd's enums: absent means VERSION and EQUAL; numbers are accepted.
        let defaults = try API.request(.txn, ["compare": [["key": key]]]).0
        #expect(defaults == .transaction(
            compare: [Comparison(key: Array("foo".utf8), target: .version, relation: .equal, number: 0)], success: [], failure: []))
        let numeric = try API.request(.txn, ["compare": [["key": key, "target": 3, "result": 3, "value": value]]]).0
        #expect(numeric == .transaction(
            compare: [Comparison(key: Array("foo".utf8), target: .value, relation: .notEqual, value: Array("bar".utf8))],
            success: [], failure: []))
        // etcd's rule, checked before a round of consensus is spent on it.
        #expect(throws: API.BadRequest.self) {
            try API.request(.txn, ["success": [["request_put": ["key": key]], ["request_put": ["key": key]]]])
        }
        // What Synod does not implement is refused, unless it carries its zero value.
        #expect(throws: API.BadRequest.self) { try API.request(.range, ["key": key, "revision": "3"]) }
        #expect(throws: API.BadRequest.self) { try API.request(.put, ["key": key, "lease": "7"]) }
        #expect(try API.request(.range, ["key": key, "revision": "0", "count_only": false]).0
            == .range(KeyRange(key: Array("foo".utf8)), limit: 0))
    }

    @Test("a body's shape is bounded before parsing: list lengths and nesting; strings cannot hide brackets or commas")
    func requestShape() {
        func check(_ text: String) -> RequestShape.Problem? {
            Array(text.utf8).withUnsafeBytes { RequestShape.check($0, maximumDepth: 4, maximumArrayElements: 3) }
        }
        #expect(check(#"{"success":[1,2,3]}"#) == nil)
        #expect(check(#"{"success":[1,2,3,4]}"#) == .tooManyElements(limit: 3))
        #expect(check(#"{"success":[]}"#) == nil)
        #expect(check(#"{"a":[{"b":[1]}]}"#) == nil)
        #expect(check(#"{"a":[{"b":[[1]]}]}"#) == .tooDeep(limit: 4))
        #expect(check(#"{"s":"[[[[[,,,,,\"]]]]","t":[1,2]}"#) == nil, "brackets, commas and escaped quotes inside a string")
        #expect(check(#"{"a":[[1,2,3],[4,5,6],[7,8,9]]}"#) == nil, "each list counted on its own")
        #expect(check("not json at all ,,,, ]]]") == nil, "malformed input is the parser's to refuse")
        // Values and keys in the whole body: lists within the limit nested, or a wide object.
        func values(_ text: String) -> RequestShape.Problem? {
            Array(text.utf8).withUnsafeBytes { RequestShape.check($0, maximumDepth: 8, maximumArrayElements: 128, maximumValues: 10) }
        }
        #expect(values(#"{"a":1,"b":[true,false,null],"c":"x"}"#) == nil, "9 values and keys")
        #expect(values(#"{"a":1,"b":[true,false,null],"c":"x","d":-12.5e3}"#) == .tooManyValues(limit: 10))
        #expect(values(#"[[1,2,3],[4,5,6],[7,8,9]]"#) == .tooManyValues(limit: 10), "1 + 3 + 9 values")
        #expect(values(#"{"k1":0,"k2":0,"k3":0,"k4":0,"k5":0,"k6":0}"#) == .tooManyValues(limit: 10), "object members count")
        // An etcd transaction of three full lists stays far within the client API's bound.
        let operation = #"{"request_put":{"key":"a2V5","value":"dg==","prev_kv":false}}"#
        let compare = #"{"key":"a2V5","target":"VERSION","result":"EQUAL","version":"0"}"#
        let list = { (item: String) in "[" + Array(repeating: item, count: 128).joined(separator: ",") + "]" }
        let full = #"{"compare":"# + list(compare) + #","success":"# + list(operation) + #","failure":"# + list(operation) + "}"
        #expect(Array(full.utf8).withUnsafeBytes {
            RequestShape.check($0, maximumDepth: RequestShape.clientAPI.maximumDepth, maximumArrayElements: 128,
                               maximumValues: RequestShape.clientAPI.maximumValues)
        } == nil)
    }

    @Test("the JSON writer escapes strings and sorts keys")
    func jsonWriter() throws {
        let original = "a\"b\\c\n\u{1}"
        let value = JSONValue.object([("b", .string(original)), ("a", .array([.integer(-3), .bool(true)]))])
        let text = String(decoding: value.bytes, as: UTF8.self)
        #expect(text == #"{"a":[-3,true],"b":"a\"b\\c\n\u0001"}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(value.bytes)) as? [String: Any]
        #expect(parsed?["b"] as? String == original)
    }
}
