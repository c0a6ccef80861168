import SynodCore

extension Simulation {
    /// The fault injector: one random action, then sleep until the next.
    func nemesis() {
        guard self.faultsActive else { return }
        let faults = self.options.faults
        var actions: [Int] = []
        if faults.contains(.crash) { actions += [0, 0] }
        if faults.contains(.partition) { actions += [1] }
        if !actions.isEmpty {
            switch actions[self.random.integer(in: 0..<actions.count)] {
            case 0: self.crashRandomReplica()
            default: self.partitionRandomly()
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
        self.schedule(after: self.random.uniform(self.options.faultDurationNanoseconds),
                      .heal(partition: self.activePartition))
    }

    func healPartition() {
        self.blocked = Array(repeating: false, count: self.options.nodes * self.options.nodes)
    }

    /// Ends the fault phase: heal the network, restart every crashed replica, stop loss.
    func endFaultPhase() {
        guard self.faultPhaseEnd == nil else { return }
        self.faultPhaseEnd = self.now
        self.faultsActive = false
        self.activePartition += 1
        self.healPartition()
        for position in self.nodes.indices { self.nodes[position].crashAtNextWrite = false }
        for position in self.nodes.indices where self.nodes[position].driver == nil {
            self.restart(position)
        }
    }
}
