import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import SynodRuntime
import Testing

/// The client port's connection handler (`ClientChannel`) on a real socket, with stand-in
/// routes: fast routes answered by futures, the rest by a Hummingbird router, one request at a
/// time and in order, bodies over the limit refused without losing the connection.
@Suite("The client port's connection handler")
struct ClientChannelTests {
    /// A server on 127.0.0.1 whose fast route `POST /fast` answers after `delay` with the body's
    /// length, and whose router has `GET /slow` and `POST /echo`.
    final class Server: @unchecked Sendable {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var channel: (any Channel)!
        var port: Int { self.channel.localAddress!.port! }

        init(bodyLimit: Int, delay: TimeAmount) async throws {
            let router = Router()
            router.get("/slow") { _, _ in "slow" }
            router.post("/echo") { request, _ -> String in
                var request = request
                let body = try await request.collectBody(upTo: 1_000)
                return "echo " + String(buffer: body)
            }
            let fast: ClientChannel.FastRoutes = { head, body, loop in
                guard head.method == .post, head.path == "/fast" else { return nil }
                return loop.scheduleTask(in: delay) { APIReply.json(.ok, .object([("length", .integer(Int64(body.readableBytes)))])) }
                    .futureResult
            }
            // The router's tasks run on the server's loop, as `synod serve` runs them on the node's.
            let child = ClientChannel(
                responder: router.buildResponder(), bodyLimit: bodyLimit, idleTimeout: nil,
                executor: EventLoopTaskExecutor(self.group.next()), fastRoutes: fast)
            let logger = Logger(label: "test")
            self.channel = try await ServerBootstrap(group: self.group)
                .childChannelInitializer { channel in child.setup(channel: channel, logger: logger).map { _ in } }
                .bind(host: "127.0.0.1", port: 0).get()
        }

        func stop() async throws {
            try await self.channel.close().get()
            try await self.group.shutdownGracefully()
        }
    }

    static func withServer(bodyLimit: Int = 64, delay: TimeAmount = .milliseconds(50), _ body: (Server) async throws -> Void) async throws {
        let server = try await Server(bodyLimit: bodyLimit, delay: delay)
        do {
            try await body(server)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    /// Writes `bytes` on one connection and collects what comes back until `responses`
    /// complete responses (counted by their status lines) arrived or the peer closed.
    static func exchange(port: Int, _ text: String, responses: Int) async throws -> (text: String, closed: Bool) {
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
        }
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collect(collected)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let (text, closed) = collected.withLockedValue { $0 }
            if closed || text.components(separatedBy: "HTTP/1.1 ").count - 1 >= responses { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let result = collected.withLockedValue { $0 }  // before this side closes
        try? await channel.close().get()
        try await group.shutdownGracefully()
        return result
    }

    static func post(_ path: String, _ body: String, close: Bool = false) -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\(close ? "Connection: close\r\n" : "")\r\n\(body)"
    }

    @Test("pipelined requests are answered in order, a slow fast-route answer before a quick router answer")
    func inOrder() async throws {
        try await Self.withServer { server in
            let (text, _) = try await Self.exchange(
                port: server.port, Self.post("/fast", "abc") + "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + Self.post("/echo", "hi"), responses: 3)
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
                responses: 3)
            #expect(text.contains("HTTP/1.1 413 Payload Too Large"), "\(text)")
            #expect(text.contains("request body exceeds 8 bytes"), "\(text)")
            #expect(text.contains("{\"length\":8}"), "the next request on the connection is answered: \(text)")
            #expect(text.contains("HTTP/1.1 404 Not Found"), "\(text)")
            #expect(!closed, "the connection stays open: \(text)")
        }
    }

    @Test("Connection: close is answered, then the connection closes; garbage gets 400")
    func close() async throws {
        try await Self.withServer { server in
            let (text, closed) = try await Self.exchange(port: server.port, Self.post("/fast", "a", close: true), responses: 2)
            #expect(text.contains("{\"length\":1}") && text.contains("Connection: close"), "\(text)")
            #expect(closed)
            let (garbage, garbageClosed) = try await Self.exchange(port: server.port, "NOT HTTP AT ALL\r\n\r\n", responses: 1)
            #expect(garbage.hasPrefix("HTTP/1.1 400"), "\(garbage)")
            #expect(garbageClosed)
        }
    }
}
