import ArgumentParser
import Foundation
import SynodCore
import SynodSim

extension SimCommand {
    /// One protocol's run of the CAP scenario.
    struct CapRun {
        var protocolName: String
        var report: SimulationReport
        var sides: [PartitionSide]
        var options: SimulationOptions

        var linearizable: Bool { self.report.linearizability?.verdict == .linearizable }
        /// No invariant broke: for Raft every acknowledged write reached every replica after
        /// the healing; for the eventual store every replica holds one state that keeps every
        /// write or its overwrite (the convergence check).
        var converged: Bool { self.report.violations.isEmpty }
        var why: String? {
            guard let result = self.report.linearizability, result.verdict != .linearizable else { return nil }
            if let violation = result.violation {
                return "key \(violation.key): cannot place \(violation.unplaced.summary)" + (violation.reason.map { ", because \($0)" } ?? "")
            }
            return result.reason
        }
    }

    struct CapBody: ProtocolBody {
        let seed: UInt64
        let workload: SimulationWorkload
        func run<R: Replica>(_ type: R.Type) throws -> CapRun {
            let options = SimulationOptions.capScenario(workload: self.workload)
            let report = try Simulation<R>(seed: self.seed, options: options).run()
            return CapRun(protocolName: R.protocolName, report: report, sides: report.partitionSides(options), options: options)
        }
    }

    /// Raft (CP) and the eventual store (AP) under the same 3 | 2 partition and workload; exits
    /// 1 unless Raft's minority accepts no write and its history is linearizable, while the
    /// eventual store accepts writes on both sides, its minority reads values the majority
    /// overwrote, its history is not linearizable, and it converges after the healing.
    func runCap() throws {
        let seed = self.seeds.range.lowerBound
        let raft = try ProtocolRegistry.with("raft", CapBody(seed: seed, workload: .register))
        let eventual = try ProtocolRegistry.with("eventual", CapBody(seed: seed, workload: .eventual))
        let raftAsExpected = raft.sides[1].writesAccepted == 0 && raft.sides[1].readsAnswered == 0 && raft.linearizable && raft.converged
            && raft.sides.allSatisfy { $0.staleReads == 0 }
        let eventualAsExpected = eventual.sides.allSatisfy { $0.writesAccepted > 0 && $0.writesRefused == 0 }
            && eventual.sides[1].staleReads > 0 && eventual.report.linearizability?.verdict == .notLinearizable && eventual.converged
        let partition = raft.options.fixedPartition!
        if self.json {
            func object(_ run: CapRun, expected: Bool) -> [String: Any] {
                [
                    "protocol": run.protocolName,
                    "sides": run.sides.map { side -> [String: Any] in
                        [
                            "side": side.name, "nodes": side.nodes.map { Int($0.rawValue) }, "clients": side.clients,
                            "writesAccepted": side.writesAccepted, "writesRefused": side.writesRefused,
                            "readsAnswered": side.readsAnswered, "readsRefused": side.readsRefused, "staleReads": side.staleReads,
                        ]
                    },
                    "verdict": run.report.linearizability?.verdict.rawValue ?? "not checked",
                    "why": run.why ?? NSNull(),
                    "converged": run.converged,
                    "violations": run.report.violations.map(\.description),
                    "completedOperations": run.report.statistics.completedOperations,
                    "fingerprint": run.report.fingerprintHex,
                    "asExpected": expected,
                ]
            }
            let result: [String: Any] = [
                "scenario": "cap", "seed": seed, "nodes": raft.options.nodes,
                "partition": ["minority": partition.minority.map { $0 + 1 }, "fromMs": partition.from / 1_000_000, "untilMs": partition.until / 1_000_000],
                "protocols": [object(raft, expected: raftAsExpected), object(eventual, expected: eventualAsExpected)],
                "asExpected": raftAsExpected && eventualAsExpected,
            ]
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let minority = partition.minority.map { "n\($0 + 1)" }.joined(separator: ", ")
            print("CAP: 5 nodes, \(minority) cut off from the others from \(partition.from / 1_000_000) to \(partition.until / 1_000_000) ms (virtual), seed \(seed);")
            print("10 clients on their side's gateways (6 majority, 4 minority), puts and gets on 4 keys, giving up after 500 ms.")
            print("Operations called during the partition, answered before it healed (stale: reads of a value overwritten before they began):")
            print("  protocol   side       writes accepted  refused   reads answered  refused  stale")
            for run in [raft, eventual] {
                for side in run.sides {
                    print("  " + [run.protocolName.padding(toLength: 10, withPad: " ", startingAt: 0),
                                  side.name.padding(toLength: 10, withPad: " ", startingAt: 0),
                                  String(side.writesAccepted).padding(toLength: 16, withPad: " ", startingAt: 0),
                                  String(side.writesRefused).padding(toLength: 9, withPad: " ", startingAt: 0),
                                  String(side.readsAnswered).padding(toLength: 15, withPad: " ", startingAt: 0),
                                  String(side.readsRefused).padding(toLength: 8, withPad: " ", startingAt: 0),
                                  String(side.staleReads)].joined(separator: " "))
                }
            }
            for run in [raft, eventual] {
                let verdict = run.report.linearizability?.verdict.rawValue ?? "not checked"
                print("\(run.protocolName): history \(verdict)" + (run.why.map { " (\($0))" } ?? "")
                      + "; after healing " + (run.converged ? "converged" : "did NOT converge: \(run.report.violations.first?.description ?? "")"))
            }
            print(raftAsExpected && eventualAsExpected
                  ? "as expected: the CP side refuses on the minority and stays linearizable; the AP side answers on both sides, is not linearizable, and converges."
                  : "NOT as expected")
        }
        if !(raftAsExpected && eventualAsExpected) { throw ExitCode(1) }
    }
}
