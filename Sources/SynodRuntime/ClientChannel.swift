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
/// single client's put goes"). Here a request goes from the socket through NIO's request
/// decoder to the node and back without a task, and the handler writes the answer's bytes.
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
            // NIO's request decoder, then the handler, which keeps the order of pipelined
            // requests, answers protocol errors, takes the graceful shutdown's quiesce event and
            // keeps the idle timeout itself, and writes each answer as one buffer. (NIO's
            // pipelining handler, which did the ordering before, stops reading while an answer
            // is pending: two epoll_ctl calls per request, about 4% of a Raft leader's thread
            // under 64 clients' puts.)
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
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

/// Serves one connection's requests in order, one at a time: a request read while another is
/// answered waits in a queue (the connection stops reading while the queue is full). Closes
/// the connection once it has been idle (no request in progress or waiting) for the idle
/// timeout; after `Connection: close`, a protocol error (answered 400), a half-close or the
/// server's quiesce event, it answers what it has read and then closes.
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A request read whole.
    struct Pending {
        var head: HTTPRequestHead
        var body: ByteBuffer
        var tooLarge: Bool
        var close: Bool
    }

    /// Requests waiting beyond which the connection stops reading (a read already taken is
    /// still decoded whole, so one read's worth of requests can wait past it).
    static let queueLimit = 16

    let fastRoutes: ClientChannel.FastRoutes
    let responder: RouterResponder<BasicRequestContext>
    let executor: (any TaskExecutor)?
    let bodyLimit: Int
    let idleTimeout: TimeAmount?
    let logger: Logger

    /// The request being read: its head, and its body so far.
    var head: HTTPRequestHead?
    var body: ByteBuffer?
    var bodyTooLarge = false
    /// Requests read whole and not yet begun, oldest first.
    var queue = CircularBuffer<Pending>()
    /// A request's answer is awaited and not yet written.
    var answering = false
    /// Inside `pump`: requests are begun in its loop, not by a nested call.
    var pumping = false
    /// No request after the current one is read: `Connection: close`, a protocol error or the
    /// server's quiesce event. The connection closes once every request read is answered.
    var closing = false
    /// The request stream could not be parsed: a 400 goes out after the answers before it.
    var badRequest = false
    /// The client closed its side (a half-close): close once every request read is answered.
    var inputClosed = false
    /// The connection's last write is made: it closes once that is written.
    var finished = false
    /// A read was held back (the queue was full, or the connection is closing).
    var readPending = false
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

    /// A request is being read, waits, or is being answered.
    var busy: Bool { self.head != nil || self.answering || !self.queue.isEmpty }

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
            if self.busy {
                self.setIdleTimer(at: now + timeout, timeout: timeout, context: context)
            } else if now >= self.idleSince + timeout {
                context.close(promise: nil)
            } else {
                self.setIdleTimer(at: self.idleSince + timeout, timeout: timeout, context: context)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        // After `Connection: close` or the quiesce event, a request not yet begun never runs.
        guard !self.closing || self.head != nil else { return }
        switch part {
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
            self.queue.append(Pending(head: head, body: body, tooLarge: self.bodyTooLarge, close: close))
            self.pump(context: context)
        }
    }

    /// Begins the requests waiting, one at a time, until one's answer is awaited. A loop, not
    /// recursion: a run of pipelined requests answered at once (errors, local reads) does not
    /// nest one call inside another for each.
    func pump(context: ChannelHandlerContext) {
        guard !self.pumping else { return }
        self.pumping = true
        defer { self.pumping = false }
        while !self.answering, let next = self.queue.popFirst() {
            self.answering = true
            self.answer(next.head, body: next.body, tooLarge: next.tooLarge, close: next.close, context: context)
        }
        if !self.busy {
            if (self.closing || self.inputClosed) && !self.finished {
                // The last write: a 400 after a protocol error, or nothing. The connection
                // closes once it (and so every answer before it) is written.
                self.finished = true
                var buffer = context.channel.allocator.buffer(capacity: self.badRequest ? 96 : 0)
                if self.badRequest {
                    Self.encodeHead(status: .badRequest, headers: [:], contentLength: 0, close: true, into: &buffer)
                }
                context.writeAndFlush(self.wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                return
            }
        }
        if self.readPending && !self.holdsReads {
            self.readPending = false
            context.read()
        }
    }

    /// Reads wait: the queue is full, or the connection is closing and no request is part read.
    var holdsReads: Bool { (self.closing && self.head == nil) || self.queue.count >= Self.queueLimit }

    func read(context: ChannelHandlerContext) {
        if self.holdsReads {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            // The decoder delivers it after every request read before it.
            self.inputClosed = true
            self.pump(context: context)
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // The server is shutting down: finish the request being read and those waiting.
            self.closing = true
            self.pump(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            // Not HTTP this server reads: the request part read is dropped, what came before
            // it is answered, then 400 (unless the connection was already closing), then close.
            self.logger.trace("client connection: bad request", metadata: ["error": "\(error)"])
            self.head = nil
            self.body = nil
            if !self.closing {
                self.closing = true
                self.badRequest = true
            }
            self.pump(context: context)
            return
        }
        if error is ByteToMessageDecoderError { return }  // bytes after the protocol error
        self.logger.trace("client connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
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
                var headers = HTTPResponseHead(response).headers
                headers.remove(name: "transfer-encoding")
                headers.remove(name: "content-length")
                headers.remove(name: "connection")
                let status = HTTPResponseStatus(statusCode: response.status.code, reasonPhrase: response.status.reasonPhrase)
                // No body, nor its length, for an informational, 204 or 304 answer.
                let bodyless = status.code < 200 || status.code == 204 || status.code == 304
                var buffer = context.channel.allocator.buffer(capacity: 128 + body.readableBytes)
                Self.encodeHead(
                    status: status, headers: headers, contentLength: bodyless ? nil : body.readableBytes, close: close, into: &buffer)
                if !bodyless { buffer.writeImmutableBuffer(body) }
                self.written(buffer, context: context)
            case .failure(let error):
                self.write(.error(.internalServerError, "\(error)"), close: close, context: context)
            }
        }
    }

    func write(_ reply: APIReply, close: Bool, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 96 + reply.body.count)
        Self.encodeHead(
            status: HTTPResponseStatus(statusCode: reply.status.code), headers: nil, contentLength: reply.body.count, close: close,
            into: &buffer)
        buffer.writeBytes(reply.body)
        self.written(buffer, context: context)
    }

    /// Writes an answer's status line and headers: HTTP/1.1, the status with NIO's reason phrase
    /// for a known code, `headers` as given (nil: the KV API's `Content-Type: application/json`),
    /// then `Content-Length` (unless nil) and `Connection: close` (if `close`). Names and values
    /// come from swift-http-types fields, which cannot hold CR or LF, or from this file.
    static func encodeHead(
        status: HTTPResponseStatus, headers: HTTPHeaders?, contentLength: Int?, close: Bool, into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status.code))
        buffer.writeStaticString(" ")
        buffer.writeString(status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        if let headers {
            for (name, value) in headers {
                buffer.writeString(name)
                buffer.writeStaticString(": ")
                buffer.writeString(value)
                buffer.writeStaticString("\r\n")
            }
        } else {
            buffer.writeStaticString("Content-Type: application/json\r\n")
        }
        if let contentLength {
            buffer.writeStaticString("Content-Length: ")
            buffer.writeString(String(contentLength))
            buffer.writeStaticString("\r\n")
        }
        if close { buffer.writeStaticString("Connection: close\r\n") }
        buffer.writeStaticString("\r\n")
    }

    /// Writes an answer, then begins the next request waiting (or closes, if it was the last).
    func written(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        self.answering = false
        self.idleSince = .now()
        context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        self.pump(context: context)
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
