import ArgumentParser

@main
struct Synod: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synod",
        abstract: "Consensus protocols behind one interface, proven by a deterministic simulator.",
        subcommands: [SimCommand.self, CheckCommand.self, ServeCommand.self, DemoCommand.self, BenchCommand.self, CertsCommand.self]
    )
}
