import Foundation
@_spi(Testing) import SynodRaft
import SynodCheck
import SynodCore
@_spi(Testing) import SynodSim
import Testing

/// `synod sim --trace`: the run's picture is complete, changes nothing, and shows failures.
@Suite("Trace: a space-time diagram of a simulated run")
struct TraceTests {
    static func options() -> SimulationOptions {
        var options = SimulationOptions()
        options.nodes = 5
        options.recordsTrace = true
        return options
    }

    /// The JSON the page draws from.
    static func data(_ page: String) throws -> [String: Any] {
        let start = try #require(page.range(of: "<script type=\"application/json\" id=\"data\">"))
        let end = try #require(page.range(of: "</script>", range: start.upperBound..<page.endIndex))
        let text = String(page[start.upperBound..<end.lowerBound]).replacingOccurrences(of: "<\\/", with: "</")
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    static let title = TraceRenderer.Title(protocolName: "raft", seed: 7, command: "synod sim --protocol raft --nodes 5 --seeds 7 --faults all")

    @Test("recording changes nothing (same fingerprint), and the trace accounts for every drop, crash, tear and partition")
    func complete() throws {
        let traced = try Simulation<RaftReplica>(seed: 7, options: Self.options()).run()
        var plain = Self.options()
        plain.recordsTrace = false
        let untraced = try Simulation<RaftReplica>(seed: 7, options: plain).run()
        #expect(traced.fingerprint == untraced.fingerprint && untraced.trace == nil)
        let trace = try #require(traced.trace)
        let statistics = traced.statistics
        func marks(_ kind: String) -> Int { trace.marks.count { $0.kind == kind } }
        let dropped = trace.messages.count { $0.fate == .lost || $0.fate == .cut }
        #expect(dropped == statistics.messagesDropped, "lost and cut: \(dropped), dropped: \(statistics.messagesDropped)")
        #expect(marks("crash") == statistics.crashes && marks("torn-write") == statistics.tornRecords)
        #expect(marks("partition") == statistics.partitions && marks("leader") >= 1 && marks("commit") > 0 && marks("sync") > 0)
        #expect(trace.messages.allSatisfy { $0.sent <= $0.arrives } && trace.messages.contains { $0.fate == .delivered })
        // Every crash but those the end of the faults healed is closed by a restart.
        #expect(trace.marks.filter { $0.kind == "crash" }.allSatisfy { crash in crash.end.map { $0 >= crash.time } ?? false })
    }

    @Test("the page is self-contained, small, and carries every lane, message and operation")
    func page() throws {
        var options = Self.options()
        options.operations = 200
        let report = try Simulation<RaftReplica>(seed: 7, options: options).run()
        let page = TraceRenderer.html(report, title: Self.title)
        #expect(page.utf8.count < 5 << 20, "\(page.utf8.count) bytes")
        // Nothing fetched from elsewhere: no external scripts, styles, fonts or images.
        for external in ["src=", "<link", "@import", "url(http", "fetch("] { #expect(!page.contains(external), "\(external)") }
        let data = try Self.data(page)
        #expect(data["nodes"] as? Int == 5)
        #expect((data["clients"] as? [Int])?.count == Set(report.history.map(\.client)).count)
        #expect((data["messages"] as? [Any])?.count == report.trace!.messages.count)
        #expect((data["ops"] as? [Any])?.count == report.history.count)
        #expect((data["verdict"] as? String)?.hasPrefix("linearizable") == true)
        // A window keeps only what it overlaps.
        let window: ClosedRange<UInt64> = 100_000_000...300_000_000
        let cut = try Self.data(TraceRenderer.html(report, title: Self.title, window: window))
        let kept = report.trace!.messages.count { $0.sent <= window.upperBound && $0.arrives >= window.lowerBound }
        #expect((cut["messages"] as? [Any])?.count == kept && kept < report.trace!.messages.count && kept > 0)
    }

    @Test("a mutation-caught seed renders with its violation marked; a non-linearizable history with the checker's explanation")
    func failuresMarked() throws {
        var broken = MutationTests.harshOptions(nodes: 3)
        broken.unsafeSendBeforeSync = true
        broken.recordsTrace = true
        let reports = try SimulationSweep<RaftReplica>(options: broken).run(seeds: 1...200, stopAfterFailures: 1)
        let caught = try #require(reports.first { !$0.isClean && !$0.violations.isEmpty })
        let data = try Self.data(TraceRenderer.html(caught, title: Self.title))
        let marks = try #require(data["marks"] as? [[Any]])
        let violation = try #require(marks.first { $0[3] as? String == "violation" })
        #expect((violation[4] as? String)?.isEmpty == false && data["failed"] as? Int == 1)
        #expect((data["verdict"] as? String)?.hasPrefix("invariant broken") == true)

        var doubled = MutationTests.harshOptions(nodes: 5)
        doubled.unsafeApplyRetriesAgain = true
        doubled.recordsTrace = true
        let sweep = try SimulationSweep<RaftReplica>(options: doubled).run(seeds: 1...100, stopAfterFailures: 1)
        let refuted = try #require(sweep.first { $0.linearizability?.verdict == .notLinearizable })
        let opsData = try Self.data(TraceRenderer.html(refuted, title: Self.title))
        let ops = try #require(opsData["ops"] as? [[Any]])
        #expect(ops.count { $0[6] as? String == "unplaced" } == 1, "the operation the checker cannot place is marked")
        #expect((opsData["verdict"] as? String)?.hasPrefix("NOT linearizable") == true)
    }
}

/// The page in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
/// installs) loads it, runs its script to the end and draws every lane and arrow.
@Suite("Trace: rendered by headless Chromium")
struct TraceBrowserTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Runs Chromium headless with `arguments`; returns standard output and standard error.
    static func run(_ arguments: [String]) throws -> (output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(Self.chromium, "chromium is not installed (.ci/run installs it)"))
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"] + arguments
        // Into files, not pipes: a full pipe would block it.
        let base = NSTemporaryDirectory() + "synod-chromium-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
        }
        process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        process.standardError = FileHandle(forWritingAtPath: base + ".err")
        try process.run()
        process.waitUntilExit()
        let outData = try Data(contentsOf: URL(fileURLWithPath: base + ".out"))
        let errData = try Data(contentsOf: URL(fileURLWithPath: base + ".err"))
        return (String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// Loads `page` in Chromium; returns the body's attributes the script set, and the errors.
    static func load(_ page: String, name: String) throws -> (status: String?, lanes: Int?, arrows: Int?, errors: [String]) {
        let path = NSTemporaryDirectory() + "synod-trace-\(getpid())-\(name).html"
        try page.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (dom, log) = try Self.run(["--dump-dom", "file://" + path])
        func attribute(_ name: String) -> String? {
            guard let range = dom.range(of: "\(name)=\"") else { return nil }
            return String(dom[range.upperBound...].prefix { $0 != "\"" })
        }
        let errors = log.split(separator: "\n").filter { $0.contains("Uncaught") || $0.contains("SyntaxError") }.map(String.init)
        return (attribute("data-status"), attribute("data-lanes").flatMap { Int($0) }, attribute("data-arrows").flatMap { Int($0) }, errors)
    }

    static var required: Bool { Self.chromium != nil || ProcessInfo.processInfo.environment["CI"] != nil }

    @Test("synod sim --protocol raft --nodes 5 --seeds 7 --faults all: the page loads without script errors, with 10 lanes and an arrow per message", .enabled(if: Self.required))
    func rendersRun() throws {
        var options = TraceTests.options()
        options.operations = 200
        let report = try Simulation<RaftReplica>(seed: 7, options: options).run()
        let page = TraceRenderer.html(report, title: TraceTests.title)
        let started = Date()
        let loaded = try Self.load(page, name: "seed7")
        let seconds = Date().timeIntervalSince(started)
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.status == "ok", "the script ran to the end")
        let lanes = 5 + Set(report.history.map(\.client)).count
        #expect(loaded.lanes == lanes)
        #expect(loaded.arrows == report.trace!.messages.count, "\(String(describing: loaded.arrows)) arrows for \(report.trace!.messages.count) messages")
        // A picture, too.
        let png = NSTemporaryDirectory() + "synod-trace-\(getpid()).png"
        defer { try? FileManager.default.removeItem(atPath: png) }
        let path = NSTemporaryDirectory() + "synod-trace-\(getpid())-shot.html"
        try page.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try Self.run(["--window-size=1400,700", "--screenshot=" + png, "file://" + path])
        let image = try Data(contentsOf: URL(fileURLWithPath: png))
        #expect(image.starts(with: [0x89, 0x50, 0x4E, 0x47]) && image.count > 20_000, "\(image.count) bytes")
        print("trace page of \(page.utf8.count / 1024) KiB, \(report.trace!.messages.count) arrows: loaded and drawn by headless Chromium in \(String(format: "%.2f", seconds)) s (process start included)")
    }

