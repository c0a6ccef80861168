/// The identity of one replica in a cluster.
///
/// A small `Comparable` value so that membership lists sort deterministically and
/// quorum arithmetic never depends on `Dictionary` or `Set` iteration order.
public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The numeric identity; unique within a cluster.
    public var rawValue: UInt16

    /// Creates a node identity.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Creates a node identity from an integer literal-like value.
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "n\(self.rawValue)" }
}

/// The identity of one client of the replicated service.
public typealias ClientID = UInt64
