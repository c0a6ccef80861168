import Hummingbird
import SynodCore

/// The endpoints every node serves, whatever its store: `/metrics` (Prometheus text),
/// `/health`, `/v3/status` (this node) and `/v3/cluster` (every member, asked over the peer
/// links). `ClientAPI` and `CausalAPI` both add them to their routers.
struct NodeEndpoints<R: Replica, Machine: ServiceMachine>: Sendable {
    let node: ReplicaNode<R, Machine>

    func add(to router: Router<BasicRequestContext>) {
        let api = self
        router.get("/metrics") { _, _ -> Response in
            guard let metrics = api.node.metrics else {
                return api.error(.notFound, "metrics are off on this node (synod serve --metrics off)")
            }
            await api.node.sampleMetrics()
            var buffer = ByteBuffer()
            buffer.writeString(metrics.render())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: ResponseBody(byteBuffer: buffer))
        }
        router.get("/health") { _, _ -> Response in
            do {
                let status = try await api.node.status()
                let healthy = status.healthy
                let reason = switch R.coordination {
                case .leader: "no leader"
                case .leaderless: "\(status.reachable) members reachable, no majority"
                }
                return api.json(healthy ? .ok : .serviceUnavailable,
                                .object([("health", .string(healthy ? "true" : "false")), ("reason", .string(healthy ? "" : reason))]))
            } catch {
                return api.error(.serviceUnavailable, "\(error)")
            }
        }
        router.get("/v3/cluster") { _, _ -> Response in
            do {
                let statuses = try await api.node.clusterStatus()
                let members = try await api.node.membership().members.keys.sorted().map { member -> JSONValue in
                    guard let status = statuses.first(where: { $0.id == Int(member.rawValue) }) else {
                        return .object([("id", .integer(Int64(member.rawValue))), ("reachable", .bool(false))])
                    }
                    return api.statusJSON(status, extra: [("reachable", .bool(true))])
                }
                let leaders = Set(statuses.compactMap { $0.role == "leader" ? $0.id : nil })
                var fields: [(String, JSONValue)] = [("protocol", .string(R.protocolName)), ("members", .array(members))]
                if leaders.count == 1 { fields.append(("leader", .integer(Int64(leaders.first!)))) }
                return api.json(.ok, .object(fields))
            } catch {
                return api.error(.serviceUnavailable, "\(error)")
            }
        }
        router.get("/v3/status") { _, _ -> Response in
            do {
                let status = try await api.node.status()
                return api.json(.ok, api.statusJSON(status, extra: [
                    ("protocol", .string(R.protocolName)),
                    ("members", .array(try await api.node.membership().members.keys.sorted().map { .integer(Int64($0.rawValue)) })),
                ]))
            } catch {
                return api.error(.serviceUnavailable, "\(error)")
            }
        }
    }

    func statusJSON(_ status: NodeStatus, extra: [(String, JSONValue)]) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("id", .integer(Int64(status.id))), ("role", .string(status.role)), ("epoch", .integer(Int64(clamping: status.epoch))),
            ("commitPosition", .integer(Int64(clamping: status.commitPosition))),
            ("appliedPosition", .integer(Int64(clamping: status.appliedPosition))),
            ("framesSent", .integer(Int64(status.framesSent))), ("framesDropped", .integer(Int64(status.framesDropped))),
            ("reachable", .integer(Int64(status.reachable))), ("healthy", .bool(status.healthy)),
            ("coordination", .string(R.coordination.rawValue)),
        ] + extra
        if let revision = status.revision { fields.append(("revision", .integer(revision))) }
        if let leader = status.leader { fields.append(("leader", .integer(Int64(leader)))) }
        return .object(fields)
    }

    func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response { APIAnswer.json(status, value) }

    func error(_ status: HTTPResponse.Status, _ message: String) -> Response { APIAnswer.error(status, message) }
}

/// JSON answers, errors included (`{"error", "code", "message"}` with an HTTP status).
enum APIAnswer {
    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        APIReply.json(status, value).response
    }

    /// With `headers` besides the content type.
    static func json(_ status: HTTPResponse.Status, _ value: JSONValue, headers: HTTPFields) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: value.bytes)))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        APIReply.error(status, message).response
    }
}

/// A JSON answer and its status, before the connection writes it.
public struct APIReply: Sendable {
    public var status: HTTPResponse.Status
    public var body: [UInt8]

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> APIReply {
        APIReply(status: status, body: value.bytes)
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> APIReply {
        // gRPC-style codes as etcd's gateway uses them.
        let code: Int64 = switch status {
        case .badRequest, .contentTooLarge: 3
        case .gatewayTimeout: 4
        case .conflict: 9
        case .serviceUnavailable: 14
        default: 13
        }
        return .json(status, .object([("error", .string(message)), ("code", .integer(code)), ("message", .string(message))]))
    }

    var response: Response {
        Response(status: self.status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: self.body)))
    }
}
