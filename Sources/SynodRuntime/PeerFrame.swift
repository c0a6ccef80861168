import SynodCore

/// A client request that a replica forwards to the leader it knows of.
public enum ForwardedRequest: Sendable, Equatable {
    /// A command to order and apply, with its exactly-once identity (client session and
    /// sequence), kept across retries through different leaders.
    case write(Command)
    /// A linearizable read-only query payload.
    case read([UInt8])
}

/// The leader's answer to a forwarded request.
public enum ForwardedReply: Sendable, Equatable {
    /// Applied (or read); the state machine's reply.
    case ok([UInt8])
    /// The receiver does not lead; `hint` is the leader it knows of, if any.
    case notLeader(hint: NodeID?)
    /// Refused: overloaded or timed out.
    case unavailable(String)
}

/// One frame between two replicas' runtimes. The protocol's own messages travel inside
/// `.message`; the rest is the runtime's business (who is calling, forwarded client requests).
public enum PeerFrame<Message: WireCodable & Sendable>: Sendable {
    /// The first frame on a connection: who dialled.
    case hello(NodeID)
    /// A protocol message.
    case message(Message)
    /// A client request forwarded to the leader, with the sender's request number.
    case forward(id: UInt64, ForwardedRequest)
    /// The answer to a forwarded request.
    case forwardReply(id: UInt64, ForwardedReply)
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
        case .hello(let node):
            writer.byte(1)
            node.encode(into: &writer)
        case .message(let message):
            writer.byte(2)
            message.encode(into: &writer)
        case .forward(let id, let request):
            writer.byte(3)
            writer.varint(id)
            switch request {
            case .write(let command):
                writer.byte(1)
                command.encode(into: &writer)
            case .read(let payload):
                writer.byte(2)
                writer.data(payload)
            }
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
            writer.signed(status.revision)
            writer.varint(UInt64(status.framesSent))
            writer.varint(UInt64(status.framesDropped))
        case .forwardReply(let id, let reply):
            writer.byte(4)
            writer.varint(id)
            switch reply {
            case .ok(let payload):
                writer.byte(1)
                writer.data(payload)
            case .notLeader(let hint):
                writer.byte(2)
                writer.varint(UInt64(hint?.rawValue ?? 0))
            case .unavailable(let reason):
                writer.byte(3)
                writer.data(Array(reason.utf8))
            }
        case .fragment(let last, let bytes):
            writer.byte(7)
            writer.bool(last)
            writer.data(bytes)
        }
    }

    /// Largest forwarded payload or reply (a client request is bounded far below this; a
    /// larger reply is refused with a reason). Below the transport's 8 MiB frame limit.
    public static var maximumPayloadBytes: Int { 4 << 20 }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PeerFrame {
        switch try reader.byte() {
        case 1:
            return .hello(try NodeID.decode(from: &reader))
        case 2:
            return .message(try Message.decode(from: &reader))
        case 3:
            let id = try reader.varint()
            switch try reader.byte() {
            case 1: return .forward(id: id, .write(try Command.decode(from: &reader)))
            case 2: return .forward(id: id, .read(try reader.data(limit: Self.maximumPayloadBytes, what: "payload")))
            case let tag: throw .malformed("unknown forwarded request tag \(tag)")
            }
        case 4:
            let id = try reader.varint()
            switch try reader.byte() {
            case 1: return .forwardReply(id: id, .ok(try reader.data(limit: Self.maximumPayloadBytes, what: "payload")))
            case 2:
                let hint = try reader.varint()
                guard hint <= UInt64(UInt16.max) else { throw .malformed("leader hint \(hint) out of range") }
                return .forwardReply(id: id, .notLeader(hint: hint == 0 ? nil : NodeID(UInt16(hint))))
            case 3:
                let reason = try reader.data(limit: 4096, what: "reason")
                return .forwardReply(id: id, .unavailable(String(decoding: reason, as: UTF8.self)))
            case let tag: throw .malformed("unknown forwarded reply tag \(tag)")
            }
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
                commitPosition: try reader.varint(), appliedPosition: try reader.varint(), revision: try reader.signed(),
                framesSent: try small(try reader.varint(), "count"), framesDropped: try small(try reader.varint(), "count"))
            return .statusReply(id: id, status)
        case let tag:
            throw .malformed("unknown peer frame tag \(tag)")
        }
    }
}
