/// A protocol's invariant checker, run by the simulator after every step.
///
/// A monitor sees each replica after each input together with the `Ready` it produced, and
/// accumulates whatever history it needs (leaders per term, committed prefixes) to judge
/// invariants that span time and replicas. It must be cheap: the simulator calls it on every
/// event.
public protocol SafetyMonitor {
    /// The replica type it checks.
    associatedtype Observed: Replica

    /// Creates a monitor for a cluster with these members.
    init(members: [NodeID])

    /// Judges `replica` (identified by `node`) right after it produced `ready`.
    /// - Returns: every invariant the step broke; empty when all hold.
    mutating func observe(node: NodeID, replica: Observed, ready: Ready<Observed.Message, Observed.Record>)
        -> [InvariantViolation]

    /// Tells the monitor that `node` restarted from `recovered` as `replica`.
    mutating func restarted(node: NodeID, replica: Observed, recovered: Recovered<Observed.Record>)

    /// Faults have stopped, every client operation has ended, and every replica is up: `nil`
    /// while the replicas have not yet reached the state the protocol promises then (an
    /// eventually consistent store: one state everywhere), else the invariants that state
    /// breaks. The simulator asks again until the liveness bound. Default: settled, nothing
    /// broken (a protocol whose replicas the simulator compares itself).
    mutating func settled(_ replicas: [(node: NodeID, replica: Observed)]) -> [InvariantViolation]?
}

extension SafetyMonitor {
    public mutating func settled(_ replicas: [(node: NodeID, replica: Observed)]) -> [InvariantViolation]? { [] }
}

/// A broken invariant: which one, where, and what was seen.
public struct InvariantViolation: Sendable, Equatable, CustomStringConvertible {
    /// A stable name for the invariant, e.g. `election-safety`.
    public var invariant: String
    /// The replica where it was seen, if one.
    public var node: NodeID?
    /// What was seen.
    public var detail: String

    /// Creates a violation.
    public init(invariant: String, node: NodeID?, detail: String) {
        self.invariant = invariant
        self.node = node
        self.detail = detail
    }

    public var description: String {
        if let node = self.node { return "\(self.invariant) at \(node): \(self.detail)" }
        return "\(self.invariant): \(self.detail)"
    }
}
