import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// The client port's connections, served by a NIO channel handler instead of Hummingbird's
/// async-sequence connection.
///
/// Hummingbird still runs the server (the listening socket, TLS, the connection limit, graceful
/// shutdown on SIGTERM) and answers every route but the hot ones; a connection's requests are
/// read by `ClientConnectionHandler`, which answers the routes `fastRoutes` takes (the KV API's)
/// on the node's loop with futures, and hands the rest to the router in a task.
///
/// Why: under load a Raft leader's thread spent about a third of its samples in Swift runtime
/// work (metadata lookups, casts, task switches) whose call stacks ended in the async channel
/// each Hummingbird 2 connection runs on, around 100 µs of a put's 164 (README, "Where a
/// single client's put goes"). Here a request goes from the socket through NIO's HTTP codec
/// to the node and back without a task.
public struct ClientChannel: ServerChildChannel {
    public struct Value: ServerChildChannelValue {
        public let channel: any Channel
    }

    /// Answers a request (NIO's head, as read) on the connection's loop (the third argument), or
    /// returns nil for routes it does not take.
    public typealias FastRoutes = @Sendable (HTTPRequestHead, ByteBuffer, any EventLoop) -> EventLoopFuture<APIReply>?

    let fastRoutes: FastRoutes
    let responder: RouterResponder<BasicRequestContext>
    let executor: (any TaskExecutor)?
    let bodyLimit: Int
    let idleTimeout: TimeAmount?

    /// - Parameters:
    ///   - bodyLimit: the largest request body read, for any route; a larger one gets 413.
    ///   - executor: where the router's tasks run (the node's loop, as the server's own tasks).
    public init(
        responder: RouterResponder<BasicRequestContext>, bodyLimit: Int, idleTimeout: TimeAmount?, executor: (any TaskExecutor)?,
        fastRoutes: @escaping FastRoutes
    ) {
        self.responder = responder
        self.bodyLimit = bodyLimit
        self.idleTimeout = idleTimeout
        self.executor = executor
        self.fastRoutes = fastRoutes
    }

    /// Hummingbird's server builder for these connections (wrap it in `.tls` for TLS).
    public static func builder(
        router: Router<BasicRequestContext>, bodyLimit: Int, idleTimeout: TimeAmount?, executor: (any TaskExecutor)?,
        fastRoutes: @escaping FastRoutes
    ) -> HTTPServerBuilder {
        let responder = router.buildResponder()
        return HTTPServerBuilder { _ in
            ClientChannel(responder: responder, bodyLimit: bodyLimit, idleTimeout: idleTimeout, executor: executor, fastRoutes: fastRoutes)
        }
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            // The pipelining handler holds a connection's next request until the answer to the
            // one before is written, so the handler below serves one request at a time, in order.
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
            // The pipelining handler also takes the graceful shutdown's quiesce event: it closes an
            // idle connection at once, and a busy one once the answer in flight is written. The
            // handler below reads NIO's own request parts (no conversion to swift-http-types per
            // request) and keeps the idle timeout itself.
            try pipeline.addHandler(
                ClientConnectionHandler(
                    fastRoutes: self.fastRoutes, responder: self.responder, executor: self.executor, bodyLimit: self.bodyLimit,
                    idleTimeout: self.idleTimeout, logger: logger))
            return Value(channel: channel)
        }
    }

    /// Waits for the connection to close (the handler serves it); the server's graceful shutdown
    /// waits for this.
    public func handle(value: Value, logger: Logger) async {
        await withTaskCancellationHandler {
            try? await value.channel.closeFuture.get()
        } onCancel: {
            value.channel.close(promise: nil)
        }
    }
}

