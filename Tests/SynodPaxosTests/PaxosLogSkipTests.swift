import SynodCore
import SynodPaxos
import Testing

/// The leaderless log's proposers in a message pump: Mencius's skip while proposing (a
/// proposer that holds more of the slots than another does not hold the other's values back),
/// and phase 1 run ahead of the next value.
@Suite("Paxos log skipping and preparing ahead")
struct PaxosLogSkipTests {
    /// Runs three replicas, replica i serving a closed loop of `clients[i]` clients (a client
    /// sends its next command as soon as the last is executed on the replica it sent it to),
    /// for `hops` one-way message delays; returns each replica's latencies in hops, and the
    /// replicas. Every message takes one hop, none is lost, and records count as durable at once.
    static func closedLoops(
        clients: [Int], hops: Int, options: PaxosLogOptions = PaxosLogOptions()
    ) -> (latencies: [[Int]], replicas: [PaxosLogReplica]) {
        var replicas = PaxosLogBatchTests.members.map { id in
            PaxosLogReplica(config: ReplicaConfig(id: id, members: PaxosLogBatchTests.members, options: options),
                            restoring: .empty, randomSeed: UInt64(id.rawValue))
        }
        var waiting: [[UInt64: Int]] = [[:], [:], [:]]  // command's client -> the hop it was sent
        var sequence: UInt64 = 0
        var latencies: [[Int]] = [[], [], []]
        var network: [(from: NodeID, envelope: Envelope<PaxosLogMessage>)] = []
        for hop in 0..<hops {
            for loop in replicas.indices {
                while waiting[loop].count < clients[loop] {
                    sequence += 1
                    waiting[loop][sequence] = hop
                    replicas[loop].propose(PaxosLogBatchTests.command(sequence))
                }
            }
            for index in replicas.indices {
                let ready = replicas[index].ready()
                for committed in ready.committed {
                    if let since = waiting[index].removeValue(forKey: committed.command.client) {
                        latencies[index].append(hop - since)
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
        return (latencies, replicas)
    }

    @Test("two proposers with unequal shares of the slots advance together")
    func unequalShares() {
        // Replica 3 proposes nothing, so its slots go to replica 1: replica 1 is assigned two
        // slots in three, replica 2 one, and each proposes one slot per round. Without the
        // skip, replica 2's values sit in slots ever further above replica 1's and wait for
        // them (measured, phase 1 never run ahead: 103 commands against 593, latencies growing
        // to 63 hops); with it, replica 1 fills its unused slots below replica 2's with no-ops
        // (measured: 593 commands each within 9 hops; with phase 1 run ahead, the default here,
        // 904 and 708 within 10 and 6 hops).
        let latencies = Self.closedLoops(clients: [8, 8, 0], hops: 600).latencies.prefix(2)
        let completed = latencies.map(\.count)
        #expect(completed[0] >= 60 && completed[1] >= 60, "commands executed per loop: \(completed)")
        #expect(completed[1] * 3 >= completed[0] * 2, "replica 2's loop keeps up with replica 1's: \(completed)")
        let worst = latencies.map { $0.max() ?? .max }
        #expect(worst.allSatisfy { $0 <= 12 }, "worst latency per loop, in hops: \(worst)")
    }

    @Test("a lone client's command needs phase 2 only once its proposer prepared the next slot ahead")
    func preparedAhead() {
        var off = PaxosLogOptions()
        off.prepareAhead = false
        let without = Self.closedLoops(clients: [1, 0, 0], hops: 200, options: off)
        let with = Self.closedLoops(clients: [1, 0, 0], hops: 200)
        // Both phases: prepare, promise, accept, accepted. Ahead: accept, accepted (the first
        // command, with nothing prepared yet, pays both).
        #expect(Set(without.latencies[0]) == [4], "latencies without preparing ahead: \(Set(without.latencies[0]))")
        #expect(with.latencies[0].first == 4 && Set(with.latencies[0].dropFirst()) == [2],
                "latencies preparing ahead: \(with.latencies[0].prefix(5))...")
        // Every command after the first went into a prepared slot (the last may still be in flight).
        let executed = UInt64(with.latencies[0].count)
        let prepared = with.replicas[0].counters["slotsPreparedAhead"] ?? 0
        #expect(prepared + 1 >= executed && prepared <= executed, "\(prepared) slots prepared ahead for \(executed) commands")
        #expect(without.replicas[0].counters["slotsPreparedAhead"] == 0)
    }

    @Test("prepare-ahead is an option by name: on, off, anything else refused with what it takes")
    func option() throws {
        var options = PaxosLogOptions()
        #expect(options.prepareAhead)
        try options.set("prepare-ahead", to: "off")
        #expect(!options.prepareAhead)
        try options.set("prepare-ahead", to: "on")
        #expect(options.prepareAhead)
        #expect(throws: ConfigurationError.self) { try options.set("prepare-ahead", to: "maybe") }
        do {
            try options.set("prepare-ahaed", to: "on")
            Issue.record("an unknown option was accepted")
        } catch let error as ConfigurationError {
            #expect("\(error)".contains("prepare-ahead"), "the refusal names the known options: \(error)")
        }
    }
}
