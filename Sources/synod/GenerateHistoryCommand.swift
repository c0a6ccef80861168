import ArgumentParser
import Foundation
import SynodCheck

struct GenerateHistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-history",
        abstract: "Write a generated key-value history, linearizable by construction (or corrupted), for synod check.",
        discussion: """
            Each client runs operations one after another; each operation gets an interval and a \
            point inside it, and replaying the operations in point order gives every output, so \
            the history is linearizable. Written values are unique. Some writes time out (unknown \
            outcome). --corrupt unwritten changes one read to a value nobody wrote; --corrupt stale \
            changes one read to a value an earlier read saw before a write that completed before \
            this read began (not linearizable on keys without deletes). Example: \
            synod generate-history --operations 20000 --keys 1 --clients 30 --kinds get,get,put,cas,cas > h.jsonl
            """
    )

    @Option(help: "Operations in the history.")
    var operations = 1000

    @Option(help: "Distinct keys.")
    var keys = 1

    @Option(help: "Concurrent clients.")
    var clients = 10

    @Option(help: "Operation kinds to draw from, comma-separated (repeat one to weight it): get, put, append, cas, delete.")
    var kinds = "get,get,put,cas"

    @Option(help: "Seed of the generator.")
    var seed: UInt64 = 1

    @Option(help: "Corrupt the history: unwritten or stale (see above).")
    var corrupt: String?

    @Option(help: "Write to this file instead of standard output.")
    var out: String?

    func parsedKinds() throws -> [HistoryOperation.Kind] {
        try self.kinds.split(separator: ",").map { name in
            guard let kind = HistoryOperation.Kind(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("unknown kind '\(name)'; known: \(HistoryOperation.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return kind
        }
    }

    func validate() throws {
        guard (1...10_000_000).contains(self.operations) else { throw ValidationError("--operations must lie in 1...10000000") }
        guard (1...1_000_000).contains(self.keys) else { throw ValidationError("--keys must lie in 1...1000000") }
        guard (1...10_000).contains(self.clients) else { throw ValidationError("--clients must lie in 1...10000") }
        guard try !self.parsedKinds().isEmpty else { throw ValidationError("--kinds names no kind") }
        guard self.corrupt == nil || ["unwritten", "stale"].contains(self.corrupt!) else {
            throw ValidationError("--corrupt must be unwritten or stale, got '\(self.corrupt!)'")
        }
    }

    func run() throws {
        var history = HistoryGenerator.linearizable(
            operations: self.operations, keys: self.keys, clients: self.clients, seed: self.seed, kinds: try self.parsedKinds())
        switch self.corrupt {
        case "unwritten":
            guard let corrupted = HistoryGenerator.corruptOneRead(history, seed: self.seed) else {
                throw ValidationError("the history has no completed read to corrupt")
            }
            history = corrupted
        case "stale":
            guard let corrupted = HistoryGenerator.staleOneRead(history, seed: self.seed) else {
                throw ValidationError("no read of the history has an earlier read and write to go stale against")
            }
            history = corrupted
        default:
            break
        }
        let text = HistoryCodec.encode(history)
        if let out = self.out {
            do {
                try text.write(toFile: out, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("cannot write \(out): \(error.localizedDescription)")
            }
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
