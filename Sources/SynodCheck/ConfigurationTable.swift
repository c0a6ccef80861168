/// The search's memo: a set of configurations (linearized set and register state) kept in one
/// flat arena of words with an open-addressing index, so that an insertion allocates nothing
/// (amortised), the memory in use is known exactly, and the whole memo is released as a few
/// large blocks rather than one block per configuration.
struct ConfigurationTable {
    /// Per configuration: a header word (frontier in the high half, state in the low half), the
    /// number of words, then the words.
    private var arena: [UInt64] = []
    /// Arena offset of the configuration in each slot, or -1.
    private var offsets: [Int] = Array(repeating: -1, count: 1024)
    /// The full hash of the configuration in each slot.
    private var hashes: [UInt64] = Array(repeating: 0, count: 1024)
    private(set) var count = 0

    /// Bytes held (arena and index, by capacity).
    var bytes: Int { 8 * self.arena.capacity + 16 * self.offsets.capacity }

    static func mix(_ hash: UInt64, frontier: Int32, state: Int32) -> UInt64 {
        var value = hash ^ (UInt64(UInt32(bitPattern: state)) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(UInt32(bitPattern: frontier)) << 40)
        value = (value ^ (value >> 31)) &* 0xBF58_476D_1CE4_E5B9
        return value ^ (value >> 29)
    }

    /// Inserts the configuration; false when it was there already.
    mutating func insert(frontier: Int32, state: Int32, hash setHash: UInt64, words: [UInt64]) -> Bool {
        let hash = Self.mix(setHash, frontier: frontier, state: state)
        let header = UInt64(UInt32(bitPattern: frontier)) << 32 | UInt64(UInt32(bitPattern: state))
        let mask = self.offsets.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while self.offsets[slot] >= 0 {
            if self.hashes[slot] == hash && self.matches(self.offsets[slot], header: header, words: words) { return false }
            slot = (slot + 1) & mask
        }
        self.offsets[slot] = self.arena.count
        self.hashes[slot] = hash
        self.arena.append(header)
        self.arena.append(UInt64(words.count))
        self.arena.append(contentsOf: words)
        self.count += 1
        if self.count * 2 > self.offsets.count { self.grow() }
        return true
    }

    private func matches(_ offset: Int, header: UInt64, words: [UInt64]) -> Bool {
        guard self.arena[offset] == header, self.arena[offset + 1] == UInt64(words.count) else { return false }
        for index in words.indices where self.arena[offset + 2 + index] != words[index] { return false }
        return true
    }

    private mutating func grow() {
        let capacity = self.offsets.count * 2
        var offsets = [Int](repeating: -1, count: capacity)
        var hashes = [UInt64](repeating: 0, count: capacity)
        let mask = capacity - 1
        for slot in self.offsets.indices where self.offsets[slot] >= 0 {
            var target = Int(truncatingIfNeeded: self.hashes[slot]) & mask
            while offsets[target] >= 0 { target = (target + 1) & mask }
            offsets[target] = self.offsets[slot]
            hashes[target] = self.hashes[slot]
        }
        self.offsets = offsets
        self.hashes = hashes
    }
}
