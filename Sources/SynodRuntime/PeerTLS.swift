import Foundation
import NIOCore
import NIOSSL
import SynodCore
import X509

/// The PEM files of one party's TLS identity: its certificate (chain), its private key, and the
/// certificate authority whose signature it trusts on the other side's certificate.
public struct TLSFiles: Sendable, Equatable {
    /// The party's certificate, and any intermediates after it (PEM).
    public var certificate: String
    /// The certificate's private key (PEM).
    public var key: String
    /// The trusted certificate authority (PEM).
    public var trustedCA: String

    /// Names the three files.
    public init(certificate: String, key: String, trustedCA: String) {
        self.certificate = certificate
        self.key = key
        self.trustedCA = trustedCA
    }

    /// The files `synod certs` writes for member `id` in `directory`.
    public static func member(_ id: NodeID, in directory: String) -> TLSFiles {
        TLSFiles(certificate: "\(directory)/node-\(id.rawValue).pem", key: "\(directory)/node-\(id.rawValue)-key.pem",
                 trustedCA: "\(directory)/ca.pem")
    }

    /// The client files `synod certs` writes in `directory`.
    public static func client(in directory: String) -> TLSFiles {
        TLSFiles(certificate: "\(directory)/client.pem", key: "\(directory)/client-key.pem", trustedCA: "\(directory)/ca.pem")
    }

    /// A context for the client end of a TLS connection: it presents this certificate (unless
    /// not `presentCertificate`) and verifies the server against the trusted CA (unless not
    /// `verifyServer`).
    public func clientContext(presentCertificate: Bool = true, verifyServer: Bool = true) throws -> NIOSSLContext {
        let (chain, key, roots) = try PeerTLS.load(self)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(roots)
        if !verifyServer { configuration.certificateVerification = .none }
        if presentCertificate {
            configuration.certificateChain = chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(key)
        }
        return try NIOSSLContext(configuration: configuration)
    }
}

/// Why TLS could not be set up: which file, and what is wrong with it.
public struct TLSSetupError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The TLS side of one node's peer port: mutual TLS 1.3, both ends presenting a certificate
/// signed by the cluster's CA that names a member (`CN=synod-member-ID`). The handshake proves
/// the certificate; the transport then checks that the hello names the same member, so a
/// connection can speak only for the member whose key it holds.
public struct PeerTLS: Sendable {
    /// For connections this node accepts (it asks for and verifies the dialler's certificate).
    public let serverContext: NIOSSLContext
    /// For connections this node dials (it presents its own certificate, verifies the peer's).
    public let clientContext: NIOSSLContext

    /// Loads the files and checks that the certificate names `member` and is signed by the CA.
    public init(files: TLSFiles, member: NodeID) throws(TLSSetupError) {
        let (chain, key, roots) = try Self.load(files)
        guard let named = ClusterCertificates.member(of: chain[0]) else {
            throw TLSSetupError("the certificate \(files.certificate) names no member (its subject should be CN=\(ClusterCertificates.commonName(member)))")
        }
        guard named == member else {
            throw TLSSetupError("the certificate \(files.certificate) is member \(named.rawValue)'s, and this node is \(member.rawValue)")
        }
        do {
            var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            server.certificateVerification = .noHostnameVerification
            server.trustRoots = .certificates(roots)
            server.minimumTLSVersion = .tlsv13
            var client = TLSConfiguration.makeClientConfiguration()
            client.certificateChain = chain.map { .certificate($0) }
            client.privateKey = .privateKey(key)
            client.certificateVerification = .noHostnameVerification
            client.trustRoots = .certificates(roots)
            client.minimumTLSVersion = .tlsv13
            self.serverContext = try NIOSSLContext(configuration: server)
            self.clientContext = try NIOSSLContext(configuration: client)
        } catch {
            throw TLSSetupError("cannot use \(files.certificate) with \(files.key): \(error)")
        }
    }

    /// Reads a certificate chain, its key and (unless `withCA` is false) the trusted CA, with a
    /// message naming the file that is missing or unreadable.
    static func load(_ files: TLSFiles, withCA: Bool = true) throws(TLSSetupError) -> ([NIOSSLCertificate], NIOSSLPrivateKey, [NIOSSLCertificate]) {
        func read(_ path: String, _ what: String) throws(TLSSetupError) -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TLSSetupError("cannot read the \(what) \(path)\(FileManager.default.fileExists(atPath: path) ? "" : ": no such file")")
            }
            return Array(data)
        }
        let chain: [NIOSSLCertificate]
        let roots: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do { chain = try NIOSSLCertificate.fromPEMBytes(try read(files.certificate, "certificate")) } catch let error as TLSSetupError {
            throw error
        } catch { throw TLSSetupError("the certificate \(files.certificate) is not PEM: \(error)") }
        if withCA {
            do { roots = try NIOSSLCertificate.fromPEMBytes(try read(files.trustedCA, "trusted CA")) } catch let error as TLSSetupError {
                throw error
            } catch { throw TLSSetupError("the trusted CA \(files.trustedCA) is not PEM: \(error)") }
            guard !roots.isEmpty else { throw TLSSetupError("the trusted CA file \(files.trustedCA) holds no certificate") }
        } else {
            roots = []
        }
        do { key = try NIOSSLPrivateKey(bytes: try read(files.key, "private key"), format: .pem) } catch let error as TLSSetupError {
            throw error
        } catch { throw TLSSetupError("the private key \(files.key) is not a PEM key: \(error)") }
        guard !chain.isEmpty else { throw TLSSetupError("the certificate file \(files.certificate) holds no certificate") }
        return (chain, key, roots)
    }

    /// The member the verified certificate of a TLS connection names, read on its event loop
    /// after the handshake (nil without TLS, or when the certificate names no member).
    static func peerMember(of channel: any Channel) -> NodeID? {
        guard let handler = try? channel.pipeline.syncOperations.handler(type: NIOSSLHandler.self),
              let certificate = handler.peerCertificate
        else { return nil }
        return ClusterCertificates.member(of: certificate)
    }
}

/// TLS on the client port: the server's certificate, and with `requireClientCertificates`
/// (etcd's `--client-cert-auth`) clients must present one signed by the trusted CA.
public struct ClientTLS: Sendable {
    /// The files.
    public var files: TLSFiles
    /// Ask for, and verify, client certificates.
    public var requireClientCertificates: Bool

    /// A client-port TLS setting.
    public init(files: TLSFiles, requireClientCertificates: Bool) {
        self.files = files
        self.requireClientCertificates = requireClientCertificates
    }

    /// The server configuration (TLS 1.2 or later, so common clients such as curl connect).
    public func serverConfiguration() throws(TLSSetupError) -> TLSConfiguration {
        let (chain, key, roots) = try PeerTLS.load(self.files, withCA: self.requireClientCertificates)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        if self.requireClientCertificates {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(roots)
        }
        return configuration
    }
}