    @Test("the browser check catches a page whose script fails", .enabled(if: Self.required))
    func catchesBrokenPage() throws {
        let report = try Simulation<RaftReplica>(seed: 3, options: TraceTests.options()).run()
        let page = TraceRenderer.html(report, title: TraceTests.title)
        let broken = page.replacingOccurrences(of: "const D = JSON.parse", with: "undefinedFunction(); const D = JSON.parse")
        #expect(broken != page)
        let loaded = try Self.load(broken, name: "broken")
        #expect(loaded.status == nil && loaded.arrows == nil)
        #expect(loaded.errors.contains { $0.contains("undefinedFunction") }, "\(loaded.errors)")
    }

    @Test("a mutation-caught seed renders in Chromium with its violation marked", .enabled(if: Self.required))
    func rendersViolation() throws {
        var broken = MutationTests.harshOptions(nodes: 3)
        broken.unsafeSendBeforeSync = true
        broken.recordsTrace = true
        let reports = try SimulationSweep<RaftReplica>(options: broken).run(seeds: 1...200, stopAfterFailures: 1)
        let caught = try #require(reports.first { !$0.violations.isEmpty })
        let page = TraceRenderer.html(caught, title: TraceTests.title)
        let loaded = try Self.load(page, name: "violation")
        #expect(loaded.errors.isEmpty && loaded.status == "ok", "\(loaded.errors)")
        // The drawn page holds the violation's line (class "violation").
        let path = NSTemporaryDirectory() + "synod-trace-\(getpid())-violation-dom.html"
        try page.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (dom, _) = try Self.run(["--dump-dom", "file://" + path])
        #expect(dom.contains("class=\"violation\"") && dom.contains("invariant broken here"))
    }
}
