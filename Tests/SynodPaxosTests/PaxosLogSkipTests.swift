import SynodCore
import SynodPaxos
import Testing

/// Mencius's skip while proposing: a proposer that holds more of the slots than another does
/// not hold the other's values back.
@Suite("Paxos log skipping")
struct PaxosLogSkipTests {
    /// Runs replicas 1 and 2 as closed loops of `clients` clients each (a client sends its next
    /// command as soon as the last is executed on the replica it sent it to) for `hops` one-way
    /// message delays, replica 3 proposing nothing; returns each replica's latencies in hops.
    /// Every message takes one hop, none is lost, and records count as durable at once.
    static func closedLoops(clients: Int, hops: Int) -> [[Int]] {
        var replicas = PaxosLogBatchTests.replicas(maxBatch: 256)
        var waiting: [[UInt64: Int]] = [[:], [:]]  // command's client -> the hop it was sent
        var sequence: UInt64 = 0
        var latencies: [[Int]] = [[], []]
        var network: [(from: NodeID, envelope: Envelope<PaxosLogMessage>)] = []
        for hop in 0..<hops {
            for loop in 0..<2 {
                while waiting[loop].count < clients {
                    sequence += 1
                    waiting[loop][sequence] = hop
                    replicas[loop].propose(PaxosLogBatchTests.command(sequence))
                }
            }
            for index in replicas.indices {
                let ready = replicas[index].ready()
                if index < 2 {
                    for committed in ready.committed {
                        if let since = waiting[index].removeValue(forKey: committed.command.client) {
                            latencies[index].append(hop - since)
                        }
                    }
                }
                network += ready.messages.map { (replicas[index].id, $0) }
            }
            let delivering = network
            network = []
            for (from, envelope) in delivering {
                replicas[Int(envelope.to.rawValue) - 1].receive(envelope.message, from: from)
            }
        }
        return latencies
    }

    @Test("two proposers with unequal shares of the slots advance together")
    func unequalShares() {
        // Replica 3 proposes nothing, so its slots go to replica 1: replica 1 is assigned two
        // slots in three, replica 2 one, and each proposes one slot per round. Without the
        // skip, replica 2's values sit in slots ever further above replica 1's and wait for
        // them (measured: 103 commands against 593, latencies growing to 63 hops); with it,
        // replica 1 fills its unused slots below replica 2's with no-ops, and both loops
        // execute 593 commands within 9 hops each.
        let latencies = Self.closedLoops(clients: 8, hops: 600)
        let completed = latencies.map(\.count)
        #expect(completed[0] >= 60 && completed[1] >= 60, "commands executed per loop: \(completed)")
        #expect(completed[1] * 10 >= completed[0] * 8, "replica 2's loop keeps up with replica 1's: \(completed)")
        let worst = latencies.map { $0.max() ?? .max }
        #expect(worst.allSatisfy { $0 <= 12 }, "worst latency per loop, in hops: \(worst)")
    }
}
