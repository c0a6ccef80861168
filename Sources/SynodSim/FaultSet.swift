/// The faults a simulation may inject. `--faults all` enables every one.
public struct FaultSet: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Messages between replicas are lost.
    public static let loss = FaultSet(rawValue: 1 << 0)
    /// Messages are delivered twice.
    public static let duplication = FaultSet(rawValue: 1 << 1)
    /// Some messages are held back so later ones overtake them.
    public static let reordering = FaultSet(rawValue: 1 << 2)
    /// Per-message latency is drawn from a wide distribution instead of a fixed value.
    public static let latency = FaultSet(rawValue: 1 << 3)
    /// The network splits (symmetric, asymmetric, one-node bridge) and heals.
    public static let partition = FaultSet(rawValue: 1 << 4)
    /// Replicas crash (losing unsynced writes) and restart from disk.
    public static let crash = FaultSet(rawValue: 1 << 5)
    /// A crash may tear the last record written, which recovery then discards.
    public static let tornWrite = FaultSet(rawValue: 1 << 6)
    /// Replicas' clocks tick at different rates.
    public static let clockDrift = FaultSet(rawValue: 1 << 7)
    /// Client requests and replies are lost.
    public static let clientLoss = FaultSet(rawValue: 1 << 8)
    /// The leader is asked to hand leadership to another replica (where the protocol can).
    public static let transfer = FaultSet(rawValue: 1 << 9)
    /// One replica (not the leader) is cut off from every other for several election
    /// timeouts, then rejoins: it must not depose a leader that kept its majority.
    public static let rejoin = FaultSet(rawValue: 1 << 10)
    /// The leader is asked to change the membership (where the protocol can): add and remove
    /// learners and voters, promote and demote, replace several voters at once.
    public static let membership = FaultSet(rawValue: 1 << 11)
    /// Leaders serve reads under a lease (where the protocol has leases: its `lease-reads`
    /// option is turned on), while clocks drift up to the protocol's bound.
    public static let lease = FaultSet(rawValue: 1 << 12)
    /// One replica's disk and network become `slowFactor` times slower for a while; the
    /// protocol's pipelining window in bytes is made small (where it has one: Raft's
    /// `max-inflight-bytes`), so that it binds, and the monitor checks the leader keeps to it.
    public static let slowFollower = FaultSet(rawValue: 1 << 13)

    /// Every fault, with its command-line name and a description, in a stable order.
    public static let catalogue: [(name: String, fault: FaultSet, summary: String)] = [
        ("loss", .loss, "messages between replicas are lost"),
        ("duplication", .duplication, "messages are delivered twice"),
        ("reordering", .reordering, "messages are held back and overtaken"),
        ("latency", .latency, "per-message latency varies widely"),
        ("partition", .partition, "symmetric, asymmetric and bridge partitions that heal"),
        ("crash", .crash, "replicas crash, losing unsynced writes, and restart from disk"),
        ("torn-write", .tornWrite, "a crash may tear the last record written"),
        ("clock-drift", .clockDrift, "replicas' clocks tick at different rates"),
        ("client-loss", .clientLoss, "client requests and replies are lost"),
        ("transfer", .transfer, "the leader is asked to transfer leadership to another replica"),
        ("rejoin", .rejoin, "one replica is cut off for several election timeouts, then rejoins"),
        ("membership", .membership, "the leader is asked to add, remove, promote or replace members"),
        ("lease", .lease, "leaders serve reads under a lease, clocks drifting up to the protocol's bound"),
        ("slow-follower", .slowFollower, "one replica's disk and network become 100 times slower for a while"),
    ]

    /// Every fault.
    public static let all: FaultSet = catalogue.reduce(into: []) { $0.formUnion($1.fault) }

    /// Parses `all`, `none`, or a comma-separated list of fault names.
    public init(parsing text: String) throws {
        self = []
        for name in text.split(separator: ",").map({ String($0.filter { !$0.isWhitespace }) }) {
            switch name {
            case "all": self.formUnion(.all)
            case "none", "": break
            default:
                guard let entry = Self.catalogue.first(where: { $0.name == name }) else {
                    let names = Self.catalogue.map(\.name).joined(separator: ", ")
                    throw SimulationError("unknown fault '\(name)'; known faults: all, none, \(names)")
                }
                self.formUnion(entry.fault)
            }
        }
    }

    public var description: String {
        if self == .all { return "all" }
        if self.isEmpty { return "none" }
        return Self.catalogue.filter { self.contains($0.fault) }.map(\.name).joined(separator: ",")
    }
}

/// A bad simulation setting, with a message that names it.
public struct SimulationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
