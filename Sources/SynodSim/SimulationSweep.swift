import SynodCore

/// Runs one protocol over a range of seeds: what `synod sim` and the sweep tests share.
public struct SimulationSweep<R: Replica> {
    public var options: SimulationOptions
    public var replicaOptions: R.Options

    public init(options: SimulationOptions, replicaOptions: R.Options = R.Options()) {
        self.options = options
        self.replicaOptions = replicaOptions
    }

    /// Runs each seed in order, calling `progress` after each, and stops early after
    /// `stopAfterFailures` failing seeds (nil: run them all).
    public func run(
        seeds: ClosedRange<UInt64>, stopAfterFailures: Int? = nil,
        progress: (SimulationReport) -> Void = { _ in }
    ) throws -> [SimulationReport] {
        var reports: [SimulationReport] = []
        var failures = 0
        for seed in seeds {
            let simulation = try Simulation<R>(seed: seed, options: self.options, replicaOptions: self.replicaOptions)
            let report = simulation.run()
            reports.append(report)
            progress(report)
            if !report.isClean {
                failures += 1
                if let limit = stopAfterFailures, failures >= limit { break }
            }
        }
        return reports
    }
}
