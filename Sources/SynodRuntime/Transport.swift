import Logging
import NIOCore
import NIOPosix
import NIOSSL
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
    case shouldAccept(NodeID)
    case unexpectedPeer(NodeID, expected: NodeID)
    case otherCluster(NodeID, String)
    case certificateMismatch(hello: NodeID, certificate: NodeID?)
    case messageTooLarge(limit: Int)
    case tooManyConnections

    var description: String {
        switch self {
        case .frameTooLarge(let length, let limit): "frame of \(length) bytes exceeds the limit of \(limit)"
        case .undecodable(let reason): "undecodable frame: \(reason)"
        case .noHello: "the first frame was not a hello"
        case .unknownPeer(let node): "hello from \(node), which is not another member"
        case .shouldAccept(let node): "hello from \(node), which this node dials (one connection per pair: the lower id dials)"
        case .unexpectedPeer(let node, let expected): "dialled \(expected), and \(node) answered"
        case .otherCluster(let node, let difference): "hello from \(node) of another cluster (\(difference))"
        case .certificateMismatch(let hello, let certificate):
            "hello names \(hello), and the TLS certificate \(certificate.map { "names \($0)" } ?? "names no member")"
        case .messageTooLarge(let limit): "fragments of a frame exceed the limit of \(limit) bytes"
        case .tooManyConnections: "too many inbound peer connections"
        }
    }
}

/// Logs refused peer connections with a budget (a burst of 50, then 5 a second), counting
/// those not logged: a flood of bad connections cannot flood the log.
/// `@unchecked Sendable`: used only on the node's event loop.
final class RefusalLog: @unchecked Sendable {
    let logger: Logger
    var tokens = 50.0
    var refilled = NIODeadline.now()
    var suppressed = 0

    init(logger: Logger) { self.logger = logger }

    func refused(remote: String, peer: NodeID?, reason: String) {
        let now = NIODeadline.now()
        self.tokens = min(50, self.tokens + Double((now - self.refilled).nanoseconds) / 200_000_000)
        self.refilled = now
        guard self.tokens >= 1 else {
            self.suppressed += 1
            return
        }
        self.tokens -= 1
        var metadata: Logger.Metadata = ["remote": "\(remote)", "peer": "\(peer.map { "\($0)" } ?? "unknown")", "reason": "\(reason)"]
        if self.suppressed > 0 { metadata["notLogged"] = "\(self.suppressed) refusals since the last one logged" }
        self.logger.warning("closing peer connection", metadata: metadata)
        self.suppressed = 0
    }
}

