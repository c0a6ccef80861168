import Foundation
import SynodCheck
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
        var hard = (0..<20).map {
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
}
