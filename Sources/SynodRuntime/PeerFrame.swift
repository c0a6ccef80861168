import SynodCore

/// What a cluster is: every node of it must agree on all of this, or they are not one cluster.
public struct ClusterIdentity: Sendable, Equatable {
    /// Derived from the initial configuration and the cluster token (`derive`), or given.
    public var clusterID: UInt64
    /// The protocol every member runs.
    public var protocolName: String
    /// Every member and its peer address: the configuration a node believes in.
    public var members: [NodeID: PeerAddress]

    /// An identity.
    public init(clusterID: UInt64, protocolName: String, members: [NodeID: PeerAddress]) {
        self.clusterID = clusterID
        self.protocolName = protocolName
        self.members = members
    }

    /// The cluster id of a configuration: a stable hash of the token and every member with its
    /// address, so two configurations that differ in anything get different ids (etcd derives its
    /// cluster id the same way from `--initial-cluster` and `--initial-cluster-token`).
    public static func derive(token: String, members: [NodeID: PeerAddress]) -> UInt64 {
        var hasher = StableHasher()
        hasher.combine(bytes: Array(token.utf8))
        for (id, address) in members.sorted(by: { $0.key < $1.key }) {
            hasher.combine(Int(id.rawValue))
            hasher.combine(bytes: Array(address.host.utf8))
            hasher.combine(address.port)
        }
        return hasher.value
    }

    /// The members as `ID=HOST:PORT,…`, for messages.
    public var membersDescription: String {
        self.members.sorted { $0.key < $1.key }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: ",")
    }

    /// Where `other` differs from this identity, naming both sides' values; nil when equal.
    public func mismatch(_ other: ClusterIdentity) -> String? {
        var differences: [String] = []
        if other.protocolName != self.protocolName {
            differences.append("protocol: theirs \(other.protocolName), ours \(self.protocolName)")
        }
        if other.members != self.members {
            differences.append("members: theirs \(other.membersDescription), ours \(self.membersDescription)")
        }
        if other.clusterID != self.clusterID {
            differences.append("cluster id: theirs \(String(other.clusterID, radix: 16)), ours \(String(self.clusterID, radix: 16))")
        }
        return differences.isEmpty ? nil : differences.joined(separator: "; ")
    }

    /// Most members a hello may list.
    static let maximumMembers = 1024

    func encode(into writer: inout WireWriter) {
        writer.varint(self.clusterID)
        writer.data(Array(self.protocolName.utf8))
        writer.varint(UInt64(self.members.count))
        for (id, address) in self.members.sorted(by: { $0.key < $1.key }) {
            id.encode(into: &writer)
            writer.data(Array(address.host.utf8))
            writer.varint(UInt64(address.port))
        }
    }

    static func decode(from reader: inout WireReader) throws(WireError) -> ClusterIdentity {
        let clusterID = try reader.varint()
        let protocolName = String(decoding: try reader.data(limit: 64, what: "protocol name"), as: UTF8.self)
        var members: [NodeID: PeerAddress] = [:]
        for _ in 0..<(try reader.count(limit: Self.maximumMembers, what: "members")) {
            let id = try NodeID.decode(from: &reader)
            let host = String(decoding: try reader.data(limit: 255, what: "host"), as: UTF8.self)
            let port = try reader.varint()
            guard port <= 65_535 else { throw .malformed("port \(port) out of range") }
            guard members.updateValue(PeerAddress(host: host, port: Int(port)), forKey: id) == nil else {
                throw .malformed("member \(id) listed twice")
            }
        }
        return ClusterIdentity(clusterID: clusterID, protocolName: protocolName, members: members)
    }
}

/// The first frame each side of a peer connection sends: who it is, and which cluster it
/// believes it belongs to.
public struct PeerHello: Sendable, Equatable {
    /// The sender.
    public var node: NodeID
    /// The sender's cluster.
    public var cluster: ClusterIdentity

    /// A hello.
    public init(node: NodeID, cluster: ClusterIdentity) {
        self.node = node
        self.cluster = cluster
    }
}

/// One frame between two replicas' runtimes. The protocol's own messages travel inside
/// `.message`; client requests and replies travel between one node's gateway and another's
/// replica; the rest is the runtime's business (who is calling, status).
public enum PeerFrame<Message: WireCodable & Sendable>: Sendable {
    /// The first frame on a connection, from each side: who it is and what cluster it is in.
    case hello(PeerHello)
    /// Keeps a dialled link's liveness known (a restarted peer left it half open); no answer.
    case ping
    /// A protocol message.
    case message(Message)
    /// A client request from the sender's gateway (its session chose this replica).
    case request(ClientRequest)
    /// This replica's answer to a request of the receiver's gateway, with its authenticator
    /// if the protocol makes one.
    case reply(ClientReply, authenticator: Authenticator?)
    /// "How are you?", for the cluster status.
    case statusRequest(id: UInt64)
    /// The answer: role, leader, epoch and progress.
    case statusReply(id: UInt64, NodeStatus)
    /// A piece of an encoded frame too large for one (a snapshot): the receiver joins the
    /// pieces of one connection in order and decodes the whole after the `last` one.
    case fragment(last: Bool, [UInt8])
}

