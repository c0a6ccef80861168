import SynodCheck
import Testing

@Suite("History format: bad input gets a line number and a reason, never a crash")
struct HistoryCodecTests {
    static let good = #"{"client":1,"op":"put","key":"x","value":"1","call":5,"return":9}"#

    static func reason(_ text: String) -> String? {
        do {
            _ = try HistoryCodec.decode(Array(text.utf8))
            return nil
        } catch {
            return error.description
        }
    }

    @Test("a well-formed history decodes, with defaults for the optional fields")
    func decodesGood() throws {
        let text = Self.good + "\n\n" + #"{"client":2,"op":"get","key":"x","output":null,"call":10,"return":12,"unknown":false}"#
            + "\n" + #"{"client":3,"op":"cas","key":"x","expected":null,"value":"2","output":true,"call":13,"return":14}"#
            + "\n" + #"{"client":4,"op":"put","key":"x","value":"3","call":15,"return":null,"unknown":true}"#
        let history = try HistoryCodec.decode(Array(text.utf8))
        #expect(history.count == 4)
        #expect(history[1].output == .value(nil))
        #expect(history[2].expected == nil && history[2].output == .swapped(true))
        #expect(history[3].isPending)
    }

    @Test("each kind of bad input is refused with its line and reason", arguments: [
        ("not json at all", "not a JSON object"),
        (#"{"client":1,"op":"put","key":"x","value":"1","call":5}"#, "missing field \"return\""),
        (#"{"client":1,"op":"put","key":"x","value":"1","call":5,"return":9,"colour":"red"}"#, "unknown field \"colour\""),
        (#"{"client":1,"op":"put","key":"x","value":"1","call":9,"return":5}"#, "return 5 is before call 9"),
        (#"{"client":"1","op":"put","key":"x","value":"1","call":5,"return":9}"#, "\"client\" must be an integer, not a string"),
        (#"{"client":1,"op":"put","key":"x","value":"1","call":5.5,"return":9}"#, "must be an integer"),
        (#"{"client":1,"op":"fly","key":"x","call":5,"return":9}"#, "unknown op \"fly\""),
        (#"{"client":1,"op":"get","key":"x","call":5,"return":9}"#, "missing field \"output\""),
        (#"{"client":1,"op":"cas","key":"x","value":"1","output":"yes","call":5,"return":9,"expected":null}"#, "boolean \"output\""),
        (#"{"client":1,"op":"put","key":"x","value":"1","call":5,"return":9"#, "expected ',' or '}'"),
        (#"{"client":1,"client":2,"op":"put","key":"x","value":"1","call":5,"return":9}"#, "appears twice"),
        (#"{"client":1,"op":"put","key":["x"],"value":"1","call":5,"return":9}"#, "object or array"),
        (#"{"client":1,"op":"put","key":"x","value":"1","call":5,"return":null}"#, "\"unknown\" is not true"),
        (#"{"client":1,"op":"put","key":"x","value":"1","call":-5,"return":9}"#, "must not be negative"),
        (#"{"client":1,"op":"put","key":"x","value":"1","call":99999999999999999999,"return":9}"#, "out of range"),
        (#"{"client":1,"op":"put","key":"x\q","value":"1","call":5,"return":9}"#, "invalid escape"),
        (#"{"client":1,"op":"put","key":"x","value":"1","call":007,"return":9}"#, "leading zero"),
    ])
    func refusesBadInput(line: String, expected: String) {
        let reason = Self.reason(Self.good + "\n" + line)
        #expect(reason?.hasPrefix("line 2: ") == true, "\(reason ?? "accepted")")
        #expect(reason?.contains(expected) == true, "\(reason ?? "accepted")")
    }

    @Test("fuzz: mutated and random lines decode or throw, never trap", arguments: 1...4 as ClosedRange<UInt64>)
    func fuzz(seed: UInt64) {
        var random = SplitMixRandom(seed: seed)
        let alphabet = Array(#"{}[]":,\-0123456789.eEtrufalsn xyz"#.utf8) + [0, 0xC3, 0xFF, 0x0A]
        var accepted = 0
        for _ in 0..<3_000 {
            var bytes = Array(Self.good.utf8)
            for _ in 0...Int.random(in: 0..<4, using: &random) {
                let position = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[position] = alphabet[Int.random(in: 0..<alphabet.count, using: &random)]
                case 1: bytes.remove(at: position)
                default: bytes.insert(alphabet[Int.random(in: 0..<alphabet.count, using: &random)], at: position)
                }
                if bytes.isEmpty { bytes = [UInt8(ascii: "{")] }
            }
            if (try? HistoryCodec.decode(bytes)) != nil { accepted += 1 }
        }
        // Most mutations break the line; some (inside a string value) keep it valid.
        #expect(accepted < 3_000)
    }
}
