import Foundation
import SynodCheck
import Testing

/// Issue 17: keys take turns, budgets are kept, and every history Synod writes is accepted.
func decodedLineCount(_ text: String) -> Int {
    text.utf8.split(separator: UInt8(ascii: "\n")).filter { $0.count > 1 << 20 }.count
}

@Suite("Checker: fair turns between keys, kept budgets, every history accepted")
struct FairSearchTests {
    /// A key no search decides within seconds: `count` concurrent appends, then a read of a
    /// value none of their orders makes.
    static func hardKey(_ key: String, appends count: Int = 20) -> [HistoryOperation] {
        // A put among the appends keeps the revealed order out: only the search could decide it.
        var history = [H.put(98, "", 0, 0, key: key)]
        history += (0..<count).map { H.append($0, String(UnicodeScalar(UInt8(65 + $0))), 0, 100, key: key) }
        history.append(HistoryOperation(client: 99, kind: .get, key: key, output: .value("impossible"), call: 200, returnTime: 300))
        return history
    }

    /// A plainly bad key with more operations than the hard one: `count` sequential puts,
    /// then a read of the first value after the last put completed.
    static func badKey(_ key: String, puts count: Int = 2_000) -> [HistoryOperation] {
        var history: [HistoryOperation] = []
        for index in 0..<count {
            let call = UInt64(10 * index)
            history.append(H.put(1, "v\(index)", call, call + 5, key: key))
        }
        let end = UInt64(10 * count)
        history.append(H.get(2, "v0", end + 10, end + 20, key: key))
        return history
    }

    @Test("a refutable key is refuted although a hard key comes first, even when the hard key is the smaller; the hard key is named undecided")
    func hardKeyDoesNotStarve() {
        // "a" sorts first and is smaller (21 operations against 2,001): neither key order nor
        // size order puts "b" first, only turns do.
        let history = Self.hardKey("a") + Self.badKey("b")
        var options = LinearizabilityChecker.Options()
        options.timeout = .seconds(120)
        let result = LinearizabilityChecker(options: options).check(history)
        #expect(result.verdict == .notLinearizable)
        #expect(result.violation?.key == "b")
        #expect(result.unknownKeys == ["a"], "the hard key is left undecided: \(result.unknownKeys)")
        // The hard key alone is undecided within a short budget: the test above needs turns.
        options.timeout = .milliseconds(300)
        let alone = LinearizabilityChecker(options: options).check(Self.hardKey("a"))
        #expect(alone.verdict == .unknown && alone.unknownKeys == ["a"])
    }

    @Test("many keys, one hard: every other key is decided, the verdict names the hard one")
    func manyKeysOneHard() {
        var history = Self.hardKey("k00")
        for key in 1...30 { history += HistoryGenerator.linearizable(operations: 200, keys: 1, clients: 3, seed: UInt64(key)).map {
            var operation = $0
            operation.key = "k\(key)"
            operation.client += 100 * key  // clients of their own
            return operation
        } }
        var options = LinearizabilityChecker.Options()
        options.timeout = .seconds(2)
        let result = LinearizabilityChecker(options: options).check(history)
        #expect(result.verdict == .unknown)
        #expect(result.unknownKeys == ["k00"], "only the hard key is undecided: \(result.unknownKeys)")
    }

    @Test("the memory budget is kept: past it the search gives up with unknown and says why")
    func memoryBudget() {
        var options = LinearizabilityChecker.Options()
        options.maximumMemoryBytes = 8 << 20
        options.timeout = .seconds(120)
        let result = LinearizabilityChecker(options: options).check(Self.hardKey("a", appends: 24))
        #expect(result.verdict == .unknown)
        #expect(result.reason?.contains("memory budget of 8 MiB") == true, "\(result.reason ?? "")")
        // One turn may cross the budget before the check between turns: by a turn's worth.
        #expect(result.peakMemoryBytes < 8 << 20 + 64 << 20, "peak \(result.peakMemoryBytes) bytes")
        // With a generous budget the verdicts of decidable histories are unchanged.
        options.maximumMemoryBytes = 1 << 30
        #expect(LinearizabilityChecker(options: options).check(Self.badKey("x", puts: 50)).verdict == .notLinearizable)
    }

