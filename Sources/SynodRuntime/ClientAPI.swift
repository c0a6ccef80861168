import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import SynodCore
import SynodKV

/// The client API in the shape of etcd's v3 JSON gateway, so the same curl lines, load
/// scripts and gateway clients work against Synod and etcd: base64 keys and values, 64-bit
/// numbers as JSON strings, a `header` with the revision and the protocol's epoch as
/// `raft_term`. Errors are JSON too: `{"error", "code", "message"}` with an HTTP status.
public struct ClientAPI<R: Replica>: Sendable {
    let node: ReplicaNode<R, KeyValueStore>
    let limits: KVLimits

    let clusterID: String

    public init(node: ReplicaNode<R, KeyValueStore>) {
        self.node = node
        self.limits = node.configuration.limits
        self.clusterID = "\(node.cluster.clusterID)"
    }

    /// A router with every endpoint.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        let api = self
        let bodyLimit = self.bodyLimit
        for (path, operation) in [("/v3/kv/put", Operation.put), ("/v3/kv/range", .range),
                                  ("/v3/kv/deleterange", .deleteRange), ("/v3/kv/txn", .txn)] {
            router.post(RouterPath(path)) { request, _ -> Response in
                var request = request
                let body: ByteBuffer
                do {
                    body = try await request.collectBody(upTo: bodyLimit)
                } catch {
                    return api.error(.contentTooLarge, "request body exceeds \(bodyLimit) bytes")
                }
                return try await api.answer(operation, body: body, on: api.node.loop).get().response
            }
        }
        router.post("/v3/maintenance/transfer-leadership") { request, _ -> Response in
            var request = request
            guard let body = try? await request.collectBody(upTo: 4096) else {
                return api.error(.contentTooLarge, "request body exceeds 4096 bytes")
            }
            return await api.transferLeadership(body: Data(buffer: body))
        }
        for (path, change) in [("/v3/cluster/member/add", MemberChange.add), ("/v3/cluster/member/remove", .remove),
                               ("/v3/cluster/member/promote", .promote)] {
            router.post(RouterPath(path)) { request, _ -> Response in
                var request = request
                guard let body = try? await request.collectBody(upTo: 4096) else {
                    return api.error(.contentTooLarge, "request body exceeds 4096 bytes")
                }
                return await api.changeMembers(change, body: Data(buffer: body))
            }
        }
        let list: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in await api.listMembers() }
        router.post("/v3/cluster/member/list", use: list)
        router.get("/v3/cluster/member/list", use: list)
        NodeEndpoints(node: self.node).add(to: router)
        return router
    }

    /// The KV routes, answered by the connection's handler on the node's loop
    /// (`ClientChannel`), and the largest body they read.
    public func fastRoutes() -> (routes: ClientChannel.FastRoutes, bodyLimit: Int) {
        let api = self
        let routes: ClientChannel.FastRoutes = { head, body, loop in
            let uri = head.uri
            guard head.method == .POST, let operation = Self.operation(path: uri.firstIndex(of: "?").map { uri[..<$0] } ?? uri[...])
            else { return nil }
            return api.answer(operation, body: body, on: loop)
        }
        return (routes, self.bodyLimit)
    }

    enum Operation: Sendable {
        case put, range, deleteRange, txn
    }

    struct BadRequest: Error {
        var message: String
        var status: HTTPResponse.Status = .badRequest
    }

    /// A JSON body of etcd's v3 API as the state machine's request, its encoding (what the node
    /// orders or reads with) and whether a range may be served locally; refused as the state
    /// machine would refuse it, before it costs a round of consensus. The body goes through
    /// `flatRequest` first (no Foundation, for the flat objects nearly every client sends), and
    /// through `JSONSerialization` when that gives up.
    static func decode(_ operation: Operation, body: UnsafeRawBufferPointer, limits: KVLimits) throws -> (KVRequest, [UInt8], Bool) {
        let request: KVRequest
        let serializable: Bool
        if let flat = Self.flatRequest(operation, body) {
            (request, serializable) = flat
        } else {
            (request, serializable) = try Self.generalRequest(operation, body: Data(body))
        }
        let encoded: [UInt8]
        do {
            encoded = try request.encoded(limits: limits)
        } catch {
            if case .tooLarge(let reason) = error { throw BadRequest(message: reason, status: .contentTooLarge) }
            throw BadRequest(message: error.description)
        }
        return (request, encoded, serializable)
    }

    /// The general path: any JSON `JSONSerialization` reads, with a precise error for every
    /// body it refuses.
    static func generalRequest(_ operation: Operation, body: Data) throws -> (KVRequest, Bool) {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw BadRequest(message: "the body is not a JSON object")
        }
        return try Self.request(operation, object)
    }

    /// The HTTP API's codec without the network, for the benchmarks: a put's JSON body to the
    /// bytes the node orders, and the state machine's reply to the JSON answer.
    public static func benchmarkPut(body: Data, limits: KVLimits = KVLimits()) throws -> [UInt8] {
        try body.withUnsafeBytes { try Self.decode(.put, body: $0, limits: limits).1 }
    }

    /// A range's JSON body to the bytes the node reads with.
    public static func benchmarkRange(body: Data, limits: KVLimits = KVLimits()) throws -> [UInt8] {
        try body.withUnsafeBytes { try Self.decode(.range, body: $0, limits: limits).1 }
    }

    /// The state machine's reply to the JSON answer the client gets.
    public static func benchmarkAnswer(reply: [UInt8], epoch: UInt64) throws -> [UInt8] {
        let response = try KVResponse.decode(reply)
        return Self.answer(response, header: AnswerHeader(clusterID: "1", member: 1, epoch: epoch, revision: response.revision))
    }

    /// The largest request body the KV routes read: base64 grows payloads by a third, JSON
    /// adds a little.
    var bodyLimit: Int { self.limits.maximumRequestBytes * 3 / 2 + 4096 }

    /// The KV route for a request path, if it is one.
    static func operation(path: Substring) -> Operation? {
        switch path {
        case "/v3/kv/put": .put
        case "/v3/kv/range": .range
        case "/v3/kv/deleterange": .deleteRange
        case "/v3/kv/txn": .txn
        default: nil
        }
    }

    /// A KV request's answer, on `loop` (the connection's): the body's shape is checked before it is
    /// parsed, and the request is refused as the state machine would refuse it before it costs
    /// a round of consensus. The future never fails: errors are JSON answers too.
    func answer(_ operation: Operation, body: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<APIReply> {
        let problem = body.withUnsafeReadableBytes {
            RequestShape.check(
                $0, maximumDepth: RequestShape.clientAPI.maximumDepth, maximumArrayElements: self.limits.maximumTransactionOperations,
                maximumValues: RequestShape.clientAPI.maximumValues)
        }
        if let problem {
            if case .tooDeep = problem { return loop.makeSucceededFuture(.error(.badRequest, problem.description)) }
            return loop.makeSucceededFuture(.error(.contentTooLarge, problem.description))
        }
        let request: KVRequest
        let encoded: [UInt8]
        let serializable: Bool
        do {
            (request, encoded, serializable) = try body.withUnsafeReadableBytes {
                try Self.decode(operation, body: $0, limits: self.limits)
            }
        } catch let error as BadRequest {
            return loop.makeSucceededFuture(.error(error.status, error.message))
        } catch {
            return loop.makeSucceededFuture(.error(.badRequest, "\(error)"))
        }
        let reply: EventLoopFuture<[UInt8]>
        if case .range = request {
            reply = self.node.readFuture(encoded, serializable: serializable)
        } else {
            reply = self.node.writeFuture(encoded)
        }
        // One promise and one callback per request (not a `flatMapThrowing` and a `recover`).
        let answered = loop.makePromise(of: APIReply.self)
        reply.hop(to: loop).whenComplete { result in answered.succeed(self.reply(result)) }
        return answered.futureResult
    }

    /// The JSON answer to the state machine's reply, or to the node's error.
    func reply(_ result: Result<[UInt8], any Error>) -> APIReply {
        switch result {
        case .success(let bytes):
            do {
                let response = try KVResponse.decode(bytes)
                return APIReply(status: .ok, body: Self.answer(response, header: self.answerHeader(epoch: self.node.currentEpoch, revision: response.revision)))
            } catch {
                return .error(.internalServerError, "\(error)")
            }
        case .failure(let error as RequestError):
            switch error {
            case .timeout: return .error(.gatewayTimeout, error.description)
            case .unavailable, .refused: return .error(.serviceUnavailable, error.description)
            }
        case .failure(let error):
            return .error(.internalServerError, "\(error)")
        }
    }

    /// etcd's MoveLeader (`{"targetID": "2"}`), sent to the leader: answers once the target
    /// leads, with the header of its new term.
    func transferLeadership(body: Data) async -> Response {
        let target: NodeID
        do {
            guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
                throw BadRequest(message: "the body is not a JSON object, e.g. {\"targetID\": \"2\"}")
            }
            guard object["targetID"] != nil else { throw BadRequest(message: "targetID is required, e.g. {\"targetID\": \"2\"}") }
            let number = try Self.number(object, "targetID")
            guard number > 0, number <= Int64(UInt16.max) else { throw BadRequest(message: "targetID must name a member, got \(number)") }
            target = NodeID(UInt16(number))
            let members = try await self.node.membership().members
            guard members[target] != nil else {
                let names = members.keys.sorted().map { "\($0.rawValue)" }.joined(separator: ", ")
                throw BadRequest(message: "targetID \(number) is not a member; members: \(names)")
            }
        } catch let error as BadRequest {
            return self.error(error.status, error.message)
        } catch {
            return self.error(.badRequest, "\(error)")
        }
        do {
            try await self.node.transferLeadership(to: target, timeout: .milliseconds(self.node.configuration.requestTimeoutMilliseconds))
            let status = try await self.node.status()
            return self.json(.ok, .object([("header", self.header(epoch: status.epoch, revision: status.revision ?? 0))]))
        } catch let error as TransferError {
            switch error {
            case .unsupported: return self.error(.notImplemented, error.description)
            case .refused: return self.error(.conflict, error.description)
            case .timeout: return self.error(.gatewayTimeout, error.description)
            }
        } catch {
            return self.error(.internalServerError, "\(error)")
        }
    }

    // MARK: Membership (etcd's Cluster service)

    enum MemberChange: Sendable {
        case add, remove, promote
    }

    /// etcd's MemberList, with Synod's additions a joining node needs: the protocol and the
    /// first configuration (`initialCluster`, as `--peers` gave it).
    func listMembers() async -> Response {
        do {
            let (membership, members) = try await self.node.membership()
            let status = try await self.node.status()
            return self.json(.ok, .object([
                ("header", self.header(epoch: status.epoch, revision: status.revision ?? 0)),
                ("members", self.json(members: members, membership: membership)),
                ("protocol", .string(R.protocolName)),
                ("initialCluster", .string(self.node.cluster.membersDescription)),
                ("joint", .bool(membership?.isJoint ?? false)),
            ]))
        } catch {
            return self.error(.serviceUnavailable, "\(error)")
        }
    }

    /// The members of `membership` (every member of `members` for a fixed membership): a
    /// node that was removed lists the configuration without itself.
    func json(members: [NodeID: PeerAddress], membership: Membership?) -> JSONValue {
        let ids = membership?.everyone ?? members.keys.sorted()
        return .array(ids.map { self.json(member: $0, address: members[$0], membership: membership) })
    }

    func json(member: NodeID, address: PeerAddress?, membership: Membership?) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("ID", .string("\(member.rawValue)")), ("name", .string("node-\(member.rawValue)")),
            ("peerURLs", .array(address.map { [.string("\($0)")] } ?? [])),
        ]
        if membership?.learners.contains(member) == true { fields.append(("isLearner", .bool(true))) }
        return .object(fields)
    }

    /// etcd's MemberAdd (`{"peerURLs": ["HOST:PORT"], "isLearner": true}`, and Synod's `ID`:
    /// the member's id, which its certificate names; the lowest free one when left out),
    /// MemberRemove and MemberPromote (`{"ID": "4"}`), sent to the leader. Answers once the
    /// change is committed (a change of voters: once its joint step is left too).
    func changeMembers(_ kind: MemberChange, body: Data) async -> Response {
        let id: NodeID?
        var parsedAddress: PeerAddress?
        var learner = false
        do {
            guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
                throw BadRequest(message: "the body is not a JSON object, e.g. " + (kind == .add
                    ? "{\"peerURLs\": [\"127.0.0.1:7004\"], \"isLearner\": true}" : "{\"ID\": \"4\"}"))
            }
            if object["ID"] != nil {
                let number = try Self.number(object, "ID")
                guard number > 0, number <= Int64(UInt16.max) else { throw BadRequest(message: "ID must lie in 1...65535, got \(number)") }
                id = NodeID(UInt16(number))
            } else {
                guard kind == .add else { throw BadRequest(message: "ID is required, e.g. {\"ID\": \"4\"}") }
                id = nil
            }
            if kind == .add {
                guard let urls = object["peerURLs"] as? [String], urls.count == 1 else {
                    throw BadRequest(message: "peerURLs must hold the new member's one peer address, e.g. [\"127.0.0.1:7004\"]")
                }
                guard let parsed = PeerAddress(urls[0]) else { throw BadRequest(message: "peerURLs entry '\(urls[0])' is not HOST:PORT") }
                parsedAddress = parsed
                learner = try Self.flag(object, "isLearner")
            }
        } catch let error as BadRequest {
            return self.error(error.status, error.message)
        } catch {
            return self.error(.badRequest, "\(error)")
        }
        let added = AddedMember(id)
        let node = self.node
        let (address, isLearner) = (parsedAddress, learner)
        do {
            let membership = try await node.changeMembership(timeout: .milliseconds(node.configuration.requestTimeoutMilliseconds)) {
                current throws(MembershipError) in
                let everyone = current.everyone
                var voters = current.voters
                var learners = current.learners
                switch kind {
                case .add:
                    let member = id ?? NodeID(UInt16((1...Int(UInt16.max)).first { !everyone.contains(NodeID(UInt16($0))) }!))
                    guard !everyone.contains(member) else { throw .invalid("\(member) is already a member") }
                    if let (other, _) = current.addresses.first(where: { PeerAddress($0.value) == address })
                        ?? node.configuration.peers.first(where: { everyone.contains($0.key) && $0.value == address }).map({ ($0.key, "") }) {
                        throw .invalid("\(other) already listens on \(address!)")
                    }
                    added.value = member
                    if isLearner { learners.append(member) } else { voters.append(member) }
                    return (voters, learners, [member: "\(address!)"])
                case .remove:
                    guard let member = id, everyone.contains(member) else { throw .invalid("\(id!) is not a member") }
                    return (voters.filter { $0 != member }, learners.filter { $0 != member }, [:])
                case .promote:
                    guard let member = id, learners.contains(member) else {
                        throw .invalid("\(id!) is not a learner" + (voters.contains(id!) ? " (it votes already)" : ""))
                    }
                    return (voters + [member], learners.filter { $0 != member }, [:])
                }
            }
            let status = try? await node.status()
            let members = try await node.membership().members
            var fields: [(String, JSONValue)] = [("header", self.header(epoch: status?.epoch ?? 0, revision: status?.revision ?? 0))]
            if kind == .add, let member = added.value {
                fields.append(("member", self.json(member: member, address: address, membership: membership)))
            }
            fields.append(("members", self.json(members: members, membership: membership)))
            return self.json(.ok, .object(fields))
        } catch let error as MembershipError {
            switch error {
            case .unsupported: return self.error(.notImplemented, "\(R.protocolName) has a fixed membership")
            case .notLeader: return self.error(.conflict, error.description + "; send membership changes to the leader")
            case .busy, .unavailable: return self.error(.serviceUnavailable, error.description)
            case .invalid: return self.error(.badRequest, error.description)
            case .timeout: return self.error(.gatewayTimeout, error.description)
            }
        } catch {
            return self.error(.serviceUnavailable, "\(error)")
        }
    }

    // MARK: JSON to requests

    /// Refuses the fields Synod does not implement (`FlatRequest.unsupportedFields`) unless they
    /// carry their zero value.
    static func refuseUnsupported(_ object: [String: Any]) throws {
        for field in FlatRequest.unsupportedFields {
            guard let value = object[field] else { continue }
            let isZero = (value as? String).map { $0 == "0" || $0.isEmpty || $0 == "NONE" || $0 == "KEY" }
                ?? (value as? Bool).map { !$0 } ?? (value as? NSNumber).map { $0.intValue == 0 } ?? false
            guard isZero else { throw BadRequest(message: "\"\(field)\" is not supported by Synod") }
        }
    }

    static func request(_ operation: Operation, _ object: [String: Any]) throws -> (KVRequest, Bool) {
        try self.refuseUnsupported(object)
        switch operation {
        case .put: return (try self.put(object), false)
        case .range: return (try self.range(object), (object["serializable"] as? Bool) ?? false)
        case .deleteRange: return (try self.deleteRange(object), false)
        case .txn: return (try self.txn(object), false)
        }
    }

    static func bytes(_ object: [String: Any], _ field: String, required: Bool = false) throws -> [UInt8] {
        guard let value = object[field] else {
            if required { throw BadRequest(message: "\"\(field)\" is required") }
            return []
        }
        guard let text = value as? String, let data = Data(base64Encoded: text) else {
            throw BadRequest(message: "\"\(field)\" must be base64")
        }
        return Array(data)
    }

    static func number(_ object: [String: Any], _ field: String) throws -> Int64 {
        guard let value = object[field] else { return 0 }
        if let text = value as? String, let number = Int64(text) { return number }
        // A JSON true or false is an NSNumber too, and on Linux `NSNumber(1) is Bool` holds:
        // booleans are told apart by their type encoding ("c"), not by `is Bool`.
        if let number = value as? NSNumber, String(cString: number.objCType) != "c",
           let exact = Int64(exactly: number.doubleValue)
        {
            return exact
        }
        throw BadRequest(message: "\"\(field)\" must be an integer (a JSON string or number)")
    }

    static func flag(_ object: [String: Any], _ field: String) throws -> Bool {
        guard let value = object[field] else { return false }
        guard let flag = value as? Bool else { throw BadRequest(message: "\"\(field)\" must be true or false") }
        return flag
    }

    static func put(_ object: [String: Any]) throws -> KVRequest {
        .put(key: try self.bytes(object, "key", required: true), value: try self.bytes(object, "value"),
             previous: try self.flag(object, "prev_kv"))
    }

    static func range(_ object: [String: Any]) throws -> KVRequest {
        let limit = try self.number(object, "limit")
        guard limit >= 0 else { throw BadRequest(message: "\"limit\" must not be negative") }
        return .range(KeyRange(key: try self.bytes(object, "key", required: true), end: try self.bytes(object, "range_end")),
                      limit: limit)
    }

    static func deleteRange(_ object: [String: Any]) throws -> KVRequest {
        .deleteRange(KeyRange(key: try self.bytes(object, "key", required: true), end: try self.bytes(object, "range_end")),
                     previous: try self.flag(object, "prev_kv"))
    }

    static func txn(_ object: [String: Any]) throws -> KVRequest {
        func list(_ field: String) throws -> [[String: Any]] {
            guard let value = object[field] else { return [] }
            guard let list = value as? [[String: Any]] else { throw BadRequest(message: "\"\(field)\" must be a list of objects") }
            return list
        }
        let compare = try list("compare").map { entry -> Comparison in
            // As etcd's protobuf enums: by name or by number; absent is the zero value
            // (VERSION, EQUAL).
            let targets: [String: Comparison.Target] = [
                "VERSION": .version, "0": .version, "CREATE": .createRevision, "1": .createRevision,
                "MOD": .modRevision, "2": .modRevision, "VALUE": .value, "3": .value,
            ]
            let relations: [String: Comparison.Relation] = [
                "EQUAL": .equal, "0": .equal, "GREATER": .greater, "1": .greater, "LESS": .less, "2": .less,
                "NOT_EQUAL": .notEqual, "3": .notEqual,
            ]
            func name(_ field: String, _ zero: String) -> String {
                guard let value = entry[field] else { return zero }
                if let text = value as? String { return text }
                if !(value is Bool), let number = value as? NSNumber { return "\(number.intValue)" }
                return "?"
            }
            guard let target = targets[name("target", "VERSION")] else {
                throw BadRequest(message: "compare \"target\" must be VERSION, CREATE, MOD or VALUE")
            }
            guard let relation = relations[name("result", "EQUAL")] else {
                throw BadRequest(message: "compare \"result\" must be EQUAL, GREATER, LESS or NOT_EQUAL")
            }
            let key = try self.bytes(entry, "key", required: true)
            if let end = entry["range_end"], (end as? String)?.isEmpty != true {
                throw BadRequest(message: "compare \"range_end\" is not supported by Synod")
            }
            switch target {
            case .value: return Comparison(key: key, target: target, relation: relation, value: try self.bytes(entry, "value"))
            case .version: return Comparison(key: key, target: target, relation: relation, number: try self.number(entry, "version"))
            case .createRevision:
                return Comparison(key: key, target: target, relation: relation, number: try self.number(entry, "create_revision"))
            case .modRevision:
                return Comparison(key: key, target: target, relation: relation, number: try self.number(entry, "mod_revision"))
            }
        }
        func operations(_ field: String) throws -> [KVRequest] {
            try list(field).map { entry in
                if let put = entry["request_put"] as? [String: Any] { try self.refuseUnsupported(put); return try self.put(put) }
                if let range = entry["request_range"] as? [String: Any] { try self.refuseUnsupported(range); return try self.range(range) }
                if let delete = entry["request_delete_range"] as? [String: Any] {
                    try self.refuseUnsupported(delete)
                    return try self.deleteRange(delete)
                }
                throw BadRequest(message: "\(field) entries must hold request_put, request_range or request_delete_range")
            }
        }
        let success = try operations("success")
        let failure = try operations("failure")
        for branch in [success, failure] {
            if let problem = KeyValueStore.transactionProblem(branch) { throw BadRequest(message: problem) }
        }
        return .transaction(compare: compare, success: success, failure: failure)
    }

    // MARK: Responses to JSON

    func header(epoch: UInt64, revision: Int64) -> JSONValue {
        .raw(self.answerHeader(epoch: epoch, revision: revision).bytes)
    }

    func answerHeader(epoch: UInt64, revision: Int64) -> AnswerHeader {
        AnswerHeader(clusterID: self.clusterID, member: self.node.configuration.id.rawValue, epoch: epoch, revision: revision)
    }

    /// The `header` object of every answer.
    struct AnswerHeader {
        var clusterID: String
        var member: UInt16
        var epoch: UInt64
        var revision: Int64

        func write(into bytes: inout [UInt8]) {
            var object = JSONObjectWriter(into: &bytes)
            object.field("cluster_id", into: &bytes)
            JSONValue.writeString(self.clusterID, into: &bytes)
            object.field("member_id", into: &bytes)
            JSONValue.writeQuoted(self.member, into: &bytes)
            object.field("raft_term", into: &bytes)
            JSONValue.writeQuoted(self.epoch, into: &bytes)
            object.field("revision", into: &bytes)
            JSONValue.writeQuoted(self.revision, into: &bytes)
            object.end(into: &bytes)
        }

        var bytes: [UInt8] {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(96)
            self.write(into: &bytes)
            return bytes
        }
    }

    /// The answer to a KV request: etcd's response shapes (fields with zero values left out,
    /// as its gateway does), written straight into bytes in key order, with no `JSONValue`
    /// tree in between (a put's answer is one allocation).
    static func answer(_ response: KVResponse, header: AnswerHeader) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160 + Self.answerSizeHint(response))
        Self.write(response, header: header, into: &bytes)
        return bytes
    }

    /// About what the key-values in a response add to its answer (base64 grows them by a third).
    static func answerSizeHint(_ response: KVResponse) -> Int {
        func size(_ keyValue: KeyValue) -> Int { 120 + (keyValue.key.count + keyValue.value.count) * 4 / 3 }
        return switch response {
        case .put(_, let previous): previous.map(size) ?? 0
        case .range(_, let kvs, _, _): kvs.reduce(0) { $0 + size($1) }
        case .deleteRange(_, _, let previous): previous.reduce(0) { $0 + size($1) }
        case .transaction(_, _, let responses): responses.reduce(0) { $0 + 40 + Self.answerSizeHint($1) }
        case .error: 160
        }
    }

    static func write(_ response: KVResponse, header: AnswerHeader?, into bytes: inout [UInt8]) {
        var object = JSONObjectWriter(into: &bytes)
        // Fields with zero values are left out.
        func writeHeader(_ bytes: inout [UInt8]) {
            guard let header else { return }
            object.field("header", into: &bytes)
            header.write(into: &bytes)
        }
        func writeNumber(_ name: StaticString, _ number: Int64, _ bytes: inout [UInt8]) {
            guard number != 0 else { return }
            object.field(name, into: &bytes)
            JSONValue.writeQuoted(number, into: &bytes)
        }
        func writeKeyValues(_ name: StaticString, _ keyValues: [KeyValue], _ bytes: inout [UInt8]) {
            guard !keyValues.isEmpty else { return }
            object.field(name, into: &bytes)
            Self.write(keyValues, into: &bytes)
        }
        switch response {
        case .put(_, let previous):
            writeHeader(&bytes)
            if let previous {
                object.field("prev_kv", into: &bytes)
                Self.write(previous, into: &bytes)
            }
        case .range(_, let kvs, let count, let more):
            writeNumber("count", count, &bytes)
            writeHeader(&bytes)
            writeKeyValues("kvs", kvs, &bytes)
            if more {
                object.field("more", into: &bytes)
                JSONValue.bool(true).write(into: &bytes)
            }
        case .deleteRange(_, let deleted, let previous):
            writeNumber("deleted", deleted, &bytes)
            writeHeader(&bytes)
            writeKeyValues("prev_kvs", previous, &bytes)
        case .transaction(_, let succeeded, let responses):
            writeHeader(&bytes)
            object.field("responses", into: &bytes)
            bytes.append(UInt8(ascii: "["))
            for (index, response) in responses.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                var wrapper = JSONObjectWriter(into: &bytes)
                switch response {
                case .put: wrapper.field("response_put", into: &bytes)
                case .range: wrapper.field("response_range", into: &bytes)
                case .deleteRange: wrapper.field("response_delete_range", into: &bytes)
                default: break
                }
                if !wrapper.isEmpty { Self.write(response, header: nil, into: &bytes) }
                wrapper.end(into: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
            if succeeded {
                object.field("succeeded", into: &bytes)
                JSONValue.bool(true).write(into: &bytes)
            }
        case .error(let error):
            object.field("error", into: &bytes)
            JSONValue.writeString(error.description, into: &bytes)
            writeHeader(&bytes)
        }
        object.end(into: &bytes)
    }

    static func write(_ keyValues: [KeyValue], into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "["))
        for (index, keyValue) in keyValues.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            Self.write(keyValue, into: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    static func write(_ keyValue: KeyValue, into bytes: inout [UInt8]) {
        var object = JSONObjectWriter(into: &bytes)
        object.field("create_revision", into: &bytes)
        JSONValue.writeQuoted(keyValue.createRevision, into: &bytes)
        object.field("key", into: &bytes)
        JSONValue.base64(keyValue.key).write(into: &bytes)
        object.field("mod_revision", into: &bytes)
        JSONValue.writeQuoted(keyValue.modRevision, into: &bytes)
        object.field("value", into: &bytes)
        JSONValue.base64(keyValue.value).write(into: &bytes)
        object.field("version", into: &bytes)
        JSONValue.writeQuoted(keyValue.version, into: &bytes)
        object.end(into: &bytes)
    }

    func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response { APIAnswer.json(status, value) }

    func error(_ status: HTTPResponse.Status, _ message: String) -> Response { APIAnswer.error(status, message) }
}

extension KVResponse {
    /// The store revision the response was answered at.
    var revision: Int64 {
        switch self {
        case .put(let revision, _), .range(let revision, _, _, _), .deleteRange(let revision, _, _),
             .transaction(let revision, _, _):
            return revision
        case .error:
            return 0
        }
    }
}

/// The id a member add settled on: written on the node's loop by the change, read after it
/// completes (the promise orders the two), hence `@unchecked Sendable`.
final class AddedMember: @unchecked Sendable {
    var value: NodeID?
    init(_ value: NodeID?) { self.value = value }
}
