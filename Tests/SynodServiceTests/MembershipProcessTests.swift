import Foundation
import SynodCheck
import SynodCluster
import SynodRuntime
import Testing

/// etcd's Cluster service (`/v3/cluster/member/*`) and `synod serve --join`, against real
/// processes under load.
@Suite("Membership changes over HTTP", .serialized)
struct MembershipProcessTests {
    /// POSTs `json` to member `id`; the status and the body as JSON.
    static func post(_ cluster: LocalCluster, _ id: Int, _ path: String, _ json: [String: Any]) async throws -> (Int, [String: Any]) {
        let connection = try await cluster.connectWhenListening(id)
        defer { Task { await connection.close() } }
        let reply = try await connection.post(path, json: json, timeout: .seconds(10))
        return (reply.status, reply.json ?? ["body": String(decoding: reply.body, as: UTF8.self)])
    }

    /// POSTs to the leader, again while it answers 503 (busy: another change is finishing)
    /// or 400 because a learner is still catching up, for up to 20 s.
    static func change(_ cluster: LocalCluster, _ path: String, _ json: [String: Any], excluding: Set<Int> = []) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(20)
        var last: (Int, [String: Any]) = (0, [:])
        while Date() < deadline {
            let leader = try await cluster.waitForLeader(excluding: excluding)
            last = try await Self.post(cluster, leader, path, json)
            if last.0 == 200 { return last.1 }
            let message = last.1["message"] as? String ?? ""
            guard last.0 == 503 || last.0 == 409 || message.contains("caught up") else { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ClusterError("\(path) \(json) answered \(last.0): \(last.1)")
    }

    /// A write through each member's gateway succeeds: every gateway finds the leader, a
    /// member that joined included.
    static func writeThroughEveryGateway(_ cluster: LocalCluster, _ members: Set<Int>, _ key: String) async throws {
        for member in members.sorted() {
            let connection = try await cluster.connectWhenListening(member)
            let status = try await put(connection, key, "through-n\(member)")
            await connection.close()
            #expect(status == 200, "a write through n\(member)'s gateway answered \(status)")
        }
    }

    /// The voters and learners a member's list shows.
    static func members(_ cluster: LocalCluster, _ id: Int) async throws -> (voters: [Int], learners: [Int]) {
        let connection = try await cluster.connectWhenListening(id)
        defer { Task { await connection.close() } }
        let list = try await connection.request(.GET, "/v3/cluster/member/list").json?["members"] as? [[String: Any]] ?? []
        let learner = { (member: [String: Any]) in member["isLearner"] as? Bool == true }
        let id = { (member: [String: Any]) in Int(member["ID"] as? String ?? "") ?? -1 }
        return (list.filter { !learner($0) }.map(id).sorted(), list.filter(learner).map(id).sorted())
    }

    @Test("under load: a fourth node joins as a learner, is promoted, the first leader is removed, leadership moves; linearizable, and every node restarts into the new configuration")
    func joinPromoteRemoveTransferRestart() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft", size: 4, initialSize: 3)
        defer { cluster.shutdown() }
        do {
            try await self.scenario(cluster)
        } catch {
            print("\(error)\n\(cluster.logTails(lines: 25))")
            throw error
        }
    }

