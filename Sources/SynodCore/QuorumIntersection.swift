/// The fewest members that sets of the given sizes, drawn from `memberCount` members, must have
/// in common: with sizes a₁…aₖ, the adversary spreads the sets as far apart as it can, and
/// at least `max(0, Σaᵢ − (k−1)·n)` members lie in all of them. Every quorum system below is
/// derived from predicates over this one function (and property-tested against explicit sets).
public func minimumCommonMembers(memberCount: Int, sizes: [Int]) -> Int {
    precondition(memberCount >= 1 && sizes.allSatisfy { (0...memberCount).contains($0) }, "set sizes within the membership")
    guard let smallest = sizes.min() else { return memberCount }
    return min(smallest, max(0, sizes.reduce(0, +) - (sizes.count - 1) * memberCount))
}

/// The least size in `1...memberCount` that satisfies `predicate`, if any.
func leastSize(memberCount: Int, where predicate: (Int) -> Bool) -> Int? {
    (1...memberCount).first(where: predicate)
}

/// Fast Paxos quorums (Lamport, "Fast Paxos", 2006): a classic quorum for classic rounds and
/// recovery, a larger fast quorum for rounds where any acceptor may accept a client's value
/// directly. Safety needs any two classic quorums to intersect, and any two fast quorums and
/// any classic quorum to share a member (so a recovering coordinator sees which value a fast
/// quorum may have chosen). With majority classic quorums the fast quorum is ⌈3n/4⌉.
public struct FastPaxosQuorums: Sendable, Equatable {
    /// Number of acceptors.
    public let memberCount: Int
    /// Classic (and recovery) quorum size.
    public let classicSize: Int
    /// Fast quorum size.
    public let fastSize: Int

    /// The predicate: classic quorums intersect pairwise; two fast quorums and a classic one
    /// share a member.
    public static func isSafe(memberCount: Int, classicSize: Int, fastSize: Int) -> Bool {
        minimumCommonMembers(memberCount: memberCount, sizes: [classicSize, classicSize]) >= 1
            && minimumCommonMembers(memberCount: memberCount, sizes: [fastSize, fastSize, classicSize]) >= 1
    }

    /// Majority classic quorums and the smallest fast quorum the predicate allows.
    public static func majority(of memberCount: Int) -> FastPaxosQuorums {
        precondition(memberCount >= 1, "a cluster has at least one member")
        let classic = memberCount / 2 + 1
        let fast = leastSize(memberCount: memberCount) { Self.isSafe(memberCount: memberCount, classicSize: classic, fastSize: $0) }!
        return FastPaxosQuorums(memberCount: memberCount, classicSize: classic, fastSize: fast, checked: ())
    }

    /// Given sizes; throws unless they satisfy the predicate.
    public init(memberCount: Int, classicSize: Int, fastSize: Int) throws {
        guard memberCount >= 1, (1...memberCount).contains(classicSize), (1...memberCount).contains(fastSize) else {
            throw ConfigurationError("Fast Paxos quorum sizes must lie in 1...\(memberCount)")
        }
        guard Self.isSafe(memberCount: memberCount, classicSize: classicSize, fastSize: fastSize) else {
            throw ConfigurationError(
                "Fast Paxos with \(memberCount) acceptors: two fast quorums of \(fastSize) and a classic quorum of \(classicSize) need not share an acceptor")
        }
        self.init(memberCount: memberCount, classicSize: classicSize, fastSize: fastSize, checked: ())
    }

    private init(memberCount: Int, classicSize: Int, fastSize: Int, checked: Void) {
        self.memberCount = memberCount
        self.classicSize = classicSize
        self.fastSize = fastSize
    }
}

/// EPaxos quorums (Moraru, Andersen, Kaminsky, SOSP 2013), for n = 2f + 1 replicas: a command
/// leader commits on the fast path when a fast quorum (itself included) agrees on the
/// dependencies, else on the slow path with a majority. Recovery, with the leader possibly
/// failed, asks a majority that excludes it; it must find at least ⌊(f+1)/2⌋ replicas of any
/// fast quorum there to tell a committed fast-path value. Hence the fast quorum
/// f + ⌊(f+1)/2⌋ (with the leader), smaller than Fast Paxos's.
public struct EPaxosQuorums: Sendable, Equatable {
    /// Number of replicas.
    public let memberCount: Int
    /// Failures tolerated: ⌊(n−1)/2⌋.
    public let faultsTolerated: Int
    /// Slow-path (Paxos-accept) quorum: f + 1.
    public let slowSize: Int
    /// Fast-path quorum, the command leader included.
    public let fastSize: Int

