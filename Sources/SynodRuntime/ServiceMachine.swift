import SynodCausal
import SynodCore
import SynodKV

/// A state machine a node serves: what `ReplicaNode` needs beyond `StateMachine` to start from
/// nothing, save and load snapshots, and report itself. Two serve clients today: the
/// etcd-shaped store (`KeyValueStore`, behind `ClientAPI`) for protocols that order every
/// command, and the eventually consistent store's key states (`CausalStore`, behind
/// `CausalAPI`).
public protocol ServiceMachine: StateMachine {
    /// The empty machine, within `limits` where it has any.
    static func empty(limits: KVLimits) -> Self
    /// A snapshot of the machine and its session table.
    static func snapshot(of machine: ExactlyOnce<Self>) -> [UInt8]
    /// The machine a snapshot holds; throws a readable error for bytes that are not one.
    static func restore(_ data: [UInt8], limits: KVLimits) throws -> ExactlyOnce<Self>
    /// The store's revision, for status (etcd's: one counter for the whole store); nil for a
    /// store without one.
    var storeRevision: Int64? { get }
}

extension KeyValueStore: ServiceMachine {
    public static func empty(limits: KVLimits) -> KeyValueStore { KeyValueStore(limits: limits) }
    public var storeRevision: Int64? { self.revision }
}

extension CausalStore: ServiceMachine {
    public static func empty(limits: KVLimits) -> CausalStore { CausalStore() }

    public static func restore(_ data: [UInt8], limits: KVLimits) throws -> ExactlyOnce<CausalStore> {
        try Self.restore(data)
    }

    /// Each key has its own causal context; there is no store-wide revision.
    public var storeRevision: Int64? { nil }
}
