import ArgumentParser
import Foundation
import Histogram
import SynodRuntime
import Synchronization

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Closed-loop load against an etcd-shaped HTTP API (synod serve or etcd's v3 gateway).",
        discussion: """
            Each of --concurrency clients keeps one keep-alive connection and one request in flight. \
            Prints a progress line every second, then throughput and latency percentiles of the \
            measured period (after --warmup). Requests go to the endpoints in turn, client by client.
            """
    )

    @Option(help: "Comma-separated endpoints, as http://HOST:PORT or HOST:PORT.")
    var endpoints: String

    @Option(help: "Concurrent clients.")
    var concurrency = 16

    @Option(help: "Seconds to measure.")
    var duration = 10.0

    @Option(help: "Seconds of load before measuring.")
    var warmup = 1.0

    @Option(name: .customLong("value-size"), help: "Bytes per value.")
    var valueSize = 256

    @Option(help: "Operation: put or range (a linearizable single-key read).")
    var op = "put"

    @Option(help: "Distinct keys.")
    var keys = 1000

    @Flag(help: "Print one JSON object on stdout instead of the human summary.")
    var json = false

    func validate() throws {
        _ = try self.parsedEndpoints()
        guard (1...10_000).contains(self.concurrency) else { throw ValidationError("--concurrency must lie in 1...10000") }
        guard self.duration > 0 && self.duration <= 3600 else { throw ValidationError("--duration must lie in (0, 3600]") }
        guard self.warmup >= 0 && self.warmup <= 600 else { throw ValidationError("--warmup must lie in [0, 600]") }
        guard (0...(1 << 20)).contains(self.valueSize) else { throw ValidationError("--value-size must lie in 0...1048576") }
        guard ["put", "range"].contains(self.op) else { throw ValidationError("--op must be put or range") }
        guard self.keys >= 1 else { throw ValidationError("--keys must be positive") }
    }

    func parsedEndpoints() throws -> [(host: String, port: Int)] {
        try self.endpoints.split(separator: ",").map { entry in
            var text = String(entry)
            if text.hasPrefix("http://") { text.removeFirst(7) }
            while text.hasSuffix("/") { text.removeLast() }
            let address = try ServeCommand.address(text, what: "endpoint")
            return (address.host, address.port)
        }
    }

    struct Totals {
        var completed = 0
        var errors = 0
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var lastError: String?
    }

    /// The totals every client adds to, behind one lock.
    final class Shared: Sendable {
        let totals = Mutex(Totals())
        func withLock<T>(_ body: (inout Totals) -> T) -> T { self.totals.withLock { body(&$0) } }
    }

    func run() async throws {
        let endpoints = try self.parsedEndpoints()
        let shared = Shared()
        let clock = ContinuousClock()
        let start = clock.now
        let measureFrom = start + .milliseconds(Int64(self.warmup * 1000))
        let end = measureFrom + .milliseconds(Int64(self.duration * 1000))
        let value = Data((0..<self.valueSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }).base64EncodedString()
        let path = self.op == "put" ? "/v3/kv/put" : "/v3/kv/range"
        let keys = self.keys
        let op = self.op
        let stride = self.concurrency

        let progress = Task {
            var lastCount = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let (count, errors) = shared.withLock { ($0.completed, $0.errors) }
                let elapsed = clock.now - start
                let phase = clock.now < measureFrom ? "warm-up" : "measuring"
                Console.error(
                    "\r[\(elapsed.components.seconds) s, \(phase)] \(count) ops measured, \(count - lastCount) in the last second, \(errors) errors   ")
                lastCount = count
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<self.concurrency {
                let endpoint = endpoints[client % endpoints.count]
                group.addTask {
                    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                    var completed = 0
                    var errors = 0
                    var connection: HTTPConnection?
                    var counter = client
                    var lastError: String?
                    while clock.now < end {
                        if connection == nil {
                            connection = try? await HTTPConnection.connect(host: endpoint.host, port: endpoint.port)
                            if connection == nil {
                                errors += 1
                                lastError = "cannot connect to \(endpoint.host):\(endpoint.port)"
                                try? await Task.sleep(for: .milliseconds(100))
                                continue
                            }
                        }
                        // Each client walks its own residue class, so that together they
                        // cover every one of the distinct keys.
                        counter += stride
                        let key = Data("bench/\(counter % keys)".utf8).base64EncodedString()
                        let body: [String: Any] = op == "put" ? ["key": key, "value": value] : ["key": key]
                        let sent = clock.now
                        do {
                            let reply = try await connection!.post(path, json: body, timeout: .seconds(10))
                            let latency = clock.now - sent
                            guard sent >= measureFrom else { continue }
                            if reply.status == 200 {
                                completed += 1
                                let micros = UInt64(latency.components.seconds) * 1_000_000 + UInt64(latency.components.attoseconds / 1_000_000_000_000)
                                _ = histogram.record(min(micros, 60_000_000))
                            } else {
                                errors += 1
                                lastError = "HTTP \(reply.status): \(String(decoding: reply.body.prefix(200), as: UTF8.self))"
                            }
                        } catch {
                            errors += 1
                            lastError = "\(error)"
                            await connection?.close()
                            connection = nil
                        }
                        if completed % 64 == 0 {
                            let (done, failed) = (completed, errors)
                            shared.withLock { $0.completed += done; $0.errors += failed }
                            completed = 0
                            errors = 0
                        }
                    }
                    await connection?.close()
                    let (done, failed, seen, message) = (completed, errors, histogram, lastError)
                    shared.withLock {
                        $0.completed += done
                        $0.errors += failed
                        $0.histogram.add(seen)
                        if let message { $0.lastError = message }
                    }
                }
            }
        }
        progress.cancel()
        Console.error("\n")
        let (histogram, errors, lastError) = shared.withLock { ($0.histogram, $0.errors, $0.lastError) }
        let count = Int(histogram.totalCount)
        let throughput = Double(count) / self.duration
        func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        if self.json {
            let object: [String: Any] = [
                "op": self.op, "concurrency": self.concurrency, "valueSize": self.valueSize, "seconds": self.duration,
                "operations": count, "errors": errors, "throughput": throughput,
                "p50Milliseconds": ms(50), "p99Milliseconds": ms(99), "p999Milliseconds": ms(99.9),
                "maxMilliseconds": Double(histogram.max) / 1000,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("\(self.op), \(self.concurrency) clients, \(self.valueSize)-byte values, \(self.duration) s measured after \(self.warmup) s of warm-up")
            print(String(format: "throughput: %.0f ops/s (%d ops, %d errors)", throughput, count, errors))
            print(String(format: "latency ms: p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f", ms(50), ms(99), ms(99.9), Double(histogram.max) / 1000))
        }
        if let error = lastError { Console.error("last error: \(error)\n") }
        if count == 0 { throw ExitCode(1) }
    }
}
