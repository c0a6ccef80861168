/// A seeded, deterministic random number generator (xoshiro256**, seeded through SplitMix64).
///
/// Protocol cores and the simulator draw all their randomness from one of these, never from
/// the system, so that the same seed replays the same run bit for bit.
public struct DeterministicRandom: RandomNumberGenerator, Sendable {
    @usableFromInline var state0: UInt64
    @usableFromInline var state1: UInt64
    @usableFromInline var state2: UInt64
    @usableFromInline var state3: UInt64

    /// Creates a generator whose whole output is determined by `seed`.
    public init(seed: UInt64) {
        var splitMix = seed
        func nextSplitMix() -> UInt64 {
            splitMix &+= 0x9E37_79B9_7F4A_7C15
            var z = splitMix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        self.state0 = nextSplitMix()
        self.state1 = nextSplitMix()
        self.state2 = nextSplitMix()
        self.state3 = nextSplitMix()
    }

    /// Returns the next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotateLeft(self.state1 &* 5, by: 7) &* 9
        let shifted = self.state1 << 17
        self.state2 ^= self.state0
        self.state3 ^= self.state1
        self.state1 ^= self.state2
        self.state0 ^= self.state3
        self.state2 ^= shifted
        self.state3 = rotateLeft(self.state3, by: 45)
        return result
    }

    /// A uniformly distributed integer in `range`.
    @inlinable
    public mutating func integer(in range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    /// A uniformly distributed integer in `range`.
    @inlinable
    public mutating func integer(in range: Range<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    /// True with probability `probability` (0 means never, 1 always).
    @inlinable
    public mutating func chance(_ probability: Double) -> Bool {
        if probability <= 0 { return false }
        if probability >= 1 { return true }
        return Double(self.next() >> 11) * 0x1.0p-53 < probability
    }

    /// Derives an independent seed for a sub-component (a node, a client, the network).
    @inlinable
    public mutating func fork() -> UInt64 { self.next() }
}

@usableFromInline
func rotateLeft(_ value: UInt64, by amount: UInt64) -> UInt64 {
    (value << amount) | (value >> (64 - amount))
}
