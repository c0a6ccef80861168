import ArgumentParser
import Foundation
import SynodCore
import SynodRuntime

struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Make a cluster CA and a certificate for every member (and one client) for mutual TLS.",
        discussion: """
            Writes, as PEM: ca.pem and ca-key.pem (the cluster's certificate authority), \
            node-ID.pem and node-ID-key.pem for each member (subject CN=synod-member-ID, the \
            identity the peer port checks; valid for localhost, 127.0.0.1 and every --hosts \
            entry, so the same files serve the client port), and client.pem and client-key.pem \
            (a client certificate for --client-cert-auth, which names no member and so never \
            opens the peer port). Keys are written readable by their owner only. Keep ca-key.pem \
            off the nodes: whoever holds it can mint members.
            When DIR already holds ca.pem and ca-key.pem (and no --force), that CA signs the \
            new members' certificates and only those are written: how a node added to a running \
            cluster gets one (synod certs --nodes 4 --out DIR).
            Then: synod serve --id 1 ... --certs DIR
            """
    )

    @Option(help: "Member ids, comma-separated (e.g. 1,2,3).")
    var nodes: String

    @Option(help: "Directory to write the files to (created if missing).")
    var out: String

    @Option(help: "Extra host names or IPv4 addresses the certificates are valid for, comma-separated.")
    var hosts: String = ""

    @Option(help: "Days the certificates stay valid.")
    var days = 825

    @Flag(help: "Replace existing files in the directory (a new CA too).")
    var force = false

    func members() throws -> [NodeID] {
        var ids: [NodeID] = []
        for entry in self.nodes.split(separator: ",") {
            guard let raw = UInt16(entry.trimmingCharacters(in: .whitespaces)), raw >= 1 else {
                throw ValidationError("--nodes entry '\(entry)' is not a member id (1 to 65535)")
            }
            guard !ids.contains(NodeID(raw)) else { throw ValidationError("--nodes names \(raw) twice") }
            ids.append(NodeID(raw))
        }
        guard !ids.isEmpty else { throw ValidationError("--nodes names no member") }
        return ids
    }

    func validate() throws {
        _ = try self.members()
        guard !self.out.isEmpty else { throw ValidationError("--out is empty") }
        guard (1...36_500).contains(self.days) else { throw ValidationError("--days must lie in 1...36500") }
    }

    func run() throws {
        let hosts = self.hosts.split(separator: ",").map { String($0) }.filter { !$0.isEmpty }
        do {
            let written = try ClusterCertificates.generate(
                nodes: try self.members(), hosts: hosts, directory: self.out, validityDays: self.days, overwrite: self.force)
            Console.out("wrote \(written.files.count) files to \(self.out):\n")
            for file in written.files { Console.out("  \(file)\n") }
        } catch {
            Console.error("error: \(error)\n")
            throw ExitCode(1)
        }
    }
}
