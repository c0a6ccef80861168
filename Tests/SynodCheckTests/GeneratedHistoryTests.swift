import SynodCheck
import Testing

@Suite("Generated histories")
struct GeneratedHistoryTests {
    @Test("linearizable by construction is accepted; one corrupted read is rejected",
          arguments: [(20, 1, 3), (200, 4, 5), (2_000, 40, 10)], 1...4 as ClosedRange<UInt64>)
    func generated(shape: (operations: Int, keys: Int, clients: Int), seed: UInt64) throws {
        try Self.acceptAndReject(HistoryGenerator.linearizable(
            operations: shape.operations, keys: shape.keys, clients: shape.clients, seed: seed), seed: seed)
    }

    @Test("registers (get, put, delete): accepted, and a corrupted read rejected",
          arguments: [(300, 1), (5_000, 25)], 1...3 as ClosedRange<UInt64>)
    func generatedRegister(shape: (operations: Int, keys: Int), seed: UInt64) throws {
        try Self.acceptAndReject(HistoryGenerator.linearizable(
            operations: shape.operations, keys: shape.keys, clients: 10, seed: seed, kinds: [.get, .get, .put, .delete]),
            seed: seed)
    }

    @Test("long single-key histories of every kind are accepted", arguments: 1...3 as ClosedRange<UInt64>)
    func longSingleKey(seed: UInt64) {
        let history = HistoryGenerator.linearizable(operations: 3_000, keys: 1, clients: 10, seed: seed)
        #expect(LinearizabilityChecker().check(history).verdict == .linearizable)
    }

    static func acceptAndReject(_ history: [HistoryOperation], seed: UInt64) throws {
        let result = LinearizabilityChecker().check(history)
        #expect(result.verdict == .linearizable, "\(result.violation.map(String.init(describing:)) ?? result.reason ?? "")")
        let corrupted = try #require(HistoryGenerator.corruptOneRead(history, seed: seed))
        let verdict = LinearizabilityChecker().check(corrupted)
        #expect(verdict.verdict == .notLinearizable, "\(verdict.reason ?? "")")
        #expect(verdict.violation?.unplaced.output == .value("never-written"))
    }

    @Test("histories survive a round trip through the JSON Lines format", arguments: 1...3 as ClosedRange<UInt64>)
    func roundTrip(seed: UInt64) throws {
        var history = HistoryGenerator.linearizable(operations: 300, keys: 5, clients: 4, seed: seed)
        history[0].key = "quote\" backslash\\ newline\n tab\t unicode é 🙂 \u{01}"
        let text = HistoryCodec.encode(history)
        #expect(try HistoryCodec.decode(Array(text.utf8)) == history)
    }
}
