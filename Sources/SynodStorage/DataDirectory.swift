#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whose data a data directory holds: written on a node's first start, checked on every later
/// one, so a node never runs on another protocol's, cluster's or member's records.
public struct DataDirectoryIdentity: Sendable, Equatable, CustomStringConvertible {
    /// The protocol whose records the log holds (`raft`, `multipaxos`, …).
    public var protocolName: String
    /// The cluster (derived from its initial configuration, or given).
    public var clusterID: UInt64
    /// The member.
    public var node: UInt16

    /// An identity.
    public init(protocolName: String, clusterID: UInt64, node: UInt16) {
        self.protocolName = protocolName
        self.clusterID = clusterID
        self.node = node
    }

    public var description: String {
        "\(self.protocolName) data of node \(self.node) in cluster \(String(self.clusterID, radix: 16))"
    }

    /// The file's text: a version line, then one `name value` line per field.
    var encoded: [UInt8] {
        Array("synod-data-directory 1\nprotocol \(self.protocolName)\ncluster \(String(self.clusterID, radix: 16))\nnode \(self.node)\n".utf8)
    }

    static func decode(_ bytes: [UInt8], file: String) throws(StorageError) -> DataDirectoryIdentity {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        func field(_ index: Int, _ name: String) throws(StorageError) -> Substring {
            guard index < lines.count, lines[index].hasPrefix(name + " ") else {
                throw .corrupt(file: file, offset: 0, reason: "line \(index + 1) should start with '\(name) '")
            }
            return lines[index].dropFirst(name.count + 1)
        }
        guard try field(0, "synod-data-directory") == "1" else {
            throw .corrupt(file: file, offset: 0, reason: "unknown format version (this build reads version 1)")
        }
        let protocolName = String(try field(1, "protocol"))
        guard let cluster = UInt64(try field(2, "cluster"), radix: 16), let node = UInt16(try field(3, "node")),
              !protocolName.isEmpty, lines.count == 5, lines[4].isEmpty
        else { throw .corrupt(file: file, offset: 0, reason: "not a data directory identity (protocol, cluster, node)") }
        return DataDirectoryIdentity(protocolName: protocolName, clusterID: cluster, node: node)
    }
}

