import SynodCausal
import SynodCore

extension EventualMessage: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .push(let key, let state):
            writer.byte(1)
            writer.data(key)
            state.encode(into: &writer)
        case .fetch(let key):
            writer.byte(2)
            writer.data(key)
        case .digest(let digests):
            writer.byte(3)
            writer.varint(UInt64(digests.count))
            for digest in digests { writer.varint(digest) }
        case .want(let buckets):
            writer.byte(4)
            writer.varint(UInt64(buckets.count))
            for bucket in buckets { writer.varint(UInt64(bucket)) }
        case .synced(let operation):
            writer.byte(5)
            writer.varint(operation)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> EventualMessage {
        switch try reader.byte() {
        case 1:
            let key = try reader.data(limit: CausalLimits.maximumKeyBytes, what: "key")
            return .push(key: key, state: try CausalRegister.decode(from: &reader))
        case 2:
            return .fetch(key: try reader.data(limit: CausalLimits.maximumKeyBytes, what: "key"))
        case 3:
            let count = try reader.count(limit: 4096, what: "digests")
            var digests: [UInt64] = []
            for _ in 0..<count { digests.append(try reader.varint()) }
            return .digest(digests)
        case 4:
            let count = try reader.count(limit: 4096, what: "buckets")
            var buckets: [Int] = []
            for _ in 0..<count {
                let bucket = try reader.varint()
                guard bucket < 4096 else { throw .malformed("bucket \(bucket) out of range") }
                buckets.append(Int(bucket))
            }
            return .want(buckets: buckets)
        case 5:
            return .synced(operation: try reader.varint())
        case let other:
            throw .malformed("unknown eventual store message \(other)")
        }
    }
}

extension EventualRecord: WireCodable {
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .state(let key, let state):
            writer.byte(1)
            writer.data(key)
            state.encode(into: &writer)
        case .accepted(let table):
            writer.byte(2)
            writer.varint(UInt64(table.count))
            for (client, sequence) in table.sorted(by: { $0.key < $1.key }) {
                writer.varint(client)
                writer.varint(sequence)
            }
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> EventualRecord {
        switch try reader.byte() {
        case 1:
            let key = try reader.data(limit: CausalLimits.maximumKeyBytes, what: "key")
            return .state(key: key, state: try CausalRegister.decode(from: &reader))
        case 2:
            let count = try reader.count(limit: 1 << 24, what: "accepted writes")
            var table: [ClientID: UInt64] = [:]
            for _ in 0..<count {
                let client = try reader.varint()
                guard table.updateValue(try reader.varint(), forKey: client) == nil else {
                    throw .malformed("client \(client) appears twice in the accepted writes")
                }
            }
            return .accepted(table)
        case let other:
            throw .malformed("unknown eventual store record \(other)")
        }
    }
}

extension EventualMessage: TraceDigestible {
    public func digest(into hasher: inout StableHasher) {
        switch self {
        case .push(let key, let state):
            hasher.combine(1)
            hasher.combine(bytes: key)
            hasher.combine(state.digest)
        case .fetch(let key):
            hasher.combine(2)
            hasher.combine(bytes: key)
        case .digest(let digests):
            hasher.combine(3)
            for digest in digests { hasher.combine(digest) }
        case .want(let buckets):
            hasher.combine(4)
            for bucket in buckets { hasher.combine(bucket) }
        case .synced(let operation):
            hasher.combine(5)
            hasher.combine(operation)
        }
    }
}
