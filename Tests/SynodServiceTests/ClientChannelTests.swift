import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
@testable import SynodRuntime
import Testing

/// The client port's connection handler (`ClientChannel`) on a real socket, with stand-in
/// routes: fast routes answered by futures, the rest by a Hummingbird router, one request at a
/// time and in order, bodies over the limit refused without losing the connection.
@Suite("The client port's connection handler")
struct ClientChannelTests {
    /// A server on 127.0.0.1 whose fast route `POST /fast` answers after `delay` with the body's
    /// length (counting its calls), and whose router has `GET /slow` and `POST /echo`. Its
    /// connections allow half-closure, as Hummingbird's server sets them.
    final class Server: @unchecked Sendable {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var channel: (any Channel)!
        let fastCalls = NIOLockedValueBox(0)
        var port: Int { self.channel.localAddress!.port! }

        init(bodyLimit: Int, delay: TimeAmount, idleTimeout: TimeAmount?) async throws {
            let router = Router()
            router.get("/slow") { _, _ in "slow" }
            router.post("/echo") { request, _ -> String in
                var request = request
                let body = try await request.collectBody(upTo: 1_000)
                return "echo " + String(buffer: body)
            }
            let calls = self.fastCalls
            let fast: ClientChannel.FastRoutes = { head, body, loop in
                guard head.method == .POST, head.uri == "/fast" else { return nil }
                calls.withLockedValue { $0 += 1 }
                return loop.scheduleTask(in: delay) { APIReply.json(.ok, .object([("length", .integer(Int64(body.readableBytes)))])) }
                    .futureResult
            }
            // The router's tasks run on the server's loop, as `synod serve` runs them on the node's.
            let child = ClientChannel(
                responder: router.buildResponder(), bodyLimit: bodyLimit, idleTimeout: idleTimeout,
                executor: EventLoopTaskExecutor(self.group.next()), fastRoutes: fast)
            let logger = Logger(label: "test")
            do {
                self.channel = try await ServerBootstrap(group: self.group)
                    .childChannelOption(.allowRemoteHalfClosure, value: true)
                    .childChannelInitializer { channel in child.setup(channel: channel, logger: logger).map { _ in } }
                    .bind(host: "127.0.0.1", port: 0).get()
            } catch {
                try? await self.group.shutdownGracefully()
                throw error
            }
        }

        func stop() async throws {
            try await self.channel.close().get()
            try await self.group.shutdownGracefully()
        }
    }