/// Reads one request at a time (head, body, end) and writes its answer; closes the connection
/// once it has been idle (no request in progress) for the idle timeout.
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let fastRoutes: ClientChannel.FastRoutes
    let responder: RouterResponder<BasicRequestContext>
    let executor: (any TaskExecutor)?
    let bodyLimit: Int
    let idleTimeout: TimeAmount?
    let logger: Logger

    var head: HTTPRequestHead?
    var body: ByteBuffer?
    var bodyTooLarge = false
    /// A request is read and its answer not yet written.
    var answering = false
    /// Inside `write`: a request read now was handed over by the pipelining handler as the
    /// answer before it went out.
    var writing = false
    /// A request said `Connection: close`: nothing after it is read, and the connection closes
    /// once it is answered.
    var closing = false
    /// The client closed its side (a half-close): close once the answer in flight is written.
    var inputClosed = false
    /// When the connection last became idle (active, or an answer written); one timer checks it.
    var idleSince = NIODeadline.now()
    var idleTimer: Scheduled<Void>?

    init(
        fastRoutes: @escaping ClientChannel.FastRoutes, responder: RouterResponder<BasicRequestContext>, executor: (any TaskExecutor)?,
        bodyLimit: Int, idleTimeout: TimeAmount?, logger: Logger
    ) {
        self.fastRoutes = fastRoutes
        self.responder = responder
        self.executor = executor
        self.bodyLimit = bodyLimit
        self.idleTimeout = idleTimeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.startIdleTimer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.startIdleTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.idleTimer?.cancel()
        self.idleTimer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.idleTimer?.cancel()
        self.idleTimer = nil
    }

    /// One timer per connection, not one per request: when it fires it closes a connection
    /// idle for the whole timeout, and otherwise sets itself for the earliest moment it could be.
    func startIdleTimer(context: ChannelHandlerContext) {
        guard let timeout = self.idleTimeout, self.idleTimer == nil else { return }
        self.idleSince = .now()
        self.setIdleTimer(at: self.idleSince + timeout, timeout: timeout, context: context)
    }

    func setIdleTimer(at deadline: NIODeadline, timeout: TimeAmount, context: ChannelHandlerContext) {
        self.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.idleTimer = nil
            let now = NIODeadline.now()
            if self.head != nil || self.answering || self.writing {
                self.setIdleTimer(at: now + timeout, timeout: timeout, context: context)
            } else if now >= self.idleSince + timeout {
                context.close(promise: nil)
            } else {
                self.setIdleTimer(at: self.idleSince + timeout, timeout: timeout, context: context)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.closing else { return }  // pipelined after `Connection: close`: never run
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = nil
            self.bodyTooLarge = false
        case .body(var part):
            guard !self.bodyTooLarge else { return }
            if (self.body?.readableBytes ?? 0) + part.readableBytes > self.bodyLimit {
                self.bodyTooLarge = true
                self.body = nil
            } else if self.body == nil {
                self.body = part
            } else {
                self.body!.writeBuffer(&part)
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let body = self.body ?? ByteBuffer()
            self.body = nil
            let close = head.headers.first(name: "connection")?.lowercased() == "close"
            if close { self.closing = true }
            self.answering = true
            let tooLarge = self.bodyTooLarge
            if self.writing {
                // Handed over inside the write of the answer before: answer it on the loop's
                // next turn, so a run of pipelined requests answered at once (errors, local
                // reads) does not nest one call inside another for each.
                context.eventLoop.assumeIsolated().execute {
                    self.answer(head, body: body, tooLarge: tooLarge, close: close, context: context)
                }
            } else {
                self.answer(head, body: body, tooLarge: tooLarge, close: close, context: context)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            // The pipelining handler delivers it after the requests read before it.
            if self.answering || self.writing {
                self.inputClosed = true
            } else {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func answer(_ head: HTTPRequestHead, body: ByteBuffer, tooLarge: Bool, close: Bool, context: ChannelHandlerContext) {
        if tooLarge {
            self.write(APIReply.error(.contentTooLarge, "request body exceeds \(self.bodyLimit) bytes"), close: close, context: context)
        } else if let answer = self.fastRoutes(head, body, context.eventLoop) {
            answer.hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let reply): self.write(reply, close: close, context: context)
                case .failure(let error): self.write(.error(.internalServerError, "\(error)"), close: close, context: context)
                }
            }
        } else {
            self.route(head, body: body, close: close, context: context)
        }
    }

    /// Every other route, through Hummingbird's router in a task, as its own server would.
    func route(_ head: HTTPRequestHead, body: ByteBuffer, close: Bool, context: ChannelHandlerContext) {
        let requestHead: HTTPRequest
        do {
            requestHead = try HTTPRequest(head, secure: false, splitCookie: false)
        } catch {
            self.write(.error(.badRequest, "not an HTTP request this server reads: \(error)"), close: close, context: context)
            return
        }
        let (responder, logger, channel) = (self.responder, self.logger, context.channel)
        let request = Request(head: requestHead, body: RequestBody(buffer: body))
        let answered = context.eventLoop.makePromise(of: (HTTPResponse, ByteBuffer).self)
        Task(executorPreference: self.executor) {
            let response: Response
            do {
                response = try await responder.respond(to: request, context: BasicRequestContext(source: .init(channel: channel, logger: logger)))
            } catch {
                logger.debug("unrecognised error", metadata: ["error": "\(error)"])
                response = Response(status: .internalServerError)
            }
            do {
                let collector = BodyCollector()
                try await response.body.write(CollectingBodyWriter(collector: collector))
                answered.succeed((response.head, collector.buffer))
            } catch {
                answered.fail(error)
            }
        }
        answered.futureResult.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let (response, body)):
                var head = HTTPResponseHead(response)
                head.headers.remove(name: "transfer-encoding")
                head.headers.replaceOrAdd(name: "Content-Length", value: "\(body.readableBytes)")
                self.write(head, body: body, close: close, context: context)
            case .failure(let error):
                self.write(.error(.internalServerError, "\(error)"), close: close, context: context)
            }
        }
    }

    func write(_ reply: APIReply, close: Bool, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: reply.body.count)
        buffer.writeBytes(reply.body)
        let status = HTTPResponseStatus(statusCode: Int(reply.status.code), reasonPhrase: reply.status.reasonPhrase)
        let headers: HTTPHeaders = ["Content-Type": "application/json", "Content-Length": "\(buffer.readableBytes)"]
        self.write(HTTPResponseHead(version: .http1_1, status: status, headers: headers), body: buffer, close: close, context: context)
    }

    func write(_ head: HTTPResponseHead, body: ByteBuffer, close: Bool, context: ChannelHandlerContext) {
        var head = head
        if close { head.headers.replaceOrAdd(name: "Connection", value: "close") }
        self.answering = false
        self.writing = true
        self.idleSince = .now()
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if body.readableBytes > 0 { context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        // Writing the end may hand over the next pipelined request, or the client's half-close.
        let written = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
        self.writing = false
        if close || (self.inputClosed && !self.answering) {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.trace("client connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

/// A response body gathered into one buffer (the router's answers are small JSON or text).
final class BodyCollector: @unchecked Sendable {
    var buffer = ByteBuffer()
}

struct CollectingBodyWriter: ResponseBodyWriter {
    let collector: BodyCollector

    mutating func write(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        self.collector.buffer.writeBuffer(&buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
