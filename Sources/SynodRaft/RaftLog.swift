import SynodCore

/// The in-memory Raft log: entries base+1...lastIndex, after a compacted prefix 1...base whose
/// last entry had term `baseTerm` (§7: the prefix lives on in a snapshot).
public struct RaftLog: Sendable {
    /// The entries; `entries[0]` has index `base + 1`.
    public private(set) var entries: [RaftEntry] = []
    /// The last index covered by the snapshot (zero when nothing is compacted).
    public private(set) var base: LogIndex = .zero
    /// The term of the entry at `base`.
    public private(set) var baseTerm: Term = .zero

    /// Creates an empty log.
    public init() {}

    /// The index of the last entry (`base` when no entry follows it).
    @inlinable
    public var lastIndex: LogIndex { LogIndex(self.base.rawValue + UInt64(self.entries.count)) }

    /// The term of the last entry.
    public var lastTerm: Term { self.entries.last?.term ?? self.baseTerm }

    /// The term at `index`: `baseTerm` at the base, `nil` below it (compacted) or past the end.
    public func term(at index: LogIndex) -> Term? {
        if index == self.base { return self.baseTerm }
        guard index > self.base, index <= self.lastIndex else { return nil }
        return self.entries[self.offset(index)].term
    }

    /// The entry at `index` (base+1...lastIndex).
    public func entry(at index: LogIndex) -> RaftEntry {
        precondition(index > self.base && index <= self.lastIndex, "entry \(index) outside \(self.base.next)...\(self.lastIndex)")
        return self.entries[self.offset(index)]
    }

    /// Up to `maxCount` entries starting at `first` (which may be `lastIndex + 1`: none).
    public func entries(from first: LogIndex, maxCount: Int, maxPayloadBytes: Int = .max) -> [RaftEntry] {
        precondition(first > self.base && first <= self.lastIndex.next, "slice start \(first) outside the log")
        let start = self.offset(first)
        var end = start + min(maxCount, self.entries.count - start)
        if maxPayloadBytes < .max {
            // At least one entry, then as many as fit the byte budget.
            var bytes = 0
            for index in start..<end {
                bytes += self.entries[index].command?.payload.count ?? 0
                if bytes > maxPayloadBytes && index > start {
                    end = index
                    break
                }
            }
        }
        return Array(self.entries[start..<end])
    }

    /// The first index of the run of entries with the same term as `index` (at most down to
    /// the base).
    public func firstIndex(ofTermAt index: LogIndex) -> LogIndex {
        guard let term = self.term(at: index), index > self.base else { return self.base }
        var position = self.offset(index)
        while position > 0 && self.entries[position - 1].term == term { position -= 1 }
        return LogIndex(self.base.rawValue + UInt64(position + 1))
    }

    /// Appends one entry and returns its index.
    @discardableResult
    public mutating func append(_ entry: RaftEntry) -> LogIndex {
        precondition(entry.term >= self.lastTerm, "log terms never decrease")
        self.entries.append(entry)
        return self.lastIndex
    }

    /// Removes every entry after `index` (never the compacted prefix).
    public mutating func truncate(after index: LogIndex) {
        precondition(index >= self.base && index <= self.lastIndex, "truncation point \(index) outside \(self.base)...\(self.lastIndex)")
        self.entries.removeSubrange(self.offset(index.next)...)
    }

    /// Replays a durable record. Entries at or below the base are already in the snapshot; a
    /// record starting there replaces everything after the base.
    public mutating func apply(first: LogIndex, _ newEntries: [RaftEntry]) {
        precondition(first > .zero && first <= self.lastIndex.next, "record at \(first) leaves a gap after \(self.lastIndex)")
        if first > self.base {
            self.truncate(after: first.previous)
            self.entries.append(contentsOf: newEntries)
        } else {
            self.entries.removeAll()
            let skipped = Int(self.base.rawValue - first.rawValue + 1)
            if newEntries.count > skipped { self.entries.append(contentsOf: newEntries[skipped...]) }
        }
    }

    /// Discards the entries up to `index` (base < index <= lastIndex), now held by a snapshot.
    public mutating func compact(through index: LogIndex) {
        precondition(index > self.base && index <= self.lastIndex, "compaction point \(index) outside \(self.base.next)...\(self.lastIndex)")
        self.baseTerm = self.entry(at: index).term
        self.entries.removeSubrange(..<self.offset(index.next))
        self.base = index
    }

    /// Moves the base to a snapshot's (`index`, `term`) from another replica (§7): entries
    /// after it are kept if the log holds that very entry, otherwise the whole log is dropped.
    public mutating func install(base index: LogIndex, term: Term) {
        if index > self.base && index <= self.lastIndex && self.entry(at: index).term == term {
            self.entries.removeSubrange(..<self.offset(index.next))
        } else {
            self.entries.removeAll()
        }
        self.base = index
        self.baseTerm = term
    }

    private func offset(_ index: LogIndex) -> Int { Int(index.rawValue - self.base.rawValue) - 1 }
}
