import SynodCore
import Testing

@Suite("Quorums from intersection predicates")
struct QuorumTests {
    @Test("majority quorums of two phases always intersect", arguments: 1...15)
    func majoritiesIntersect(memberCount: Int) {
        let quorum = QuorumSystem.majority(of: memberCount)
        #expect(quorum.phase1Size + quorum.phase2Size > memberCount)
        #expect(2 * quorum.phase1Size > memberCount)
        // The smallest quorum that still intersects: one fewer would allow two disjoint ones.
        #expect(2 * (quorum.phase1Size - 1) <= memberCount)
    }

    @Test("flexible quorums are accepted exactly when every phase-1 quorum meets every phase-2 quorum",
          arguments: 1...15)
    func flexibleQuorumPredicate(memberCount: Int) {
        for phase1 in 1...memberCount {
            for phase2 in 1...memberCount {
                let accepted = (try? QuorumSystem.flexible(memberCount: memberCount, phase1Size: phase1, phase2Size: phase2)) != nil
                // Brute force: can a phase-1 set and a phase-2 set be disjoint? Take the first
                // `phase1` members and the last `phase2`.
                let disjointPossible = phase1 + phase2 <= memberCount
                let twoLeadersPossible = 2 * phase1 <= memberCount
                #expect(accepted == (!disjointPossible && !twoLeadersPossible),
                        "n=\(memberCount) q1=\(phase1) q2=\(phase2)")
            }
        }
    }

    @Test("the quorum value is the largest value a phase-2 quorum has reached")
    func quorumValue() {
        let quorum = QuorumSystem.majority(of: 5)
        #expect(quorum.phase2QuorumValue([9, 1, 7, 3, 5]) == 5)
        #expect(quorum.phase2QuorumValue([0, 0, 0, 4, 4]) == 0)
        let flexible = try! QuorumSystem.flexible(memberCount: 5, phase1Size: 4, phase2Size: 2)
        #expect(flexible.phase2QuorumValue([9, 1, 7, 3, 5]) == 7)
    }

    @Test("every subset check agrees with the size predicate", arguments: [3, 4, 5, 6, 7])
    func subsetIntersection(memberCount: Int) {
        let quorum = QuorumSystem.majority(of: memberCount)
        let subsets = (0..<(1 << memberCount)).filter { quorum.isPhase1Quorum($0.nonzeroBitCount) }
        for first in subsets { for second in subsets { #expect(first & second != 0) } }
    }
}

/// Every subset of `memberCount` members with `size` of them, as bit masks.
func subsets(of memberCount: Int, size: Int) -> [Int] {
    (0..<(1 << memberCount)).filter { $0.nonzeroBitCount == size }
}

@Suite("Fast Paxos, EPaxos and Byzantine quorums, derived from their intersection predicates")
struct FastAndByzantineQuorumTests {
    @Test("the fewest common members of sized sets matches exhaustive search over explicit sets", arguments: 1...6)
    func minimumCommonMembersIsExact(memberCount: Int) {
        let all = (0...memberCount).map { subsets(of: memberCount, size: $0) }
        for a in 0...memberCount {
            for b in 0...memberCount {
                var pairMinimum = memberCount
                for x in all[a] { for y in all[b] { pairMinimum = min(pairMinimum, (x & y).nonzeroBitCount) } }
                #expect(minimumCommonMembers(memberCount: memberCount, sizes: [a, b]) == pairMinimum, "n=\(memberCount) \(a),\(b)")
                for c in 0...memberCount where memberCount <= 5 {
                    var tripleMinimum = memberCount
                    for x in all[a] { for y in all[b] { for z in all[c] { tripleMinimum = min(tripleMinimum, (x & y & z).nonzeroBitCount) } } }
                    #expect(minimumCommonMembers(memberCount: memberCount, sizes: [a, b, c]) == tripleMinimum)
                }
            }
        }
    }

    @Test("Fast Paxos: with majority classic quorums the fast quorum is ⌈3n/4⌉, and ⌊3n/4⌋ is refused wherever it differs", arguments: 1...15)
    func fastPaxos(memberCount: Int) throws {
        let quorums = FastPaxosQuorums.majority(of: memberCount)
        #expect(quorums.classicSize == memberCount / 2 + 1)
        #expect(quorums.fastSize == (3 * memberCount + 3) / 4, "⌈3n/4⌉")
        let floor = 3 * memberCount / 4
        let floorAccepted = (try? FastPaxosQuorums(memberCount: memberCount, classicSize: quorums.classicSize, fastSize: max(floor, 1))) != nil
        #expect(floorAccepted == (max(floor, 1) >= quorums.fastSize), "⌊3n/4⌋ = \(floor) at n = \(memberCount)")
        // One smaller than derived is unsafe: the derivation finds the least size.
        if quorums.fastSize > 1 {
            #expect(throws: ConfigurationError.self) {
                try FastPaxosQuorums(memberCount: memberCount, classicSize: quorums.classicSize, fastSize: quorums.fastSize - 1)
            }
        }
        // Explicit sets (small clusters): two fast quorums and a classic one always share a member.
        if memberCount <= 7 {
            let fast = subsets(of: memberCount, size: quorums.fastSize)
            let classic = subsets(of: memberCount, size: quorums.classicSize)
            for x in fast { for y in fast { for z in classic { #expect(x & y & z != 0) } } }
        }
    }

    @Test("EPaxos: the fast quorum is f + ⌊(f+1)/2⌋ with the leader, and n/2 + leader is refused at n = 7", arguments: [1, 3, 5, 7, 9, 11, 13, 15])
    func epaxos(memberCount: Int) throws {
        let quorums = EPaxosQuorums(memberCount: memberCount)
        let f = (memberCount - 1) / 2
        #expect(quorums.faultsTolerated == f && quorums.slowSize == f + 1)
        #expect(quorums.fastSize == max(1, f + (f + 1) / 2), "the leader alone when n = 1")
        if memberCount == 7 {
            #expect(throws: ConfigurationError.self) { try EPaxosQuorums(memberCount: 7, fastSize: 7 / 2 + 1) }
        }
        if quorums.fastSize > f + 1 {
            #expect(throws: ConfigurationError.self) { try EPaxosQuorums(memberCount: memberCount, fastSize: quorums.fastSize - 1) }
        }
        // Explicit sets: leader 0; every fast quorum with it against every majority without it.
        if memberCount >= 3 && memberCount <= 7 {
            let withLeader = subsets(of: memberCount, size: quorums.fastSize).filter { $0 & 1 == 1 }
            let recovery = subsets(of: memberCount, size: f + 1).filter { $0 & 1 == 0 }
            for fast in withLeader {
                for majority in recovery { #expect((fast & ~1 & majority).nonzeroBitCount >= (f + 1) / 2) }
            }
        }
    }

    @Test("Byzantine: n ≥ 3f + 1, quorums share f + 1, 2f + 1 at n = 3f + 1, and 2f + 1 refused when n is larger", arguments: 1...15)
    func byzantine(memberCount: Int) throws {
        let quorums = try ByzantineQuorums(memberCount: memberCount)
        let f = (memberCount - 1) / 3
        #expect(quorums.faultsTolerated == f && quorums.replyQuorum == f + 1)
        if memberCount == 3 * f + 1 { #expect(quorums.quorumSize == 2 * f + 1) }
        if memberCount > 3 * f + 1 && f > 0 {
            #expect(throws: ConfigurationError.self) { try ByzantineQuorums(memberCount: memberCount, faults: f, quorumSize: 2 * f + 1) }
        }
        #expect(throws: ConfigurationError.self) { try ByzantineQuorums(memberCount: memberCount, faults: f + 1) }
        if memberCount <= 7 {
            let all = subsets(of: memberCount, size: quorums.quorumSize)
            for x in all { for y in all { #expect((x & y).nonzeroBitCount >= f + 1) } }
        }
    }
}

@Suite("Deterministic randomness")
struct DeterministicRandomTests {
    @Test("the same seed gives the same sequence; different seeds differ")
    func sameSeedSameSequence() {
        var first = DeterministicRandom(seed: 42)
        var second = DeterministicRandom(seed: 42)
        var third = DeterministicRandom(seed: 43)
        let a = (0..<100).map { _ in first.next() }
        let b = (0..<100).map { _ in second.next() }
        let c = (0..<100).map { _ in third.next() }
        #expect(a == b)
        #expect(a != c)
    }

    @Test("chance respects its probability roughly and exactly at the ends")
    func chance() {
        var random = DeterministicRandom(seed: 1)
        let hits = (0..<10_000).filter { _ in random.chance(0.25) }.count
        #expect((2_000...3_000).contains(hits))
        #expect(!(0..<100).contains { _ in random.chance(0) })
        #expect((0..<100).allSatisfy { _ in random.chance(1) })
    }
}
