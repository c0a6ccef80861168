import Foundation
import SynodCore

/// What a node must know to start again without being told: its cluster's id and protocol,
/// the cluster's first configuration (the members it started with, or the ones a joining node
/// learned), and where this node listens for peers. `ReplicaNode` keeps it in the data
/// directory as the file `cluster`; every later configuration is in the log (Raft's
/// configuration entries, with their members' addresses), so a restarted node needs neither
/// `--peers` nor `--join`.
public struct StoredCluster: Sendable, Equatable {
    public var clusterID: UInt64
    public var protocolName: String
    /// The first configuration: every member the cluster started with, and its peer address.
    public var initial: [NodeID: PeerAddress]
    /// Where this node listens for peers.
    public var listen: PeerAddress

    public init(clusterID: UInt64, protocolName: String, initial: [NodeID: PeerAddress], listen: PeerAddress) {
        self.clusterID = clusterID
        self.protocolName = protocolName
        self.initial = initial
        self.listen = listen
    }

    static let fileName = "cluster"

    /// The file's text: a version line, then one `name value` line per field.
    var encoded: String {
        let initial = self.initial.sorted { $0.key < $1.key }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: ",")
        return "synod-cluster 1\ncluster \(String(self.clusterID, radix: 16))\nprotocol \(self.protocolName)\n"
            + "initial \(initial)\nlisten \(self.listen)\n"
    }

    /// The cluster stored in data directory `path`, or nil when there is none (a new node).
    public static func read(dataDirectory path: String) throws(NodeStartError) -> StoredCluster? {
        let file = path + "/" + Self.fileName
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        guard let data = FileManager.default.contents(atPath: file) else { throw NodeStartError("cannot read \(file)") }
        guard let stored = Self.decode(String(decoding: data, as: UTF8.self)) else {
            throw NodeStartError("\(file) is not a Synod cluster file (remove it, then start with --peers or --join)")
        }
        return stored
    }

    static func decode(_ text: String) -> StoredCluster? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 6, lines[0] == "synod-cluster 1", lines[5].isEmpty else { return nil }
        func field(_ index: Int, _ name: String) -> String? {
            lines[index].hasPrefix(name + " ") ? String(lines[index].dropFirst(name.count + 1)) : nil
        }
        guard let clusterText = field(1, "cluster"), let clusterID = UInt64(clusterText, radix: 16),
              let protocolName = field(2, "protocol"), !protocolName.isEmpty,
              let initialText = field(3, "initial"), let listenText = field(4, "listen"), let listen = PeerAddress(listenText)
        else { return nil }
        var initial: [NodeID: PeerAddress] = [:]
        for entry in initialText.split(separator: ",") {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let raw = UInt16(parts[0]), raw >= 1, let address = PeerAddress(String(parts[1])),
                  initial.updateValue(address, forKey: NodeID(raw)) == nil
            else { return nil }
        }
        guard !initial.isEmpty else { return nil }
        return StoredCluster(clusterID: clusterID, protocolName: protocolName, initial: initial, listen: listen)
    }

    /// Writes the file into data directory `path` (a new file, synced, then renamed over the
    /// old one: a crash leaves the old file or the new one, never half of either).
    func write(dataDirectory path: String) throws(NodeStartError) {
        let file = path + "/" + Self.fileName
        if let existing = FileManager.default.contents(atPath: file), String(decoding: existing, as: UTF8.self) == self.encoded { return }
        let temporary = file + ".new"
        let bytes = Array(self.encoded.utf8)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw NodeStartError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == bytes.count, synced, rename(temporary, file) == 0 else {
            throw NodeStartError("cannot write \(file): \(String(cString: strerror(errno)))")
        }
        let directory = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
    }
}

extension PeerAddress {
    /// Parses `HOST:PORT` (an `http://` or `https://` prefix and a trailing `/` are allowed,
    /// as in etcd's peer URLs); nil when it is not one.
    public init?(_ text: String) {
        var text = Substring(text)
        for scheme in ["http://", "https://"] where text.hasPrefix(scheme) { text = text.dropFirst(scheme.count) }
        if text.hasSuffix("/") { text = text.dropLast() }
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex, let port = Int(text[text.index(after: colon)...]),
              (1...65_535).contains(port)
        else { return nil }
        let host = text[..<colon]
        guard !host.contains(where: { $0 == "/" || $0 == "," || $0 == "=" || $0.isWhitespace }) else { return nil }
        self.init(host: String(host), port: port)
    }
}
