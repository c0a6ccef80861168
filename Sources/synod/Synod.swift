import ArgumentParser

@main
struct Synod: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synod",
        abstract: "Consensus protocols behind one interface, proven by a deterministic simulator.",
        subcommands: [SimCommand.self, CheckCommand.self]
    )
}
