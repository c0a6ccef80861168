import SynodCore

extension Simulation {
    /// The fault injector: one random action, then sleep until the next.
    func nemesis() {
        guard self.faultsActive else { return }
        let faults = self.options.faults
        var actions: [Int] = []
        if faults.contains(.crash) { actions += [0, 0] }
        if faults.contains(.partition) { actions += [1] }
        if faults.contains(.transfer) { actions += [2] }
        if faults.contains(.rejoin) { actions += [3] }
        if faults.contains(.membership) { actions += [4] }
        if faults.contains(.slowFollower) { actions += [5] }
        if !actions.isEmpty {
            switch actions[self.random.integer(in: 0..<actions.count)] {
            case 0: self.crashRandomReplica()
            case 1: self.partitionRandomly()
            case 2: self.transferLeadership()
            case 3: self.isolateForRejoin()
            case 4: self.changeMembership()
            default: self.slowDownReplica()
            }
        }
        self.schedule(after: self.random.uniform(self.options.nemesisIntervalNanoseconds), .nemesis)
    }

    /// Crashes a live replica (the leader, half the time one is known) now, or (a code-level
    /// fault point, as in FoundationDB's simulation) in the middle of its next disk write, while
    /// records are still unsynced.
    func crashRandomReplica() {
        let live = self.nodes.indices.filter { self.nodes[$0].driver != nil && !self.nodes[$0].crashAtNextWrite }
        guard !live.isEmpty else { return }
        var victim = live[self.random.integer(in: 0..<live.count)]
        if let leader = self.believedLeader, live.contains(leader), self.random.chance(0.5) { victim = leader }
        if self.random.chance(0.5) {
            self.nodes[victim].crashAtNextWrite = true
        } else {
            self.crash(victim)
        }
    }

    /// Cuts links in one of three shapes: a symmetric split, an asymmetric cut (one direction
    /// only), or a bridge (two halves that cannot talk, and one replica that reaches both).
    /// Half the time a leader is known, it lands on the minority (or sending) side.
    func partitionRandomly() {
        let count = self.options.nodes
        guard count > 1 else { return }
        self.blocked = Array(repeating: false, count: count * count)
        var order = Array(0..<count)
        order.shuffle(using: &self.random)
        let shape = self.random.integer(in: 0..<3)
        if shape < 2, let leader = self.believedLeader, self.random.chance(0.5),
           let index = order.firstIndex(of: leader)
        {
            order.swapAt(0, index)
        }
        switch shape {
        case 0:
            let minority = Set(order.prefix(self.random.integer(in: 1...max(1, count / 2))))
            for from in 0..<count { for to in 0..<count where minority.contains(from) != minority.contains(to) {
                self.blocked[from * count + to] = true
            } }
        case 1:
            let senders = Set(order.prefix(self.random.integer(in: 1...max(1, count / 2))))
            for from in senders { for to in 0..<count where !senders.contains(to) { self.blocked[from * count + to] = true } }
        default:
            let bridge = order[0]
            let rest = order.dropFirst()
            let left = Set(rest.prefix(rest.count / 2))
            for from in 0..<count where from != bridge {
                for to in 0..<count where to != bridge && left.contains(from) != left.contains(to) {
                    self.blocked[from * count + to] = true
                }
            }
        }
        self.activePartition += 1
        self.statistics.partitions += 1
        let heal = self.random.uniform(self.options.faultDurationNanoseconds)
        if self.trace != nil {
            self.closeMark("partition", node: nil)
            let cuts = (0..<count).flatMap { from in (0..<count).filter { self.blocked[from * count + $0] }.map { "\(self.members[from])→\(self.members[$0])" } }
            let shapes = ["split", "one-way cut", "bridge"]
            self.mark("partition", node: nil, "partition (\(shapes[shape])): links cut \(cuts.joined(separator: " "))")
        }
        self.schedule(after: heal, .heal(partition: self.activePartition))
    }