/// The receiving end of one peer connection. Both sides open with a hello: on a connection
/// this node accepted it must come from a member with a lower id (the lower id of a pair
/// dials) this node knows as a member now (`isMember`: membership may change while the node
/// runs); on one it dialled, from the member it dialled. Either way the hello must describe
/// the same cluster (id, protocol, first configuration) and, with TLS, name the member the verified
/// certificate names. Only then does `identified` make the connection that member's link;
/// every later frame goes to `deliver`. Anything malformed or mismatched closes the connection
/// with a logged reason.
/// `@unchecked Sendable`: a channel handler lives on its channel's event loop, the node's, and
/// its state is only touched there (the hello timer is scheduled on the same loop).
final class PeerInboundHandler<Message: WireCodable & Sendable>: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let local: PeerHello
    let requireCertificate: Bool
    let refusals: RefusalLog
    let deliver: @Sendable (PeerFrame<Message>, NodeID) -> Void
    let identified: @Sendable (NodeID, any Channel) -> Void
    let maximumMessageBytes: Int
    /// Whether a node is a member now (asked on the node's loop).
    let isMember: @Sendable (NodeID) -> Bool
    /// The member dialled (nil on an accepted connection).
    let dialled: NodeID?
    /// The member this connection speaks for, once its hello checked out.
    var peer: NodeID?
    /// The pieces of a fragmented frame received so far.
    var pieces: [UInt8] = []
    /// Closes the connection if no hello arrives in time; cancelled once it closes.
    var helloTimer: Scheduled<Void>?

    init(
        local: PeerHello, requireCertificate: Bool, refusals: RefusalLog, dialled: NodeID? = nil,
        maximumMessageBytes: Int = PeerTransport<Message>.defaultMaximumMessageBytes,
        isMember: @escaping @Sendable (NodeID) -> Bool,
        deliver: @escaping @Sendable (PeerFrame<Message>, NodeID) -> Void,
        identified: @escaping @Sendable (NodeID, any Channel) -> Void
    ) {
        self.local = local
        self.requireCertificate = requireCertificate
        self.refusals = refusals
        self.dialled = dialled
        self.maximumMessageBytes = maximumMessageBytes
        self.isMember = isMember
        self.deliver = deliver
        self.identified = identified
    }

    /// A connection that has not named its peer within this time is closed (a stray client,
    /// a half-open socket, a stalled handshake): connections cannot pile up unnamed.
    static var helloTimeout: TimeAmount { .seconds(5) }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        let refusals = self.refusals
        self.helloTimer = context.eventLoop.scheduleTask(in: Self.helloTimeout) { [weak self] in
            guard let self, self.peer == nil, channel.isActive else { return }
            refusals.refused(remote: channel.remoteAddress.map { "\($0)" } ?? "?", peer: self.dialled, reason: "no hello within 5 s")
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A flood of short connections must not keep handlers alive until their timers fire.
        self.helloTimer?.cancel()
        self.helloTimer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        do {
            var frame = try PeerFrame<Message>.decode(bytes)
            if case .fragment(let last, let piece) = frame {
                guard self.peer != nil else { throw TransportError.noHello }
                guard self.pieces.count + piece.count <= self.maximumMessageBytes else {
                    throw TransportError.messageTooLarge(limit: self.maximumMessageBytes)
                }
                self.pieces += piece
                guard last else { return }
                let whole = self.pieces
                self.pieces = []
                frame = try PeerFrame<Message>.decode(whole)
                if case .fragment = frame { throw TransportError.undecodable("a fragment inside a fragmented frame") }
            }
            guard let peer = self.peer else {
                guard case .hello(let hello) = frame else { throw TransportError.noHello }
                try self.check(hello, channel: context.channel)
                self.helloTimer?.cancel()
                self.helloTimer = nil
                self.peer = hello.node
                self.identified(hello.node, context.channel)
                return
            }
            switch frame {
            case .hello, .ping: return  // a repeated hello changes nothing; a ping only proves the link
            default: self.deliver(frame, peer)
            }
        } catch let error as TransportError {
            self.close(context, reason: error.description)
        } catch {
            self.close(context, reason: TransportError.undecodable("\(error)").description)
        }
    }

    /// The hello must come from the right member, of this cluster, holding that member's
    /// certificate.
    func check(_ hello: PeerHello, channel: any Channel) throws(TransportError) {
        let node = hello.node
        if let dialled = self.dialled {
            guard node == dialled else { throw .unexpectedPeer(node, expected: dialled) }
        } else {
            guard self.isMember(node), node != self.local.node else { throw .unknownPeer(node) }
            guard node < self.local.node else { throw .shouldAccept(node) }
        }
        if let difference = self.local.cluster.mismatch(hello.cluster) { throw .otherCluster(node, difference) }
        if self.requireCertificate {
            let certified = PeerTLS.peerMember(of: channel)
            guard certified == node else { throw .certificateMismatch(hello: node, certificate: certified) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.close(context, reason: "\(error)")
    }

    func close(_ context: ChannelHandlerContext, reason: String) {
        self.refusals.refused(remote: context.remoteAddress.map { "\($0)" } ?? "?", peer: self.peer ?? self.dialled, reason: reason)
        context.close(promise: nil)
    }
}

/// TCP links to the other replicas, one connection per pair used in both directions: a node
/// dials every peer with a higher id (redialling with exponential backoff) and accepts the
/// connections of the peers with lower ids. Both sides open with a hello naming themselves and
/// their cluster (`PeerInboundHandler` checks it), and with `tls` every connection is mutual
/// TLS 1.3 whose certificate must name the member the hello names: only members speak on the
/// peer port, and a connection speaks only for the member whose key it holds. A member holds
/// one link at a time; a newer proven connection replaces the older (a restarted peer's).
/// Sends never block: while a link is down, or its outbound buffer holds more than
/// `maximumQueuedBytes` (the write-buffer high watermark), messages are dropped and counted;
/// protocols retransmit.
///
/// Everything runs on one event loop, the node's, so frames reach the core without a hop; that
/// confinement (asserted with `preconditionInEventLoop` on the entry points) is why the class is
/// `@unchecked Sendable`.
final class PeerTransport<Message: WireCodable & Sendable>: @unchecked Sendable {
    struct Link {
        var address: PeerAddress
        /// The proven connection (hello and certificate checked), used for sends.
        var channel: (any Channel)?
        /// A dial is in progress, or its connection is open (proven or not yet).
        var connecting = false
        var backoffMilliseconds: Int64 = 50
        /// The fragments of a message too large for one frame still to write, on the channel
        /// they started on: one piece at a time, so other frames (heartbeats) go in between.
        var fragments: (channel: ObjectIdentifier, message: UInt64, pieces: ArraySlice<[UInt8]>)?
    }

    /// An accepted connection, until it closes.
    struct Inbound {
        var channel: any Channel
        var opened: UInt64
        var identified = false
    }

    let id: NodeID
    let hello: PeerHello
    let tls: PeerTLS?
    let loop: any EventLoop
    let logger: Logger
    let refusals: RefusalLog
    let maximumFrameBytes: Int
    let maximumQueuedBytes: Int
    let maximumMessageBytes: Int
    var links: [NodeID: Link]
    var server: (any Channel)?
    /// Open inbound connections, closed on `stop`.
    var inbound: [ObjectIdentifier: Inbound] = [:]
    var inboundOpened: UInt64 = 0
    var stopped = false
    var pingTask: RepeatedTask?
    /// Large messages sent in fragments so far (numbers them).
    var largeMessages: UInt64 = 0
    var deliver: (@Sendable (PeerFrame<Message>, NodeID) -> Void)?
    private(set) var droppedFrames = 0
    var unflushed: Set<ObjectIdentifier> = []
    var unflushedChannels: [any Channel] = []
    private(set) var sentFrames = 0
    /// Peer links proven so far (after the first per peer, each is a reconnect).
    private(set) var establishedLinks = 0

    /// Largest message, once its fragments are joined (a snapshot of the whole state).
    static var defaultMaximumMessageBytes: Int { 512 << 20 }

    init(id: NodeID, cluster: ClusterIdentity, tls: PeerTLS?, loop: any EventLoop, logger: Logger,
         maximumFrameBytes: Int = 8 << 20, maximumQueuedBytes: Int = 16 << 20,
         maximumMessageBytes: Int = PeerTransport.defaultMaximumMessageBytes) {
        self.id = id
        self.hello = PeerHello(node: id, cluster: cluster)
        self.tls = tls
        self.loop = loop
        self.logger = logger
        self.refusals = RefusalLog(logger: logger)
        self.maximumFrameBytes = maximumFrameBytes
        self.maximumQueuedBytes = maximumQueuedBytes
        self.maximumMessageBytes = maximumMessageBytes
        self.links = cluster.members.filter { $0.key != id }.mapValues { Link(address: $0) }
    }

    /// Peers with a proven, open link now.
    var provenLinks: Int { self.links.values.filter { $0.channel?.isActive == true }.count }

    /// Bytes written to each peer's link and not yet taken by the kernel (0 for a link that is
    /// down), on the loop.
    var queuedBytesByPeer: [NodeID: Int] {
        self.links.mapValues { link in
            guard let channel = link.channel, channel.isActive else { return 0 }
            return (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        }
    }

    /// Most inbound connections open at once: every lower-id member dials once (and again
    /// after a failure); far more than that means someone else is connecting.
    var maximumInbound: Int { 4 * (self.links.count + 1) + 4 }

    /// Listens on `address`; `deliver` runs on the node's loop for every frame from a peer.
    func listen(on address: PeerAddress, deliver: @escaping @Sendable (PeerFrame<Message>, NodeID) -> Void) -> EventLoopFuture<Void> {
        self.deliver = deliver
        return ServerBootstrap(group: self.loop)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: self.watermark)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.admit(channel)
                    if let tls = self.tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.serverContext))
                    }
                    try self.addFrameHandlers(to: channel, dialled: nil)
                }
            }
            .bind(host: address.host, port: address.port)
            .map { self.server = $0 }
    }

    /// Counts an accepted connection. At the cap, a connection that has not proven itself yet
    /// makes room: first the oldest from an address no member is configured at, then the
    /// oldest from a member's address (a member's handshake takes milliseconds, so a flood of
    /// unproven connections from elsewhere cannot keep a member out); with none such, the new
    /// one is refused.
    func admit(_ channel: any Channel) throws {
        if self.inbound.count >= self.maximumInbound {
            let memberHosts = Set(self.links.values.map(\.address.host))
            // Ordered: not from a member's address before from one, then oldest first.
            func rank(_ connection: Inbound) -> (Int, UInt64) {
                let fromMember = connection.channel.remoteAddress?.ipAddress.map { memberHosts.contains($0) } ?? false
                return (fromMember ? 1 : 0, connection.opened)
            }
            let unproven = self.inbound.filter { !$0.value.identified }
            guard let (key, oldest) = unproven.min(by: { rank($0.value) < rank($1.value) }) else {
                self.refusals.refused(remote: channel.remoteAddress.map { "\($0)" } ?? "?", peer: nil, reason: "too many open")
                throw TransportError.tooManyConnections
            }
            self.inbound[key] = nil
            oldest.channel.close(promise: nil)
        }
        let key = ObjectIdentifier(channel)
        self.inboundOpened += 1
        self.inbound[key] = Inbound(channel: channel, opened: self.inboundOpened)
        channel.closeFuture.whenComplete { _ in self.inbound[key] = nil }
    }

    func addFrameHandlers(to channel: any Channel, dialled: NodeID?) throws {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameBytes: self.maximumFrameBytes)))
        try channel.pipeline.syncOperations.addHandler(
            PeerInboundHandler<Message>(
                local: self.hello, requireCertificate: self.tls != nil, refusals: self.refusals, dialled: dialled,
                maximumMessageBytes: self.maximumMessageBytes, isMember: { self.links[$0] != nil }, deliver: self.deliver ?? { _, _ in }
            ) { peer, channel in self.identified(channel, as: peer, dialled: dialled != nil) })
    }

    var watermark: ChannelOptions.Types.WriteBufferWaterMark {
        ChannelOptions.Types.WriteBufferWaterMark(low: self.maximumQueuedBytes / 2, high: self.maximumQueuedBytes)
    }

    /// A connection whose hello (and certificate) checked out becomes the link to `peer`; a
    /// newer one replaces an older one, which a restarted peer left half open. An accepted
    /// connection answers with this node's hello.
    func identified(_ channel: any Channel, as peer: NodeID, dialled: Bool) {
        self.loop.preconditionInEventLoop()
        guard !self.stopped, self.links[peer] != nil else {
            channel.close(promise: nil)  // a member that left meanwhile
            return
        }
        if !dialled {
            self.inbound[ObjectIdentifier(channel)]?.identified = true
            self.write(.hello(self.hello), on: channel)
            self.flush()
        } else {
            self.links[peer]!.backoffMilliseconds = 50
        }
        if let old = self.links[peer]!.channel, old !== channel { old.close(promise: nil) }
        self.links[peer]!.channel = channel
        self.establishedLinks += 1
        channel.closeFuture.whenComplete { _ in
            if self.links[peer]?.channel === channel { self.links[peer]!.channel = nil }
        }
    }

    /// Dials every peer with a higher id (and keeps redialling); the others dial this node.
    /// A ping goes over every dialled link every `pingInterval`: a peer that restarted left
    /// this end half open, and only a write finds that out (then the link is redialled).
    func connectAll() {
        for peer in self.links.keys.sorted() where peer > self.id { self.connect(peer) }
        self.pingTask = self.loop.scheduleRepeatedTask(initialDelay: Self.pingInterval, delay: Self.pingInterval) { _ in
            var pinged = false
            for (peer, link) in self.links where peer > self.id {
                guard let channel = link.channel, channel.isActive, channel.isWritable else { continue }
                pinged = self.write(.ping, on: channel) || pinged
            }
            if pinged { self.flush() }
        }
    }

    static var pingInterval: TimeAmount { .milliseconds(250) }

    func connect(_ peer: NodeID) {
        self.loop.preconditionInEventLoop()
        guard !self.stopped, var link = self.links[peer], link.channel == nil, !link.connecting else { return }
        link.connecting = true
        self.links[peer] = link
        ClientBootstrap(group: self.loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: self.watermark)
            .connectTimeout(.seconds(1))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = self.tls {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls.clientContext, serverHostname: nil))
                    }
                    // The same connection carries the peer's frames back, after its hello.
                    try self.addFrameHandlers(to: channel, dialled: peer)
                }
            }
            .connect(host: link.address.host, port: link.address.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    // The link is used for sends only once the peer's hello has proven it.
                    self.write(.hello(self.hello), on: channel)
                    self.flush()
                    channel.closeFuture.whenComplete { _ in
                        if self.links[peer]?.channel === channel { self.links[peer]!.channel = nil }
                        self.links[peer]?.connecting = false
                        self.scheduleReconnect(peer)
                    }
                case .failure:
                    self.links[peer]?.connecting = false
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
        let bytes = frame.encoded()
        guard bytes.count > self.maximumFrameBytes else { return self.write(bytes, on: channel) }
        // Too large for one frame (a snapshot): in fragments, one large message per link at a
        // time; another one meanwhile (a protocol's resend) is dropped, not queued behind it.
        guard bytes.count <= self.maximumMessageBytes else {
            self.logger.error("dropping a message above the message limit", metadata: ["bytes": "\(bytes.count)"])
            self.droppedFrames += 1
            return false
        }
        if let fragments = self.links[peer]!.fragments, fragments.channel == ObjectIdentifier(channel) {
            self.droppedFrames += 1
            return false
        }
        self.largeMessages += 1
        let pieces = Self.frames(bytes, maximumFrameBytes: self.maximumFrameBytes)[...]
        self.links[peer]!.fragments = (ObjectIdentifier(channel), self.largeMessages, pieces)
        self.sentFrames += 1
        self.writeNextFragment(to: peer, message: self.largeMessages)
        return true
    }

    /// Writes the next fragment of large message `message` to `peer`, and the one after once
    /// it has left (a later message's fragments are not this chain's business).
    func writeNextFragment(to peer: NodeID, message: UInt64) {
        guard var fragments = self.links[peer]?.fragments, fragments.message == message else { return }
        guard let channel = self.links[peer]?.channel, fragments.channel == ObjectIdentifier(channel), channel.isActive,
              let piece = fragments.pieces.popFirst()
        else {
            self.links[peer]?.fragments = nil
            return
        }
        self.links[peer]!.fragments = fragments.pieces.isEmpty ? nil : fragments
        var buffer = channel.allocator.buffer(capacity: 4 + piece.count)
        buffer.writeInteger(UInt32(piece.count))
        buffer.writeBytes(piece)
        let written = self.loop.makePromise(of: Void.self)
        channel.writeAndFlush(buffer, promise: written)
        written.futureResult.whenComplete { result in
            switch result {
            case .success: self.writeNextFragment(to: peer, message: message)
            case .failure: if self.links[peer]?.fragments?.message == message { self.links[peer]?.fragments = nil }
            }
        }
    }

    @discardableResult
    private func write(_ frame: PeerFrame<Message>, on channel: any Channel) -> Bool {
        self.write(frame.encoded(), on: channel)
    }

    /// Writes one encoded frame (within the frame limit) for the next flush.
    @discardableResult
    private func write(_ bytes: [UInt8], on channel: any Channel) -> Bool {
        guard bytes.count <= self.maximumFrameBytes else {
            self.logger.error("dropping a frame above the frame limit", metadata: ["bytes": "\(bytes.count)"])
            self.droppedFrames += 1
            return false
        }
        var buffer = channel.allocator.buffer(capacity: 4 + bytes.count)
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        channel.write(buffer, promise: nil)
        self.sentFrames += 1
        self.unflushed.insert(ObjectIdentifier(channel))
        self.unflushedChannels.append(channel)
        return true
    }

    /// The frames that carry `encoded`: itself when it fits one, or else `.fragment` frames of
    /// consecutive pieces, each within `maximumFrameBytes`.
    static func frames(_ encoded: [UInt8], maximumFrameBytes: Int) -> [[UInt8]] {
        guard encoded.count > maximumFrameBytes else { return [encoded] }
        let pieceBytes = maximumFrameBytes - 16
        return stride(from: 0, to: encoded.count, by: pieceBytes).map { start in
            let end = min(start + pieceBytes, encoded.count)
            return PeerFrame<Message>.fragment(last: end == encoded.count, Array(encoded[start..<end])).encoded()
        }
    }

    /// Flushes every link written to since the last flush (one syscall per link per batch).
    func flush() {
        guard !self.unflushedChannels.isEmpty else { return }
        for channel in self.unflushedChannels where self.unflushed.remove(ObjectIdentifier(channel)) != nil {
            channel.flush()
        }
        self.unflushedChannels.removeAll(keepingCapacity: true)
    }

    /// Takes up a new set of members (a membership change): links to new members are made
    /// (dialled when their id is higher, once `connectAll` ran), links to members that left
    /// are closed, and a member whose address changed is redialled there.
    func setMembers(_ members: [NodeID: PeerAddress]) {
        self.loop.preconditionInEventLoop()
        guard !self.stopped else { return }
        let wanted = members.filter { $0.key != self.id }
        for (peer, link) in self.links where wanted[peer] != link.address {
            self.links[peer] = nil
            link.channel?.close(promise: nil)
            self.logger.info("peer link removed", metadata: ["peer": "\(peer)", "address": "\(link.address)"])
        }
        for (peer, address) in wanted.sorted(by: { $0.key < $1.key }) where self.links[peer] == nil {
            self.links[peer] = Link(address: address)
            self.logger.info("peer link added", metadata: ["peer": "\(peer)", "address": "\(address)"])
            if self.pingTask != nil && peer > self.id { self.connect(peer) }
        }
    }

    /// Closes the listener and every link.
    func stop() -> EventLoopFuture<Void> {
        self.loop.preconditionInEventLoop()
        self.stopped = true
        self.pingTask?.cancel()
        var closing: [EventLoopFuture<Void>] = []
        if let server = self.server { closing.append(server.close()) }
        for connection in self.inbound.values { closing.append(connection.channel.close()) }
        for link in self.links.values { if let channel = link.channel { closing.append(channel.close()) } }
        return EventLoopFuture.andAllComplete(closing, on: self.loop)
    }
}