/// Why a data directory cannot be used.
public struct DataDirectoryError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A node's data directory, held for the node's life: an exclusive lock (so two processes never
/// write one log), and the identity of the data in it.
///
/// `open` refuses, with a message that names the path and the problem: an empty path, a path
/// that is a file, a directory that cannot be created or written, a directory another process
/// holds, and data of another protocol, cluster or member. A class because it owns the lock's
/// file descriptor (the lock goes when the process exits or the object is released).
public final class DataDirectory: @unchecked Sendable {
    /// The directory.
    public let path: String
    /// The identity found in the directory; nil on a first start (`recordIdentity` writes it).
    public let existingIdentity: DataDirectoryIdentity?
    /// The identity this node runs with.
    public let identity: DataDirectoryIdentity
    /// The lock file's descriptor; never changes after `open` (hence `@unchecked Sendable`).
    private let lockDescriptor: Int32

    /// The write-ahead log's folder inside the directory.
    public var writeAheadLogPath: String { self.path + "/wal" }

    static let lockFileName = "lock"
    static let identityFileName = "identity"

    private init(path: String, identity: DataDirectoryIdentity, existing: DataDirectoryIdentity?, lockDescriptor: Int32) {
        self.path = path
        self.identity = identity
        self.existingIdentity = existing
        self.lockDescriptor = lockDescriptor
    }

    deinit { close(self.lockDescriptor) }

    /// Opens (creating if needed) and locks the data directory of a node with `identity`.
    public static func open(path: String, identity: DataDirectoryIdentity) throws(DataDirectoryError) -> DataDirectory {
        guard !path.isEmpty else { throw DataDirectoryError("the data directory path is empty; give --data-dir a directory") }
        var status = stat()
        if stat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFDIR else {
                throw DataDirectoryError("the data directory \(path) is a file, not a directory")
            }
        } else if errno == ENOENT {
            try Self.makeDirectories(path)
        } else {
            throw DataDirectoryError("cannot use the data directory \(path): \(Self.reason(errno))")
        }
        if access(path, W_OK | X_OK) != 0 {
            throw DataDirectoryError("the data directory \(path) is not writable: \(Self.reason(errno))")
        }
        let lockPath = path + "/" + Self.lockFileName
        let descriptor = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw DataDirectoryError("cannot create the lock file \(lockPath): \(Self.reason(errno))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let holder = Self.lockHolder(descriptor)
            close(descriptor)
            if code == EWOULDBLOCK {
                throw DataDirectoryError(
                    "the data directory \(path) is in use by another synod process\(holder.map { " (pid \($0))" } ?? ""); one directory serves one node")
            }
            throw DataDirectoryError("cannot lock \(lockPath): \(Self.reason(code))")
        }
        // Whose lock it is, for the message another process gets.
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        let existing: DataDirectoryIdentity?
        do {
            existing = try Self.readIdentity(path)
        } catch {
            close(descriptor)
            throw DataDirectoryError(error.description)
        }
        if let existing, existing != identity {
            close(descriptor)
            throw DataDirectoryError(Self.mismatch(path: path, found: existing, wanted: identity))
        }
        return DataDirectory(path: path, identity: identity, existing: existing, lockDescriptor: descriptor)
    }

    /// Writes the identity file (durably) on a first start, once the log exists.
    public func recordIdentity() throws(StorageError) {
        guard self.existingIdentity == nil else { return }
        try WriteAheadLog.writeDurably(self.identity.encoded, to: self.path + "/" + Self.identityFileName)
    }

    static func readIdentity(_ path: String) throws(StorageError) -> DataDirectoryIdentity? {
        let file = path + "/" + Self.identityFileName
        guard access(file, F_OK) == 0 else { return nil }
        return try DataDirectoryIdentity.decode(try WriteAheadLog.readFile(file), file: file)
    }

    static func mismatch(path: String, found: DataDirectoryIdentity, wanted: DataDirectoryIdentity) -> String {
        var differences: [String] = []
        if found.protocolName != wanted.protocolName {
            differences.append("it holds \(found.protocolName) records, and this node runs \(wanted.protocolName)")
        }
        if found.clusterID != wanted.clusterID {
            differences.append(
                "it belongs to cluster \(String(found.clusterID, radix: 16)), and this node's configuration (--peers, --cluster-token) makes cluster \(String(wanted.clusterID, radix: 16)) (after changing addresses, keep the old id with --cluster-id \(String(found.clusterID, radix: 16)))")
        }
        if found.node != wanted.node { differences.append("it is node \(found.node)'s, and this node is \(wanted.node)") }
        return "the data directory \(path) does not match this node: " + differences.joined(separator: "; ")
            + ". Start with the same --protocol, --peers and --id as before, or give a new --data-dir."
    }

    static func makeDirectories(_ path: String) throws(DataDirectoryError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw DataDirectoryError("cannot create the data directory \(path) (at \(prefix)): \(Self.reason(errno))")
            }
        }
    }

    static func lockHolder(_ descriptor: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 16)
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int32(String(decoding: bytes.prefix(count), as: UTF8.self).trimmingNewline)
    }

    static func reason(_ code: Int32) -> String {
        switch code {
        case EROFS: "the file system is read-only"
        case EACCES, EPERM: "permission denied"
        case ENOTDIR: "a part of the path is a file, not a directory"
        case ENOSPC: "no space left on the device"
        default: String(cString: strerror(code))
        }
    }
}

extension String {
    var trimmingNewline: String { self.hasSuffix("\n") ? String(self.dropLast()) : self }
}
