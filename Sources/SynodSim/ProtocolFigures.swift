import SynodCheck
import SynodCore

/// What one protocol costs under one workload and fault mix, for side-by-side tables
/// (`synod sim --compare`). Every figure comes from the simulator's virtual time and counters,
/// so it is exactly repeatable and independent of the machine.
public struct ProtocolFigures: Sendable {
    /// The protocol's command-line name.
    public var protocolName: String
    /// Seeds run, and how many broke an invariant or were not linearizable.
    public var seeds: Int
    public var failingSeeds: Int
    /// Client operations completed over all seeds.
    public var completedOperations: Int
    /// Replica-to-replica messages per completed client operation (with the fault mix, so
    /// elections, retransmissions and catch-up count too).
    public var messagesPerOperation: Double
    /// Median request-to-reply latency without faults, one client and an instant disk, in
    /// one-way network delays: the protocol's critical path, counted in message hops.
    public var messageDelays: Double
    /// Completed operations per simulated second (closed loop, all clients, with the faults).
    public var operationsPerSimulatedSecond: Double
    /// Latency percentiles of completed operations, simulated milliseconds, with the faults.
    public var p50Milliseconds: Double
    public var p99Milliseconds: Double

    /// Runs `seeds` under `options`, plus a fault-free single-client probe for the delays.
    /// Every client runs the protocol's session itself (`gatewayFraction` 0): the figures
    /// compare protocols, not a gateway's extra hop or the operations lost with it.
    public static func measure<R: Replica>(
        _ type: R.Type, options: SimulationOptions, seeds: ClosedRange<UInt64>, replicaOptions: R.Options = R.Options()
    ) throws -> ProtocolFigures {
        var options = options
        options.gatewayFraction = 0
        let reports = try SimulationSweep<R>(options: options, replicaOptions: replicaOptions).run(seeds: seeds)
        var latencies: [UInt64] = []
        var messages = 0
        var completed = 0
        var virtual: UInt64 = 0
        for report in reports {
            messages += report.statistics.messagesSent
            completed += report.statistics.completedOperations
            virtual += report.statistics.virtualNanoseconds
            for operation in report.history where !operation.isPending {
                latencies.append(operation.returnTime! - operation.call)
            }
        }
        latencies.sort()

        var probe = options
        probe.faults = []
        probe.clients = 1
        probe.operations = 100
        probe.thinkTimeNanoseconds = 0...0
        probe.syncRangeNanoseconds = 0...0
        let probeReport = try Simulation<R>(seed: seeds.lowerBound, options: probe, replicaOptions: replicaOptions).run()
        let probeLatencies = probeReport.history.filter { !$0.isPending }.map { $0.returnTime! - $0.call }.sorted()

        return ProtocolFigures(
            protocolName: R.protocolName, seeds: reports.count, failingSeeds: reports.filter { !$0.isClean }.count,
            completedOperations: completed,
            messagesPerOperation: completed == 0 ? 0 : Double(messages) / Double(completed),
            messageDelays: Double(Self.percentile(probeLatencies, 0.5)) / Double(probe.baseLatencyNanoseconds),
            operationsPerSimulatedSecond: virtual == 0 ? 0 : Double(completed) / (Double(virtual) / 1e9),
            p50Milliseconds: Double(Self.percentile(latencies, 0.5)) / 1e6,
            p99Milliseconds: Double(Self.percentile(latencies, 0.99)) / 1e6)
    }

    /// The nearest-rank percentile of sorted values (0 when empty).
    static func percentile(_ sorted: [UInt64], _ fraction: Double) -> UInt64 {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// A fixed-width table, one row per protocol.
    public static func table(_ rows: [ProtocolFigures]) -> String {
        let header = ["protocol", "seeds", "failing", "msgs/op", "delays", "ops/sim-s", "p50 ms", "p99 ms"]
        var lines = [header]
        for row in rows {
            lines.append([
                row.protocolName, "\(row.seeds)", "\(row.failingSeeds)", Self.format(row.messagesPerOperation, 1),
                Self.format(row.messageDelays, 1), Self.format(row.operationsPerSimulatedSecond, 0),
                Self.format(row.p50Milliseconds, 1), Self.format(row.p99Milliseconds, 1),
            ])
        }
        let widths = header.indices.map { column in lines.map { $0[column].count }.max()! }
        return lines.map { line in
            line.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return column == 0 ? cell + padding : padding + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func format(_ value: Double, _ decimals: Int) -> String {
        var text = String(Int((value * pow10(decimals)).rounded()))
        guard decimals > 0 else { return text }
        while text.count <= decimals { text = "0" + text }
        text.insert(".", at: text.index(text.endIndex, offsetBy: -decimals))
        return text
    }

    static func pow10(_ exponent: Int) -> Double { (0..<exponent).reduce(1.0) { acc, _ in acc * 10 } }
}
