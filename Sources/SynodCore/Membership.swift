/// Who takes part in a cluster, for a protocol whose membership can change while it runs
/// (Raft's joint consensus, thesis §4.3): the voters, the learners, and while a change is under
/// way, the voters being left.
///
/// A configuration is *joint* while `outgoing` is not empty: then every decision (an election,
/// a commit, a read's confirmation) needs a majority of `voters` **and** a majority of
/// `outgoing`, so neither the old nor the new voters can decide alone.
public struct Membership: Sendable, Hashable, CustomStringConvertible {
    /// The voters (of the new configuration, while joint), sorted.
    public private(set) var voters: [NodeID]
    /// Members that receive the log but never vote nor count toward a quorum, sorted; none is
    /// also in `voters`.
    public private(set) var learners: [NodeID]
    /// While joint: the voters of the configuration being left, sorted. Empty otherwise.
    public private(set) var outgoing: [NodeID]
    /// Where members listen for their peers (`HOST:PORT`), as the runtime that added them gave
    /// it: replicated with the configuration so every member (and a restarted one) can reach a
    /// member that joined later. Only members' entries are kept; the cores never read them.
    public private(set) var addresses: [NodeID: String]

    /// Creates a membership; the lists are sorted and deduplicated, a learner that is also a
    /// voter counts as a voter, and addresses of non-members are dropped.
    public init(voters: [NodeID], learners: [NodeID] = [], outgoing: [NodeID] = [], addresses: [NodeID: String] = [:]) {
        self.voters = Array(Set(voters)).sorted()
        let voting = Set(voters)
        self.learners = Array(Set(learners).subtracting(voting)).sorted()
        self.outgoing = Array(Set(outgoing)).sorted()
        let members = voting.union(learners).union(outgoing)
        self.addresses = addresses.filter { members.contains($0.key) }
    }

    /// Whether a change is under way (decisions need both majorities).
    public var isJoint: Bool { !self.outgoing.isEmpty }

    /// Whether `node` votes: it is a voter of the new or (while joint) the old configuration.
    public func isVoter(_ node: NodeID) -> Bool { self.voters.contains(node) || self.outgoing.contains(node) }

    /// Whether `node` is in the configuration at all (voter, learner or outgoing voter).
    public func contains(_ node: NodeID) -> Bool { self.isVoter(node) || self.learners.contains(node) }

    /// Every member, sorted: voters, outgoing voters and learners.
    public var everyone: [NodeID] { Array(Set(self.voters).union(self.outgoing).union(self.learners)).sorted() }

    /// The configuration this joint one leads to (itself when not joint).
    public var leavingJoint: Membership { Membership(voters: self.voters, learners: self.learners, addresses: self.addresses) }

    /// Why `voters` and `learners` cannot form a configuration, or `nil`.
    public static func problem(voters: [NodeID], learners: [NodeID]) -> String? {
        if voters.isEmpty { return "a configuration needs at least one voter" }
        if Set(voters).count != voters.count { return "voters \(voters) contain a duplicate" }
        if Set(learners).count != learners.count { return "learners \(learners) contain a duplicate" }
        if let both = voters.first(where: learners.contains) { return "\(both) cannot be both a voter and a learner" }
        return nil
    }

    public var description: String {
        var text = "voters " + self.voters.map(\.description).joined(separator: ",")
        if !self.learners.isEmpty { text += " learners " + self.learners.map(\.description).joined(separator: ",") }
        if self.isJoint { text += " (joint with " + self.outgoing.map(\.description).joined(separator: ",") + ")" }
        return text
    }
}

extension Membership: WireCodable {
    /// Most members one decoded configuration may name in each list.
    public static let maximumMembers = 1024
    /// Longest address, in bytes.
    public static let maximumAddressBytes = 300

    public func encode(into writer: inout WireWriter) {
        for list in [self.voters, self.learners, self.outgoing] {
            writer.varint(UInt64(list.count))
            for node in list { node.encode(into: &writer) }
        }
        writer.varint(UInt64(self.addresses.count))
        for (node, address) in self.addresses.sorted(by: { $0.key < $1.key }) {
            node.encode(into: &writer)
            writer.data(Array(address.utf8))
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Membership {
        var lists: [[NodeID]] = []
        for what in ["voters", "learners", "outgoing voters"] {
            var list: [NodeID] = []
            for _ in 0..<(try reader.count(limit: Self.maximumMembers, what: what)) {
                list.append(try NodeID.decode(from: &reader))
            }
            lists.append(list)
        }
        guard Membership.problem(voters: lists[0], learners: lists[1]) == nil, Set(lists[2]).count == lists[2].count else {
            throw .malformed("configuration with voters \(lists[0]), learners \(lists[1]), outgoing \(lists[2])")
        }
        let members = Set(lists.joined())
        var addresses: [NodeID: String] = [:]
        for _ in 0..<(try reader.count(limit: Self.maximumMembers, what: "addresses")) {
            let node = try NodeID.decode(from: &reader)
            let address = String(decoding: try reader.data(limit: Self.maximumAddressBytes, what: "address"), as: UTF8.self)
            guard members.contains(node), addresses.updateValue(address, forKey: node) == nil else {
                throw .malformed("address of \(node), which is not a member or has two")
            }
        }
        return Membership(voters: lists[0], learners: lists[1], outgoing: lists[2], addresses: addresses)
    }
}

/// Why a replica did not start a membership change.
public enum MembershipChangeRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The protocol's membership is fixed.
    case unsupported
    /// This replica does not lead; `hint` is the leader it knows of, if any.
    case notLeader(hint: NodeID?)
    /// A change is still under way (not yet committed, or its joint configuration not yet
    /// left), or this leader has not yet committed an entry of its own term, or it is handing
    /// leadership over: try again shortly.
    case busy(String)
    /// The configuration asked for is not valid.
    case invalid(String)
    /// A learner to be promoted is too far behind the leader's log.
    case learnerBehind(NodeID, entries: UInt64)

    public var description: String {
        switch self {
        case .unsupported: return "this protocol's membership cannot change"
        case .notLeader(let hint): return "this replica does not lead" + (hint.map { "; the leader is \($0)" } ?? "")
        case .busy(let reason): return reason
        case .invalid(let reason): return reason
        case .learnerBehind(let node, let entries): return "learner \(node) is \(entries) entries behind the leader; promote it once it has caught up"
        }
    }
}
