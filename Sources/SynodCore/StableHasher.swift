/// A deterministic 64-bit hasher for fingerprints and log chain hashes.
///
/// Swift's `Hasher` is seeded randomly per process, so it cannot produce values that must be
/// equal across runs (simulation fingerprints) or across replicas. This one is a fixed
/// multiply-xorshift mix over 64-bit words: fast, deterministic, not cryptographic.
public struct StableHasher: Sendable {
    @usableFromInline var state: UInt64

    /// The current hash value.
    @inlinable public var value: UInt64 { self.state }

    /// Creates a hasher with an optional starting value (for chaining).
    @inlinable
    public init(seed: UInt64 = 0xCBF2_9CE4_8422_2325) { self.state = seed }

    /// Mixes one 64-bit word into the state.
    @inlinable
    public mutating func combine(_ word: UInt64) {
        var mixed = (self.state ^ word) &* 0x9E37_79B9_7F4A_7C15
        mixed ^= mixed >> 32
        mixed = mixed &* 0xD6E8_FEB8_6659_FD93
        mixed ^= mixed >> 29
        self.state = mixed
    }

    /// Mixes an integer into the state.
    @inlinable
    public mutating func combine(_ integer: Int) { self.combine(UInt64(bitPattern: Int64(integer))) }

    /// Mixes a byte sequence into the state, eight bytes at a time.
    @inlinable
    public mutating func combine(bytes: [UInt8]) {
        self.combine(UInt64(bytes.count))
        var word: UInt64 = 0
        var shift: UInt64 = 0
        for byte in bytes {
            word |= UInt64(byte) << shift
            shift += 8
            if shift == 64 {
                self.combine(word)
                word = 0
                shift = 0
            }
        }
        if shift > 0 { self.combine(word) }
    }

    /// The hash of `bytes` on its own.
    @inlinable
    public static func hash(bytes: [UInt8]) -> UInt64 {
        var hasher = StableHasher()
        hasher.combine(bytes: bytes)
        return hasher.value
    }
}

/// A message that can fold a deterministic summary of itself into a simulation fingerprint.
public protocol TraceDigestible {
    /// Mixes the message's identifying fields into `hasher`. Equal messages must mix equally.
    func digest(into hasher: inout StableHasher)
}
