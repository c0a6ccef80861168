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
            memoisation. Exit status: 0 linearizable, 1 not linearizable, 2 unknown (time \
            budget spent), 3 bad input (the line and the reason are printed).
            """
    )

    @Argument(help: "The history file, or '-' for standard input.")
    var file: String

    @Option(help: "Time budget in seconds; past it the verdict is unknown.")
    var timeout: Double = 60

    @Flag(help: "Print one JSON object instead of the human report.")
    var json = false

    func validate() throws {
        guard self.timeout > 0 && self.timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
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
        options.timeout = .milliseconds(Int64(self.timeout * 1000))
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
            return "NOT linearizable (\(scope))\n\(result.violation.map(String.init(describing:)) ?? "")"
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
        ]
        if let violation = result.violation {
            object["violation"] = [
                "key": violation.key,
                "unplaced": Self.jsonObject(violation.unplaced),
                "longestLinearization": violation.longestLinearization.map(Self.jsonObject),
                "valueAfterLinearization": violation.stateAfterLinearization ?? NSNull(),
                "explanation": violation.description,
            ] as [String: Any]
        }
        if result.verdict == .unknown {
            object["unknownKeys"] = result.unknownKeys
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
