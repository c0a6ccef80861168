/// One client command: who sent it, its place in that client's sequence, and an opaque payload.
///
/// The protocol cores never look inside `payload`; the application state machine beside the
/// core does. `(client, sequence)` identifies the command for exactly-once application: a
/// retried command carries the same pair and is applied once.
public struct Command: Hashable, Sendable {
    /// The client that issued the command.
    public var client: ClientID
    /// The client's sequence number for this command, starting at 1 and increasing by one.
    public var sequence: UInt64
    /// The opaque application payload.
    public var payload: [UInt8]

    /// Creates a command.
    public init(client: ClientID, sequence: UInt64, payload: [UInt8]) {
        self.client = client
        self.sequence = sequence
        self.payload = payload
    }

    /// The command's identity, `(client, sequence)`.
    public var id: CommandID { CommandID(client: self.client, sequence: self.sequence) }
}

/// The identity of a command: `(client, sequence)`.
public struct CommandID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The client that issued the command.
    public var client: ClientID
    /// The client's sequence number.
    public var sequence: UInt64

    /// Creates a command identity.
    public init(client: ClientID, sequence: UInt64) {
        self.client = client
        self.sequence = sequence
    }

    public static func < (lhs: CommandID, rhs: CommandID) -> Bool {
        (lhs.client, lhs.sequence) < (rhs.client, rhs.sequence)
    }

    public var description: String { "c\(self.client).\(self.sequence)" }
}

/// A linearizable read handed to a core: the core says when it may be served locally.
public struct ReadRequest: Hashable, Sendable {
    /// A driver-chosen identity, unique per replica incarnation.
    public var id: UInt64
    /// What the read touches (the state machine's `footprint(of:)` of the query), for cores
    /// that order reads only after the writes they conflict with.
    public var footprint: Footprint

    /// Creates a read request.
    public init(id: UInt64, footprint: Footprint = Footprint(spans: nil, writes: false)) {
        self.id = id
        self.footprint = footprint
    }
}
