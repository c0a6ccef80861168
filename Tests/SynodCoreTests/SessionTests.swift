import SynodCore
import Testing

struct Counter: StateMachine {
    var total = 0
    mutating func apply(_ payload: [UInt8]) -> [UInt8] {
        self.total += Int(payload.first ?? 0)
        return [UInt8(self.total & 0xff)]
    }
    func query(_ payload: [UInt8]) -> [UInt8] { [UInt8(self.total & 0xff)] }
}

@Suite("Client sessions and exactly-once application")
struct SessionTests {
    @Test("a retried command is applied once and answered with its original reply")
    func exactlyOnce() {
        var store = ExactlyOnce(Counter())
        let command = Command(client: 1, sequence: 1, payload: [5])
        #expect(store.apply(command) == .applied([5]))
        #expect(store.apply(command) == .duplicate([5]))
        #expect(store.machine.total == 5)
        #expect(store.apply(Command(client: 1, sequence: 2, payload: [1])) == .applied([6]))
        #expect(store.apply(command) == .stale)
        #expect(store.cachedReply(for: CommandID(client: 1, sequence: 2)) == [6])
        #expect(store.cachedReply(for: CommandID(client: 1, sequence: 1)) == nil)
    }

    @Test("the leader-following session follows redirects and retries elsewhere on silence")
    func leaderFollowing() {
        let members = [NodeID(1), NodeID(2), NodeID(3)]
        var session = LeaderFollowingSession(client: 1, members: members, randomSeed: 3)
        let request = ClientRequest(kind: .write, command: Command(client: 1, sequence: 1, payload: []))
        session.submit(request)
        let first = session.ready().sends
        #expect(first.count == 1)
        let contacted = first[0].to
        let leader = members.first { $0 != contacted }!
        session.receive(.notLeader(request.command.id, hint: leader), from: contacted)
        #expect(session.ready().sends.map(\.to) == [leader])
        // Silence: after the retry interval the session tries the next replica.
        for _ in 0..<LeaderFollowingSession.retryTicks { session.tick() }
        let retry = session.ready().sends
        #expect(retry.count == 1)
        #expect(retry[0].to != leader)
        #expect(retry[0].request == request, "a retry reuses the command identity")
        session.receive(.ok(request.command.id, result: [1]), from: retry[0].to)
        #expect(session.ready().completed?.result == [1])
        // Replies to an abandoned command are ignored.
        session.receive(.ok(CommandID(client: 1, sequence: 9), result: []), from: leader)
        #expect(session.ready().completed == nil)
    }
}
