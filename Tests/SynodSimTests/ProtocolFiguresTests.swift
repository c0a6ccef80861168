import SynodCore
import SynodPaxos
import SynodRaft
import SynodSim
import Testing

@Suite("Side-by-side protocol figures")
struct ProtocolFiguresTests {
    @Test("the critical path in message delays: 4 for Raft and Multi-Paxos (client, leader, quorum, leader, client), 6 for a Basic Paxos slot (two phases)")
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
        #expect(raft.messageDelays == 4 && multiPaxos.messageDelays == 4 && paxos.messageDelays == 6)
        for row in [raft, multiPaxos, paxos] {
            #expect(row.failingSeeds == 0 && row.completedOperations == 120, "\(row)")
            #expect(row.messagesPerOperation > 0 && row.p50Milliseconds > 0 && row.p99Milliseconds >= row.p50Milliseconds)
        }
        // Without a stable leader every slot costs two phases, and proposers collide.
        #expect(paxos.messagesPerOperation > multiPaxos.messagesPerOperation)
        let table = ProtocolFigures.table([raft, multiPaxos, paxos])
        #expect(table.split(separator: "\n").count == 4 && table.contains("multipaxos"))
    }
}
