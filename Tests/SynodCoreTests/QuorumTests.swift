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
