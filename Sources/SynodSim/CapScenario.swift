import SynodCheck
import SynodCore

/// What clients on one side of a fixed partition saw while it lasted.
public struct PartitionSide: Sendable, Equatable {
    /// `majority` or `minority`.
    public var name: String
    /// The side's nodes.
    public var nodes: [NodeID]
    /// Clients on this side.
    public var clients: Int
    /// Writes called while the partition lasted and acknowledged before it healed.
    public var writesAccepted = 0
    /// Writes called while it lasted that were not acknowledged before it healed (refused,
    /// timed out, or answered only after the healing).
    public var writesRefused = 0
    /// Reads called while it lasted and answered before it healed.
    public var readsAnswered = 0
    /// Reads called while it lasted that were not answered before it healed.
    public var readsRefused = 0
    /// Reads called while it lasted that returned a value already overwritten before they
    /// began: a write of the key that began after the value's write had ended, and was
    /// acknowledged before the read began (a linearizable store never answers so).
    public var staleReads = 0
}

extension SimulationReport {
    /// Per side of `options.fixedPartition`, what its clients' operations called during the
    /// partition came to; empty without a fixed partition.
    public func partitionSides(_ options: SimulationOptions) -> [PartitionSide] {
        PartitionSide.sides(of: self.history, options)
    }
}

extension PartitionSide {
    /// Per side of `options.fixedPartition`, what the clients' operations in `history` called
    /// during the partition came to; empty without a fixed partition.
    public static func sides(of history: [HistoryOperation], _ options: SimulationOptions) -> [PartitionSide] {
        guard let partition = options.fixedPartition else { return [] }
        let minority = Set(partition.minority)
        var sides = [
            PartitionSide(
                name: "majority", nodes: (0..<options.nodes).filter { !minority.contains($0) }.map { NodeID(UInt16($0 + 1)) },
                clients: options.clients - partition.minorityClients),
            PartitionSide(name: "minority", nodes: partition.minority.sorted().map { NodeID(UInt16($0 + 1)) }, clients: partition.minorityClients),
        ]
        // Writes by value (values are unique), and acknowledged writes per key.
        var writeOf: [String: HistoryOperation] = [:]
        var acknowledged: [String: [HistoryOperation]] = [:]
        for operation in history where operation.kind != .get {
            if let value = operation.value { writeOf[value] = operation }
            if !operation.isPending { acknowledged[operation.key, default: []].append(operation) }
        }
        for operation in history where (partition.from..<partition.until).contains(operation.call) {
            let side = operation.client - 1 >= options.clients - partition.minorityClients ? 1 : 0
            let answered = !operation.unknown && operation.returnTime.map { $0 < partition.until } == true
            switch (operation.kind == .get, answered) {
            case (true, true):
                sides[side].readsAnswered += 1
                guard case .value(let value) = operation.output else { break }
                // The write whose value was read ended at `since` (the initial value: never).
                let since: UInt64? = value.flatMap { writeOf[$0]?.returnTime }
                if value != nil && since == nil { break }
                let overwritten = acknowledged[operation.key, default: []].contains { write in
                    write.returnTime! < operation.call && write.value != value && since.map { write.call > $0 } ?? true
                }
                if overwritten { sides[side].staleReads += 1 }
            case (true, false): sides[side].readsRefused += 1
            case (false, true): sides[side].writesAccepted += 1
            case (false, false): sides[side].writesRefused += 1
            }
        }
        return sides
    }
}
