import CoreMetrics
import Prometheus
import SynodCore

/// What an operator sees of one node at `GET /metrics`, in the Prometheus text format: client
/// requests, commit and apply progress, leadership, write-ahead-log syncs and their batches,
/// peer links, snapshots. The code records through swift-metrics' API (`Counter`, `Meter`,
/// `Timer`, `Recorder`); each metric's backend is a swift-prometheus collector in this node's
/// own registry (with its help text), so several nodes in one process keep separate figures
/// and nothing global is bootstrapped.
///
/// Every update is an atomic operation on a value the metric owns; nothing allocates on the
/// hot paths. Thread-safe: the event loop, the storage thread and the snapshot thread record.
public final class NodeMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// Every metric's node and protocol labels.
    let labels: [(String, String)]

    /// Client requests handed to this node's gateway, by kind.
    let writes: CoreMetrics.Counter
    let reads: CoreMetrics.Counter
    /// Client requests that ended without an answer, by reason.
    let timeouts: CoreMetrics.Counter
    let refusals: CoreMetrics.Counter
    /// Requests waiting for their answer now, by where they wait: at this node's gateway (its
    /// HTTP API's requests), and at this replica (writes it took from any gateway and has not
    /// answered yet: proposed, not yet committed and applied; reads waiting for a read index
    /// or a lease).
    let inFlight: Meter
    let replicaWrites: Meter
    let replicaReads: Meter
    let commitPosition: Meter
    let appliedPosition: Meter
    let epoch: Meter
    let isLeader: Meter
    let leaderChanges: CoreMetrics.Counter
    let campaigns: CoreMetrics.Counter
    /// One write-ahead-log append (every record of one `Ready`) and its fdatasync.
    let walWrite: CoreMetrics.Timer
    let walSync: CoreMetrics.Timer
    let batchRecords: Recorder
    let snapshotSave: CoreMetrics.Timer
    let snapshotRestore: CoreMetrics.Timer
    let snapshotsInstalled: CoreMetrics.Counter
    let peerFramesSent: CoreMetrics.Counter
    let peerFramesDropped: CoreMetrics.Counter
    let peersReachable: Meter
    let peerConnections: CoreMetrics.Counter

    public init(node: NodeID, protocolName: String) {
        let registry = self.registry
        let factory = PrometheusMetricsFactory(registry: registry)
        let labels = [("node", "\(node.rawValue)"), ("protocol", protocolName)]
        self.labels = labels
        func counter(_ name: String, _ help: String, _ extra: [(String, String)] = []) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: name, dimensions: labels + extra,
                handler: registry.makeCounter(name: name, labels: labels + extra, help: help), factory: factory)
        }
        func gauge(_ name: String, _ help: String, _ extra: [(String, String)] = []) -> Meter {
            Meter(label: name, dimensions: labels + extra,
                handler: registry.makeGauge(name: name, labels: labels + extra, help: help), factory: factory)
        }
        func timer(_ name: String, _ help: String, _ buckets: [Duration]) -> CoreMetrics.Timer {
            CoreMetrics.Timer(label: name, dimensions: labels,
                handler: registry.makeDurationHistogram(name: name, labels: labels, buckets: buckets, help: help), factory: factory)
        }
        let requests = "synod_client_requests_total"
        let requestsHelp = "Client requests handed to this node's gateway (HTTP API), by kind."
        self.writes = counter(requests, requestsHelp, [("kind", "write")])
        self.reads = counter(requests, requestsHelp, [("kind", "read")])
        let failures = "synod_client_request_failures_total"
        let failuresHelp = "Client requests that ended without an answer: timeout (a write's outcome is unknown) or unavailable."
        self.timeouts = counter(failures, failuresHelp, [("reason", "timeout")])
        self.refusals = counter(failures, failuresHelp, [("reason", "unavailable")])
        let inFlight = "synod_client_requests_in_flight"
        let inFlightHelp = "Client requests waiting for their answer, by where: gateway (this node's HTTP API), "
            + "replica_writes (writes this replica took, not yet committed and applied), replica_reads (reads waiting for a read index or lease)."
        self.inFlight = gauge(inFlight, inFlightHelp, [("state", "gateway")])
        self.replicaWrites = gauge(inFlight, inFlightHelp, [("state", "replica_writes")])
        self.replicaReads = gauge(inFlight, inFlightHelp, [("state", "replica_reads")])
        self.commitPosition = gauge("synod_commit_position", "Every position up to this one is known committed (Raft index, Paxos slot).")
        self.appliedPosition = gauge("synod_applied_position", "The last position applied to this node's state machine.")
        self.epoch = gauge("synod_epoch", "The protocol epoch this node is in (Raft term, Paxos ballot).")
        self.isLeader = gauge("synod_is_leader", "1 while this node leads, else 0.")
        self.leaderChanges = counter("synod_leader_changes_total", "Changes of the leader this node knows of (role and epoch events).")
        self.campaigns = counter("synod_campaigns_total", "Elections (Raft) or phase-1 rounds (Multi-Paxos) this node started.")
        let fast: [Duration] = [25, 50, 100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 409_600].map {
            .microseconds($0)
        }
        self.walWrite = timer("synod_wal_write_seconds", "Appending one batch of records to the write-ahead log (before its sync).", fast)
        self.walSync = timer("synod_wal_sync_seconds", "One fdatasync of the write-ahead log (group commit: every record of a batch).", fast)
        let batchName = "synod_wal_batch_records"
        self.batchRecords = Recorder(label: batchName, dimensions: labels, aggregate: true,
            handler: registry.makeValueHistogram(name: batchName, labels: labels, buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
                help: "Records written by one append and sync (group commit batch size)."),
            factory: factory)
        let slow: [Duration] = [
            .milliseconds(1), .milliseconds(4), .milliseconds(16), .milliseconds(64), .milliseconds(256), .seconds(1), .seconds(4), .seconds(16),
        ]
        self.snapshotSave = timer("synod_snapshot_save_seconds", "Serialising and writing one snapshot of the state machine (off the event loop).", slow)
        self.snapshotRestore = timer(
            "synod_snapshot_restore_seconds",
            "Rebuilding the state machine from a snapshot: the node's own at start, or one another replica sent (an install; its write to disk is in synod_wal_write_seconds).",
            slow)
        self.snapshotsInstalled = counter("synod_snapshot_installs_total", "Snapshots from another replica this node installed.")
        self.peerFramesSent = counter("synod_peer_frames_sent_total", "Frames written to peer links.")
        self.peerFramesDropped = counter("synod_peer_frames_dropped_total", "Frames dropped: the link was down or its buffer full (the protocol resends).")
        self.peersReachable = gauge("synod_peers_reachable", "Members this node reaches over proven peer links, itself included.")
        self.peerConnections = counter("synod_peer_connections_total", "Peer links established (after the first, each one is a reconnect).")
    }

    static var peerQueuedBytesName: String { "synod_peer_queued_bytes" }
    static var peerQueuedBytesHelp: String { "Bytes written to the link to a peer and not yet sent by the kernel (0 while the link is down)." }

    /// Sets each peer link's queued bytes (a gauge per peer, made when a peer is first seen).
    func setPeerQueuedBytes(_ bytes: [NodeID: Int]) {
        for (peer, queued) in bytes {
            self.registry.makeGauge(
                name: Self.peerQueuedBytesName, labels: self.labels + [("peer", "\(peer.rawValue)")], help: Self.peerQueuedBytesHelp
            ).set(to: Double(queued))
        }
    }

    /// The metrics in the Prometheus text exposition format.
    public func render() -> String { self.registry.emitToString() }
}