    /// Asks the leader to hand leadership to another live replica.
    func transferLeadership() {
        guard let leader = self.believedLeader, self.nodes[leader].driver != nil else { return }
        let others = self.nodes.indices.filter { $0 != leader && self.nodes[$0].driver != nil }
        guard !others.isEmpty else { return }
        let target = others[self.random.integer(in: 0..<others.count)]
        guard self.nodes[leader].driver!.transferLeadership(to: self.members[target]) == nil else { return }
        self.statistics.transfersStarted += 1
        self.mark("transfer", node: leader, "leadership transfer asked from \(self.members[leader]) to \(self.members[target])")
        self.pendingTransfer = (target, self.now)
        self.drain(leader)
    }

    /// Asks the leader to move to a random configuration of the simulation's replicas: add a
    /// learner, promote one, remove or demote a voter, or replace several voters at once. At
    /// least a majority of the replicas stay voters, so the cluster keeps its fault tolerance
    /// margin; replicas left out idle (and may be added back later, with their old state).
    ///
    /// Only where the options protect a leader from a replica cut off from it (Pre-Vote): a
    /// replica removed without learning it is cut off for good, and without that protection it
    /// campaigns in ever higher terms and deposes every leader (Ongaro's thesis, §4.2.3), a
    /// known limit of the paper's algorithm rather than something to find again on every seed.
    func changeMembership() {
        guard self.replicaOptions.protectsLeaderFromRejoin,
              let leader = self.believedLeader, let current = self.nodes[leader].driver?.core.membership
        else { return }
        let count = self.options.nodes
        var voters = Set(current.voters.map { Int($0.rawValue) - 1 })
        var learners = Set(current.learners.map { Int($0.rawValue) - 1 })
        let outside = (0..<count).filter { !voters.contains($0) && !learners.contains($0) }
        let minimumVoters = count / 2 + 1
        func pick(_ from: [Int]) -> Int { from.sorted()[self.random.integer(in: 0..<from.count)] }
        switch self.random.integer(in: 0..<5) {
        case 0 where !outside.isEmpty:
            learners.insert(pick(outside))
        case 1 where !learners.isEmpty:
            let learner = pick(Array(learners))
            learners.remove(learner)
            voters.insert(learner)
        case 2 where voters.count > minimumVoters:
            let voter = pick(Array(voters))
            voters.remove(voter)
            if self.random.chance(0.5) { learners.insert(voter) }
        case 3 where !learners.isEmpty:
            learners.remove(pick(Array(learners)))
        default:
            // Replace: a random set of voters, at least a majority of the replicas.
            var order = Array(0..<count)
            order.shuffle(using: &self.random)
            voters = Set(order.prefix(self.random.integer(in: minimumVoters...count)))
            learners = Set(order.dropFirst(voters.count).filter { _ in self.random.chance(0.5) })
        }
        let ids = { (positions: Set<Int>) in positions.sorted().map { self.members[$0] } }
        guard self.nodes[leader].driver!.changeMembership(voters: ids(voters), learners: ids(learners)) == nil else { return }
        self.statistics.membershipChanges += 1
        self.mark("membership", node: leader,
            "configuration change asked: voters \(ids(voters).map(\.description).joined(separator: ", ")); learners \(ids(learners).map(\.description).joined(separator: ", "))")
        self.drain(leader)
    }

    /// Cuts one live replica that does not lead off, for at least a few election timeouts,
    /// then lets it back (`letBack`): from every other replica, or (half the time a leader is
    /// known) from the leader alone, so that it still reaches the rest and can ask them for
    /// votes the whole time.
    /// Makes a replica other than the leader slow (its syncs and every message to or from it
    /// take `slowFactor` times longer) for a fault duration or more.
    func slowDownReplica() {
        if let slow = self.slowReplica, self.now < slow.until { return }
        let candidates = self.nodes.indices.filter { $0 != self.believedLeader && self.nodes[$0].driver != nil }
        guard !candidates.isEmpty else { return }
        let node = candidates[self.random.integer(in: 0..<candidates.count)]
        let duration = 30 * self.options.tickNanoseconds + self.random.uniform(self.options.faultDurationNanoseconds)
        self.slowReplica = (node, self.now + duration)
        self.mark("slow", node: node, "\(self.members[node])'s disk and links \(Self.slowFactor) times slower", end: self.now + duration)
        self.statistics.slowdowns += 1
    }

