/// What one simulated run looked like, on virtual time: every message between nodes (and what
/// became of it), every fault, role change, durable sync and commit. Recorded only when
/// `SimulationOptions.recordsTrace` is on (`synod sim --trace`), drawn by `TraceRenderer`.
/// Recording changes nothing in the run: it draws no random numbers and feeds no hash, so a
/// traced seed replays the untraced one event for event.
public struct SimulationTrace: Sendable {
    /// What became of a message.
    public enum Fate: String, Sendable {
        /// It reached its destination, which was up.
        case delivered
        /// The network lost it when it was sent (the `loss` fault).
        case lost
        /// A partition (or the `rejoin` fault's cut) stopped it on arrival.
        case cut
        /// Its destination was down when it arrived.
        case down
        /// Still in flight when the run ended.
        case inFlight = "in-flight"
    }

    /// One message from node to node.
    public struct Message: Sendable {
        /// Replica positions (0-based).
        public var from: Int
        public var to: Int
        public var sent: UInt64
        /// When it arrives (or would have, for a lost message).
        public var arrives: UInt64
        public var fate: Fate
        /// The second copy of a duplicated message.
        public var duplicate: Bool
        /// Held back by the `reordering` fault, so later messages may overtake it.
        public var delayed: Bool
        /// The message in readable form.
        public var summary: String
    }

    /// Something that happened at a node, or to the cluster, at a moment or over an interval.
    public struct Mark: Sendable {
        public var time: UInt64
        /// The end of an interval (a crash until the restart, a partition until it heals);
        /// `nil` for a moment, or an interval still open when the run ended.
        public var end: UInt64?
        /// The replica (0-based), or `nil` for the whole cluster.
        public var node: Int?
        /// `crash`, `torn-write`, `partition`, `isolated`, `slow`, `transfer`, `membership`,
        /// `leader`, `candidate`, `follower`, `sync`, `commit`, `faults-end`, `violation`.
        public var kind: String
        public var detail: String
    }

    /// Replicas in the run.
    public var nodes: Int
    public var messages: [Message] = []
    public var marks: [Mark] = []
    /// The virtual time the run ended at.
    public var endTime: UInt64 = 0

    public init(nodes: Int) { self.nodes = nodes }

    /// Closes the latest open interval of `kind` (at `node`, or cluster-wide) at `time`.
    mutating func close(_ kind: String, node: Int?, at time: UInt64) {
        guard let index = self.marks.lastIndex(where: { $0.kind == kind && $0.node == node && $0.end == nil }) else { return }
        self.marks[index].end = time
    }

    /// A message's readable form, cut to `limit` characters.
    static func summary(_ text: String, limit: Int = 400) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }
}
