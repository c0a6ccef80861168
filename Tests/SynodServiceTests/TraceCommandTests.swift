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
