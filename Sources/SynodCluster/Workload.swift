import Foundation
import SynodCheck
import SynodRuntime
import Synchronization

/// Closed-loop clients over the etcd-shaped HTTP API (Synod's or etcd's), doing puts and
/// linearizable gets on a few keys and recording every operation in the checker's history
/// format. A put whose answer is lost (a timeout, a dropped connection, a 5xx) is recorded as
/// unknown: it may or may not have taken effect. A get that fails is left out (it changed
/// nothing).
public final class KVWorkload: Sendable {
    struct State {
        var operations: [HistoryOperation] = []
        var stopped = false
        var acknowledgedPuts = 0
        var failedRequests = 0
    }

    /// Where client `i` sends its requests first (it moves on when a node stops answering).
    public let endpoints: [(host: String, port: Int)]
    /// Distinct keys (`k0`, `k1`, …).
    public let keys: Int
    /// The share of operations that are reads.
    public let readFraction: Double
    /// Bytes per written value: each value is unique (client and sequence) and padded to this
    /// size; 0 leaves it unpadded.
    public let valueBytes: Int
    private let state = Mutex(State())
    private let origin = DispatchTime.now().uptimeNanoseconds

    /// Puts acknowledged so far.
    public var acknowledgedPuts: Int { self.state.withLock { $0.acknowledgedPuts } }
    /// Requests that failed so far (errors, timeouts, lost connections).
    public var failedRequests: Int { self.state.withLock { $0.failedRequests } }

    public init(endpoints: [(host: String, port: Int)], keys: Int = 4, readFraction: Double = 0.5, valueBytes: Int = 0) {
        self.endpoints = endpoints
        self.keys = keys
        self.readFraction = readFraction
        self.valueBytes = valueBytes
    }


    /// The history so far.
    public var history: [HistoryOperation] { self.state.withLock { $0.operations } }

    /// Asks every client to finish its current operation and stop.
    public func stop() { self.state.withLock { $0.stopped = true } }

    var isStopped: Bool { self.state.withLock { $0.stopped } }

    func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds - self.origin }

    func record(_ operation: HistoryOperation, acknowledgedPut: Bool = false, failed: Bool = false) {
        self.state.withLock {
            $0.operations.append(operation)
            if acknowledgedPut { $0.acknowledgedPuts += 1 }
            if failed { $0.failedRequests += 1 }
        }
    }

    func countFailure() { self.state.withLock { $0.failedRequests += 1 } }

    /// Runs `clients` clients until `stop()` or until each has done `operationsPerClient`.
    public func run(clients: Int, operationsPerClient: Int = .max) async {
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask { await self.client(client, operations: operationsPerClient) }
            }
        }
    }

    func client(_ client: Int, operations: Int) async {
        var endpoint = client % self.endpoints.count
        var connection: HTTPConnection?
        var random = SystemRandomNumberGenerator()
        var done = 0
        while done < operations && !self.isStopped {
            if connection == nil {
                connection = try? await HTTPConnection.connect(
                    host: self.endpoints[endpoint].host, port: self.endpoints[endpoint].port, timeout: .milliseconds(500))
                if connection == nil {
                    endpoint = (endpoint + 1) % self.endpoints.count
                    try? await Task.sleep(for: .milliseconds(50))
                    continue
                }
            }
            done += 1
            let key = "k\(Int.random(in: 0..<self.keys, using: &random))"
            let keyField = Data(key.utf8).base64EncodedString()
            let call = self.now()
            if Double.random(in: 0..<1, using: &random) < self.readFraction {
                let reply = try? await connection!.post("/v3/kv/range", json: ["key": keyField], timeout: .seconds(6))
                guard let reply, reply.status == 200, let json = reply.json else {
                    self.countFailure()
                    if reply == nil { await connection?.close(); connection = nil; endpoint = (endpoint + 1) % self.endpoints.count }
                    continue
                }
                let value = (json["kvs"] as? [[String: Any]])?.first.flatMap { $0["value"] as? String }
                    .flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
                self.record(HistoryOperation(client: client, kind: .get, key: key, output: .value(value), call: call,
                                             returnTime: self.now()))
            } else {
                let value = HistoryGenerator.paddedValue("c\(client)-\(done)", bytes: self.valueBytes)
                let reply = try? await connection!.post(
                    "/v3/kv/put", json: ["key": keyField, "value": Data(value.utf8).base64EncodedString()], timeout: .seconds(6))
                if let reply, reply.status == 200 {
                    self.record(HistoryOperation(client: client, kind: .put, key: key, value: value, call: call,
                                                 returnTime: self.now()), acknowledgedPut: true)
                } else {
                    // The outcome is unknown; this client never reuses the value.
                    self.record(HistoryOperation(client: client, kind: .put, key: key, value: value, call: call,
                                                 returnTime: nil, unknown: true), failed: true)
                    if reply == nil { await connection?.close(); connection = nil; endpoint = (endpoint + 1) % self.endpoints.count }
                }
            }
        }
        await connection?.close()
    }
}
