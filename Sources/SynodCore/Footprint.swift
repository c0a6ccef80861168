/// What a command or a query touches, as the application state machine sees it: the keys (or
/// key ranges) it reads or writes, and whether it writes. Cores never parse payloads; a core
/// that orders only conflicting commands (EPaxos computes a command's dependencies from the
/// commands it conflicts with; Generalized Paxos and Fast Paxos's collision recovery likewise)
/// asks `ReplicaConfig.footprint` for a payload's footprint and compares them with
/// `conflicts(with:)`.
///
/// Footprints must be computed from the payload alone (every replica computes the same one)
/// and must over-approximate: a command that may touch a key must name it, and `everything`
/// is always correct.
public struct Footprint: Sendable, Hashable, CustomStringConvertible {
    /// The key spans touched, or `nil` for every key (an unknown or a global command).
    public var spans: [KeySpan]?
    /// Whether the command may change state. Two commands that only read never conflict.
    public var writes: Bool
    /// Whether the command's effect on what it touches, and its reply, owe nothing to what it
    /// touched before: a put or a delete, not an append, a compare-and-set or an increment. A
    /// quorum register (ABD) orders such writes by version alone; it cannot order the others.
    /// False is always correct.
    public var overwrites: Bool

    /// A footprint over `spans` (`nil`: every key).
    public init(spans: [KeySpan]?, writes: Bool, overwrites: Bool = false) {
        self.spans = spans
        self.writes = writes
        self.overwrites = overwrites && writes
    }

    /// The single key the footprint touches, or `nil` when it touches a range, several keys or
    /// every key.
    public var singleKey: [UInt8]? {
        guard let spans = self.spans, spans.count == 1, spans[0].end == nil else { return nil }
        return spans[0].start
    }

    /// A command that may read and write anything: conflicts with every command. The safe
    /// default for a state machine that does not say.
    public static let everything = Footprint(spans: nil, writes: true)

    /// True when the order of the two matters: they touch a common key and one of them writes.
    public func conflicts(with other: Footprint) -> Bool {
        guard self.writes || other.writes else { return false }
        guard let mine = self.spans, let theirs = other.spans else { return true }
        return mine.contains { span in theirs.contains { span.overlaps($0) } }
    }

    public var description: String {
        let what = self.spans.map { $0.map(\.description).joined(separator: ", ") } ?? "every key"
        return "\(self.writes ? "writes" : "reads") \(what)"
    }
}

/// One key, or a half-open range of keys in byte order.
public struct KeySpan: Sendable, Hashable, CustomStringConvertible {
    /// The first key.
    public var start: [UInt8]
    /// The end: `nil` for the single key `start`, `[]` for every key from `start` on,
    /// otherwise the exclusive end of [start, end).
    public var end: [UInt8]?

    /// The single key `key`.
    public static func key(_ key: [UInt8]) -> KeySpan { KeySpan(start: key, end: nil) }

    /// The range [start, end) (`end` empty: unbounded).
    public init(start: [UInt8], end: [UInt8]?) {
        self.start = start
        self.end = end
    }

    /// True when some key lies in both spans.
    public func overlaps(_ other: KeySpan) -> Bool {
        self.contains(other.start) || other.contains(self.start)
    }

    /// True when `key` lies in the span.
    public func contains(_ key: [UInt8]) -> Bool {
        guard let end = self.end else { return key == self.start }
        if key.lexicographicallyPrecedes(self.start) { return false }
        return end.isEmpty || key.lexicographicallyPrecedes(end)
    }

    public var description: String {
        func text(_ bytes: [UInt8]) -> String {
            bytes.allSatisfy({ (0x21...0x7E).contains($0) }) ? String(decoding: bytes, as: UTF8.self) : "0x" + bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        }
        guard let end = self.end else { return text(self.start) }
        return "[\(text(self.start)), \(end.isEmpty ? "∞" : text(end)))"
    }
}
