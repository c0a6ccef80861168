import Logging
import NIOCore
import NIOPosix
import SynodCore

/// Where a peer listens.
public struct PeerAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(self.host):\(self.port)" }
}

/// Splits a TCP byte stream into length-prefixed frames (a 4-byte big-endian length, then the
/// payload). A length above `maximumFrameBytes` is an error: the connection is closed.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maximumFrameBytes: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= self.maximumFrameBytes else {
            throw TransportError.frameTooLarge(Int(length), limit: self.maximumFrameBytes)
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

/// Why a peer connection was closed.
enum TransportError: Error, CustomStringConvertible {
    case frameTooLarge(Int, limit: Int)
    case undecodable(String)
    case noHello
    case unknownPeer(NodeID)
    case tooManyConnections

    var description: String {
        switch self {
        case .frameTooLarge(let length, let limit): "frame of \(length) bytes exceeds the limit of \(limit)"
        case .undecodable(let reason): "undecodable frame: \(reason)"
        case .noHello: "the first frame was not a hello"
        case .unknownPeer(let node): "hello from \(node), which is not another member"
        case .tooManyConnections: "too many inbound peer connections"
        }
    }
}

/// The receiving end of one inbound peer connection: the first frame names the peer; every
/// later frame goes to `deliver`. Anything malformed closes the connection with a logged reason.
/// `@unchecked Sendable`: a channel handler lives on its channel's event loop, the node's, and
/// `peer` is only touched there (the hello timer is scheduled on the same loop).
final class PeerInboundHandler<Message: WireCodable & Sendable>: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let members: Set<NodeID>
    let localID: NodeID
    let logger: Logger
    let deliver: @Sendable (PeerFrame<Message>, NodeID) -> Void
    var peer: NodeID?

    init(members: Set<NodeID>, localID: NodeID, logger: Logger, deliver: @escaping @Sendable (PeerFrame<Message>, NodeID) -> Void) {
        self.members = members
        self.localID = localID
        self.logger = logger
        self.deliver = deliver
    }

    /// A connection that has not named its peer within this time is closed (a stray client,
    /// a half-open socket): inbound connections cannot pile up unnamed.
    static var helloTimeout: TimeAmount { .seconds(5) }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        let logger = self.logger
        context.eventLoop.scheduleTask(in: Self.helloTimeout) {
            guard self.peer == nil, channel.isActive else { return }
            logger.warning("closing peer connection", metadata: [
                "remote": "\(channel.remoteAddress.map { "\($0)" } ?? "?")", "reason": "no hello within 5 s",
            ])
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        do {
            let frame = try PeerFrame<Message>.decode(bytes)
            guard let peer = self.peer else {
                guard case .hello(let node) = frame else { throw TransportError.noHello }
                guard self.members.contains(node), node != self.localID else { throw TransportError.unknownPeer(node) }
                self.peer = node
                return
            }
            self.deliver(frame, peer)
        } catch let error as TransportError {
            self.close(context, reason: error.description)
        } catch {
            self.close(context, reason: TransportError.undecodable("\(error)").description)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.close(context, reason: "\(error)")
    }

    func close(_ context: ChannelHandlerContext, reason: String) {
        self.logger.warning("closing peer connection", metadata: [
            "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "peer": "\(self.peer.map { "\($0)" } ?? "unknown")",
            "reason": "\(reason)",
        ])
        context.close(promise: nil)
    }
}

/// Discards whatever a peer sends back on a connection we dialled (nothing is expected).
final class DiscardInboundHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// TCP links to the other replicas: a listener for their connections, and one outbound
/// connection per peer, redialled with exponential backoff. Sends never block: while a link is
/// down, or its outbound buffer holds more than `maximumQueuedBytes` (the write-buffer high
/// watermark), messages are dropped and counted; protocols retransmit.
///
/// Everything runs on one event loop, the node's, so frames reach the core without a hop; that
/// confinement (asserted with `preconditionInEventLoop` on the entry points) is why the class is
/// `@unchecked Sendable`.
final class PeerTransport<Message: WireCodable & Sendable>: @unchecked Sendable {
    struct Link {
        var address: PeerAddress
        var channel: (any Channel)?
        var connecting = false
        var backoffMilliseconds: Int64 = 50
    }

    let id: NodeID
    let loop: any EventLoop
    let logger: Logger
    let maximumFrameBytes: Int
    let maximumQueuedBytes: Int
    var links: [NodeID: Link]
    var server: (any Channel)?
    /// Open inbound connections, closed on `stop`.
    var inbound: [ObjectIdentifier: any Channel] = [:]
    var stopped = false
    private(set) var droppedFrames = 0
    var unflushed: Set<ObjectIdentifier> = []
    var unflushedChannels: [any Channel] = []
    private(set) var sentFrames = 0

