// swift-tools-version: 6.1
import PackageDescription

/// The simulator, the node and the driver are generic over `Replica`; cross-module optimisation
/// lets the executable specialise them for each protocol instead of going through generic
/// metadata on every event (measured: about 2.5 times more simulated events per second). It
/// only helps if the executable reaches them with a concrete type: `ProtocolRegistry` calls a
/// visitor with each protocol's type rather than handing out an `any Replica.Type`.
let optimized: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]

let package = Package(
    name: "Synod",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SynodCore", targets: ["SynodCore"]),
        .library(name: "SynodRaft", targets: ["SynodRaft"]),
        .library(name: "SynodSim", targets: ["SynodSim"]),
        .library(name: "SynodCheck", targets: ["SynodCheck"]),
        .library(name: "SynodKV", targets: ["SynodKV"]),
        .library(name: "SynodStorage", targets: ["SynodStorage"]),
        .library(name: "SynodPaxos", targets: ["SynodPaxos"]),
        .library(name: "SynodRuntime", targets: ["SynodRuntime"]),
        .library(name: "SynodDriver", targets: ["SynodDriver"]),
        .library(name: "SynodClocks", targets: ["SynodClocks"]),
        .library(name: "SynodABD", targets: ["SynodABD"]),
        .library(name: "SynodCausal", targets: ["SynodCausal"]),
        .library(name: "SynodEventual", targets: ["SynodEventual"]),
        .executable(name: "synod", targets: ["synod"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.10.0"),
        // NIO's HTTP/1 codec in the shape of swift-http-types, for the client port's handler.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        // Mutual TLS on the peer port (and TLS on the client port): certificates made and read
        // with swift-certificates, keys from swift-crypto, the handshake in swift-nio-ssl.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.29.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.1.0"),
        // GET /metrics: swift-metrics' API, exported in the Prometheus text format.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // Core interface: Replica, ClientSession, Ready, NodeID, Command, seeded RNG, quorums.
        .target(name: "SynodCore", swiftSettings: optimized),
        // Pure, deterministic Raft core.
        .target(name: "SynodRaft", dependencies: ["SynodCore"], swiftSettings: optimized),
        // Linearizability checker for key-value histories (JSON Lines format of DESIGN.md).
        .target(name: "SynodCheck", swiftSettings: optimized),
        // The replicated key-value state machine (etcd semantics), canonical snapshots.
        .target(name: "SynodKV", dependencies: ["SynodCore"], swiftSettings: optimized),
        // Paxos: single-decree Basic Paxos, Multi-Paxos, and a log of independent Basic Paxos decrees.
        .target(name: "SynodPaxos", dependencies: ["SynodCore"], swiftSettings: optimized),
        // The pure node driver: one node's whole Ready contract (requests and their sessions,
        // routing, sync ordering, apply, replies, snapshots), run by the simulator and the server.
        .target(name: "SynodDriver", dependencies: ["SynodCore"], swiftSettings: optimized),
        // Logical time: Lamport, vector and hybrid logical clocks (pure values; a Lamport clock
        // shared through an atomic).
        .target(name: "SynodClocks", dependencies: ["SynodCore"], swiftSettings: optimized),
        // The ABD quorum register: linearizable single-key reads and writes without consensus.
        .target(name: "SynodABD", dependencies: ["SynodCore"], swiftSettings: optimized),
        // Causal key states (dotted siblings and a context, a join semilattice) and the state
        // machine of the eventually consistent store, shared by its core and the simulator.
        .target(name: "SynodCausal", dependencies: ["SynodCore", "SynodClocks"], swiftSettings: optimized),
        // The eventually consistent store: any replica accepts reads and writes; read repair
        // and anti-entropy make replicas converge.
        .target(name: "SynodEventual", dependencies: ["SynodCore", "SynodClocks", "SynodCausal"], swiftSettings: optimized),
        // Durable storage: the write-ahead log (segments, CRC-32C, torn-tail recovery).
        .target(name: "SynodStorage", dependencies: ["SynodCore"], swiftSettings: optimized),
        // The server runtime: one node of any protocol over TCP with a durable log, the
        // etcd-shaped HTTP API, and the eventually consistent store's.
        .target(
            name: "SynodRuntime",
            dependencies: [
                "SynodCore", "SynodDriver", "SynodKV", "SynodStorage", "SynodCausal", "SynodClocks",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: optimized
        ),
        // Local clusters of `synod serve` processes and a recording HTTP workload: `synod demo`
        // and the process tests.
        .target(
            name: "SynodCluster",
            dependencies: ["SynodCore", "SynodRuntime", "SynodCheck", .product(name: "NIOSSL", package: "swift-nio-ssl")]),
        // Deterministic simulator, generic over Replica; it depends on no protocol module.
        .target(
            name: "SynodSim",
            dependencies: [
                "SynodCore",
                "SynodDriver",
                "SynodCheck",
                "SynodKV",
                "SynodCausal",
                "SynodClocks",
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: optimized
        ),
        .executableTarget(
            name: "synod",
            dependencies: [
                "SynodCore", "SynodRaft", "SynodPaxos", "SynodABD", "SynodEventual", "SynodSim", "SynodCheck", "SynodRuntime", "SynodCluster", "SynodStorage",
                "SynodKV", "SynodCausal",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .testTarget(name: "SynodCoreTests", dependencies: ["SynodCore", "SynodDriver"]),
        .testTarget(
            name: "SynodServiceTests",
            dependencies: [
                "SynodCore", "SynodRuntime", "SynodCluster", "SynodCheck", "SynodStorage", "SynodRaft", "SynodPaxos",
                "SynodCausal", "SynodClocks", "SynodEventual",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"), .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .testTarget(name: "SynodRaftTests", dependencies: ["SynodCore", "SynodRaft"]),
        .testTarget(name: "SynodCheckTests", dependencies: ["SynodCheck"]),
        .testTarget(name: "SynodClocksTests", dependencies: ["SynodCore", "SynodClocks"]),
        .testTarget(name: "SynodKVTests", dependencies: ["SynodCore", "SynodKV"]),
        .testTarget(name: "SynodPaxosTests", dependencies: ["SynodCore", "SynodPaxos", "SynodSim"]),
        .testTarget(name: "SynodStorageTests", dependencies: ["SynodCore", "SynodRaft", "SynodStorage"]),
        .testTarget(name: "SynodSimTests", dependencies: ["SynodCore", "SynodRaft", "SynodPaxos", "SynodSim", "SynodCheck"]),
        .testTarget(name: "SynodABDTests", dependencies: ["SynodCore", "SynodABD", "SynodSim", "SynodCheck", "SynodDriver"]),
        .testTarget(
            name: "SynodEventualTests",
            dependencies: ["SynodCore", "SynodClocks", "SynodCausal", "SynodEventual", "SynodSim", "SynodCheck", "SynodDriver", "SynodRaft"]),
    ],
    swiftLanguageModes: [.v6]
)
