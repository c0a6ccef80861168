import ArgumentParser
import SynodABD
import SynodCore
import SynodEventual
import SynodPaxos
import SynodRaft

/// Something the command line does with one protocol's core, given as a concrete type.
///
/// Commands reach a protocol through a visitor rather than an `any Replica.Type`: opening an
/// existential calls the generic code unspecialised (every field of the node, the driver and
/// the core then goes through generic metadata), while `ProtocolRegistry.forEach` calls
/// `visit` with each concrete type, so the optimiser specialises everything below it.
protocol ProtocolVisitor {
    mutating func visit<R: Replica>(_ type: R.Type) throws
}

/// The one registry of the protocols the command line runs: `synod sim` (and `--compare`),
/// `synod serve` and `synod demo` all look names up here. Adding a protocol is its own module
/// and one line in `forEach`.
enum ProtocolRegistry {
    /// Calls `visitor` with every protocol's core, in the order `--help` lists them.
    static func forEach<V: ProtocolVisitor>(_ visitor: inout V) throws {
        try visitor.visit(RaftReplica.self)
        try visitor.visit(MultiPaxosReplica.self)
        try visitor.visit(PaxosLogReplica.self)
        try visitor.visit(ABDReplica.self)
        try visitor.visit(EventualReplica.self)
    }

    /// Every protocol's core, in the order `--help` lists them.
    static var all: [any Replica.Type] {
        struct Collect: ProtocolVisitor {
            var types: [any Replica.Type] = []
            mutating func visit<R: Replica>(_ type: R.Type) { self.types.append(type) }
        }
        var collect = Collect()
        try! Self.forEach(&collect)  // Collect never throws.
        return collect.types
    }

    /// The protocols' names (`Replica.protocolName`).
    static var names: [String] { Self.all.map { $0.protocolName } }

    /// The core named `name`.
    static func named(_ name: String) -> (any Replica.Type)? {
        Self.all.first { $0.protocolName == name }
    }

    /// The core named `name`, or a validation error listing the known names.
    static func lookUp(_ name: String, option: String = "--protocol") throws -> any Replica.Type {
        guard let type = Self.named(name) else {
            throw ValidationError("unknown protocol '\(name)' for \(option); known: \(Self.names.joined(separator: ", "))")
        }
        return type
    }

    /// The core named `name` for `synod serve`, or a validation error: the etcd-shaped store
    /// needs a protocol that orders every command, the eventually consistent store its own
    /// core; ABD (single-key puts and gets) has no service yet.
    static func lookUpServable(_ name: String, option: String = "--protocol") throws -> any Replica.Type {
        let type = try Self.lookUp(name, option: option)
        guard type.commandSupport == .any || type.commandSupport == .causalStore else {
            throw ValidationError(
                "\(name) takes single-key puts and gets only, and the key-value service's etcd semantics (one revision for the "
                    + "whole store, transactions) need a protocol that orders every command; it runs in the simulator: "
                    + "synod sim --protocol \(name)")
        }
        return type
    }

    /// The core named `name` for `synod demo`, which runs the etcd-shaped service and checks
    /// its history for linearizability: a protocol that orders every command.
    static func lookUpLinearizableService(_ name: String, option: String = "--protocol") throws -> any Replica.Type {
        let type = try Self.lookUpServable(name, option: option)
        guard type.commandSupport == .any else {
            throw ValidationError(
                "the demo runs the etcd-shaped service and checks its history for linearizability; \(name) is an eventually "
                    + "consistent store with its own API: run it with synod serve --protocol \(name) (docs/eventual.md), or in "
                    + "the simulator: synod sim --protocol \(name)")
        }
        return type
    }

    /// Runs `body` with the core named `name` as a concrete type, and returns its result; a
    /// validation error listing the known names if there is no such protocol.
    static func with<Result>(
        _ name: String, option: String = "--protocol", _ body: some ProtocolBody<Result>
    ) throws -> Result {
        _ = try Self.lookUp(name, option: option)
        var matching = Matching(name: name, body: body, result: nil)
        try Self.forEach(&matching)
        return matching.result!  // lookUp found the name, so forEach visited it.
    }
}

/// Runs `body` on the visited core whose name is `name`.
private struct Matching<Body: ProtocolBody>: ProtocolVisitor {
    let name: String
    let body: Body
    var result: Body.Result?
    mutating func visit<R: Replica>(_ type: R.Type) throws {
        if self.result == nil && R.protocolName == self.name { self.result = try self.body.run(type) }
    }
}

/// A generic function of one protocol's core, for `ProtocolRegistry.with`.
protocol ProtocolBody<Result> {
    associatedtype Result
    func run<R: Replica>(_ type: R.Type) throws -> Result
}