    /// The predicate: any majority without the leader shares at least ⌊(f+1)/2⌋ replicas with
    /// the fast quorum less the leader.
    public static func isSafe(memberCount: Int, fastSize: Int) -> Bool {
        let faults = (memberCount - 1) / 2
        guard fastSize >= 1, memberCount >= 3 else { return fastSize == memberCount }
        let others = memberCount - 1
        let common = minimumCommonMembers(memberCount: others, sizes: [fastSize - 1, faults + 1])
        return common >= (faults + 1) / 2 && fastSize >= faults + 1
    }

    /// The smallest safe fast quorum for `memberCount` replicas.
    public init(memberCount: Int) {
        precondition(memberCount >= 1, "a cluster has at least one member")
        let fast = leastSize(memberCount: memberCount) { Self.isSafe(memberCount: memberCount, fastSize: $0) }!
        self.init(memberCount: memberCount, fastSize: fast, checked: ())
    }

    /// A given fast quorum size; throws unless it satisfies the predicate.
    public init(memberCount: Int, fastSize: Int) throws {
        guard memberCount >= 1, (1...memberCount).contains(fastSize) else {
            throw ConfigurationError("the EPaxos fast quorum must lie in 1...\(memberCount)")
        }
        guard Self.isSafe(memberCount: memberCount, fastSize: fastSize) else {
            throw ConfigurationError(
                "EPaxos with \(memberCount) replicas: a fast quorum of \(fastSize) can hide from a recovery majority")
        }
        self.init(memberCount: memberCount, fastSize: fastSize, checked: ())
    }

    private init(memberCount: Int, fastSize: Int, checked: Void) {
        self.memberCount = memberCount
        self.faultsTolerated = (memberCount - 1) / 2
        self.slowSize = self.faultsTolerated + 1
        self.fastSize = fastSize
    }
}

/// Byzantine quorums (PBFT, Castro and Liskov, OSDI 1999): with f of n replicas arbitrarily
/// faulty, any two quorums must share at least f + 1 replicas (so at least one correct replica
/// saw both), and a quorum must be reachable with f replicas silent (size at most n − f). Both
/// hold exactly when n ≥ 3f + 1; at n = 3f + 1 a quorum is 2f + 1.
public struct ByzantineQuorums: Sendable, Equatable {
    /// Number of replicas.
    public let memberCount: Int
    /// Byzantine faults tolerated.
    public let faultsTolerated: Int
    /// Quorum size (prepared and committed certificates, checkpoints, view changes).
    public let quorumSize: Int
    /// Matching replies a client needs: f + 1 (at least one from a correct replica).
    public var replyQuorum: Int { self.faultsTolerated + 1 }

    /// The predicate: two quorums share f + 1; a quorum survives f silent replicas.
    public static func isSafe(memberCount: Int, faults: Int, quorumSize: Int) -> Bool {
        faults >= 0 && quorumSize <= memberCount - faults
            && minimumCommonMembers(memberCount: memberCount, sizes: [quorumSize, quorumSize]) >= faults + 1
    }

    /// The most faults `memberCount` replicas tolerate, with the smallest safe quorum.
    public init(memberCount: Int) throws {
        guard memberCount >= 1 else { throw ConfigurationError("a cluster has at least one member") }
        let faults = (memberCount - 1) / 3
        try self.init(memberCount: memberCount, faults: faults)
    }

    /// `faults` tolerated with the smallest safe quorum; throws when no quorum size is safe
    /// (n < 3f + 1).
    public init(memberCount: Int, faults: Int) throws {
        guard memberCount >= 1, faults >= 0 else { throw ConfigurationError("a cluster has at least one member; faults are not negative") }
        guard let size = leastSize(memberCount: memberCount, where: { Self.isSafe(memberCount: memberCount, faults: faults, quorumSize: $0) }) else {
            throw ConfigurationError("\(memberCount) replicas cannot tolerate \(faults) Byzantine faults: that needs at least \(3 * faults + 1)")
        }
        try self.init(memberCount: memberCount, faults: faults, quorumSize: size)
    }

    /// Given sizes; throws unless they satisfy the predicate.
    public init(memberCount: Int, faults: Int, quorumSize: Int) throws {
        guard memberCount >= 1, faults >= 0, (1...memberCount).contains(quorumSize) else {
            throw ConfigurationError("a Byzantine quorum must lie in 1...\(memberCount)")
        }
        guard Self.isSafe(memberCount: memberCount, faults: faults, quorumSize: quorumSize) else {
            throw ConfigurationError(
                "\(memberCount) replicas, \(faults) faulty: quorums of \(quorumSize) need not share \(faults + 1) replicas or survive \(faults) silent ones")
        }
        self.memberCount = memberCount
        self.faultsTolerated = faults
        self.quorumSize = quorumSize
    }
}