extension PeerFrame: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .hello(let hello):
            writer.byte(1)
            hello.node.encode(into: &writer)
            hello.cluster.encode(into: &writer)
        case .ping:
            writer.byte(8)
        case .message(let message):
            writer.byte(2)
            message.encode(into: &writer)
        case .request(let request):
            writer.byte(3)
            writer.byte(request.kind == .write ? 1 : 2)
            request.command.encode(into: &writer)
            Self.encode(request.authenticator, into: &writer)
        case .statusRequest(let id):
            writer.byte(5)
            writer.varint(id)
        case .statusReply(let id, let status):
            writer.byte(6)
            writer.varint(id)
            writer.varint(UInt64(status.id))
            writer.data(Array(status.role.utf8))
            writer.varint(UInt64(status.leader ?? 0))
            writer.varint(status.epoch)
            writer.varint(status.commitPosition)
            writer.varint(status.appliedPosition)
            writer.bool(status.revision != nil)
            if let revision = status.revision { writer.signed(revision) }
            writer.varint(UInt64(status.framesSent))
            writer.varint(UInt64(status.framesDropped))
            writer.varint(UInt64(status.reachable))
            writer.bool(status.healthy)
        case .reply(let reply, let authenticator):
            writer.byte(4)
            Self.encode(authenticator, into: &writer)
            writer.varint(reply.commandID.client)
            writer.varint(reply.commandID.sequence)
            switch reply {
            case .ok(_, let result):
                writer.byte(1)
                writer.data(result)
            case .notLeader(_, let hint):
                writer.byte(2)
                writer.varint(UInt64(hint?.rawValue ?? 0))
            case .overloaded:
                writer.byte(3)
            case .refused(_, let reason):
                writer.byte(4)
                writer.data(Array(reason.utf8.prefix(Self.maximumReasonBytes)))
            }
        case .fragment(let last, let bytes):
            writer.byte(7)
            writer.bool(last)
            writer.data(bytes)
        }
    }

    /// An optional authenticator: a presence byte, then the authenticator.
    static func encode(_ authenticator: Authenticator?, into writer: inout WireWriter) {
        writer.bool(authenticator != nil)
        authenticator?.encode(into: &writer)
    }

    static func decodeAuthenticator(from reader: inout WireReader) throws(WireError) -> Authenticator? {
        try reader.bool() ? try Authenticator.decode(from: &reader) : nil
    }

    /// Largest reply a replica sends another node's gateway (a client request is bounded far
    /// below this; a larger reply is refused with a reason). Below the transport's 8 MiB
    /// frame limit.
    public static var maximumPayloadBytes: Int { 4 << 20 }
    /// Longest reason a refusal carries.
    static var maximumReasonBytes: Int { 4096 }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PeerFrame {
        switch try reader.byte() {
        case 1:
            return .hello(PeerHello(node: try NodeID.decode(from: &reader), cluster: try ClusterIdentity.decode(from: &reader)))
        case 8:
            return .ping
        case 2:
            // A peer's epochs stay below what this node's records can hold, whatever it derives
            // from them (the next term, a higher round): refused here, at the door.
            reader.epochLimit = WireReader.peerEpochLimit
            return .message(try Message.decode(from: &reader))
        case 3:
            let kind: ClientRequest.Kind
            switch try reader.byte() {
            case 1: kind = .write
            case 2: kind = .read
            case let tag: throw .malformed("unknown client request kind \(tag)")
            }
            let command = try Command.decode(from: &reader)
            return .request(ClientRequest(kind: kind, command: command, authenticator: try Self.decodeAuthenticator(from: &reader)))
        case 4:
            let authenticator = try Self.decodeAuthenticator(from: &reader)
            let id = CommandID(client: try reader.varint(), sequence: try reader.varint())
            let reply: ClientReply
            switch try reader.byte() {
            case 1: reply = .ok(id, result: try reader.data(limit: Self.maximumPayloadBytes, what: "reply"))
            case 2:
                let hint = try reader.varint()
                guard hint <= UInt64(UInt16.max) else { throw .malformed("leader hint \(hint) out of range") }
                reply = .notLeader(id, hint: hint == 0 ? nil : NodeID(UInt16(hint)))
            case 3: reply = .overloaded(id)
            case 4:
                let reason = try reader.data(limit: Self.maximumReasonBytes, what: "reason")
                reply = .refused(id, reason: String(decoding: reason, as: UTF8.self))
            case let tag: throw .malformed("unknown client reply tag \(tag)")
            }
            return .reply(reply, authenticator: authenticator)
        case 5:
            return .statusRequest(id: try reader.varint())
        case 7:
            let last = try reader.bool()
            return .fragment(last: last, try reader.data(limit: 16 << 20, what: "fragment"))
        case 6:
            let id = try reader.varint()
            func small(_ value: UInt64, _ what: String) throws(WireError) -> Int {
                guard value <= UInt64(Int32.max) else { throw .malformed("\(what) \(value) out of range") }
                return Int(value)
            }
            let node = try small(try reader.varint(), "node")
            let role = String(decoding: try reader.data(limit: 32, what: "role"), as: UTF8.self)
            let leader = try small(try reader.varint(), "leader")
            let status = NodeStatus(
                id: node, role: role, leader: leader == 0 ? nil : leader, epoch: try reader.varint(),
                commitPosition: try reader.varint(), appliedPosition: try reader.varint(), revision: try reader.bool() ? try reader.signed() : nil,
                framesSent: try small(try reader.varint(), "count"), framesDropped: try small(try reader.varint(), "count"),
                reachable: try small(try reader.varint(), "count"), healthy: try reader.bool())
            return .statusReply(id: id, status)
        case let tag:
            throw .malformed("unknown peer frame tag \(tag)")
        }
    }
}
