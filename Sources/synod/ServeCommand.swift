import ArgumentParser
import Foundation
import Hummingbird
import Logging
import SynodCore
import SynodPaxos
import SynodRaft
import SynodRuntime
import SynodStorage

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run one node of a cluster: a protocol over TCP, a durable log, the etcd-shaped HTTP API.",
        discussion: """
            Example, three nodes on one machine (run each line in its own terminal):
              synod serve --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --client 127.0.0.1:8001 --data-dir /tmp/synod/1
              synod serve --id 2 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --client 127.0.0.1:8002 --data-dir /tmp/synod/2
              synod serve --id 3 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --client 127.0.0.1:8003 --data-dir /tmp/synod/3
            then, against any node (requests are forwarded to the leader):
              curl -s localhost:8001/v3/kv/put -d '{"key":"Zm9v","value":"YmFy"}'
              curl -s localhost:8002/v3/kv/range -d '{"key":"Zm9v"}'
            SIGTERM or SIGINT stops the node gracefully.
            """
    )

    static let protocols = ["raft", "multipaxos", "paxos"]

    @Option(help: "This node's id (1 to 65535).")
    var id: UInt16

    @Option(help: "Every member as ID=HOST:PORT (its peer port), comma-separated, this node included.")
    var peers: String

    @Option(help: "HOST:PORT for the client HTTP API.")
    var client: String

    @Option(name: .customLong("data-dir"), help: "Directory of this node's write-ahead log (created if missing).")
    var dataDir: String

    @Option(help: "Protocol: \(ServeCommand.protocols.joined(separator: ", ")).")
    var `protocol` = "raft"

    @Option(name: .customLong("tick-ms"), help: "Milliseconds per protocol tick (timeouts are counted in ticks).")
    var tickMs = 10

    @Option(help: ArgumentHelp(
        "Log compaction: snapshot the store every N applied positions and discard the log behind it (0: never).",
        discussion: "Replicas that fall behind the snapshot receive it whole; a restart loads it, then replays the short log after it."))
    var snapshotEvery: UInt64 = 100_000

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        _ = try self.peerAddresses()
        _ = try Self.address(self.client, what: "--client")
        guard Self.protocols.contains(self.protocol) else {
            throw ValidationError("unknown protocol '\(self.protocol)'; known: \(Self.protocols.joined(separator: ", "))")
        }
        guard (1...10_000).contains(self.tickMs) else { throw ValidationError("--tick-ms must lie in 1...10000") }
        guard Logger.Level(rawValue: self.logLevel) != nil else { throw ValidationError("unknown --log-level '\(self.logLevel)'") }
    }

    static func address(_ text: String, what: String) throws -> PeerAddress {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65_535).contains(port), colon != text.startIndex
        else { throw ValidationError("\(what) '\(text)' is not HOST:PORT") }
        return PeerAddress(host: String(text[..<colon]), port: port)
    }

    func peerAddresses() throws -> [NodeID: PeerAddress] {
        var peers: [NodeID: PeerAddress] = [:]
        for entry in self.peers.split(separator: ",") {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let raw = UInt16(parts[0]), raw >= 1 else {
                throw ValidationError("--peers entry '\(entry)' is not ID=HOST:PORT")
            }
            guard peers[NodeID(raw)] == nil else { throw ValidationError("--peers names node \(raw) twice") }
            peers[NodeID(raw)] = try Self.address(String(parts[1]), what: "--peers entry for \(raw)")
        }
        guard peers[NodeID(self.id)] != nil else { throw ValidationError("--peers must include this node (\(self.id))") }
        return peers
    }

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        switch self.protocol {
        case "multipaxos": try await self.serve(MultiPaxosReplica.self)
        case "paxos": try await self.serve(PaxosLogReplica.self)
        default: try await self.serve(RaftReplica.self)
        }
    }

    func serve<R: Replica>(_ type: R.Type) async throws {
        var logger = Logger(label: "synod.n\(self.id)")
        logger.logLevel = Logger.Level(rawValue: self.logLevel)!
        var configuration = NodeConfiguration(id: NodeID(self.id), peers: try self.peerAddresses(), dataDirectory: self.dataDir)
        configuration.tickMilliseconds = Int64(self.tickMs)
        configuration.snapshotInterval = self.snapshotEvery
        let node: ReplicaNode<R>
        do {
            try FileManager.default.createDirectory(atPath: self.dataDir + "/wal", withIntermediateDirectories: true)
            node = try ReplicaNode<R>(configuration: configuration, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("error: cannot start node \(self.id): \(error)\n".utf8))
            throw ExitCode(1)
        }
        let id = self.id
        node.onFatal = { reason in
            FileHandle.standardError.write(Data("error: node \(id) stopped: \(reason)\n".utf8))
            Foundation.exit(1)
        }
        do {
            try await node.start()
        } catch {
            FileHandle.standardError.write(Data("error: cannot listen for peers on \(configuration.peers[NodeID(self.id)]!): \(error)\n".utf8))
            throw ExitCode(1)
        }
        let client = try Self.address(self.client, what: "--client")
        let serving = logger
        let app = Application(
            router: ClientAPI(node: node).router(),
            configuration: .init(address: .hostname(client.host, port: client.port), serverName: "synod"),
            onServerRunning: { _ in serving.info("serving", metadata: ["client": "\(client)", "protocol": "\(R.protocolName)"]) },
            // The node's own thread serves HTTP too: no thread hop between a request and the core.
            eventLoopGroupProvider: .shared(node.eventLoopGroup),
            logger: logger)
        do {
            try await app.runService()
        } catch {
            FileHandle.standardError.write(Data("error: the client API on \(client) failed: \(error)\n".utf8))
            await node.stop()
            throw ExitCode(1)
        }
        await node.stop()
        logger.info("stopped")
    }
}