    func scenario(_ cluster: LocalCluster) async throws {
        try cluster.startAll()
        let first = try await cluster.waitForLeader()
        let workload = KVWorkload(endpoints: cluster.members.map { ("127.0.0.1", $0.clientPort) })
        let load = Task { await workload.run(clients: 4) }
        try await Task.sleep(for: .milliseconds(500))

        // Refusals, each with its reason: not sent to the leader; no such member; not a learner.
        let follower = [1, 2, 3].first { $0 != first }!
        let (notLeader, refusal) = try await Self.post(cluster, follower, "/v3/cluster/member/remove", ["ID": "\(first)"])
        #expect(notLeader == 409 && (refusal["message"] as? String ?? "").contains("leader is n\(first)"), "\(refusal)")
        let (unknown, _) = try await Self.post(cluster, first, "/v3/cluster/member/remove", ["ID": "9"])
        #expect(unknown == 400)
        let (voter, _) = try await Self.post(cluster, first, "/v3/cluster/member/promote", ["ID": "\(follower)"])
        #expect(voter == 400)
        let (badURL, _) = try await Self.post(cluster, first, "/v3/cluster/member/add", ["peerURLs": ["nowhere"]])
        #expect(badURL == 400)

        // Add node 4 as a learner, then start it with --join: it learns the cluster and the log.
        let added = try await Self.change(cluster, "/v3/cluster/member/add", [
            "ID": "4", "peerURLs": ["127.0.0.1:\(cluster.member(4).peerPort)"], "isLearner": true,
        ])
        #expect((added["member"] as? [String: Any])?["isLearner"] as? Bool == true, "\(added)")
        let (duplicate, _) = try await Self.post(cluster, first, "/v3/cluster/member/add", ["ID": "4", "peerURLs": ["127.0.0.1:1"]])
        #expect(duplicate == 400, "4 is a member already")
        try cluster.start(4)
        let leaderStatus = try #require(await cluster.status(first))
        try await cluster.waitForApplied(leaderStatus["appliedPosition"] as! Int)
        #expect(try await Self.members(cluster, 4) == ([1, 2, 3], [4]), "the learner lists the configuration it replicates")

        // Promote it (through a joint configuration, left automatically).
        _ = try await Self.change(cluster, "/v3/cluster/member/promote", ["ID": "4"])
        #expect(try await Self.members(cluster, first) == ([1, 2, 3, 4], []))

        // Remove the first leader: it hands leadership over and leaves.
        _ = try await Self.change(cluster, "/v3/cluster/member/remove", ["ID": "\(first)"])
        let remaining = Set([1, 2, 3, 4]).subtracting([first])
        let second = try await cluster.waitForLeader(excluding: [first])
        #expect(remaining.contains(second))
        #expect(cluster.stop(first, signal: SIGTERM) == 0)
        let removedStarted = Date()
        var list = try await Self.members(cluster, second)
        while list.voters != remaining.sorted() && Date().timeIntervalSince(removedStarted) < 10 {
            try await Task.sleep(for: .milliseconds(100))
            list = try await Self.members(cluster, second)
        }
        #expect(list == (remaining.sorted(), []))
        try await Self.writeThroughEveryGateway(cluster, remaining, "after-removal")

        // Move leadership to another remaining member (etcd's MoveLeader): to the joined node
        // unless it leads already.
        let target = second == 4 ? remaining.sorted().first { $0 != second }! : 4
        let (moved, movedBody) = try await Self.post(cluster, second, "/v3/maintenance/transfer-leadership", ["targetID": "\(target)"])
        #expect(moved == 200, "\(movedBody)")
        #expect(try await cluster.waitForLeader(excluding: [first]) == target)
        try await Self.writeThroughEveryGateway(cluster, remaining, "after-transfer")
        try await Task.sleep(for: .milliseconds(500))
        workload.stop()
        await load.value
        let acknowledged = workload.acknowledgedPuts
        #expect(acknowledged > 0)

        // Every remaining node restarts with neither --peers nor --join: the cluster comes
        // back in the new configuration, with every acknowledged write.
        for member in remaining.sorted() { #expect(cluster.stop(member, signal: SIGTERM) == 0) }
        for member in remaining.sorted() { try cluster.start(member, removing: ["--peers", "--join"]) }
        let third = try await cluster.waitForLeader(excluding: [first])
        for member in remaining.sorted() {
            let members = try await Self.members(cluster, member)
            #expect(members == (remaining.sorted(), []), "n\(member) after the restart: \(members)")
        }
        // Final linearizable reads of every key, recorded into the history.
        let finals = KVWorkload(endpoints: [("127.0.0.1", cluster.member(third).clientPort)], keys: 4, readFraction: 1)
        await finals.run(clients: 1, operationsPerClient: 40)
        let history = workload.history + finals.history.map { operation in
            var operation = operation
            operation.client += 100
            operation.call += 1 << 50
            operation.returnTime = operation.returnTime.map { $0 + 1 << 50 }
            return operation
        }
        let result = LinearizabilityChecker().check(history)
        #expect(result.verdict == .linearizable, "\(result.violation.map { "\($0)" } ?? result.reason ?? "")")
        print("membership: n\(first) led, n4 joined and was promoted, n\(first) removed, n\(second) then n\(target) led; "
              + "\(history.count) operations, \(acknowledged) acknowledged puts, \(workload.failedRequests) failed requests: \(result.verdict)")
    }

    @Test("a protocol with a fixed membership answers 501, and lists its members")
    func fixedMembership() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "multipaxos", size: 4, initialSize: 3, peerTLS: false)
        defer { cluster.shutdown() }
        try cluster.startAll()
        let member = try await cluster.waitForService()
        let (status, body) = try await Self.post(cluster, member, "/v3/cluster/member/add", ["ID": "4", "peerURLs": ["127.0.0.1:1"]])
        #expect(status == 501, "\(body)")
        #expect(try await Self.members(cluster, member) == ([1, 2, 3], []))
        // A node that is no member cannot join: it says how to add it first.
        let (exitStatus, log) = try cluster.runToExit(4)
        #expect(exitStatus == 1)
        #expect(log.contains("node 4 is not a member") && log.contains("member/add"), "\(log.suffix(600))")
    }
}
