import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import SynodCore
import X509

/// A cluster's certificate authority and its members' and clients' certificates, as
/// `synod certs` makes them: ECDSA P-256 keys, a self-signed CA, and one certificate per member
/// whose subject is `CN=synod-member-ID` (the identity the peer port checks), usable for both
/// ends of a TLS connection, with `localhost`, `127.0.0.1` and any given hosts as subject
/// alternative names (so the same certificate serves the client port). A client certificate
/// (`CN=synod-client`) names no member, so it opens the client port under
/// `--client-cert-auth` but never the peer port.
public enum ClusterCertificates {
    /// The subject common name of member `id`'s certificate.
    public static func commonName(_ id: NodeID) -> String { "synod-member-\(id.rawValue)" }

    static let memberPrefix = "synod-member-"

    /// The member a certificate names, if any.
    public static func member(of certificate: NIOSSLCertificate) -> NodeID? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return nil }
        return Self.member(of: parsed)
    }

    /// The member a certificate names, if any: its one common name is `synod-member-ID`.
    public static func member(of certificate: Certificate) -> NodeID? {
        var names: [String] = []
        for relativeName in certificate.subject {
            for attribute in relativeName where attribute.type == .RDNAttributeType.commonName {
                if let name = String(attribute.value) { names.append(name) }
            }
        }
        guard names.count == 1, names[0].hasPrefix(Self.memberPrefix),
              let raw = UInt16(names[0].dropFirst(Self.memberPrefix.count)), raw >= 1
        else { return nil }
        return NodeID(raw)
    }

    /// What was written.
    public struct Written: Sendable {
        /// Every file, in the order written.
        public var files: [String]
    }

    /// Makes a CA, one certificate per member of `nodes`, and a client certificate, and writes
    /// them to `directory` as PEM: `ca.pem`, `ca-key.pem`, `node-ID.pem`, `node-ID-key.pem`,
    /// `client.pem`, `client-key.pem` (keys readable by the owner only). Existing files are
    /// never overwritten unless `overwrite`. When `directory` already holds a CA (`ca.pem` and
    /// `ca-key.pem`) and `overwrite` is off, that CA signs the members' certificates and only
    /// theirs are written: how a member added to a running cluster gets its certificate.
    public static func generate(
        nodes: [NodeID], hosts: [String] = [], directory: String, validityDays: Int = 825, overwrite: Bool = false
    ) throws(TLSSetupError) -> Written {
        guard !nodes.isEmpty else { throw TLSSetupError("no nodes to make certificates for") }
        guard (1...36_500).contains(validityDays) else { throw TLSSetupError("the validity must lie in 1...36500 days") }
        var names = nodes.map { ["node-\($0.rawValue).pem", "node-\($0.rawValue)-key.pem"] }.flatMap { $0 }
        let existingCA = !overwrite && ["ca.pem", "ca-key.pem"].allSatisfy { FileManager.default.fileExists(atPath: directory + "/" + $0) }
        if !existingCA { names += ["ca.pem", "ca-key.pem", "client.pem", "client-key.pem"] }
        if !overwrite {
            for name in names where FileManager.default.fileExists(atPath: directory + "/" + name) {
                throw TLSSetupError("\(directory)/\(name) exists; remove it or pass --force to replace every file")
            }
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TLSSetupError("cannot create \(directory): \(error.localizedDescription)")
        }
        let now = Date()
        let notBefore = now.addingTimeInterval(-3600)  // tolerate clocks a little behind
        let notAfter = now.addingTimeInterval(Double(validityDays) * 86_400)
        var written: [String] = []
        do {
            let caKey: P256.Signing.PrivateKey
            let ca: Certificate
            if existingCA {
                do {
                    caKey = try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: directory + "/ca-key.pem", encoding: .utf8))
                    ca = try Certificate(pemEncoded: try String(contentsOfFile: directory + "/ca.pem", encoding: .utf8))
                } catch {
                    throw TLSSetupError("cannot use the CA in \(directory) (ca.pem, ca-key.pem): \(error)")
                }
                guard ca.publicKey == Certificate.PublicKey(caKey.publicKey) else {
                    throw TLSSetupError("\(directory)/ca-key.pem is not the key of \(directory)/ca.pem")
                }
            } else {
                caKey = P256.Signing.PrivateKey()
                let caName = try DistinguishedName {
                    CommonName("synod cluster CA")
                    OrganizationName("Synod")
                }
                ca = try Certificate(
                    version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
                    notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: caName,
                    signatureAlgorithm: .ecdsaWithSHA256,
                    extensions: try Certificate.Extensions {
                        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                        SubjectKeyIdentifier(hash: .init(caKey.publicKey))
                    },
                    issuerPrivateKey: .init(caKey))
                try Self.write(try ca.serializeAsPEM().pemString, to: directory + "/ca.pem", secret: false, into: &written)
                try Self.write(caKey.pemRepresentation, to: directory + "/ca-key.pem", secret: true, into: &written)
            }
            let caName = ca.subject
            let alternativeNames = Self.alternativeNames(hosts: hosts)
            func issue(_ commonName: String, file: String) throws {
                let key = P256.Signing.PrivateKey()
                let subject = try DistinguishedName {
                    CommonName(commonName)
                    OrganizationName("Synod")
                }
                let certificate = try Certificate(
                    version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
                    notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: subject,
                    signatureAlgorithm: .ecdsaWithSHA256,
                    extensions: try Certificate.Extensions {
                        Critical(BasicConstraints.notCertificateAuthority)
                        Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                        try ExtendedKeyUsage([.serverAuth, .clientAuth])
                        SubjectAlternativeNames(alternativeNames)
                        AuthorityKeyIdentifier(keyIdentifier: try ca.extensions.subjectKeyIdentifier!.keyIdentifier)
                    },
                    issuerPrivateKey: .init(caKey))
                try Self.write(try certificate.serializeAsPEM().pemString, to: "\(directory)/\(file).pem", secret: false, into: &written)
                try Self.write(key.pemRepresentation, to: "\(directory)/\(file)-key.pem", secret: true, into: &written)
            }
            for node in nodes.sorted() { try issue(Self.commonName(node), file: "node-\(node.rawValue)") }
            if !existingCA { try issue("synod-client", file: "client") }
        } catch let error as TLSSetupError {
            throw error
        } catch {
            throw TLSSetupError("making the certificates failed: \(error)")
        }
        return Written(files: written)
    }

    /// `localhost`, the loopback addresses, and every given host (an IP address or a DNS name).
    static func alternativeNames(hosts: [String]) -> [GeneralName] {
        var names: [GeneralName] = [.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))]
        for host in hosts where host != "localhost" && host != "127.0.0.1" {
            if let address = Self.ipv4(host) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(address))))
            } else {
                names.append(.dnsName(host))
            }
        }
        return names
    }

    static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }

    static func write(_ text: String, to path: String, secret: Bool, into written: inout [String]) throws(TLSSetupError) {
        let data = Data((text.hasSuffix("\n") ? text : text + "\n").utf8)
        let attributes: [FileAttributeKey: Any] = [.posixPermissions: secret ? 0o600 : 0o644]
        _ = try? FileManager.default.removeItem(atPath: path)
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: attributes) else {
            throw TLSSetupError("cannot write \(path)")
        }
        written.append(path)
    }
}
