import Foundation
import Testing

/// `synod sim --trace` as a user runs it: one seed, a window, clear refusals.
@Suite("synod sim --trace: the command line")
struct TraceCommandTests {
    @Test("writes the page of one seed (cut to a window when asked); refuses several seeds and bad windows")
    func traceCommand() throws {
        let path = NSTemporaryDirectory() + "synod-trace-cli-\(getpid()).html"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let base = ["sim", "--protocol", "raft", "--nodes", "5", "--faults", "all", "--trace", path]
        let (status, output) = try runSynod(base + ["--seeds", "7"], timeout: 120)
        #expect(status == 0, "\(output)")
        #expect(output.contains("trace of seed 7 written to \(path)"), "\(output)")
        let whole = try String(contentsOfFile: path, encoding: .utf8)
        #expect(whole.hasPrefix("<!DOCTYPE html>") && whole.contains("\"nodes\":5"))
        let (cutStatus, cutOutput) = try runSynod(base + ["--seeds", "7", "--trace-window", "430..760"], timeout: 120)
        #expect(cutStatus == 0, "\(cutOutput)")
        let cut = try String(contentsOfFile: path, encoding: .utf8)
        #expect(cut.contains("\"from\":430000000") && cut.utf8.count < whole.utf8.count / 3, "\(cut.utf8.count) of \(whole.utf8.count) bytes")
        for (arguments, expected) in [
            (["--seeds", "1..2"], "--trace draws one run"),
            (["--seeds", "7", "--trace-window", "9..2"], "--trace-window takes virtual milliseconds"),
            (["--seeds", "7", "--trace-window", "soon"], "--trace-window takes virtual milliseconds"),
        ] {
            let (refused, message) = try runSynod(base + arguments)
            #expect(refused != 0 && message.contains(expected), "\(arguments): exit \(refused), \(message)")
        }
        let (noTrace, noTraceMessage) = try runSynod(["sim", "--seeds", "7", "--trace-window", "1..2"])
        #expect(noTrace != 0 && noTraceMessage.contains("--trace-window needs --trace"), "\(noTraceMessage)")
    }
}

/// The available side's protocols on the command line: the CAP scenario's verdict, and clear
/// refusals where they do not fit.
@Suite("synod sim and serve: abd, eventual, the CAP scenario")
struct AvailableSideCommandTests {
    @Test("--scenario cap --json comes out as expected (exit 0); serve refuses abd, demo refuses eventual, the wrong workload is refused, with the reason")
    func capAndRefusals() throws {
        // The JSON goes to standard output (runSynod keeps standard error).
        let path = NSTemporaryDirectory() + "synod-cap-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: synodExecutable())
        process.arguments = ["sim", "--scenario", "cap", "--json"]
        FileManager.default.createFile(atPath: path, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: path)
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        process.waitUntilExit()
        let status = process.terminationStatus
        let output = try String(contentsOfFile: path, encoding: .utf8)
        #expect(status == 0, "\(output)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(object["asExpected"] as? Bool == true)
        let protocols = try #require(object["protocols"] as? [[String: Any]])
        #expect(protocols.map { $0["protocol"] as? String } == ["raft", "eventual"])
        let raftMinority = try #require((protocols[0]["sides"] as? [[String: Any]])?.last)
        #expect(raftMinority["writesAccepted"] as? Int == 0 && (raftMinority["writesRefused"] as? Int ?? 0) > 0)
        #expect(protocols[1]["verdict"] as? String == "not-linearizable" && protocols[1]["why"] is String)
        let (refused, message) = try runSynod(
            ["serve", "--protocol", "abd", "--id", "1", "--peers", "1=127.0.0.1:1", "--client", "127.0.0.1:2", "--data-dir", NSTemporaryDirectory() + "synod-unused"])
        #expect(refused != 0 && message.contains("it runs in the simulator: synod sim --protocol abd"), "\(message)")
        let (demo, demoMessage) = try runSynod(["demo", "--protocol", "eventual"])
        #expect(demo != 0 && demoMessage.contains("run it with synod serve --protocol eventual"), "\(demoMessage)")
        let (kv, kvMessage) = try runSynod(["sim", "--protocol", "abd", "--workload", "kv", "--seeds", "1"])
        #expect(kv != 0 && kvMessage.contains("use the register workload"), "\(kvMessage)")
        let (mutant, mutantMessage) = try runSynod(
            ["sim", "--protocol", "eventual", "--seeds", "1..10", "--option", "unsafe-last-writer-wins=on"], timeout: 300)
        #expect(mutant != 0 && mutantMessage.contains("dropped, not overwritten"), "\(mutantMessage)")
    }
}