    init(id: NodeID, peers: [NodeID: PeerAddress], loop: any EventLoop, logger: Logger,
         maximumFrameBytes: Int = 8 << 20, maximumQueuedBytes: Int = 16 << 20) {
        self.id = id
        self.loop = loop
        self.logger = logger
        self.maximumFrameBytes = maximumFrameBytes
        self.maximumQueuedBytes = maximumQueuedBytes
        self.links = peers.filter { $0.key != id }.mapValues { Link(address: $0) }
    }

    /// Listens on `address`; `deliver` runs on the node's loop for every frame from a peer.
    func listen(on address: PeerAddress, members: Set<NodeID>, deliver: @escaping @Sendable (PeerFrame<Message>, NodeID) -> Void)
        -> EventLoopFuture<Void>
    {
        let logger = self.logger
        let localID = self.id
        let maximumFrameBytes = self.maximumFrameBytes
        return ServerBootstrap(group: self.loop)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Every member dials once (and again after a failure); far more inbound
                    // connections than that means someone else is connecting: refuse them.
                    guard self.inbound.count < 4 * members.count + 4 else {
                        logger.warning("refusing a peer connection: too many open", metadata: ["open": "\(self.inbound.count)"])
                        throw TransportError.tooManyConnections
                    }
                    let key = ObjectIdentifier(channel)
                    self.inbound[key] = channel
                    channel.closeFuture.whenComplete { _ in self.inbound[key] = nil }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameBytes: maximumFrameBytes)))
                    try channel.pipeline.syncOperations.addHandler(
                        PeerInboundHandler<Message>(members: members, localID: localID, logger: logger, deliver: deliver))
                }
            }
            .bind(host: address.host, port: address.port)
            .map { self.server = $0 }
    }

    /// Dials every peer (and keeps redialling).
    func connectAll() {
        for peer in self.links.keys.sorted() { self.connect(peer) }
    }

    func connect(_ peer: NodeID) {
        self.loop.preconditionInEventLoop()
        guard !self.stopped, var link = self.links[peer], link.channel == nil, !link.connecting else { return }
        link.connecting = true
        self.links[peer] = link
        let watermark = ChannelOptions.Types.WriteBufferWaterMark(low: self.maximumQueuedBytes / 2, high: self.maximumQueuedBytes)
        ClientBootstrap(group: self.loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: watermark)
            .connectTimeout(.seconds(1))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(DiscardInboundHandler()) }
            }
            .connect(host: link.address.host, port: link.address.port)
            .whenComplete { result in
                self.links[peer]!.connecting = false
                switch result {
                case .success(let channel):
                    self.links[peer]!.channel = channel
                    self.links[peer]!.backoffMilliseconds = 50
                    self.write(.hello(self.id), on: channel)
                    self.flush()
                    channel.closeFuture.whenComplete { _ in
                        self.links[peer]!.channel = nil
                        self.scheduleReconnect(peer)
                    }
                case .failure:
                    self.scheduleReconnect(peer)
                }
            }
    }

    func scheduleReconnect(_ peer: NodeID) {
        guard !self.stopped, let link = self.links[peer] else { return }
        let delay = link.backoffMilliseconds
        self.links[peer]!.backoffMilliseconds = min(delay * 2, 2_000)
        self.loop.scheduleTask(in: .milliseconds(delay)) { self.connect(peer) }
    }

    /// Sends a frame to `peer`; false when it was dropped (the link is down or full).
    @discardableResult
    func send(_ frame: PeerFrame<Message>, to peer: NodeID) -> Bool {
        self.loop.preconditionInEventLoop()
        guard let channel = self.links[peer]?.channel, channel.isActive, channel.isWritable else {
            self.droppedFrames += 1
            return false
        }
        return self.write(frame, on: channel)
    }

    @discardableResult
    private func write(_ frame: PeerFrame<Message>, on channel: any Channel) -> Bool {
        let bytes = frame.encoded()
        guard bytes.count <= self.maximumFrameBytes else {
            self.logger.error("dropping a frame above the frame limit", metadata: ["bytes": "\(bytes.count)"])
            self.droppedFrames += 1
            return false
        }
        var buffer = channel.allocator.buffer(capacity: 4 + bytes.count)
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        self.sentFrames += 1
        channel.write(buffer, promise: nil)
        self.unflushed.insert(ObjectIdentifier(channel))
        self.unflushedChannels.append(channel)
        return true
    }

    /// Flushes every link written to since the last flush (one syscall per link per batch).
    func flush() {
        guard !self.unflushedChannels.isEmpty else { return }
        for channel in self.unflushedChannels where self.unflushed.remove(ObjectIdentifier(channel)) != nil {
            channel.flush()
        }
        self.unflushedChannels.removeAll(keepingCapacity: true)
    }

    /// Closes the listener and every link.
    func stop() -> EventLoopFuture<Void> {
        self.loop.preconditionInEventLoop()
        self.stopped = true
        var closing: [EventLoopFuture<Void>] = []
        if let server = self.server { closing.append(server.close()) }
        for channel in self.inbound.values { closing.append(channel.close()) }
        for link in self.links.values { if let channel = link.channel { closing.append(channel.close()) } }
        return EventLoopFuture.andAllComplete(closing, on: self.loop)
    }
}
