import Foundation
import Hummingbird
import NIOCore
import SynodCausal
import SynodClocks
import SynodCore

/// The HTTP API of the eventually consistent store (`synod serve --protocol eventual`): one
/// key per URL, the value as the body, and the key's causal context in a header, so that what
/// the store keeps (every concurrent write as a sibling) and what a client must send back to
/// resolve them (the context it read) are both visible.
///
/// - `GET /v1/keys/KEY`: the key's siblings and context, from this node alone (it also asks
///   its peers, and repairs those behind: read repair).
/// - `PUT /v1/keys/KEY` with the value as the body and `X-Synod-Context` set to the context
///   read: the write replaces the siblings that context covers and stays beside the others.
///   Without the header it replaces nothing (a blind write: one more sibling).
/// - `DELETE /v1/keys/KEY` with `X-Synod-Context`: a delete, kept as a tombstone sibling
///   until a write that saw it replaces it.
///
/// Every answer is the key's state after the request: `{"key", "context", "siblings":
/// [{"dot", "value"} | {"dot", "deleted": true}], "node"}`, the context in `X-Synod-Context`
/// too. A key is the URL path after `/v1/keys/`, percent-decoded to bytes; keys and values
/// that are not UTF-8 are given as `key_base64` / `value_base64`.
public struct CausalAPI<R: Replica>: Sendable {
    let node: ReplicaNode<R, CausalStore>

    /// The header that carries a causal context (`node:counter` pairs, `1:3,2:5`).
    public static var contextHeader: String { "X-Synod-Context" }
    /// Longest key, in bytes after percent-decoding.
    public static var maximumKeyBytes: Int { 4_096 }
    /// Longest value: small enough that a key's siblings from every replica fit in one reply
    /// (`CausalLimits.maximumStateBytes`).
    public static var maximumValueBytes: Int { 64 << 10 }
    static var prefix: String { "/v1/keys/" }

    public init(node: ReplicaNode<R, CausalStore>) {
        self.node = node
    }

