import ArgumentParser
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOCore
import NIOSSL
import Logging
import SynodCausal
import SynodCore
import SynodKV
import SynodRuntime
import SynodStorage

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run one node of a cluster: a protocol over TCP, a durable log, the etcd-shaped HTTP API (the eventual store: its own).",
        discussion: """
            Example, three nodes on one machine: make the certificates once, then run each serve \
            line in its own terminal:
              synod certs --nodes 1,2,3 --out /tmp/synod/certs
              synod serve --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --client 127.0.0.1:8001 --data-dir /tmp/synod/1 --certs /tmp/synod/certs
              synod serve --id 2 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --client 127.0.0.1:8002 --data-dir /tmp/synod/2 --certs /tmp/synod/certs
              synod serve --id 3 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --client 127.0.0.1:8003 --data-dir /tmp/synod/3 --certs /tmp/synod/certs
            then, against any node (requests are forwarded to the leader):
              curl -s localhost:8001/v3/kv/put -d '{"key":"Zm9v","value":"YmFy"}'
              curl -s localhost:8002/v3/kv/range -d '{"key":"Zm9v"}'
            A fourth node joins (Raft): make its certificate with the same CA, add it, start it:
              synod certs --nodes 4 --out /tmp/synod/certs
              curl -s localhost:8001/v3/cluster/member/add -d '{"ID":"4","peerURLs":["127.0.0.1:7004"],"isLearner":true}'
              synod serve --id 4 --join http://127.0.0.1:8001 --client 127.0.0.1:8004 --data-dir /tmp/synod/4 --certs /tmp/synod/certs
            The eventually consistent store (--protocol eventual) has its own API, with siblings and causal \
            contexts (docs/eventual.md):
              curl -s -X PUT localhost:8001/v1/keys/greeting --data-binary hello
              curl -s localhost:8002/v1/keys/greeting
              curl -s -X PUT localhost:8003/v1/keys/greeting -H 'X-Synod-Context: 1:1' --data-binary hi
            A node keeps its cluster in its data directory: restart it with --id, --client, --data-dir \
            and the TLS options alone (--peers and --join only matter the first time).
            SIGTERM or SIGINT stops the node gracefully.
            """
    )


    @Option(help: "This node's id (1 to 65535).")
    var id: UInt16

    @Option(help: ArgumentHelp(
        "The cluster's first members as ID=HOST:PORT (its peer port), comma-separated, this node included.",
        discussion: "Only for a new cluster: later configurations (Raft's membership changes) are kept in the log, and a restarted node reads its cluster from its data directory."))
    var peers: String?

    @Option(help: ArgumentHelp(
        "Join a running cluster through a member's client URL (http://HOST:PORT or https://…), once this node was added with /v3/cluster/member/add.",
        discussion: "The node learns the cluster id, the protocol, the first configuration and its own peer address from the member list."))
    var join: String?

    @Option(help: "HOST:PORT for the client HTTP API.")
    var client: String

    @Option(name: .customLong("data-dir"), help: "Directory of this node's write-ahead log (created if missing).")
    var dataDir: String

    @Option(help: "Protocol: \(ProtocolRegistry.names.joined(separator: ", ")) (default raft; a restarted or joining node uses its cluster's).")
    var `protocol`: String?

    @Option(name: .customLong("tick-ms"), help: "Milliseconds per protocol tick (timeouts are counted in ticks).")
    var tickMs = 10

    @Option(help: ArgumentHelp(
        "Log compaction: snapshot the store every N applied positions and discard the log behind it (0: never).",
        discussion: "Replicas that fall behind the snapshot receive it whole; a restart loads it, then replays the short log after it."))
    var snapshotEvery: UInt64 = 100_000

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Option(help: ArgumentHelp(
        "Mixed into the cluster id (as etcd's --initial-cluster-token).",
        discussion: "Members refuse connections and data directories of another cluster id, protocol or member list."))
    var clusterToken = "synod"

    @Option(help: ArgumentHelp(
        "The cluster id in hexadecimal, instead of one derived from --cluster-token and --peers.",
        discussion: "To keep a cluster's data after changing its members' addresses, restart every member with the new --peers and the old id (which a refusal names)."))
    var clusterID: String?

    @Option(help: "Bytes after which the write-ahead log starts a new segment file (at least 4096); each segment reserves this much disk when it starts.")
    var walSegmentBytes = 64 << 20

    @Option(help: ArgumentHelp(
        "Directory of `synod certs` output: mutual TLS on the peer port with DIR/node-ID.pem, DIR/node-ID-key.pem and DIR/ca.pem.",
        valueName: "dir"))
    var certs: String?

    @Option(name: .customLong("peer-cert-file"), help: "This member's certificate for the peer port (PEM; its subject CN=synod-member-ID).")
    var peerCertFile: String?

    @Option(name: .customLong("peer-key-file"), help: "The key of --peer-cert-file (PEM).")
    var peerKeyFile: String?

    @Option(name: .customLong("peer-trusted-ca-file"), help: "The cluster CA that signs every member's certificate (PEM).")
    var peerTrustedCAFile: String?

    @Flag(name: .customLong("insecure-peers"), help: "Plain TCP on the peer port, without authentication: only on a network no one else can reach.")
    var insecurePeers = false

    @Flag(name: .customLong("client-tls"), help: "TLS on the client port with the --certs files (or give --cert-file and --key-file).")
    var clientTLS = false

    @Option(name: .customLong("cert-file"), help: "The client port's certificate (PEM); turns on TLS there.")
    var certFile: String?

    @Option(name: .customLong("key-file"), help: "The key of --cert-file (PEM).")
    var keyFile: String?

    @Option(name: .customLong("trusted-ca-file"), help: "The CA that signs client certificates, for --client-cert-auth (PEM).")
    var trustedCAFile: String?

    @Flag(name: .customLong("client-cert-auth"), help: "Clients must present a certificate signed by the trusted CA.")
    var clientCertAuth = false

    @Option(help: ArgumentHelp(
        "Most client connections open at once (0: as many as the descriptor limit safely allows).",
        discussion: "Connections beyond it wait in the listen queue until one closes."))
    var maxClientConnections = 0

    @Option(help: ArgumentHelp(
        "GET /metrics on the client port, in the Prometheus text format: on (default) or off.",
        discussion: "Client requests, commit and applied positions, epoch and leadership, write-ahead-log append and fdatasync latency and batch sizes, peer frames, links and queued bytes, snapshot durations and installs. Off only to measure what they cost."))
    var metrics = "on"

    @Option(help: "Seconds an idle client connection stays open (0: forever).")
    var clientIdleTimeout = 60

    @Option(help: ArgumentHelp(
        "How the client port reads a connection's requests: handler or hummingbird.",
        discussion: "handler (the default): a NIO channel handler answers the KV routes on the node's thread without a task, and hands the others to the router; hummingbird: Hummingbird's own connection for every route, as before, to compare."))
    var clientConnections = "handler"

    @Option(name: .customLong("option"), help: ArgumentHelp(
        "Set a protocol option, as NAME=VALUE (repeatable), e.g. --option pre-vote=off.",
        discussion: "Raft: pre-vote, check-quorum, follower-reads (on or off; on by default), lease-reads (off by default), max-clock-drift (a fraction, 0.25), max-inflight (pipelining window, 64; 1 turns pipelining off), max-inflight-bytes (16777216), max-uncommitted-bytes (67108864), snapshot-chunk-bytes (1048576, at most 8388608); Multi-Paxos: pre-vote (on by default); Paxos log: max-batch (values per slot, 256; 1 turns batching off), max-batch-bytes (262144), prepare-ahead (phase 1 for the next slot ahead of its value; on by default)."))
    var protocolOptions: [String] = []

    func validate() throws {
        if self.peers != nil {
            _ = try self.peerAddresses()
            guard self.join == nil else { throw ValidationError("give --peers (a new cluster) or --join (a running one), not both") }
        } else if let join = self.join {
            _ = try Self.joinURL(join)
        }
        _ = try Self.address(self.client, what: "--client")
        if let name = self.protocol { _ = try ProtocolRegistry.lookUpServable(name) }
        guard (1...10_000).contains(self.tickMs) else { throw ValidationError("--tick-ms must lie in 1...10000") }
        guard Logger.Level(rawValue: self.logLevel) != nil else { throw ValidationError("unknown --log-level '\(self.logLevel)'") }
        guard !self.dataDir.isEmpty else { throw ValidationError("--data-dir is empty; give the directory of this node's log") }
        _ = try self.peerTLSFiles()
        _ = try self.clientTLSSetting()
        if let clusterID = self.clusterID, UInt64(clusterID, radix: 16) == nil {
            throw ValidationError("--cluster-id '\(clusterID)' is not a hexadecimal number of at most 16 digits")
        }
        guard self.metrics == "on" || self.metrics == "off" else { throw ValidationError("--metrics must be on or off, got '\(self.metrics)'") }
        guard self.walSegmentBytes >= 4096 else { throw ValidationError("--wal-segment-bytes must be at least 4096") }
        guard self.maxClientConnections >= 0 else { throw ValidationError("--max-client-connections must be 0 (automatic) or more") }
        guard (0...86_400).contains(self.clientIdleTimeout) else { throw ValidationError("--client-idle-timeout must lie in 0...86400 seconds") }
        guard self.clientConnections == "handler" || self.clientConnections == "hummingbird" else {
            throw ValidationError("--client-connections must be handler or hummingbird, got '\(self.clientConnections)'")
        }
        do { _ = try ProtocolRegistry.with(self.protocol ?? "raft", SimCommand.CheckOptions(settings: self.protocolOptions)) } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The peer port's TLS files, or nil with `--insecure-peers`.
    func peerTLSFiles() throws -> TLSFiles? {
        let explicit = [self.peerCertFile, self.peerKeyFile, self.peerTrustedCAFile]
        if self.insecurePeers {
            guard explicit.allSatisfy({ $0 == nil }), self.certs == nil || self.clientTLS else {
                throw ValidationError("--insecure-peers turns peer TLS off; drop it, or drop the --peer-*-file options (and --certs, unless it serves --client-tls)")
            }
            return nil
        }
        if explicit.contains(where: { $0 != nil }) {
            guard let certificate = self.peerCertFile, let key = self.peerKeyFile, let ca = self.peerTrustedCAFile else {
                throw ValidationError("peer TLS needs all three of --peer-cert-file, --peer-key-file and --peer-trusted-ca-file")
            }
            return TLSFiles(certificate: certificate, key: key, trustedCA: ca)
        }
        guard let certs = self.certs else {
            throw ValidationError(
                "the peer port needs TLS: give --certs DIR (made by `synod certs --nodes 1,2,3 --out DIR`), or the "
                    + "--peer-cert-file, --peer-key-file and --peer-trusted-ca-file options; or --insecure-peers for plain TCP "
                    + "on a network no one else can reach")
        }
        return TLSFiles.member(NodeID(self.id), in: certs)
    }

    /// The client port's TLS, or nil for plain HTTP.
    func clientTLSSetting() throws -> ClientTLS? {
        var files: TLSFiles?
        if self.certFile != nil || self.keyFile != nil {
            guard let certificate = self.certFile, let key = self.keyFile else {
                throw ValidationError("client TLS needs both --cert-file and --key-file")
            }
            files = TLSFiles(certificate: certificate, key: key, trustedCA: self.trustedCAFile ?? self.certs.map { "\($0)/ca.pem" } ?? "")
        } else if self.clientTLS {
            guard let certs = self.certs else { throw ValidationError("--client-tls uses the --certs files; give --certs DIR") }
            files = TLSFiles.member(NodeID(self.id), in: certs)
            if let ca = self.trustedCAFile { files!.trustedCA = ca }
        }
        guard let files else {
            guard !self.clientCertAuth else { throw ValidationError("--client-cert-auth needs TLS on the client port (--client-tls or --cert-file)") }
            return nil
        }
        if self.clientCertAuth && files.trustedCA.isEmpty {
            throw ValidationError("--client-cert-auth needs --trusted-ca-file (or --certs) to verify client certificates")
        }
        return ClientTLS(files: files, requireClientCertificates: self.clientCertAuth)
    }

    /// Raises the soft descriptor limit to the hard one (as Go does for etcd), and returns how
    /// many client connections fit under it with room left for the log, snapshots and peers.
    static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 256 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let available = Int(min(limit.rlim_cur, 1 << 20))  // RLIM_INFINITY is the largest value
        // Reserved: standard streams, the log segment and directory, snapshot files, event
        // loops and thread pools, peer links and their redials.
        return max(16, min(available - 128, (available * 7) / 8))
    }

    static func address(_ text: String, what: String) throws -> PeerAddress {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65_535).contains(port), colon != text.startIndex
        else { throw ValidationError("\(what) '\(text)' is not HOST:PORT") }
        return PeerAddress(host: String(text[..<colon]), port: port)
    }

    func peerAddresses() throws -> [NodeID: PeerAddress] {
        var peers: [NodeID: PeerAddress] = [:]
        for entry in (self.peers ?? "").split(separator: ",") {
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

    /// The `--join` URL as host, port and whether it is https.
    static func joinURL(_ text: String) throws -> (host: String, port: Int, tls: Bool) {
        let tls = text.hasPrefix("https://")
        guard tls || text.hasPrefix("http://"), let address = PeerAddress(text) else {
            throw ValidationError("--join '\(text)' is not a member's client URL, http://HOST:PORT or https://HOST:PORT")
        }
        return (address.host, address.port, tls)
    }

    /// Where the node's cluster comes from: `--peers` (a new cluster), the data directory (a
    /// restart), or `--join` (a node added to a running cluster).
    struct Start: Sendable {
        var protocolName: String
        var peers: [NodeID: PeerAddress]
        var clusterID: UInt64?
        var listen: PeerAddress?
    }

    func start() async throws -> Start {
        if self.peers != nil {
            return Start(protocolName: self.protocol ?? "raft", peers: try self.peerAddresses(), clusterID: self.clusterID.flatMap { UInt64($0, radix: 16) })
        }
        if let stored = try StoredCluster.read(dataDirectory: self.dataDir) {
            if let name = self.protocol, name != stored.protocolName {
                throw NodeStartError("\(self.dataDir) holds a \(stored.protocolName) node, not \(name); drop --protocol")
            }
            if self.join != nil { Console.error("note: \(self.dataDir) already belongs to a cluster; --join is ignored\n") }
            return Start(protocolName: stored.protocolName, peers: stored.initial, clusterID: stored.clusterID, listen: stored.listen)
        }
        guard let join = self.join else {
            throw NodeStartError("\(self.dataDir) holds no cluster yet: give --peers to start a new cluster, or --join URL to join a running one")
        }
        return try await self.learnCluster(join)
    }

    /// Asks a member for the member list: the cluster id, protocol and first configuration,
    /// and this node's peer address (given when it was added).
    func learnCluster(_ url: String) async throws -> Start {
        let (host, port, tls) = try Self.joinURL(url)
        let context: NIOSSLContext?
        if tls {
            var files = try self.clientTLSSetting()?.files
            if files == nil, let certs = self.certs { files = TLSFiles.member(NodeID(self.id), in: certs) }
            guard let files else { throw NodeStartError("--join \(url) is https: give --certs (or --cert-file and --key-file) to trust it") }
            context = try files.clientContext()
        } else {
            context = nil
        }
        let reply: HTTPConnection.Reply
        do {
            let connection = try await HTTPConnection.connect(host: host, port: port, tls: context)
            defer { Task { await connection.close() } }
            reply = try await connection.request(.GET, "/v3/cluster/member/list", timeout: .seconds(5))
        } catch {
            throw NodeStartError("cannot ask \(url) for the member list: \(error)")
        }
        guard reply.status == 200, let json = reply.json, let header = json["header"] as? [String: Any],
              let clusterText = header["cluster_id"] as? String, let clusterID = UInt64(clusterText),
              let protocolName = json["protocol"] as? String, let initialText = json["initialCluster"] as? String,
              let members = json["members"] as? [[String: Any]]
        else {
            throw NodeStartError("\(url)/v3/cluster/member/list did not answer with a Synod member list (HTTP \(reply.status)): \(String(decoding: reply.body.prefix(300), as: UTF8.self))")
        }
        var initial: [NodeID: PeerAddress] = [:]
        for entry in initialText.split(separator: ",") {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let raw = UInt16(parts[0]), let address = PeerAddress(String(parts[1])) else {
                throw NodeStartError("the member list names a first configuration '\(initialText)' this build cannot read")
            }
            initial[NodeID(raw)] = address
        }
        guard let me = members.first(where: { $0["ID"] as? String == "\(self.id)" }),
              let urls = me["peerURLs"] as? [String], let listen = urls.first.flatMap(PeerAddress.init)
        else {
            let names = members.compactMap { $0["ID"] as? String }.joined(separator: ", ")
            throw NodeStartError(
                "node \(self.id) is not a member of the cluster at \(url) (members: \(names)); add it first: "
                    + "curl -s \(url)/v3/cluster/member/add -d '{\"ID\":\"\(self.id)\",\"peerURLs\":[\"HOST:PORT\"],\"isLearner\":true}' (to the leader)")
        }
        if let name = self.protocol, name != protocolName {
            throw NodeStartError("the cluster at \(url) runs \(protocolName), not \(name); drop --protocol")
        }
        return Start(protocolName: protocolName, peers: initial, clusterID: clusterID, listen: listen)
    }

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        signal(SIGPIPE, SIG_IGN)
        let start: Start
        do {
            start = try await self.start()
        } catch {
            Console.error("error: cannot start node \(self.id): \(error)\n")
            throw ExitCode(1)
        }
        do {
            _ = try ProtocolRegistry.lookUpServable(start.protocolName)
        } catch {
            Console.error("error: cannot start node \(self.id): \(error)\n")
            throw ExitCode(1)
        }
        try await ProtocolRegistry.with(start.protocolName, Serve(command: self, start: start))()
    }

    /// `serve` for the protocol `with` opens, as a concrete type (so the node is specialised).
    struct Serve: ProtocolBody {
        let command: ServeCommand
        let start: Start
        func run<R: Replica>(_ type: R.Type) -> @Sendable () async throws -> Void {
            let (command, start) = (self.command, self.start)
            // The etcd-shaped store for protocols that order every command; the eventually
            // consistent store's key states and API for its own core.
            if R.commandSupport == .causalStore {
                return { try await command.serve(R.self, CausalStore.self, start: start) { CausalAPI(node: $0).router() } }
            }
            return {
                try await command.serve(R.self, KeyValueStore.self, start: start, fastRoutes: { ClientAPI(node: $0).fastRoutes() }) {
                    ClientAPI(node: $0).router()
                }
            }
        }
    }

    /// - Parameter fastRoutes: the routes a connection's handler answers on the node's loop
    ///   without a task, and the largest body it reads (`ClientChannel`); nil serves every
    ///   route through Hummingbird's HTTP/1 connection.
    func serve<R: Replica, Machine: ServiceMachine>(
        _ type: R.Type, _ machine: Machine.Type, start: Start,
        fastRoutes: ((ReplicaNode<R, Machine>) -> (routes: ClientChannel.FastRoutes, bodyLimit: Int))? = nil,
        router: (ReplicaNode<R, Machine>) -> Router<BasicRequestContext>
    ) async throws {
        var logger = Logger(label: "synod.n\(self.id)")
        logger.logLevel = Logger.Level(rawValue: self.logLevel)!
        logger[metadataKey: "node"] = "\(self.id)"  // in every line, the transport's and HTTP server's too
        var configuration = NodeConfiguration(id: NodeID(self.id), peers: start.peers, dataDirectory: self.dataDir)
        configuration.listenAddress = start.listen
        configuration.tickMilliseconds = Int64(self.tickMs)
        configuration.snapshotInterval = self.snapshotEvery
        configuration.clusterToken = self.clusterToken
        configuration.clusterID = start.clusterID
        configuration.walSegmentBytes = self.walSegmentBytes
        configuration.metrics = self.metrics == "on"
        configuration.peerTLS = try self.peerTLSFiles()
        let connectionLimit = Self.raiseDescriptorLimit()
        let maximumConnections = self.maxClientConnections == 0 ? connectionLimit : self.maxClientConnections
        let clientTLS: TLSConfiguration?
        do {
            clientTLS = try self.clientTLSSetting()?.serverConfiguration()
        } catch {
            Console.error("error: cannot start node \(self.id): client TLS: \(error)\n")
            throw ExitCode(1)
        }
        let node: ReplicaNode<R, Machine>
        do {
            node = try ReplicaNode<R, Machine>(
                configuration: configuration, options: try SimCommand.replicaOptions(R.self, self.protocolOptions), logger: logger)
        } catch {
            Console.error("error: cannot start node \(self.id): \(error)\n")
            throw ExitCode(1)
        }
        let id = self.id
        node.onFatal = { reason in
            Console.error("error: node \(id) stopped: \(reason)\n")
            Foundation.exit(1)
        }
        do {
            try await node.start()
        } catch {
            Console.error("error: cannot listen for peers on \(configuration.peerAddress!): \(error)\n")
            throw ExitCode(1)
        }
        let client = try Self.address(self.client, what: "--client")
        let serving = logger
        let idleTimeout: TimeAmount? = self.clientIdleTimeout == 0 ? nil : .seconds(Int64(self.clientIdleTimeout))
        let routes = router(node)
        let connections: HTTPServerBuilder
        if let fast = fastRoutes?(node), self.clientConnections == "handler" {
            connections = ClientChannel.builder(
                router: routes, bodyLimit: fast.bodyLimit, idleTimeout: idleTimeout, executor: node.taskExecutor, fastRoutes: fast.routes)
        } else {
            connections = .http1(configuration: HTTP1Channel.Configuration(idleTimeout: idleTimeout))
        }
        let server: HTTPServerBuilder
        do {
            server = try clientTLS.map { try .tls(connections, tlsConfiguration: $0) } ?? connections
        } catch {
            Console.error("error: cannot start node \(self.id): client TLS: \(error)\n")
            await node.stop()
            throw ExitCode(1)
        }
        let scheme = clientTLS == nil ? "http" : "https"
        let app = Application(
            router: routes,
            server: server,
            configuration: .init(
                address: .hostname(client.host, port: client.port), serverName: "synod",
                availableConnectionsDelegate: MaximumAvailableConnections(maximumConnections, logger: logger)),
            onServerRunning: { _ in
                serving.info("serving", metadata: [
                    "client": "\(scheme)://\(client)", "protocol": "\(R.protocolName)", "maxClientConnections": "\(maximumConnections)",
                ])
            },
            // The node's own thread serves HTTP too: no thread hop between a socket and the core.
            eventLoopGroupProvider: .shared(node.eventLoopGroup),
            logger: logger)
        do {
            // Every connection's and request's task is a child of this one, so the handlers run
            // on the node's thread too (measured: 24% less server CPU per put, 14% to 17% fewer
            // linearizable ranges/s at 64 clients, whose JSON then shares the leader's one thread).
            try await withTaskExecutorPreference(node.taskExecutor) { try await app.runService() }
        } catch {
            Console.error("error: the client API on \(client) failed: \(error)\n")
            await node.stop()
            throw ExitCode(1)
        }
        await node.stop()
        logger.info("stopped")
    }
}
