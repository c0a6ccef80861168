import SynodCore

/// The in-memory Raft log: entries base+1...lastIndex, after a compacted prefix 1...base whose
/// last entry had term `baseTerm` (§7: the prefix lives on in a snapshot).
///
/// The log also knows the cluster's configuration at every index: `baseMembership` up to the
/// base, then each membership-change entry's from its index on (a configuration takes effect
/// when appended, and is undone when truncated).
public struct RaftLog: Sendable {
    /// The entries; `entries[0]` has index `base + 1`.
    public private(set) var entries: [RaftEntry] = []
    /// The last index covered by the snapshot (zero when nothing is compacted).
    public private(set) var base: LogIndex = .zero
    /// The term of the entry at `base`.
    public private(set) var baseTerm: Term = .zero

    /// The configuration at the base (the snapshot's, or the bootstrap one).
    public private(set) var baseMembership: Membership
    /// The membership-change entries after the base, oldest first.
    public private(set) var configurations: [(index: LogIndex, membership: Membership)] = []

    /// Creates an empty log whose configuration is `membership` until an entry changes it.
    public init(membership: Membership = Membership(voters: [])) {
        self.baseMembership = membership
    }

    /// The newest configuration in the log (committed or not): the one in effect.
    public var membership: Membership { self.configurations.last?.membership ?? self.baseMembership }

    /// The index of the entry that set the configuration in effect (the base when none after
    /// it did).
    public var membershipIndex: LogIndex { self.configurations.last?.index ?? self.base }

    /// The configuration in effect at `index` (at or after the base).
    public func membership(at index: LogIndex) -> Membership {
        self.configurations.last(where: { $0.index <= index })?.membership ?? self.baseMembership
    }

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
        self.appendUnchecked(entry)
        return self.lastIndex
    }

    /// Removes every entry after `index` (never the compacted prefix).
    public mutating func truncate(after index: LogIndex) {
        precondition(index >= self.base && index <= self.lastIndex, "truncation point \(index) outside \(self.base)...\(self.lastIndex)")
        self.entries.removeSubrange(self.offset(index.next)...)
        self.configurations.removeAll { $0.index > index }
    }

    /// Replays a durable record. Entries at or below the base are already in the snapshot; a
    /// record starting there replaces everything after the base.
    public mutating func apply(first: LogIndex, _ newEntries: [RaftEntry]) {
        precondition(first > .zero && first <= self.lastIndex.next, "record at \(first) leaves a gap after \(self.lastIndex)")
        if first > self.base {
            self.truncate(after: first.previous)
            for entry in newEntries { self.appendUnchecked(entry) }
        } else {
            self.entries.removeAll()
            self.configurations.removeAll()
            let skipped = Int(self.base.rawValue - first.rawValue + 1)
            if newEntries.count > skipped { for entry in newEntries[skipped...] { self.appendUnchecked(entry) } }
        }
    }

    /// Appends a replayed entry: records older than a snapshot's checkpoint may disagree with
    /// the snapshot (the restore then drops them), so terms are not checked here.
    private mutating func appendUnchecked(_ entry: RaftEntry) {
        self.entries.append(entry)
        if let configuration = entry.configuration { self.configurations.append((self.lastIndex, configuration)) }
    }

    /// Discards the entries up to `index` (base < index <= lastIndex), now held by a snapshot.
    public mutating func compact(through index: LogIndex) {
        precondition(index > self.base && index <= self.lastIndex, "compaction point \(index) outside \(self.base.next)...\(self.lastIndex)")
        self.baseTerm = self.entry(at: index).term
        self.baseMembership = self.membership(at: index)
        self.configurations.removeAll { $0.index <= index }
        self.entries.removeSubrange(..<self.offset(index.next))
        self.base = index
    }

    /// Moves the base to a snapshot's (`index`, `term`) from another replica (§7): entries
    /// after it are kept if the log holds that very entry, otherwise the whole log is dropped.
    /// `membership` is the configuration at the snapshot's index (`nil`: the one this log has
    /// there, or its base's).
    public mutating func install(base index: LogIndex, term: Term, membership: Membership? = nil) {
        let atIndex = membership ?? (index >= self.base ? self.membership(at: index) : self.baseMembership)
        if index > self.base && index <= self.lastIndex && self.entry(at: index).term == term {
            self.entries.removeSubrange(..<self.offset(index.next))
            self.configurations.removeAll { $0.index <= index }
        } else {
            self.entries.removeAll()
            self.configurations.removeAll()
        }
        self.base = index
        self.baseTerm = term
        self.baseMembership = atIndex
    }

    private func offset(_ index: LogIndex) -> Int { Int(index.rawValue - self.base.rawValue) - 1 }
}