    /// A router with the key endpoints and the node's own (`/health`, `/metrics`, `/v3/status`,
    /// `/v3/cluster`).
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        let api = self
        router.get("/v1/keys/**") { request, _ -> Response in
            let key: [UInt8]
            do { key = try Self.key(path: request.uri.path) } catch { return api.failure(error) }
            return await api.perform(.get(key: key), key: key, write: false)
        }
        router.put("/v1/keys/**") { request, _ -> Response in
            var request = request
            let target: (key: [UInt8], context: VectorClock)
            do { target = try Self.keyAndContext(request) } catch { return api.failure(error) }
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: Self.maximumValueBytes)
            } catch {
                return APIAnswer.error(.contentTooLarge, "the value exceeds \(Self.maximumValueBytes) bytes")
            }
            return await api.perform(.put(key: target.key, value: Array(buffer: body), context: target.context), key: target.key, write: true)
        }
        router.delete("/v1/keys/**") { request, _ -> Response in
            let target: (key: [UInt8], context: VectorClock)
            do { target = try Self.keyAndContext(request) } catch { return api.failure(error) }
            return await api.perform(.put(key: target.key, value: nil, context: target.context), key: target.key, write: true)
        }
        for method in [HTTPRequest.Method.get, .put, .delete] {
            router.on("/v1/keys", method: method) { _, _ -> Response in
                APIAnswer.error(.badRequest, "no key: use \(Self.prefix)KEY")
            }
        }
        NodeEndpoints(node: self.node).add(to: router)
        return router
    }

    /// A request the client got wrong: answered 400 (or 413) with the reason.
    struct BadRequest: Error, CustomStringConvertible {
        var description: String
        var status: HTTPResponse.Status = .badRequest
    }

    func failure(_ error: any Error) -> Response {
        if let bad = error as? BadRequest { return APIAnswer.error(bad.status, bad.description) }
        return APIAnswer.error(.badRequest, "\(error)")
    }

    /// The key a path names: what follows `/v1/keys/`, percent-decoded to bytes.
    static func key(path: String) throws -> [UInt8] {
        guard path.hasPrefix(Self.prefix) else { throw BadRequest(description: "keys live under \(Self.prefix)") }
        let encoded = Array(path.utf8.dropFirst(Self.prefix.utf8.count))
        var key: [UInt8] = []
        key.reserveCapacity(encoded.count)
        var index = 0
        while index < encoded.count {
            let byte = encoded[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < encoded.count, let high = Self.hexValue(encoded[index + 1]), let low = Self.hexValue(encoded[index + 2]) else {
                    throw BadRequest(description: "the key's percent-encoding is broken at byte \(index) ('%' needs two hex digits)")
                }
                key.append(high << 4 | low)
                index += 3
            } else {
                key.append(byte)
                index += 1
            }
        }
        guard !key.isEmpty else { throw BadRequest(description: "no key: use \(Self.prefix)KEY") }
        guard key.count <= Self.maximumKeyBytes else {
            throw BadRequest(description: "the key is \(key.count) bytes; the most is \(Self.maximumKeyBytes)", status: .contentTooLarge)
        }
        return key
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// A write's key (its path) and the context it carries.
    static func keyAndContext(_ request: Request) throws -> (key: [UInt8], context: VectorClock) {
        (try Self.key(path: request.uri.path), try Self.context(request.headers))
    }

    /// The context a request carries (the zero context without the header).
    static func context(_ headers: HTTPFields) throws -> VectorClock {
        guard let text = headers[.init(Self.contextHeader)!] else { return VectorClock() }
        guard text.utf8.count <= 1 << 16 else { throw BadRequest(description: "the \(Self.contextHeader) header is too long") }
        do {
            return try VectorClock(text: text)
        } catch {
            throw BadRequest(description: "\(Self.contextHeader): \(error) (expected NODE:COUNTER pairs, comma-separated, as a read returned it)")
        }
    }

    /// Runs a get or a put through the node and answers with the key's state.
    func perform(_ request: CausalRequest, key: [UInt8], write: Bool) async -> Response {
        do {
            let payload = request.encoded()
            let reply = write ? try await self.node.write(payload) : try await self.node.read(payload)
            let state = try CausalRegister.decode(reply)
            return APIAnswer.json(
                .ok, Self.json(key: key, state: state, node: self.node.configuration.id),
                headers: [.init(Self.contextHeader)!: state.context.text])
        } catch let error as RequestError {
            switch error {
            case .timeout: return APIAnswer.error(.gatewayTimeout, error.description)
            case .unavailable: return APIAnswer.error(.serviceUnavailable, error.description)
            case .refused: return APIAnswer.error(.conflict, error.description)
            }
        } catch {
            return APIAnswer.error(.internalServerError, "the store's answer does not decode: \(error)")
        }
    }

    /// A key's state as the API shows it.
    static func json(key: [UInt8], state: CausalRegister, node: NodeID) -> JSONValue {
        let siblings: [JSONValue] = state.siblings.map { sibling in
            var fields: [(String, JSONValue)] = [("dot", .string("\(sibling.dot.node.rawValue):\(sibling.dot.counter)"))]
            if let value = sibling.value {
                fields.append(Self.bytesField("value", value))
            } else {
                fields.append(("deleted", .bool(true)))
            }
            return .object(fields)
        }
        return .object([
            Self.bytesField("key", key), ("context", .string(state.context.text)), ("siblings", .array(siblings)),
            ("node", .integer(Int64(node.rawValue))),
        ])
    }

    /// `name` as text when the bytes are UTF-8, else `name_base64`.
    static func bytesField(_ name: String, _ bytes: [UInt8]) -> (String, JSONValue) {
        if let text = String(validating: bytes, as: UTF8.self) { return (name, .string(text)) }
        return (name + "_base64", .string(Data(bytes).base64EncodedString()))
    }
}
