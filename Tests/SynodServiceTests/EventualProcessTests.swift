import Foundation
import SynodCluster
import SynodRuntime
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `synod serve --protocol eventual`: three real processes, the key API over HTTP.
@Suite("synod serve --protocol eventual: siblings and contexts over HTTP", .serialized)
struct EventualProcessTests {
    /// A key's state as the API answers it.
    struct KeyState: CustomStringConvertible {
        var status: Int
        var context: String
        var header: String?
        /// Each sibling's dot and value ("-" for a delete).
        var siblings: [String: String]
        var body: String

        init(_ reply: HTTPConnection.Reply) {
            self.status = reply.status
            self.body = String(decoding: reply.body, as: UTF8.self)
            let json = reply.json ?? [:]
            self.context = json["context"] as? String ?? "?"
            self.header = reply.header("X-Synod-Context")
            var siblings: [String: String] = [:]
            for sibling in json["siblings"] as? [[String: Any]] ?? [] {
                let dot = sibling["dot"] as? String ?? "?"
                siblings[dot] = sibling["deleted"] as? Bool == true ? "-" : (sibling["value"] as? String ?? "?")
            }
            self.siblings = siblings
        }

        var values: Set<String> { Set(self.siblings.values) }
        var description: String { "HTTP \(self.status) \(self.body)" }
    }

    static func put(_ connection: HTTPConnection, _ key: String, _ value: String, context: String? = nil) async throws -> KeyState {
        KeyState(try await connection.request(
            .PUT, "/v1/keys/\(key)", body: Array(value.utf8), headers: context.map { [("X-Synod-Context", $0)] } ?? []))
    }

    static func get(_ connection: HTTPConnection, _ key: String) async throws -> KeyState {
        KeyState(try await connection.request(.GET, "/v1/keys/\(key)"))
    }

    /// Reads `key` at `connection` until `done` holds (read repair and anti-entropy bring a
    /// replica up to date); fails after 15 s with the last answer.
    static func eventually(
        _ connection: HTTPConnection, _ key: String, _ what: String, _ done: (KeyState) -> Bool
    ) async throws -> KeyState {
        let deadline = Date().addingTimeInterval(15)
        var last = try await Self.get(connection, key)
        while !done(last) {
            guard Date() < deadline else {
                Issue.record("\(what): still \(last)")
                return last
            }
            try await Task.sleep(for: .milliseconds(100))
            last = try await Self.get(connection, key)
        }
        return last
    }

