import Foundation
import SynodCheck
import SynodCluster
import Testing

/// `synod check` as scripts use it: every bad argument exits 3 with a plain message, budgets
/// give exit 2, large histories are accepted.
@Suite("synod check: arguments and budgets")
struct CheckCommandTests {
    static func historyFile(_ history: [HistoryOperation], name: String) throws -> String {
        let path = NSTemporaryDirectory() + "synod-check-\(getpid())-\(name).jsonl"
        try HistoryCodec.encode(history).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("bad arguments exit 3 with the reason, never a trap or ArgumentParser's 64")
    func badArguments() throws {
        let path = try Self.historyFile([HistoryOperation(client: 1, kind: .put, key: "x", value: "1", call: 0, returnTime: 5)], name: "small")
        defer { try? FileManager.default.removeItem(atPath: path) }
        for (arguments, expected) in [
            (["--timeout", "1e16"], "exceeds a week"),
            (["--timeout", "nan"], "positive number of seconds"),
            (["--timeout", "inf"], "positive number of seconds"),
            (["--timeout=-3"], "positive number of seconds"),
            (["--timeout", "-3"], "Missing value for '--timeout"),
            (["--timeout", "soon"], "positive number of seconds"),
            (["--max-memory", "1"], "--max-memory"),
            (["--max-memory", "99999999999"], "--max-memory"),
            (["--colour"], "colour"),
        ] {
            let (status, output) = try runSynod(["check", path] + arguments)
            #expect(status == 3, "\(arguments): exit \(status), \(output)")
            #expect(output.contains(expected), "\(arguments): \(output)")
        }
        #expect(try runSynod(["check", path, "--timeout", "0.5", "--max-memory", "64"]).status == 0)
    }

    @Test("a history no search decides: exit 2 within the budget; one with 1 MiB values: checked")
    func budgetsAndLargeValues() throws {
        // Not for the revealed order (a put among the appends): only the search could decide it.
        var hard = [HistoryOperation(client: 98, kind: .put, key: "x", value: "", call: 0, returnTime: 0)]
        hard += (0..<20).map {
            HistoryOperation(client: $0, kind: .append, key: "x", value: String(UnicodeScalar(UInt8(65 + $0))), call: 0, returnTime: 100)
        }
        hard.append(HistoryOperation(client: 99, kind: .get, key: "x", output: .value("impossible"), call: 200, returnTime: 300))
        let hardPath = try Self.historyFile(hard, name: "hard")
        defer { try? FileManager.default.removeItem(atPath: hardPath) }
        let started = Date()
        let (status, output) = try runSynod(["check", hardPath, "--timeout", "1"])
        print("synod check --timeout 1 on an undecidable key: exit \(status) after \(String(format: "%.2f", Date().timeIntervalSince(started))) s (process start included)")
        #expect(status == 2, "\(output)")

        let value = String(repeating: "v", count: 1 << 20)
        let big = [
            HistoryOperation(client: 1, kind: .put, key: "big", value: value, call: 0, returnTime: 10),
            HistoryOperation(client: 2, kind: .get, key: "big", output: .value(value), call: 20, returnTime: 30),
        ]
        let bigPath = try Self.historyFile(big, name: "big")
        defer { try? FileManager.default.removeItem(atPath: bigPath) }
        let (bigStatus, bigOutput) = try runSynod(["check", bigPath])
        #expect(bigStatus == 0, "\(bigOutput)")
    }

    @Test("synod generate-history writes what synod check decides: linearizable, and refuted when corrupted; bad arguments refused")
    func generatedHistories() throws {
        let path = NSTemporaryDirectory() + "synod-check-\(getpid())-generated.jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        for (corrupt, expected) in [(nil, Int32(0)), ("stale", 1), ("unwritten", 1)] as [(String?, Int32)] {
            let arguments = ["generate-history", "--operations", "2000", "--clients", "30", "--kinds", "get,get,put,cas,cas", "--out", path]
            let (status, output) = try runSynod(arguments + (corrupt.map { ["--corrupt", $0] } ?? []))
            #expect(status == 0, "\(output)")
            let (verdict, report) = try runSynod(["check", path])
            #expect(verdict == expected, "\(corrupt ?? "clean"): exit \(verdict), \(report)")
        }
        let (bad, message) = try runSynod(["generate-history", "--kinds", "get,scan"])
        #expect(bad != 0 && message.contains("unknown kind 'scan'"), "\(message)")
    }

    /// Lines of `path` longer than 1 MiB.
    static func longLines(_ path: String) throws -> Int {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.split(separator: UInt8(ascii: "\n")).filter { $0.count > 1 << 20 }.count
    }

    @Test("histories with 1 MiB values, written by synod sim --history and recorded against a real cluster: accepted and checked")
    func megabyteValueHistories() async throws {
        let simulated = NSTemporaryDirectory() + "synod-check-\(getpid())-sim-1mib.jsonl"
        defer { try? FileManager.default.removeItem(atPath: simulated) }
        let (simStatus, simOutput) = try runSynod(
            ["sim", "--protocol", "raft", "--nodes", "3", "--seeds", "1", "--ops", "24", "--clients", "3", "--workload", "register",
             "--value-bytes", "1048576", "--history", simulated], timeout: 300)
        #expect(simStatus == 0, "\(simOutput)")
        #expect(try Self.longLines(simulated) >= 5, "the simulated history holds 1 MiB values")
        let (simCheck, simCheckOutput) = try runSynod(["check", simulated], timeout: 120)
        #expect(simCheck == 0, "\(simCheckOutput)")

        let cluster = try LocalCluster(executable: synodExecutable(), protocolName: "raft")
        defer { cluster.shutdown() }
        try cluster.startAll()
        _ = try await cluster.waitForService()
        let workload = KVWorkload(endpoints: cluster.members.map { ("127.0.0.1", $0.clientPort) }, keys: 2, valueBytes: 1 << 20)
        await workload.run(clients: 3, operationsPerClient: 8)
        let recorded = try Self.historyFile(workload.history, name: "cluster-1mib")
        defer { try? FileManager.default.removeItem(atPath: recorded) }
        #expect(workload.acknowledgedPuts >= 4 && workload.history.count >= 20, "\(workload.history.count) operations, \(workload.acknowledgedPuts) puts")
        #expect(try Self.longLines(recorded) >= 4, "the recorded history holds 1 MiB values")
        let (clusterCheck, clusterCheckOutput) = try runSynod(["check", recorded], timeout: 120)
        #expect(clusterCheck == 0, "\(clusterCheckOutput)")
        print("1 MiB values: simulated history \(try Self.longLines(simulated)) long lines; cluster history \(workload.history.count) operations, \(workload.acknowledgedPuts) acknowledged puts, \(try Self.longLines(recorded)) long lines; both linearizable")
    }
}
