import Foundation
import SynodCluster
import SynodRuntime
import Testing

/// etcd's MoveLeader, `POST /v3/maintenance/transfer-leadership`, against real processes.
@Suite("Leadership transfer over HTTP", .serialized)
struct LeadershipTransferTests {
    static func body(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("the leader hands over to the named member, writes go on, and bad requests are refused with reasons")
    func transferOverHTTP() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let leader = try await cluster.waitForLeader()
        let target = cluster.members.map(\.id).first { $0 != leader }!
        let connection = try await cluster.connect(leader)
        for index in 0..<10 { #expect(try await put(connection, "before\(index)", "v\(index)") == 200) }

        let started = ContinuousClock.now
        let reply = try await connection.request(.POST, "/v3/maintenance/transfer-leadership", body: Self.body("{\"targetID\": \"\(target)\"}"))
        let elapsed = ContinuousClock.now - started
        #expect(reply.status == 200, "\(String(decoding: reply.body, as: UTF8.self))")
        print("transfer n\(leader) -> n\(target) answered in \(elapsed)")
        let header = reply.json?["header"] as? [String: Any]
        #expect(Int(header?["raft_term"] as? String ?? "") ?? 0 >= 2, "the target leads a later term")
        #expect(try await cluster.waitForLeader() == target)

        // The old leader is a follower now: it refuses to transfer, and names why.
        let refused = try await connection.request(.POST, "/v3/maintenance/transfer-leadership", body: Self.body("{\"targetID\": \"\(leader)\"}"))
        #expect(refused.status == 409)
        #expect((refused.json?["message"] as? String ?? "").contains("does not lead"), "\(refused.json ?? [:])")
        await connection.close()

        // The new leader serves, and holds every write made before the transfer.
        let newLeader = try await cluster.connect(target)
        for index in 0..<10 { #expect(try await get(newLeader, "before\(index)") == "v\(index)") }
        #expect(try await put(newLeader, "after", "x") == 200)
        for (text, status) in [("{\"targetID\": \"9\"}", 400), ("{}", 400), ("not json", 400), ("{\"targetID\": true}", 400)] {
            let bad = try await newLeader.request(.POST, "/v3/maintenance/transfer-leadership", body: Self.body(text))
            #expect(bad.status == status, "\(text): \(String(decoding: bad.body, as: UTF8.self))")
        }
        // Transferring to itself is a no-op that succeeds.
        let same = try await newLeader.request(.POST, "/v3/maintenance/transfer-leadership", body: Self.body("{\"targetID\": \(target)}"))
        #expect(same.status == 200, "\(String(decoding: same.body, as: UTF8.self))")
        await newLeader.close()
    }

    @Test("a protocol that does not transfer leadership answers 501")
    func unsupported() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "paxos")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let member = try await cluster.waitForService()
        let connection = try await cluster.connect(member)
        let reply = try await connection.request(.POST, "/v3/maintenance/transfer-leadership", body: Self.body("{\"targetID\": \"1\"}"))
        #expect(reply.status == 501, "\(String(decoding: reply.body, as: UTF8.self))")
        await connection.close()
    }
}
