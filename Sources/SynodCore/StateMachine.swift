/// The application state machine that sits beside a protocol core: the driver applies each
/// committed command to it and serves reads from it. The core never sees its semantics.
public protocol StateMachine: Sendable {
    /// Applies a command's payload deterministically and returns the reply.
    mutating func apply(_ payload: [UInt8]) -> [UInt8]
    /// Answers a query without changing state.
    func query(_ payload: [UInt8]) -> [UInt8]
    /// What a command's (or a query's) payload touches, for cores that order only conflicting
    /// commands. Computed from the payload alone; the default, `.everything`, conflicts with
    /// every command and is always safe.
    static func footprint(of payload: [UInt8]) -> Footprint
}

extension StateMachine {
    public static func footprint(of payload: [UInt8]) -> Footprint { .everything }
}

/// Exactly-once application of client commands: a retried command (same client, same
/// sequence) is applied once and answered with its original reply.
///
/// Each client has at most one command outstanding, so the table keeps only the latest
/// sequence number and reply per client.
public struct ExactlyOnce<Machine: StateMachine>: Sendable {
    /// The wrapped state machine.
    public private(set) var machine: Machine
    private var latest: [ClientID: (sequence: UInt64, reply: [UInt8])] = [:]

    /// Wraps a state machine.
    public init(_ machine: Machine) { self.machine = machine }

    /// What applying a command did.
    public enum Outcome: Sendable, Equatable {
        /// Applied now; the reply.
        case applied([UInt8])
        /// Applied before; the original reply.
        case duplicate([UInt8])
        /// Older than the client's latest command: the client has moved on; not applied.
        case stale
    }

    /// Applies `command` unless it was applied before.
    public mutating func apply(_ command: Command) -> Outcome {
        if let last = self.latest[command.client] {
            if command.sequence == last.sequence { return .duplicate(last.reply) }
            if command.sequence < last.sequence { return .stale }
        }
        let reply = self.machine.apply(command.payload)
        self.latest[command.client] = (command.sequence, reply)
        return .applied(reply)
    }

    /// Applies `payload` outside the session table, for a protocol whose own versions make
    /// each write take effect once (`ExecutionOrder.unordered`): nothing is remembered, and
    /// nothing is refused as a duplicate or as stale.
    public mutating func applyOutsideSessions(_ payload: [UInt8]) -> [UInt8] {
        self.machine.apply(payload)
    }

    /// Each client's latest applied command and its reply, sorted by client: the session
    /// table a snapshot must carry so that retries stay exactly-once after a restore.
    public var sessions: [(client: ClientID, sequence: UInt64, reply: [UInt8])] {
        self.latest.map { ($0.key, $0.value.sequence, $0.value.reply) }.sorted { $0.client < $1.client }
    }

    /// Restores a wrapper from a snapshot's machine and session table.
    public init(_ machine: Machine, sessions: [(client: ClientID, sequence: UInt64, reply: [UInt8])]) {
        self.machine = machine
        for session in sessions { self.latest[session.client] = (session.sequence, session.reply) }
    }

    /// The reply to `id` if that command was the client's latest and has been applied.
    public func cachedReply(for id: CommandID) -> [UInt8]? {
        guard let last = self.latest[id.client], last.sequence == id.sequence else { return nil }
        return last.reply
    }
}
