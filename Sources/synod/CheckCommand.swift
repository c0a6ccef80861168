import ArgumentParser
import Foundation
import SynodCheck

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a key-value history for linearizability.",
        discussion: """
            FILE holds one operation per line in the JSON Lines format of DESIGN.md (fields \
            client, op, key, value, expected, output, call, return, unknown); '-' reads standard \
            input. Keys are checked independently, each with Wing & Gong's search and Lowe's \
            memoisation; keys take turns, so one undecidable key does not keep the others from \
            being refuted. Exit status: 0 linearizable, 1 not linearizable (whatever keys stay \
            undecided), 2 unknown (time or memory budget spent; the undecided keys are named), \
            3 bad input or a bad argument (the reason, and the line, are printed).
            """
    )

    @Argument(help: "The history file, or '-' for standard input.")
    var file: String

    @Option(help: "Time budget in seconds (up to a week); past it the verdict is unknown.")
    var timeout: String = "60"

    @Option(name: .customLong("max-memory"), help: "Memory budget of the search in MiB; past it the keys holding the most are given up (unknown). Default: half the machine's memory, at most 4096.")
    var maxMemory: String?

    @Flag(help: "Print one JSON object instead of the human report.")
    var json = false

    /// The longest budget accepted: a week (a `Duration` holds far more; a typo does not).
    static let maximumTimeoutSeconds = 7 * 24 * 3600.0

    /// `--timeout` in seconds, or why it is refused.
    static func parseTimeout(_ text: String) -> Result<Double, ValidationError> {
        guard let seconds = Double(text.trimmingCharacters(in: .whitespaces)), seconds.isFinite, seconds > 0 else {
            return .failure(ValidationError("--timeout must be a positive number of seconds, got '\(text)'"))
        }
        guard seconds <= Self.maximumTimeoutSeconds else {
            return .failure(ValidationError("--timeout of \(text) seconds exceeds a week (\(Int(Self.maximumTimeoutSeconds)) s)"))
        }
        return .success(seconds)
    }

    /// `--max-memory` in bytes, or why it is refused.
    static func parseMemory(_ text: String?) -> Result<Int, ValidationError> {
        let physical = Int(min(ProcessInfo.processInfo.physicalMemory, UInt64(Int.max)))
        guard let text else { return .success(min(4 << 30, max(256 << 20, physical / 2))) }
        guard let mebibytes = Int(text.trimmingCharacters(in: .whitespaces)), mebibytes >= 16, mebibytes <= physical >> 20 else {
            return .failure(ValidationError("--max-memory must be a whole number of MiB between 16 and the machine's \(physical >> 20), got '\(text)'"))
        }
        return .success(mebibytes << 20)
    }

    func validate() throws {
        if case .failure(let error) = Self.parseTimeout(self.timeout) { throw error }
        if case .failure(let error) = Self.parseMemory(self.maxMemory) { throw error }
    }

    func run() throws {
        let data: Data
        var isDirectory: ObjCBool = false
        if self.file != "-" {
            guard FileManager.default.fileExists(atPath: self.file, isDirectory: &isDirectory) else {
                self.fail("cannot read \(self.file): no such file")
            }
            guard !isDirectory.boolValue else { self.fail("cannot read \(self.file): it is a directory, not a history file") }
        }
        do {
            data = self.file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: self.file))
        } catch {
            self.fail("cannot read \(self.file): \(error.localizedDescription)")
        }
        let history: [HistoryOperation]
        do {
            history = try HistoryCodec.decode(data)
        } catch {
            self.fail("\(self.file): \(error)")
        }
        var options = LinearizabilityChecker.Options()
        guard case .success(let budget) = Self.parseTimeout(self.timeout), case .success(let memory) = Self.parseMemory(self.maxMemory) else {
            self.fail("invalid options")  // validate() refused them already
        }
        options.timeout = .milliseconds(Int64(budget * 1000))
        options.maximumMemoryBytes = memory
        let started = ContinuousClock.now
        let result = LinearizabilityChecker(options: options).check(history)
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        print(self.json ? Self.jsonReport(result, seconds: seconds) : Self.humanReport(result, seconds: seconds))
        switch result.verdict {
        case .linearizable: return
        case .notLinearizable: throw ExitCode(1)
        case .unknown: throw ExitCode(2)
        }
    }

    /// Bad input: say why on stderr and exit 3.
    func fail(_ message: String) -> Never {
        if self.json {
            print(Self.jsonString(["verdict": "bad-input", "error": message]))
        }
        Console.error("error: \(message)\n")
        Foundation.exit(3)
    }

    static func humanReport(_ result: CheckResult, seconds: Double) -> String {
        let keys = result.keys == 1 ? "1 key" : "\(result.keys) keys"
        let scope = "\(result.operations) operations over \(keys), \(String(format: "%.3f", seconds)) s"
        switch result.verdict {
        case .linearizable:
            return "linearizable (\(scope))"
        case .notLinearizable:
            let undecided = result.unknownKeys.isEmpty ? "" : "\n(\(result.unknownKeys.count) other keys were not decided: the refuted key decides)"
            return "NOT linearizable (\(scope))\n\(result.violation.map(String.init(describing:)) ?? "")\(undecided)"
        case .unknown:
            return "unknown (\(scope)): \(result.reason ?? "budget spent"); undecided keys: \(result.unknownKeys.joined(separator: ", "))"
        }
    }

    static func jsonReport(_ result: CheckResult, seconds: Double) -> String {
        var object: [String: Any] = [
            "verdict": result.verdict.rawValue,
            "operations": result.operations,
            "keys": result.keys,
            "seconds": seconds,
            "cachedStates": result.cachedStates,
            "peakMemoryBytes": result.peakMemoryBytes,
            "keysDecidedByRevealedOrder": result.keysDecidedByRevealedOrder,
            "keysSearchedAfterRevealedOrder": result.keysSearchedAfterRevealedOrder,
            "unknownKeys": result.unknownKeys,
        ]
        if let violation = result.violation {
            object["violation"] = [
                "key": violation.key,
                "unplaced": Self.jsonObject(violation.unplaced),
                "longestLinearization": violation.longestLinearization.map(Self.jsonObject),
                "valueAfterLinearization": violation.stateAfterLinearization ?? NSNull(),
                "reason": violation.reason ?? NSNull(),
                "explanation": violation.description,
            ] as [String: Any]
        }
        if result.verdict == .unknown {
            object["reason"] = result.reason ?? "budget spent"
        }
        return Self.jsonString(object)
    }

    /// One operation as a JSON object in the history format.
    static func jsonObject(_ operation: HistoryOperation) -> Any {
        let line = Data(HistoryCodec.encode(operation).utf8)
        return (try? JSONSerialization.jsonObject(with: line)) ?? NSNull()
    }

    static func jsonString(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
