import Logging
import NIOCore
import NIOEmbedded
import SynodCore
import SynodRaft
@testable import SynodRuntime
import Synchronization
import Testing

@Suite("Peer transport: frames too large for one travel as fragments")
struct FragmentTests {
    typealias Frame = PeerFrame<RaftMessage>

    static func snapshotFrame(bytes: Int) -> Frame {
        var random = DeterministicRandom(seed: 5)
        let data = (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &random) }
        return .message(.installSnapshot(InstallSnapshot(term: Term(3), snapshot: Snapshot(position: 9, tag: 3, data: data))))
    }

    /// A handler for a connection from node 1, on an active embedded channel, and what it delivers.
    /// The encoded frames a handler delivered.
    final class Delivered: Sendable {
        let frames = Mutex<[[UInt8]]>([])
        var all: [[UInt8]] { self.frames.withLock { $0 } }
    }

    static func receiver(maximumMessageBytes: Int) throws -> (EmbeddedChannel, Delivered) {
        let delivered = Delivered()
        let members = [1, 2, 3].map { (NodeID(UInt16($0)), PeerAddress(host: "127.0.0.1", port: 7000 + $0)) }
        let cluster = ClusterIdentity(clusterID: 1, protocolName: "raft", members: Dictionary(uniqueKeysWithValues: members))
        let handler = PeerInboundHandler<RaftMessage>(
            local: PeerHello(node: NodeID(2), cluster: cluster), requireCertificate: false, refusals: RefusalLog(logger: Logger(label: "test")),
            maximumMessageBytes: maximumMessageBytes, isMember: { cluster.members[$0] != nil },
            deliver: { frame, _ in delivered.frames.withLock { $0.append(frame.encoded()) } },
            identified: { _, _ in })
        handler.peer = NodeID(1)  // as after node 1's hello
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, delivered)
    }

    @Test("a 3 MB snapshot message becomes fragments within a 1 MiB frame limit, joined back in order")
    func roundTrip() throws {
        let frame = Self.snapshotFrame(bytes: 3_000_000)
        let pieces = PeerTransport<RaftMessage>.frames(frame.encoded(), maximumFrameBytes: 1 << 20)
        #expect(pieces.count == 3)
        #expect(pieces.allSatisfy { $0.count <= 1 << 20 })
        #expect(PeerTransport<RaftMessage>.frames([1, 2, 3], maximumFrameBytes: 1 << 20) == [[1, 2, 3]], "a small frame is itself")
        let (channel, delivered) = try Self.receiver(maximumMessageBytes: 8 << 20)
        // Other frames travel between the pieces (the sender writes one piece at a time) and
        // are delivered at once; the large message once its last piece is in.
        let heartbeat = Frame.statusRequest(id: 7)
        for piece in pieces {
            try channel.writeInbound(ByteBuffer(bytes: piece))
            try channel.writeInbound(ByteBuffer(bytes: heartbeat.encoded()))
        }
        #expect(delivered.all == [heartbeat.encoded(), heartbeat.encoded(), frame.encoded(), heartbeat.encoded()])
        #expect(channel.isActive)
    }

    @Test("fragments past the message limit, or nested fragments, close the connection")
    func limits() throws {
        let pieces = PeerTransport<RaftMessage>.frames(Self.snapshotFrame(bytes: 3_000_000).encoded(), maximumFrameBytes: 1 << 20)
        let (channel, delivered) = try Self.receiver(maximumMessageBytes: 2 << 20)
        for piece in pieces where channel.isActive { _ = try? channel.writeInbound(ByteBuffer(bytes: piece)) }
        #expect(!channel.isActive, "closed once the pieces passed 2 MiB")
        #expect(delivered.all.isEmpty)

        let inner = Frame.fragment(last: true, [1, 2, 3]).encoded()
        let (second, nothing) = try Self.receiver(maximumMessageBytes: 8 << 20)
        _ = try? second.writeInbound(ByteBuffer(bytes: Frame.fragment(last: true, inner).encoded()))
        #expect(!second.isActive)
        #expect(nothing.all.isEmpty)
    }
}
