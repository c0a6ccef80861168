import Foundation
@testable import SynodRuntime
import SynodCore
import Testing

/// What a node keeps to restart without `--peers`, peer URLs, and certificates for a member
/// added later.
@Suite("Runtime: the stored cluster, peer URLs, certificates for a new member")
struct MembershipUnitTests {
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "synod-unit-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("peer URLs: HOST:PORT with an optional http(s):// and trailing slash; anything else is refused")
    func peerURLs() {
        #expect(PeerAddress("127.0.0.1:7004") == PeerAddress(host: "127.0.0.1", port: 7004))
        #expect(PeerAddress("http://node4.example:7004/") == PeerAddress(host: "node4.example", port: 7004))
        #expect(PeerAddress("https://10.0.0.4:1") == PeerAddress(host: "10.0.0.4", port: 1))
        for bad in ["", "nowhere", ":7004", "host:0", "host:65536", "host:port", "a b:1", "x=y:1", "a,b:1", "http://a/b:1"] {
            #expect(PeerAddress(bad) == nil, "\(bad)")
        }
    }

    @Test("the cluster file round-trips, is replaced whole, and a damaged one is refused with a reason")
    func storedCluster() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try StoredCluster.read(dataDirectory: directory) == nil, "a new data directory has none")
        let stored = StoredCluster(
            clusterID: 0xABCDEF, protocolName: "raft",
            initial: [NodeID(1): PeerAddress(host: "127.0.0.1", port: 7001), NodeID(2): PeerAddress(host: "node2", port: 7002)],
            listen: PeerAddress(host: "127.0.0.1", port: 7004))
        try stored.write(dataDirectory: directory)
        #expect(try StoredCluster.read(dataDirectory: directory) == stored)
        var moved = stored
        moved.listen = PeerAddress(host: "127.0.0.1", port: 7005)
        try moved.write(dataDirectory: directory)
        #expect(try StoredCluster.read(dataDirectory: directory) == moved)
        #expect(!FileManager.default.fileExists(atPath: directory + "/cluster.new"))
        // Every damaged variant of the file is refused, never trapped on or half read.
        let text = moved.encoded
        var variants = (0..<text.count).map { String(text.prefix($0)) }
        variants += ["synod-cluster 2" + text.dropFirst(15), text.replacingOccurrences(of: "1=", with: "0="),
                     text.replacingOccurrences(of: ":7001", with: ":70001"), text + "extra\n"]
        for variant in variants {
            try Data(variant.utf8).write(to: URL(fileURLWithPath: directory + "/cluster"))
            #expect(throws: NodeStartError.self) { try StoredCluster.read(dataDirectory: directory) }
        }
    }

    @Test("certificates for a member added later are signed by the cluster's CA, which is kept")
    func certificateForNewMember() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try ClusterCertificates.generate(nodes: [NodeID(1), NodeID(2), NodeID(3)], directory: directory)
        let ca = try String(contentsOfFile: directory + "/ca.pem", encoding: .utf8)
        let written = try ClusterCertificates.generate(nodes: [NodeID(4)], directory: directory)
        #expect(written.files.map { URL(fileURLWithPath: $0).lastPathComponent } == ["node-4.pem", "node-4-key.pem"])
        #expect(try String(contentsOfFile: directory + "/ca.pem", encoding: .utf8) == ca, "the CA is kept")
        // Both ends of a TLS handshake accept it: node 4's files make a peer TLS setup that
        // trusts the CA the others use.
        _ = try PeerTLS(files: TLSFiles.member(NodeID(4), in: directory), member: NodeID(4))
        // Again for the same member: refused, nothing overwritten.
        #expect(throws: TLSSetupError.self) { try ClusterCertificates.generate(nodes: [NodeID(4)], directory: directory) }
        // A CA key that does not belong to the CA certificate is refused.
        let other = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: other) }
        _ = try ClusterCertificates.generate(nodes: [NodeID(1)], directory: other)
        try FileManager.default.removeItem(atPath: directory + "/ca-key.pem")
        try FileManager.default.copyItem(atPath: other + "/ca-key.pem", toPath: directory + "/ca-key.pem")
        #expect(throws: TLSSetupError.self) { try ClusterCertificates.generate(nodes: [NodeID(5)], directory: directory) }
    }
}