    func isolateForRejoin() {
        guard self.isolated == nil else { return }
        let candidates = self.nodes.indices.filter { $0 != self.believedLeader && self.nodes[$0].driver != nil }
        guard self.options.nodes > 2, !candidates.isEmpty else { return }
        let node = candidates[self.random.integer(in: 0..<candidates.count)]
        self.isolated = (node, self.believedLeader, self.believedLeader != nil && self.random.chance(0.5))
        if let isolated = self.isolated {
            self.mark("isolated", node: node, isolated.fromLeaderOnly
                ? "\(self.members[node]) cut off from the leader \(self.members[isolated.leader!]) (rejoin fault)"
                : "\(self.members[node]) cut off from every replica (rejoin fault)")
        }
        let away = 30 * self.options.tickNanoseconds + self.random.uniform(self.options.faultDurationNanoseconds)
        self.schedule(after: away, .rejoin(node: node))
    }

    /// Whether the `rejoin` fault cuts the link between `from` and `to`.
    func cutOff(_ from: Int, _ to: Int) -> Bool {
        guard let isolated = self.isolated, from == isolated.node || to == isolated.node else { return false }
        return !isolated.fromLeaderOnly || from == isolated.leader || to == isolated.leader
    }

    /// The isolated replica rejoins. If the leader of when it left still leads (it kept its
    /// majority all along), it is watched for 40 ticks: losing leadership then is a disruption.
    func letBack(_ node: Int) {
        guard let isolated = self.isolated, isolated.node == node else { return }
        self.isolated = nil
        self.closeMark("isolated", node: node)
        self.statistics.rejoins += 1
        guard let leader = isolated.leader, leader == self.believedLeader else { return }
        self.rejoinWatch = RejoinWatch(
            node: node, leader: leader, healedAt: self.now, until: self.now + 40 * self.options.tickNanoseconds)
    }

    /// Replica `position` stopped leading (or campaigns): a disruption if a rejoin watch holds
    /// it. It is a violation only where nothing else could explain it (no fault but `rejoin`,
    /// `clock-drift` and `client-loss`) and the protocol's options claim the protection.
    func leaderLostLeadership(_ position: Int) {
        guard let watch = self.rejoinWatch, watch.leader == position else { return }
        self.rejoinWatch = nil
        guard self.now <= watch.until else { return }
        self.statistics.rejoinDisruptions += 1
        let quiet: FaultSet = [.rejoin, .clockDrift, .clientLoss]
        guard self.replicaOptions.protectsLeaderFromRejoin, self.options.faults.isSubset(of: quiet) else { return }
        self.violations.append(InvariantViolation(
            invariant: "rejoin-disruption", node: self.members[position],
            detail: "\(self.members[watch.node]) rejoined after being cut off, and \(self.members[position]), "
                + "which kept its majority, lost leadership \((self.now - watch.healedAt) / 1_000_000) ms later"))
    }

    func healPartition() {
        self.blocked = Array(repeating: false, count: self.options.nodes * self.options.nodes)
        self.closeMark("partition", node: nil)
    }

    /// Splits the network as the fixed partition says.
    func splitFixed() {
        guard let partition = self.options.fixedPartition else { return }
        let count = self.options.nodes
        let minority = Set(partition.minority)
        self.blocked = Array(repeating: false, count: count * count)
        for from in 0..<count { for to in 0..<count where minority.contains(from) != minority.contains(to) {
            self.blocked[from * count + to] = true
        } }
        self.activePartition += 1
        self.statistics.partitions += 1
        self.mark("partition", node: nil, "fixed partition: \(partition.minority.map { self.members[$0].description }.joined(separator: ", ")) cut off from the others")
    }

    /// Ends the fault phase: heal the network, restart every crashed replica, stop loss.
    func endFaultPhase() {
        guard self.faultPhaseEnd == nil else { return }
        self.faultPhaseEnd = self.now
        self.faultsActive = false
        self.mark("faults-end", node: nil, "faults stop: partitions heal, crashed replicas restart, no more loss")
        self.activePartition += 1
        self.healPartition()
        if let isolated = self.isolated { self.letBack(isolated.node) }
        for position in self.nodes.indices { self.nodes[position].crashAtNextWrite = false }
        for position in self.nodes.indices where self.nodes[position].driver == nil {
            self.restart(position)
        }
    }
}
