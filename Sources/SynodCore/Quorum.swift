/// Which sets of replicas form quorums, computed from intersection predicates rather than
/// hard-coded sizes.
///
/// Phase-1 quorums (elections, Paxos prepare) and phase-2 quorums (replication, Paxos accept)
/// may differ (flexible Paxos) as long as every phase-1 quorum intersects every phase-2
/// quorum: `phase1Size + phase2Size > memberCount`. Majorities satisfy it for both phases.
public struct QuorumSystem: Sendable, Equatable {
    /// Number of replicas.
    public let memberCount: Int
    /// Size of a phase-1 (election / prepare) quorum.
    public let phase1Size: Int
    /// Size of a phase-2 (replication / accept) quorum.
    public let phase2Size: Int

    /// Majority quorums for both phases: ⌊n/2⌋ + 1.
    public static func majority(of memberCount: Int) -> QuorumSystem {
        precondition(memberCount >= 1, "a cluster has at least one member")
        let size = memberCount / 2 + 1
        return QuorumSystem(uncheckedMemberCount: memberCount, phase1Size: size, phase2Size: size)
    }

    /// Flexible quorums; throws unless every phase-1 quorum meets every phase-2 quorum and
    /// every phase-1 quorum meets every other (so two leaders cannot be elected in one epoch).
    public static func flexible(memberCount: Int, phase1Size: Int, phase2Size: Int) throws -> QuorumSystem {
        guard memberCount >= 1 else { throw ConfigurationError("memberCount must be at least 1") }
        guard (1...memberCount).contains(phase1Size), (1...memberCount).contains(phase2Size) else {
            throw ConfigurationError("quorum sizes must lie in 1...\(memberCount)")
        }
        guard phase1Size + phase2Size > memberCount else {
            throw ConfigurationError(
                "phase1Size \(phase1Size) + phase2Size \(phase2Size) must exceed memberCount \(memberCount)")
        }
        guard 2 * phase1Size > memberCount else {
            throw ConfigurationError("two phase-1 quorums of \(phase1Size) in \(memberCount) need not intersect")
        }
        return QuorumSystem(uncheckedMemberCount: memberCount, phase1Size: phase1Size, phase2Size: phase2Size)
    }

    private init(uncheckedMemberCount: Int, phase1Size: Int, phase2Size: Int) {
        self.memberCount = uncheckedMemberCount
        self.phase1Size = phase1Size
        self.phase2Size = phase2Size
    }

    /// True when `count` distinct replicas form a phase-1 quorum.
    @inlinable
    public func isPhase1Quorum(_ count: Int) -> Bool { count >= self.phase1Size }

    /// True when `count` distinct replicas form a phase-2 quorum.
    @inlinable
    public func isPhase2Quorum(_ count: Int) -> Bool { count >= self.phase2Size }

    /// The largest value that at least a phase-2 quorum of `values` reach (one value per
    /// replica): the commit index from match indexes.
    public func phase2QuorumValue(_ values: [UInt64]) -> UInt64 {
        precondition(values.count == self.memberCount, "one value per member")
        let sorted = values.sorted(by: >)
        return sorted[self.phase2Size - 1]
    }
}