    @Test("values of 1 MiB, escaped as badly as JSON allows, are written and read back, and checked")
    func megabyteValues() throws {
        // Control characters take six bytes each in JSON (the worst case for a line's length).
        let value = String(repeating: "\u{01}\"", count: 1 << 10) + String(repeating: "a", count: (1 << 20) - (2 << 10))
        let history = [
            H.put(1, value, 0, 10, key: "big"),
            HistoryOperation(client: 2, kind: .cas, key: "big", value: value + "!", expected: value, output: .swapped(true), call: 20, returnTime: 30),
            H.get(3, value + "!", 40, 50, key: "big"),
        ]
        let text = HistoryCodec.encode(history)
        #expect(text.utf8.count > 3 << 20 && decodedLineCount(text) == 3, "three lines of over 1 MiB")
        let decoded = try HistoryCodec.decode(Array(text.utf8))
        #expect(decoded.count == 3 && decoded[0].value == value)
        #expect(LinearizabilityChecker().check(decoded).verdict == .linearizable)
        let tooLong = "{\"client\":1,\"op\":\"put\",\"key\":\"x\",\"value\":\"" + String(repeating: "v", count: FlatJSONParser.maximumLineBytes) + "\",\"call\":1,\"return\":2}"
        #expect(throws: HistoryFormatError.self) { try HistoryCodec.decode(Array(tooLong.utf8)) }
    }

    @Test("a put of null leaves the key absent, as DESIGN.md's format allows")
    func putNull() throws {
        let text = #"{"client":1,"op":"put","key":"x","value":"1","call":0,"return":5}"# + "\n"
            + #"{"client":1,"op":"put","key":"x","value":null,"call":10,"return":15}"# + "\n"
            + #"{"client":2,"op":"get","key":"x","output":null,"call":20,"return":25}"#
        let history = try HistoryCodec.decode(Array(text.utf8))
        #expect(history[1].value == nil)
        #expect(LinearizabilityChecker().check(history).verdict == .linearizable)
        let stale = text.replacingOccurrences(of: #""output":null"#, with: #""output":"1""#)
        #expect(LinearizabilityChecker().check(try HistoryCodec.decode(Array(stale.utf8))).verdict == .notLinearizable)
        #expect(throws: HistoryFormatError.self, "an append still needs a string") {
            try HistoryCodec.decode(Array(#"{"client":1,"op":"append","key":"x","value":null,"call":0,"return":5}"#.utf8))
        }
    }

    @Test("overlapping operations of one client are refused with the line; touching ones and unknown outcomes are not")
    func overlappingClient() throws {
        let first = #"{"client":1,"op":"put","key":"x","value":"1","call":0,"return":10}"#
        let overlapping = #"{"client":1,"op":"put","key":"y","value":"2","call":5,"return":20}"#
        do {
            _ = try HistoryCodec.decode(Array((first + "\n\n" + overlapping).utf8))
            Issue.record("an overlapping operation of one client was accepted")
        } catch {
            #expect(error.line == 3, "the later line is named: \(error)")
            #expect(error.reason.contains("client 1 calls at 5 while its operation of line 1"), "\(error)")
        }
        let touching = #"{"client":1,"op":"put","key":"y","value":"2","call":10,"return":20}"#
        #expect(try HistoryCodec.decode(Array((first + "\n" + touching).utf8)).count == 2)
        let gaveUp = #"{"client":1,"op":"put","key":"x","value":"1","call":0,"return":null,"unknown":true}"#
        #expect(try HistoryCodec.decode(Array((gaveUp + "\n" + overlapping).utf8)).count == 2)
        let otherClient = overlapping.replacingOccurrences(of: #""client":1"#, with: #""client":2"#)
        #expect(try HistoryCodec.decode(Array((first + "\n" + otherClient).utf8)).count == 2)
    }
}
