/// The register values a key's search meets, interned: each distinct value gets a number, and
/// the values live in one byte arena. Hashes are polynomial, so an append's hash follows from
/// its parent's by hashing the appended bytes only (append-heavy keys reach long values, and
/// hashing each whole value byte by byte dominated their search). Released in a few blocks.
struct StateTable {
    /// State 0 is "absent"; the others are byte strings in the arena.
    private var bytes: [UInt8] = []
    private var starts: [Int] = [0]
    private var lengths: [Int] = [0]
    private var hashes: [UInt64] = [0]
    /// Open-addressing index from hash to state number, or -1.
    private var slots: [Int32] = Array(repeating: -1, count: 1024)
    private var used = 0

    static let emptyHash: UInt64 = 0x51_7CC1_B727_220A

    static func extend(_ hash: UInt64, with bytes: some Sequence<UInt8>) -> UInt64 {
        var hash = hash
        for byte in bytes { hash = (hash &* 0x100_0000_01B3) &+ UInt64(byte) &+ 1 }
        return hash
    }

    /// Bytes held, by capacity.
    var memoryBytes: Int { self.bytes.capacity + 24 * self.starts.capacity + 4 * self.slots.capacity }

    /// The number of states (absent included).
    var count: Int { self.starts.count }

    /// The value of `state`, `nil` for absent.
    func value(_ state: Int32) -> [UInt8]? {
        guard state != 0 else { return nil }
        let start = self.starts[Int(state)]
        return Array(self.bytes[start..<start + self.lengths[Int(state)]])
    }

    /// Whether `state` holds `value` (`nil`: absent).
    func holds(_ state: Int32, _ value: [UInt8]?) -> Bool {
        guard let value else { return state == 0 }
        guard state != 0, self.lengths[Int(state)] == value.count else { return false }
        let start = self.starts[Int(state)]
        return self.bytes[start..<start + value.count].elementsEqual(value)
    }

    /// The state holding `value`.
    mutating func intern(_ value: [UInt8]?) -> Int32 {
        guard let value else { return 0 }
        let start = self.bytes.count
        self.bytes.append(contentsOf: value)
        return self.settle(start: start, hash: Self.extend(Self.emptyHash, with: value))
    }

    /// The state holding `state`'s value (empty when absent) followed by `suffix`.
    mutating func intern(appending suffix: [UInt8], to state: Int32) -> Int32 {
        let start = self.bytes.count
        var hash = Self.emptyHash
        if state != 0 {
            // Copied within the arena (appending a slice of the arena to itself would copy
            // the whole arena first).
            let from = self.starts[Int(state)]
            let length = self.lengths[Int(state)]
            self.bytes.append(contentsOf: repeatElement(0, count: length))
            self.bytes.withUnsafeMutableBufferPointer { arena in
                let base = arena.baseAddress!
                (base + start).update(from: base + from, count: length)
            }
            hash = self.hashes[Int(state)]
        }
        self.bytes.append(contentsOf: suffix)
        return self.settle(start: start, hash: Self.extend(hash, with: suffix))
    }

    /// The value just written at `start...` becomes a state, unless an equal one exists (then
    /// the bytes are taken back).
    private mutating func settle(start: Int, hash: UInt64) -> Int32 {
        let length = self.bytes.count - start
        let mask = self.slots.count - 1
        var slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
        while self.slots[slot] >= 0 {
            let candidate = Int(self.slots[slot])
            if self.hashes[candidate] == hash && self.lengths[candidate] == length
                && self.bytes[self.starts[candidate]..<self.starts[candidate] + length].elementsEqual(self.bytes[start...])
            {
                self.bytes.removeLast(length)
                return Int32(candidate)
            }
            slot = (slot + 1) & mask
        }
        let id = Int32(self.starts.count)
        self.starts.append(start)
        self.lengths.append(length)
        self.hashes.append(hash)
        self.slots[slot] = id
        self.used += 1
        if self.used * 2 > self.slots.count { self.grow() }
        return id
    }

    private mutating func grow() {
        var slots = [Int32](repeating: -1, count: self.slots.count * 2)
        let mask = slots.count - 1
        for id in 1..<self.starts.count {
            let hash = self.hashes[id]
            var slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(id)
        }
        self.slots = slots
    }
}
