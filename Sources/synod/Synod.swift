import ArgumentParser
import Foundation

@main
struct Synod: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synod",
        abstract: "Consensus protocols behind one interface, proven by a deterministic simulator.",
        subcommands: [SimCommand.self, CheckCommand.self, GenerateHistoryCommand.self, ServeCommand.self, DemoCommand.self, BenchCommand.self, CertsCommand.self]
    )

    /// As ArgumentParser's, except that `synod check` answers a bad argument with exit status
    /// 3, its status for bad input (scripts tell "not linearizable" from "could not check").
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try Self.parseAsRoot(arguments)
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            if arguments.first == "check" && Self.exitCode(for: error) == .validationFailure {
                let message = Self.message(for: error)
                if arguments.contains("--json") {
                    let data = (try? JSONSerialization.data(withJSONObject: ["verdict": "bad-input", "error": message], options: [.sortedKeys])) ?? Data()
                    print(String(decoding: data, as: UTF8.self))
                }
                Console.error("error: \(message)\n")
                Foundation.exit(3)
            }
            Self.exit(withError: error)
        }
    }
}