    static func withServer(
        bodyLimit: Int = 64, delay: TimeAmount = .milliseconds(50), idleTimeout: TimeAmount? = nil, _ body: (Server) async throws -> Void
    ) async throws {
        let server = try await Server(bodyLimit: bodyLimit, delay: delay, idleTimeout: idleTimeout)
        do {
            try await body(server)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    /// Writes `text` on one connection (then closes this side's output if `halfClose`) and
    /// collects what comes back until every string of `until` arrived (and, if `closed`, the
    /// server closed the connection) or 10 s passed.
    static func exchange(
        port: Int, _ text: String, until expected: [String], closed waitForClose: Bool = false, halfClose: Bool = false,
        within seconds: TimeInterval = 10
    ) async throws -> (text: String, closed: Bool) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let collected = NIOLockedValueBox((text: "", closed: false))
        final class Collect: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            let box: NIOLockedValueBox<(text: String, closed: Bool)>
            init(_ box: NIOLockedValueBox<(text: String, closed: Bool)>) { self.box = box }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                let buffer = Self.unwrapInboundIn(data)
                self.box.withLockedValue { $0.text += String(buffer: buffer) }
            }
            func channelInactive(context: ChannelHandlerContext) { self.box.withLockedValue { $0.closed = true } }
            func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
                if let event = event as? ChannelEvent, case .inputClosed = event { self.box.withLockedValue { $0.closed = true } }
            }
        }
        do {
            let channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collect(collected)) }
                }
                .connect(host: "127.0.0.1", port: port).get()
            try await channel.writeAndFlush(ByteBuffer(string: text)).get()
            if halfClose { try await channel.close(mode: .output).get() }
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                let (text, closed) = collected.withLockedValue { $0 }
                if closed && !waitForClose { break }
                if expected.allSatisfy({ text.contains($0) }) && (closed || !waitForClose) { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            let result = collected.withLockedValue { $0 }  // before this side closes
            try? await channel.close().get()
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    static func post(_ path: String, _ body: String, close: Bool = false) -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\(close ? "Connection: close\r\n" : "")\r\n\(body)"
    }

    @Test("pipelined requests are answered in order, a slow fast-route answer before a quick router answer")
    func inOrder() async throws {
        try await Self.withServer { server in
            let (text, _) = try await Self.exchange(
                port: server.port, Self.post("/fast", "abc") + "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + Self.post("/echo", "hi"),
                until: ["{\"length\":3}", "slow", "echo hi"])
            let length = try #require(text.range(of: "{\"length\":3}"))
            let slow = try #require(text.range(of: "slow"))
            let echo = try #require(text.range(of: "echo hi"))
            #expect(length.lowerBound < slow.lowerBound && slow.lowerBound < echo.lowerBound, "\(text)")
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count - 1 == 3, "\(text)")
            #expect(text.contains("Content-Length: 12"), "the fast answer carries its length: \(text)")
        }
    }

    @Test("a body over the limit gets 413 and the connection goes on; an unknown route gets the router's 404")
    func limits() async throws {
        try await Self.withServer(bodyLimit: 8) { server in
            let (text, closed) = try await Self.exchange(
                port: server.port,
                Self.post("/fast", String(repeating: "x", count: 9)) + Self.post("/fast", "12345678") + "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n",
                until: ["HTTP/1.1 404 Not Found"])
            #expect(text.contains("HTTP/1.1 413 Payload Too Large"), "\(text)")
            #expect(text.contains("request body exceeds 8 bytes"), "\(text)")
            #expect(text.contains("{\"length\":8}"), "the next request on the connection is answered: \(text)")
            #expect(text.contains("HTTP/1.1 404 Not Found"), "\(text)")
            #expect(!closed, "the connection stays open: \(text)")
        }
    }

    @Test("Connection: close is answered, then the connection closes, and a request pipelined after it never runs; garbage gets 400")
    func close() async throws {
        try await Self.withServer { server in
            let (text, closed) = try await Self.exchange(
                port: server.port, Self.post("/fast", "a", close: true) + Self.post("/fast", "bb"), until: ["{\"length\":1}"], closed: true)
            #expect(text.contains("{\"length\":1}") && text.contains("Connection: close"), "\(text)")
            #expect(closed)
            #expect(!text.contains("{\"length\":2}"), "\(text)")
            #expect(server.fastCalls.withLockedValue { $0 } == 1, "the request after Connection: close was not run")
            let (garbage, garbageClosed) = try await Self.exchange(port: server.port, "NOT HTTP AT ALL\r\n\r\n", until: ["HTTP/1.1 400"], closed: true)
            #expect(garbage.hasPrefix("HTTP/1.1 400"), "\(garbage)")
            #expect(garbageClosed)
        }
    }

    @Test("a client that closes its side after a request gets the answer, then the server closes; an idle half-closed connection closes at once")
    func halfClose() async throws {
        try await Self.withServer { server in
            let (text, closed) = try await Self.exchange(
                port: server.port, Self.post("/fast", "abc"), until: ["{\"length\":3}"], closed: true, halfClose: true)
            #expect(text.contains("{\"length\":3}"), "\(text)")
            #expect(closed, "the server closed the half-closed connection")
            let (idle, idleClosed) = try await Self.exchange(port: server.port, "", until: [], closed: true, halfClose: true)
            #expect(idle.isEmpty && idleClosed)
        }
    }

    @Test("the idle timeout closes a connection with no request in progress, never one whose answer is pending")
    func idleTimeout() async throws {
        // The answer takes 2.5 s, longer than the 1 s idle timeout: it still arrives, then the
        // connection closes once idle. (A 300 ms timeout closed the connection before a loaded
        // machine let the test write its request.)
        try await Self.withServer(delay: .milliseconds(2_500), idleTimeout: .seconds(1)) { server in
            let (text, closed) = try await Self.exchange(port: server.port, Self.post("/fast", "abc"), until: ["{\"length\":3}"], closed: true)
            #expect(text.contains("{\"length\":3}"), "the slow answer was written: \(text)")
            #expect(closed, "the connection closed once idle")
            let (idle, idleClosed) = try await Self.exchange(port: server.port, "", until: [], closed: true)
            #expect(idle.isEmpty && idleClosed, "a connection that never sends a request closes too")
        }
    }

    /// The handler begins requests answered at once in a loop, not by nested calls. (How deep
    /// calls would nest otherwise is bounded by one socket read's worth of requests, so this
    /// test passes either way: it checks the answers, not the stack.)
    @Test("5,000 pipelined requests answered at once behind a slow one are all answered, in order")
    func longPipeline() async throws {
        try await Self.withServer(bodyLimit: 8) { server in
            let count = 5_000
            let refused = Self.post("/fast", String(repeating: "x", count: 9))
            let (text, closed) = try await Self.exchange(
                port: server.port, Self.post("/fast", "abc") + String(repeating: refused, count: count) + Self.post("/fast", "12345678"),
                until: ["{\"length\":8}"], within: 120)  // a debug build among parallel suites took over 10 s
            #expect(text.components(separatedBy: "HTTP/1.1 413 Payload Too Large").count - 1 == count)
            #expect(text.hasPrefix("HTTP/1.1 200 OK") && text.hasSuffix("{\"length\":8}"), "\(text.prefix(200)) ... \(text.suffix(200))")
            #expect(!closed)
        }
    }

    /// The handler in an `EmbeddedChannel` behind NIO's request decoder, with a fast route
    /// (`POST /fast`) whose answers the test gives by hand, and an outbound handler in front
    /// that counts the reads that reach the socket.
    final class Embedded {
        final class ReadCounter: ChannelOutboundHandler, @unchecked Sendable {
            typealias OutboundIn = Any
            var reads = 0
            func read(context: ChannelHandlerContext) {
                self.reads += 1
                context.read()
            }
        }

        let channel = EmbeddedChannel()
        let counter = ReadCounter()
        let pending = NIOLockedValueBox<[(body: String, promise: EventLoopPromise<APIReply>)]>([])

        init() throws {
            try self.channel.pipeline.syncOperations.addHandler(self.counter)
            let pending = self.pending
            let child = ClientChannel(
                responder: Router().buildResponder(), bodyLimit: 1_000, idleTimeout: nil, executor: nil,
                fastRoutes: { head, body, loop in
                    guard head.method == .POST, head.uri == "/fast" else { return nil }
                    let promise = loop.makePromise(of: APIReply.self)
                    pending.withLockedValue { $0.append((String(buffer: body), promise)) }
                    return promise.futureResult
                })
            _ = try child.setup(channel: self.channel, logger: Logger(label: "test")).wait()
            try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        /// Delivers `text` as one read, then asks for the next read as NIO's auto-read does.
        func read(_ text: String) throws {
            try self.channel.writeInbound(ByteBuffer(string: text))
            self.channel.read()
        }

        /// Answers the oldest request waiting for the fast route with its body.
        func answerOldest() {
            let (body, promise) = self.pending.withLockedValue { $0.removeFirst() }
            promise.succeed(APIReply.json(.ok, .object([("body", .string(body))])))
            self.channel.embeddedEventLoop.run()
        }

        var routeCalls: Int { self.pending.withLockedValue { $0.count } }

        /// Everything written to the socket so far.
        func written() throws -> String {
            var text = ""
            while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }
    }

    @Test("a pending answer does not stop the connection reading; a full queue does, until it drains")
    func readsFlow() throws {
        let embedded = try Embedded()
        let before = embedded.counter.reads
        try embedded.read(Self.post("/fast", "r0"))
        #expect(embedded.routeCalls == 1)
        #expect(embedded.counter.reads == before + 1, "the read after a request whose answer is pending reached the socket")
        // Seventeen more in one read: one waits beyond the queue's limit of sixteen.
        try embedded.read((1...17).map { Self.post("/fast", "r\($0)") }.joined())
        #expect(embedded.routeCalls == 1, "one request at a time")
        #expect(embedded.counter.reads == before + 1, "a full queue holds the read back")
        embedded.answerOldest()  // r0 answered, r1 begun: sixteen wait
        #expect(embedded.counter.reads == before + 1)
        embedded.answerOldest()  // r1 answered, r2 begun: fifteen wait, the held read goes out
        #expect(embedded.counter.reads == before + 2, "the held read went out once the queue drained")
        for _ in 2...17 { embedded.answerOldest() }
        let text = try embedded.written()
        let order = (0...17).map { text.range(of: "{\"body\":\"r\($0)\"}")?.lowerBound }
        #expect(order.allSatisfy { $0 != nil } && zip(order, order.dropFirst()).allSatisfy { $0! < $1! }, "\(text)")
        #expect(text.components(separatedBy: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ").count - 1 == 18)
        #expect(embedded.channel.isActive)
    }

    @Test("garbage after a pending request: that request is answered first, then 400, then the connection closes")
    func garbageAfterRequest() throws {
        let embedded = try Embedded()
        try embedded.read(Self.post("/fast", "first") + "NOT HTTP AT ALL\r\n\r\n")
        #expect(embedded.channel.isActive, "open while the first answer is pending")
        #expect(try embedded.written().isEmpty)
        embedded.answerOldest()
        let text = try embedded.written()
        let first = try #require(text.range(of: "{\"body\":\"first\"}"))
        let bad = try #require(text.range(of: "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), "\(text)")
        #expect(first.upperBound <= bad.lowerBound, "\(text)")
        #expect(!embedded.channel.isActive)
    }

    @Test("the server's quiesce event closes an idle connection at once, and a busy one once the request being read is answered (or turns out not to be HTTP)")
    func quiesce() throws {
        let idle = try Embedded()
        idle.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        idle.channel.embeddedEventLoop.run()
        #expect(!idle.channel.isActive)

        let busy = try Embedded()
        // A request part read (two of its four body bytes) when the event comes.
        try busy.read("POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        busy.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        let reads = busy.counter.reads
        busy.channel.read()
        #expect(busy.counter.reads == reads + 1, "still reading the request begun")
        try busy.read("cd" + Self.post("/fast", "after"))
        #expect(busy.routeCalls == 1, "the request after the event never runs")
        #expect(busy.channel.isActive)
        busy.answerOldest()
        let text = try busy.written()
        #expect(text.contains("{\"body\":\"abcd\"}") && !text.contains("after"), "\(text)")
        #expect(!busy.channel.isActive)

        // A request part read when the event comes, and then not HTTP: the connection closes
        // (it is not left waiting for the rest of a request that cannot come).
        let broken = try Embedded()
        try broken.read("POST /fast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n")
        broken.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(broken.channel.isActive)
        try broken.read("zz\r\n")
        broken.channel.embeddedEventLoop.run()
        #expect(broken.routeCalls == 0)
        #expect(!broken.channel.isActive)
    }
}
