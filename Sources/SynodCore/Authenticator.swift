/// Proof that a request or a reply comes from whom it claims: a signature or a MAC, made and
/// checked by the protocol core (a Byzantine protocol's; crash-fault protocols rely on the
/// transport's authenticated links and carry none).
public struct Authenticator: Sendable, Hashable {
    /// How `bytes` were made. The core that checks them decides what it accepts.
    public enum Scheme: UInt8, Sendable, Hashable {
        /// An Ed25519 signature (64 bytes) by `signer`'s key in `KeyRing.verifying`.
        case ed25519 = 1
        /// An HMAC-SHA256 tag (32 bytes) under a key `signer` shares with the checker.
        case hmacSHA256 = 2
    }

    /// Largest authenticator a decoder accepts (a vector of MACs, one per replica, fits).
    public static let maximumBytes = 4096

    /// How the bytes were made.
    public var scheme: Scheme
    /// Who made them: a member's `NodeID.rawValue`, or a client's `ClientID`.
    public var signer: UInt64
    /// The signature or tag.
    public var bytes: [UInt8]

    /// Creates an authenticator.
    public init(scheme: Scheme, signer: UInt64, bytes: [UInt8]) {
        self.scheme = scheme
        self.signer = signer
        self.bytes = bytes
    }
}

extension Authenticator: WireCodable {
    public func encode(into writer: inout WireWriter) {
        writer.byte(self.scheme.rawValue)
        writer.varint(self.signer)
        writer.data(self.bytes)
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Authenticator {
        let raw = try reader.byte()
        guard let scheme = Scheme(rawValue: raw) else { throw .malformed("unknown authenticator scheme \(raw)") }
        let signer = try reader.varint()
        return Authenticator(scheme: scheme, signer: signer, bytes: try reader.data(limit: Self.maximumBytes, what: "authenticator"))
    }
}

/// The keys of a protocol that authenticates what it sends (`ReplicaConfig.keys`). Opaque to
/// everything but the core that uses them, which says which scheme they are for.
public struct KeyRing: Sendable, CustomStringConvertible {
    /// This replica's private signing key (or MAC secret), if it has one.
    public var signing: [UInt8]?
    /// Every member's public key (or the secret this replica shares with it), by member.
    public var verifying: [NodeID: [UInt8]]

    /// Creates a key ring (empty by default: nothing is authenticated).
    public init(signing: [UInt8]? = nil, verifying: [NodeID: [UInt8]] = [:]) {
        self.signing = signing
        self.verifying = verifying
    }

    /// True when there are no keys.
    public var isEmpty: Bool { self.signing == nil && self.verifying.isEmpty }

    /// Names whose keys are held, never the keys (a configuration dump must not leak them).
    public var description: String {
        "KeyRing(signing: \(self.signing == nil ? "none" : "held"), verifying: \(self.verifying.keys.sorted()))"
    }
}