    @Test("writes replicate; concurrent writes stay siblings until a write with their context resolves them; acknowledged writes survive SIGKILL; a replica that was down catches up; bad input is refused")
    func service() async throws {
        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "eventual")
        defer { cluster.shutdown() }
        do {
            try await self.service(cluster)
        } catch {
            print("\(error)\n\(cluster.logTails())")
            throw error
        }
    }

    func service(_ cluster: LocalCluster) async throws {
        try cluster.startAll()
        _ = try await cluster.waitForService()
        var connections: [Int: HTTPConnection] = [:]
        // The lowest healthy member answering does not mean the others already listen for clients.
        for member in cluster.members { connections[member.id] = try await cluster.connectWhenListening(member.id) }
        let (n1, n2, n3) = (connections[1]!, connections[2]!, connections[3]!)

        // A blind write at n1: one sibling, n1's first dot; the context in the body and the header.
        let first = try await Self.put(n1, "greeting", "hello")
        #expect(first.status == 200 && first.siblings == ["1:1": "hello"] && first.context == "1:1" && first.header == "1:1", "\(first)")
        _ = try await Self.eventually(n2, "greeting", "n2 sees n1's write") { $0.siblings == ["1:1": "hello"] }

        // Two writes that both saw only "hello", at n2 and n3: concurrent, so both are kept.
        let atTwo = try await Self.put(n2, "greeting", "hi", context: first.context)
        let atThree = try await Self.put(n3, "greeting", "hey", context: first.context)
        #expect(atTwo.status == 200 && atTwo.siblings["2:1"] == "hi" && atTwo.siblings["1:1"] == nil, "\(atTwo)")
        #expect(atThree.status == 200 && atThree.siblings["3:1"] == "hey" && atThree.siblings["1:1"] == nil, "\(atThree)")
        let both = try await Self.eventually(n1, "greeting", "n1 holds both concurrent writes") { $0.values == ["hi", "hey"] }
        #expect(both.context == "1:1,2:1,3:1", "\(both)")

        // A write with that context replaces both, everywhere.
        let resolved = try await Self.put(n1, "greeting", "hi there", context: both.context)
        #expect(resolved.siblings == ["1:2": "hi there"], "\(resolved)")
        for connection in [n2, n3] {
            _ = try await Self.eventually(connection, "greeting", "the resolution reaches every replica") { $0.siblings == ["1:2": "hi there"] }
        }

        // A delete is a tombstone sibling until a write that saw it replaces it.
        let deleted = KeyState(try await n2.request(.DELETE, "/v1/keys/greeting", headers: [("X-Synod-Context", resolved.context)]))
        #expect(deleted.status == 200 && deleted.siblings == ["2:2": "-"], "\(deleted)")

        // n3 is killed; writes go on at n1 and n2; n3 restarted catches up.
        cluster.stop(3, signal: SIGKILL)
        await n3.close()
        let whileDown = try await Self.put(n1, "while-down", "written while n3 was down")
        #expect(whileDown.status == 200, "\(whileDown)")
        try cluster.start(3)
        _ = try await cluster.waitForService()
        let back = try await cluster.connectWhenListening(3)
        _ = try await Self.eventually(back, "while-down", "restarted n3 catches up") { $0.values == ["written while n3 was down"] }
        _ = try await Self.eventually(back, "greeting", "restarted n3 keeps the tombstone") { $0.siblings == ["2:2": "-"] }

        // Every process killed at once, right after an acknowledged write: it survives.
        let acknowledged = try await Self.put(n2, "durable", "acknowledged")
        #expect(acknowledged.status == 200)
        for member in cluster.members { cluster.stop(member.id, signal: SIGKILL) }
        for member in cluster.members { try cluster.start(member.id) }
        _ = try await cluster.waitForService()
        let again = try await cluster.connectWhenListening(2)
        let survived = try await Self.get(again, "durable")
        #expect(survived.siblings == ["2:1": "acknowledged"], "the acknowledged write is on n2's disk: \(survived)")
        let other = try await cluster.connectWhenListening(1)
        _ = try await Self.eventually(other, "durable", "n1 learns it from n2") { $0.values == ["acknowledged"] }

        // Blind writes of 64 KiB pile up siblings; past this replica's share the store refuses
        // (409) and says how to resolve them; a write with the context does.
        let big = String(repeating: "v", count: 64 << 10)
        var refused: KeyState?
        for _ in 0..<40 {
            let answer = try await Self.put(other, "crowded", big)
            if answer.status != 200 {
                refused = answer
                break
            }
        }
        #expect(refused?.status == 409 && refused?.body.contains("write with the context read") == true, "\(refused.map { "\($0.status)" } ?? "never refused")")
        let crowded = try await Self.get(other, "crowded")
        let cleared = try await Self.put(other, "crowded", "one", context: crowded.context)
        #expect(cleared.status == 200 && cleared.values == ["one"], "\(cleared)")

        // Bad input: a clear error, and the node goes on.
        let badContext = try await other.request(.PUT, "/v1/keys/k", body: [1], headers: [("X-Synod-Context", "1:x")])
        #expect(badContext.status == 400 && String(decoding: badContext.body, as: UTF8.self).contains("X-Synod-Context"))
        #expect(try await other.request(.GET, "/v1/keys/").status == 400)
        #expect(try await other.request(.GET, "/v1/keys/%zz").status == 400)
        #expect(try await other.request(.GET, "/v1/keys/" + String(repeating: "k", count: 5_000)).status == 413)
        let tooLarge = try await cluster.connectWhenListening(1)
        #expect(try await tooLarge.request(.PUT, "/v1/keys/k", body: Array(repeating: 1, count: (64 << 10) + 1)).status == 413)
        // Keys are percent-decoded bytes; ones that are not UTF-8 come back in base64.
        let binary = try await cluster.connectWhenListening(1)
        let odd = try await binary.request(.PUT, "/v1/keys/a%2Fb%FF", body: Array("x".utf8))
        #expect(odd.status == 200 && odd.json?["key_base64"] as? String == Data([0x61, 0x2F, 0x62, 0xFF]).base64EncodedString())
        let status = try await binary.request(.GET, "/v3/status").json ?? [:]
        #expect(status["protocol"] as? String == "eventual" && status["healthy"] as? Bool == true && status["revision"] == nil, "\(status)")
        for connection in [n1, n2, again, other, tooLarge, binary, back] { await connection.close() }
    }

    @Test("the log is compacted: with a checkpoint every 64 records and 4 KiB segments, 600 writes leave a fraction of the segments, and a SIGKILL restart reads every key back")
    func compaction() async throws {
        let cluster = try LocalCluster(
            executable: synodExecutable(), protocolName: "eventual", size: 3,
            extraArguments: ["--option", "checkpoint-records=64", "--wal-segment-bytes", "4096"])
        defer { cluster.shutdown() }
        try cluster.startAll()
        _ = try await cluster.waitForService()
        let connection = try await cluster.connectWhenListening(1)
        for round in 0..<30 {
            for key in 0..<20 {
                let answer = try await Self.put(connection, "k\(key)", "round \(round) " + String(repeating: "x", count: 200), context: nil)
                #expect(answer.status == 200 || answer.status == 409, "\(answer)")
                if answer.status == 409 {
                    // The key holds its share of blind writes: resolve with the context read.
                    let read = try await Self.get(connection, "k\(key)")
                    #expect(try await Self.put(connection, "k\(key)", "round \(round) resolved", context: read.context).status == 200)
                }
            }
        }
        // Resolve every key to one value, so what survives is easy to name.
        for key in 0..<20 {
            let read = try await Self.get(connection, "k\(key)")
            #expect(try await Self.put(connection, "k\(key)", "final \(key)", context: read.context).status == 200)
        }
        await connection.close()
        let wal = cluster.member(1).dataDirectory + "/wal"
        let segments = try FileManager.default.contentsOfDirectory(atPath: wal).filter { $0.hasSuffix(".wal") }
        // Each blind write appends its key's whole state (up to 30 siblings of 200 bytes): with
        // checkpoint-records=0 this run left 371 segments of 4 KiB (measured 2026-12-06); the
        // state itself, at its largest, takes about 37; with checkpoints it left 45.
        #expect(segments.count < 100, "\(segments.count) segments: \(segments.sorted())")
        cluster.stop(1, signal: SIGKILL)
        try cluster.start(1)
        let back = try await cluster.connectWhenListening(1)
        for key in 0..<20 {
            let read = try await Self.get(back, "k\(key)")
            #expect(read.values == ["final \(key)"], "k\(key) after the restart: \(read)")
        }
        await back.close()
    }
}
