import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A minimal HTTP/1.1 client connection with keep-alive, one request at a time: what the
/// demo, the load generator and the process tests need to talk to `synod serve` or etcd,
/// without a second HTTP stack. `@unchecked Sendable`: its stored properties are immutable, and
/// the handler's state is only touched on the channel's event loop (`request` hops there).
public final class HTTPConnection: @unchecked Sendable {
    /// An HTTP response.
    public struct Reply: Sendable {
        public var status: Int
        public var body: [UInt8]
        /// The response's headers, in order.
        public var headers: [(name: String, value: String)] = []

        /// The first header named `name` (case-insensitive).
        public func header(_ name: String) -> String? {
            self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        /// The body as a JSON object, if it is one.
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(self.body))) as? [String: Any] }
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        var waiting: EventLoopPromise<Reply>?
        var status = 0
        var body: [UInt8] = []
        var headers: [(name: String, value: String)] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch Self.unwrapInboundIn(data) {
            case .head(let head):
                self.status = Int(head.status.code)
                self.headers = head.headers.map { ($0.name, $0.value) }
                self.body = []
            case .body(var buffer):
                self.body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                let reply = Reply(status: self.status, body: self.body, headers: self.headers)
                self.waiting.take()?.succeed(reply)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.waiting.take()?.fail(error)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.waiting.take()?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    let channel: any Channel
    let handler: Handler
    let host: String

    init(channel: any Channel, handler: Handler, host: String) {
        self.channel = channel
        self.handler = handler
        self.host = host
    }

    /// Connects to `host:port`; over TLS with `tls` (the server's name checked against `host`).
    public static func connect(host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               timeout: TimeAmount = .seconds(2), tls: NIOSSLContext? = nil) async throws -> HTTPConnection {
        let handler = Handler()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        let name = host.first?.isNumber == true ? nil : host
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: name))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: host, port: port).get()
        return HTTPConnection(channel: channel, handler: handler, host: host)
    }

    /// Sends one request and waits for its response, or fails after `timeout`.
    public func request(
        _ method: HTTPMethod, _ path: String, body: [UInt8] = [], headers: [(String, String)] = [], timeout: TimeAmount = .seconds(10)
    ) async throws -> Reply {
        let channel = self.channel
        let handler = self.handler
        let host = self.host
        let future: EventLoopFuture<Reply> = channel.eventLoop.flatSubmit {
            guard channel.isActive else { return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
            precondition(handler.waiting == nil, "one request at a time per connection")
            let promise = channel.eventLoop.makePromise(of: Reply.self)
            handler.waiting = promise
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
            head.headers.add(name: "Host", value: host)
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: "\(body.count)")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if !body.isEmpty {
                channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil)
            }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            let deadline = channel.eventLoop.scheduleTask(in: timeout) {
                handler.waiting.take()?.fail(HTTPClientTimeout())
                channel.close(promise: nil)
            }
            promise.futureResult.whenComplete { _ in deadline.cancel() }
            return promise.futureResult
        }
        return try await future.get()
    }

    /// POSTs a JSON object.
    public func post(_ path: String, json: [String: Any], timeout: TimeAmount = .seconds(10)) async throws -> Reply {
        let body = try JSONSerialization.data(withJSONObject: json)
        return try await self.request(.POST, path, body: Array(body), timeout: timeout)
    }

    /// Closes the connection.
    public func close() async {
        try? await self.channel.close()
    }
}

/// No response within the time allowed.
public struct HTTPClientTimeout: Error, CustomStringConvertible {
    public var description: String { "no HTTP response in time" }
}
