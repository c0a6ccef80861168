import Foundation
@testable import SynodRuntime
import SynodCore
import SynodKV
import SynodRaft
import Testing

/// The KV routes' fast path for flat request bodies (`FlatRequest`, `ClientAPI.flatRequest`)
/// must read a body exactly as the general path (`JSONSerialization`) does, or give up.
@Suite("The fast path for flat request bodies")
struct FlatRequestTests {
    typealias API = ClientAPI<RaftReplica>

    static func flat(_ operation: API.Operation, _ text: String) -> (KVRequest, Bool)? {
        Array(text.utf8).withUnsafeBytes { API.flatRequest(operation, $0) }
    }

    static func general(_ operation: API.Operation, _ text: String) -> (KVRequest, Bool)? {
        try? API.generalRequest(operation, body: Data(text.utf8))
    }

    static let foo = Data("foo".utf8).base64EncodedString()
    static let bar = Data("bar".utf8).base64EncodedString()

    @Test("the bodies clients send are read by the fast path, as the general path reads them")
    func commonBodies() throws {
        let (foo, bar) = (Self.foo, Self.bar)
        let bodies: [(API.Operation, String)] = [
            (.put, #"{"key":"\#(foo)","value":"\#(bar)"}"#),
            (.put, #"{"key": "\#(foo)", "value": "\#(bar)", "prev_kv": true}"#),
            (.put, "{\n\t\"key\" : \"\(foo)\" ,\r\n \"value\":\"\"}\n"),
            (.put, #"{"key":"\#(foo)"}"#),
            (.put, #"{"key":"\#(foo)","value":"\#(bar)","something_new":7,"x":"y"}"#),
            (.range, #"{"key":"\#(foo)"}"#),
            (.range, #"{"key":"\#(foo)","range_end":"\#(bar)","limit":"10","serializable":true}"#),
            (.range, #"{"key":"\#(foo)","limit":25}"#),
            (.range, #"{"key":"\#(foo)","limit":-0}"#),
            (.range, #"{"range_end":"AA==","key":"AA=="}"#),
            (.put, #"{"key":"\/\/8=","value":"a\/b\/Yw=="}"#),  // slashes escaped, as Foundation writes them
            (.deleteRange, #"{"key":"\#(foo)","range_end":"\#(bar)","prev_kv":false}"#),
        ]
        for (operation, body) in bodies {
            let fast = try #require(Self.flat(operation, body), "fast path gave up on \(body)")
            let general = try #require(Self.general(operation, body), "general path refused \(body)")
            #expect(fast.0 == general.0 && fast.1 == general.1, "\(body)")
        }
        // As Foundation writes a body (synod bench, HTTPClient): every slash escaped.
        let slashes = Data([0xFF, 0xFF, 0xFF, 0xFE]).base64EncodedString()  // "/////g=="
        let written = try JSONSerialization.data(withJSONObject: ["key": slashes, "value": slashes])
        #expect(String(decoding: written, as: UTF8.self).contains("\\/"), "Foundation escapes slashes")
        #expect(Array(written).withUnsafeBytes { API.flatRequest(.put, $0) }?.0
            == .put(key: [0xFF, 0xFF, 0xFF, 0xFE], value: [0xFF, 0xFF, 0xFF, 0xFE], previous: false))
        #expect(Self.flat(.put, #"{"key":"\#(foo)","value":"\#(bar)","prev_kv":true}"#)?.0
            == .put(key: Array("foo".utf8), value: Array("bar".utf8), previous: true))
        let range = try #require(Self.flat(.range, #"{"key":"\#(foo)","range_end":"\#(bar)","limit":"10","serializable":true}"#))
        #expect(range.0 == .range(KeyRange(key: Array("foo".utf8), end: Array("bar".utf8)), limit: 10) && range.1)
    }

    @Test("base64: canonical text decodes as Foundation decodes it; anything else is left to the general path")
    func base64() {
        var random = DeterministicRandom(seed: 41)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let text = Data(bytes).base64EncodedString()
            #expect(FlatRequest.base64(text) == bytes, "\(text)")
            #expect(Data(base64Encoded: text).map(Array.init) == bytes)
        }
        // Unpadded, misplaced or stray padding, non-digits, spaces, and bits set after the last
        // byte (Foundation decides what those mean, on the general path).
        for text in ["YQ", "YWI", "YQ=", "=YQ=", "YQ==YQ==", "YQ=a", "Y Q==", "YQ==\n", "%%%%", "YR==", "YWJ=", "YWL=", "é===", "===="] {
            #expect(FlatRequest.base64(text) == nil, "\(text)")
        }
    }

    @Test("the fast path gives up on every body it cannot read exactly as the general path does")
    func givesUp() {
        let foo = Self.foo
        let cases: [(API.Operation, String)] = [
            (.put, #"{"key":"Zm9\u0076"}"#),  // an escape other than \/
            (.put, #"{"key":"Zm9v\"}"#),
            (.put, #"{"key":"\#(foo)","value":"é"}"#),  // outside ASCII
            (.put, "{\"key\":\"\(foo)\",\"value\":\"a\u{1}\"}"),  // a control character
            (.put, #"{"key":"\#(foo)","value":{"a":1}}"#),
            (.put, #"{"key":"\#(foo)","value":["YQ=="]}"#),
            (.put, #"{"key":"\#(foo)","value":null}"#),
            (.put, #"{"key":"\#(foo)","key":"\#(foo)"}"#),  // repeated
            (.put, #"{"key":"\#(foo)","prev_kv":1}"#),  // a number for a flag
            (.put, #"{"key":"\#(foo)","lease":"0"}"#),  // a field refused unless zero
            (.put, #"{"value":"\#(foo)"}"#),  // no key
            (.put, #"{"key":"%%%"}"#),  // not base64
            (.put, #"{"key":"\#(foo)"} x"#),  // text after the object
            (.put, #"{"key":"\#(foo)",}"#),
            (.put, #"{"key":"\#(foo)""#),
            (.put, #"["key"]"#),
            (.put, ""),
            (.range, #"{"key":"\#(foo)","limit":1.0}"#),
            (.range, #"{"key":"\#(foo)","limit":1e2}"#),
            (.range, #"{"key":"\#(foo)","limit":9007199254740993}"#),  // above 2^53
            (.range, #"{"key":"\#(foo)","limit":01}"#),
            (.range, #"{"key":"\#(foo)","limit":-}"#),
            (.range, #"{"key":"\#(foo)","limit":"-1"}"#),
            (.range, #"{"key":"\#(foo)","limit":true}"#),
            (.range, #"{"key":"\#(foo)","serializable":"true"}"#),
            (.range, #"{"key":"\#(foo)","revision":0}"#),
            (.txn, #"{"compare":[]}"#),
            (.txn, "{}"),
        ]
        for (operation, body) in cases {
            #expect(Self.flat(operation, body) == nil, "\(body)")
        }
    }

    /// A body from parts that each path may read or refuse: the fields the KV routes know,
    /// unknown and refused ones, values of every JSON type (escaped, non-ASCII, huge,
    /// fractional), whitespace, and now and then a byte changed.
    static func body(_ random: inout DeterministicRandom) -> String {
        let names = ["key", "value", "value", "prev_kv", "prev_kv", "range_end", "limit", "limit", "serializable", "serializable",
                     "revision", "lease", "other", "ké", "k\\u0065y"]
        func base64() -> String {
            Data((0..<random.integer(in: 0...12)).map { _ in UInt8(truncatingIfNeeded: random.next()) }).base64EncodedString()
        }
        func value() -> String {
            switch random.integer(in: 0..<24) {
            case 0...7: return "\"\(base64())\""
            case 8: return "\"\(base64().replacingOccurrences(of: "/", with: "\\/"))\""
            case 9: return ["\"%%\"", "\"YQ\"", "\"Y Q==\"", "\"\"", "\"é\"", "\"\\u0041\"", "\"YR==\"", "\"YWJ=\""][random.integer(in: 0..<8)]
            case 10: return "\(random.integer(in: -3...30))"
            case 11: return ["9007199254740992", "9007199254740993", "-9007199254740993", "99999999999999999999"][random.integer(in: 0..<4)]
            case 12: return ["1.0", "1.5", "2e1", "-0", "0", "01", "-"][random.integer(in: 0..<7)]
            case 13: return "\"\(random.integer(in: -3...30))\""
            case 14: return ["\"+5\"", "\"0x10\"", "\" 3\"", "\"NONE\"", "\"0\""][random.integer(in: 0..<5)]
            case 15, 16: return random.integer(in: 0...1) == 0 ? "true" : "false"
            case 17: return "null"
            case 18: return "{\"a\":1}"
            case 19: return "[\"YQ==\"]"
            default: return "\"\(base64())\""
            }
        }
        /// Mostly a value of the type the field takes, so that many bodies are valid.
        func likely(_ name: String) -> String {
            guard random.integer(in: 0..<4) != 0 else { return value() }
            switch name {
            case "prev_kv", "serializable": return random.integer(in: 0...1) == 0 ? "true" : "false"
            case "limit": return random.integer(in: 0...1) == 0 ? "\(random.integer(in: 0...50))" : "\"\(random.integer(in: 0...50))\""
            default: return "\"\(base64())\""
            }
        }
        func space() -> String { ["", "", "", " ", "\n", "\t", "\r\n ", "\u{C}"][random.integer(in: 0..<8)] }
        var chosen = random.integer(in: 0..<8) == 0 ? [] : ["key"]
        for _ in 0..<random.integer(in: 0...4) { chosen.append(names[random.integer(in: 0..<names.count)]) }
        chosen.shuffle(using: &random)
        var fields: [String] = []
        for name in chosen {
            fields.append(space() + "\"\(name)\"" + space() + ":" + space() + likely(name) + space())
        }
        var text = space() + "{" + fields.joined(separator: ",") + "}" + space()
        if random.integer(in: 0..<10) == 0, !text.isEmpty {
            var bytes = Array(text.utf8)
            bytes[random.integer(in: 0..<bytes.count)] = [UInt8(ascii: ","), UInt8(ascii: "\""), UInt8(ascii: "}"), 0x80, 0x20][random.integer(in: 0..<5)]
            text = String(decoding: bytes, as: UTF8.self)
        }
        return text
    }

    @Test("generated bodies: wherever the fast path answers, the general path answers the same")
    func agreesWithGeneralPath() throws {
        var random = DeterministicRandom(seed: 15)
        var (fastAnswers, generalOnly, neither) = (0, 0, 0)
        for round in 0..<30_000 {
            let operation: API.Operation = [.put, .range, .deleteRange][round % 3]
            let body = Self.body(&random)
            let general = Self.general(operation, body)
            guard let fast = Self.flat(operation, body) else {
                if general == nil { neither += 1 } else { generalOnly += 1 }
                continue
            }
            fastAnswers += 1
            let expected = try #require(general, "the fast path read \(body) as \(fast.0), the general path refused it")
            #expect(fast.0 == expected.0 && fast.1 == expected.1, "\(body): fast \(fast), general \(expected)")
        }
        // The generator reaches all three outcomes, each often.
        #expect(fastAnswers > 2_000 && generalOnly > 500 && neither > 10_000, "\(fastAnswers) \(generalOnly) \(neither)")
    }

    @Test("random and truncated bytes: the reader refuses or reads them, never traps, and agrees with the general path")
    func fuzz() throws {
        var random = DeterministicRandom(seed: 27)
        let alphabet = Array(#"{}[]":,\/ -+.0123456789eEtruefalsnkyvYQ=="#.utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xA9, 0xFF]
        var read = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<random.integer(in: 0..<40)).map { _ in alphabet[random.integer(in: 0..<alphabet.count)] }
            } else {
                // A valid body cut short or with bytes changed.
                bytes = Array(Self.body(&random).utf8)
                if !bytes.isEmpty, random.integer(in: 0...1) == 0 { bytes = Array(bytes.prefix(random.integer(in: 0..<bytes.count))) }
                for _ in 0..<random.integer(in: 0...2) where !bytes.isEmpty {
                    bytes[random.integer(in: 0..<bytes.count)] = alphabet[random.integer(in: 0..<alphabet.count)]
                }
            }
            let operation: API.Operation = [.put, .range, .deleteRange][round % 3]
            guard let fast = bytes.withUnsafeBytes({ API.flatRequest(operation, $0) }) else { continue }
            read += 1
            let general = try #require(try? API.generalRequest(operation, body: Data(bytes)), "\(bytes)")
            #expect(fast.0 == general.0 && fast.1 == general.1, "\(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(read > 100, "\(read) read")
    }

    @Test("answers: base64 written directly matches Foundation's; objects come out in key order either way")
    func answerWriting() throws {
        var random = DeterministicRandom(seed: 3)
        for length in 0..<200 {
            let data = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            var bytes: [UInt8] = []
            JSONValue.writeBase64(data, into: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == Data(data).base64EncodedString(), "\(length) bytes")
        }
        let sorted = JSONValue.object([("a", .bool(false)), ("b", .base64(Array("foo".utf8))), ("c", .integer(7))])
        let unsorted = JSONValue.object([("c", .integer(7)), ("a", .bool(false)), ("b", .base64(Array("foo".utf8)))])
        #expect(String(decoding: sorted.bytes, as: UTF8.self) == #"{"a":false,"b":"Zm9v","c":7}"#)
        #expect(sorted.bytes == unsorted.bytes)
        // A range's answer, as etcd's gateway writes it.
        let answer = API.answer(
            .range(revision: 9, kvs: [KeyValue(key: Array("foo".utf8), value: Array("bar".utf8), createRevision: 2, modRevision: 9, version: 4)],
                   count: 1, more: false),
            header: API.AnswerHeader(clusterID: "77", member: 1, epoch: 3, revision: 9))
        #expect(String(decoding: answer, as: UTF8.self) == #"{"count":"1","header":{"cluster_id":"77","member_id":"1","raft_term":"3","revision":"9"},"kvs":[{"create_revision":"2","key":"Zm9v","mod_revision":"9","value":"YmFy","version":"4"}]}"#)
        // The other shapes, each field in key order, zero values left out.
        let header = API.AnswerHeader(clusterID: "77", member: 2, epoch: 5, revision: 12)
        let headerText = #""header":{"cluster_id":"77","member_id":"2","raft_term":"5","revision":"12"}"#
        let kv = KeyValue(key: [0xFF], value: [], createRevision: 3, modRevision: 12, version: 1)
        let kvText = #"{"create_revision":"3","key":"/w==","mod_revision":"12","value":"","version":"1"}"#
        for (response, expected) in [
            (KVResponse.put(revision: 12, previous: nil), "{\(headerText)}"),
            (.put(revision: 12, previous: kv), "{\(headerText),\"prev_kv\":\(kvText)}"),
            (.range(revision: 12, kvs: [], count: 0, more: false), "{\(headerText)}"),
            (.range(revision: 12, kvs: [kv, kv], count: 5, more: true), "{\"count\":\"5\",\(headerText),\"kvs\":[\(kvText),\(kvText)],\"more\":true}"),
            (.deleteRange(revision: 12, deleted: 0, previous: []), "{\(headerText)}"),
            (.deleteRange(revision: 12, deleted: 1, previous: [kv]), "{\"deleted\":\"1\",\(headerText),\"prev_kvs\":[\(kvText)]}"),
            (.transaction(revision: 12, succeeded: true, responses: [.put(revision: 12, previous: nil), .range(revision: 12, kvs: [kv], count: 1, more: false),
                                                                     .deleteRange(revision: 12, deleted: 2, previous: [])]),
             "{\(headerText),\"responses\":[{\"response_put\":{}},{\"response_range\":{\"count\":\"1\",\"kvs\":[\(kvText)]}},"
                + "{\"response_delete_range\":{\"deleted\":\"2\"}}],\"succeeded\":true}"),
            (.transaction(revision: 12, succeeded: false, responses: []), "{\(headerText),\"responses\":[]}"),
            (.transaction(revision: 12, succeeded: false, responses: [.error(.malformed("x"))]), "{\(headerText),\"responses\":[{}]}"),
            (.error(.malformed("a\nb\u{1}")), "{\"error\":\"malformed request: a\\nb\\u0001\",\(headerText)}"),
            (.error(.tooLarge("key \"k\"")), "{\"error\":\"request too large: key \\\"k\\\"\",\(headerText)}"),
        ] {
            let text = String(decoding: API.answer(response, header: header), as: UTF8.self)
            #expect(text == expected)
            // And it is JSON.
            #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [String: Any], "\(text)")
        }
        // The header inside a tree (the membership answers) is the same bytes.
        #expect(JSONValue.object([("header", .raw(header.bytes))]).bytes == Array("{\(headerText)}".utf8))
    }
}
