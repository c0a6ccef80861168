import ArgumentParser
import SynodCore
import SynodPaxos
import SynodRaft

/// The one registry of the protocols the command line runs: `synod sim` (and `--compare`),
/// `synod serve` and `synod demo` all look names up here, and everything after the lookup is
/// generic over `Replica`. Adding a protocol is its own module and one line in `all`.
enum ProtocolRegistry {
    /// Every protocol's core, in the order `--help` lists them.
    static var all: [any Replica.Type] {
        [
            RaftReplica.self,
            MultiPaxosReplica.self,
            PaxosLogReplica.self,
        ]
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
}
