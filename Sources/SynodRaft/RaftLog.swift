import SynodCore

/// The in-memory Raft log: entries 1...lastIndex.
public struct RaftLog: Sendable {
    /// The entries; `entries[0]` has index 1.
    public private(set) var entries: [RaftEntry] = []

    /// Creates an empty log.
    public init() {}

    /// The index of the last entry (zero when empty).
    @inlinable
    public var lastIndex: LogIndex { LogIndex(UInt64(self.entries.count)) }

    /// The term of the last entry (zero when empty).
    public var lastTerm: Term { self.entries.last?.term ?? .zero }

    /// The term at `index`: zero for index 0, `nil` past the end.
    public func term(at index: LogIndex) -> Term? {
        if index == .zero { return .zero }
        guard index <= self.lastIndex else { return nil }
        return self.entries[Int(index.rawValue) - 1].term
    }

    /// The entry at `index` (1...lastIndex).
    public func entry(at index: LogIndex) -> RaftEntry {
        precondition(index > .zero && index <= self.lastIndex, "entry \(index) outside 1...\(self.lastIndex)")
        return self.entries[Int(index.rawValue) - 1]
    }

    /// Up to `maxCount` entries starting at `first` (which may be `lastIndex + 1`: none).
    public func entries(from first: LogIndex, maxCount: Int, maxPayloadBytes: Int = .max) -> [RaftEntry] {
        precondition(first > .zero && first <= self.lastIndex.next, "slice start \(first) outside the log")
        let start = Int(first.rawValue) - 1
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

    /// The first index of the run of entries with the same term as `index`.
    public func firstIndex(ofTermAt index: LogIndex) -> LogIndex {
        guard let term = self.term(at: index), index > .zero else { return .zero }
        var position = Int(index.rawValue) - 1
        while position > 0 && self.entries[position - 1].term == term { position -= 1 }
        return LogIndex(UInt64(position + 1))
    }

    /// Appends one entry and returns its index.
    @discardableResult
    public mutating func append(_ entry: RaftEntry) -> LogIndex {
        precondition(entry.term >= self.lastTerm, "log terms never decrease")
        self.entries.append(entry)
        return self.lastIndex
    }

    /// Removes every entry after `index`.
    public mutating func truncate(after index: LogIndex) {
        precondition(index <= self.lastIndex, "truncation point past the end")
        self.entries.removeSubrange(Int(index.rawValue)...)
    }

    /// Replays a durable record.
    public mutating func apply(first: LogIndex, _ newEntries: [RaftEntry]) {
        precondition(first > .zero && first <= self.lastIndex.next, "record at \(first) leaves a gap after \(self.lastIndex)")
        self.truncate(after: first.previous)
        self.entries.append(contentsOf: newEntries)
    }
}
