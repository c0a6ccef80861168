import SynodCore
import SynodPaxos
import SynodRaft
import SynodSim
import Testing

@Suite("Side-by-side protocol figures")
struct ProtocolFiguresTests {
    @Test("the critical path in message delays: 4 for Raft and Multi-Paxos (client, leader, quorum, leader, client); for a Basic Paxos slot 6 (two phases), and 4 when phase 1 ran ahead")
    func messageDelays() throws {
        var options = SimulationOptions()
        options.nodes = 3
        options.operations = 40
        // Every fault but a replica made 100 times slower: clients of the leaderless Paxos log
        // that sit at it time out (unknown outcomes), which measures the fault, not the protocol.
        options.faults.remove(.slowFollower)
        let raft = try ProtocolFigures.measure(RaftReplica.self, options: options, seeds: 1...3)
        let multiPaxos = try ProtocolFigures.measure(MultiPaxosReplica.self, options: options, seeds: 1...3)
        let paxos = try ProtocolFigures.measure(PaxosLogReplica.self, options: options, seeds: 1...3)
        var bothPhases = PaxosLogOptions()
        bothPhases.prepareAhead = false
        let paxosBothPhases = try ProtocolFigures.measure(PaxosLogReplica.self, options: options, seeds: 1...3, replicaOptions: bothPhases)
        #expect(raft.messageDelays == 4 && multiPaxos.messageDelays == 4)
        // The one-client probe has a lone proposer, which prepares its next slot while the
        // current one is decided: from the second command on, a slot needs phase 2 only.
        #expect(paxos.messageDelays == 4 && paxosBothPhases.messageDelays == 6, "\(paxos.messageDelays), \(paxosBothPhases.messageDelays)")
        for row in [raft, multiPaxos, paxos, paxosBothPhases] {
            #expect(row.failingSeeds == 0 && row.completedOperations == 120, "\(row)")
            #expect(row.messagesPerOperation > 0 && row.p50Milliseconds > 0 && row.p99Milliseconds >= row.p50Milliseconds)
        }
        // Without a stable leader every slot costs two phases, and proposers collide.
        #expect(paxos.messagesPerOperation > multiPaxos.messagesPerOperation)
        let table = ProtocolFigures.table([raft, multiPaxos, paxos])
        #expect(table.split(separator: "\n").count == 4 && table.contains("multipaxos"))
    }
}
