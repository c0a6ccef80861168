// swift-tools-version: 6.1
// Synod's benchmarks, a package of their own so that plain builds of Synod stay fast.
// Run from this folder: swift package benchmark
import PackageDescription

let package = Package(
    name: "SynodBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Synod", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "SynodBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SynodCore", package: "Synod"),
                .product(name: "SynodRaft", package: "Synod"),
                .product(name: "SynodSim", package: "Synod"),
                .product(name: "SynodCheck", package: "Synod"),
                .product(name: "SynodDriver", package: "Synod"),
                .product(name: "SynodKV", package: "Synod"),
                .product(name: "SynodRuntime", package: "Synod"),
            ],
            path: "Benchmarks/SynodBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
