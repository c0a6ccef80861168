import SynodCore

/// A hybrid logical clock's timestamp: physical time in nanoseconds, and a logical counter
/// that orders events within one physical time. Ordered by wall time, then counter.
public struct HLCTimestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Nanoseconds since an epoch the cluster agrees on (the Unix epoch in a server).
    public var wallTime: UInt64
    /// Events at `wallTime` before this one, as far as causality says.
    public var logical: UInt32

    /// A timestamp.
    public init(wallTime: UInt64, logical: UInt32 = 0) {
        self.wallTime = wallTime
        self.logical = logical
    }

    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool {
        (lhs.wallTime, lhs.logical) < (rhs.wallTime, rhs.logical)
    }

    public var description: String { "\(self.wallTime).\(self.logical)" }
}

extension HLCTimestamp: WireCodable {
    public func encode(into writer: inout WireWriter) {
        writer.varint(self.wallTime)
        writer.varint(UInt64(self.logical))
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> HLCTimestamp {
        let wall = try reader.varint()
        let logical = try reader.varint()
        guard logical <= UInt64(UInt32.max) else { throw .malformed("logical counter \(logical) beyond \(UInt32.max)") }
        return HLCTimestamp(wallTime: wall, logical: UInt32(logical))
    }
}

/// A message stamped too far ahead of the local wall clock: refused, the clock unchanged.
public struct ClockDriftError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message's timestamp.
    public var remote: HLCTimestamp
    /// The local physical time when it arrived.
    public var physical: UInt64
    /// The bound it exceeds, in nanoseconds.
    public var maxDrift: UInt64

    public var description: String {
        "a timestamp \(self.remote.wallTime - self.physical) ns ahead of the local clock exceeds the drift bound of \(self.maxDrift) ns"
    }
}

/// A hybrid logical clock (Kulkarni, Demirbas et al. 2014): timestamps close to physical time
/// that still respect causality, as CockroachDB and YugabyteDB use them.
///
/// Pure: the caller passes the physical time it read (`physical`, nanoseconds) to each call.
/// - If `a` happened before `b`, `stamp(a) < stamp(b)`, whatever the physical clocks do.
/// - Stamps of one clock strictly increase, even when the wall clock jumps back: the clock then
///   keeps its wall time and counts events in `logical`.
/// - Drift is bounded: a message stamped more than `maxDrift` ahead of the local physical time
///   is refused (`ClockDriftError`) and the clock is unchanged, so no clock is dragged
///   arbitrarily far ahead of physical time by a peer whose clock is wrong. Every stamp's wall
///   time then lies within `maxDrift` (plus one nanosecond per 2³² events at one wall time)
///   of the largest physical time seen in the cluster.
public struct HybridLogicalClock: Sendable, Hashable {
    /// The last event's timestamp.
    public private(set) var last: HLCTimestamp
    /// How far ahead of local physical time a received timestamp may be, in nanoseconds.
    public let maxDrift: UInt64

    /// A clock that has seen no event, refusing messages more than `maxDrift` nanoseconds ahead.
    public init(maxDrift: UInt64, last: HLCTimestamp = HLCTimestamp(wallTime: 0)) {
        self.maxDrift = maxDrift
        self.last = last
    }

    /// A local event or a send at physical time `physical`; returns its stamp (which a sent
    /// message carries).
    @discardableResult
    public mutating func now(physical: UInt64) -> HLCTimestamp {
        if physical > self.last.wallTime {
            self.last = HLCTimestamp(wallTime: physical)
        } else {
            self.advanceLogical(from: self.last.logical)
        }
        return self.last
    }

    /// A receive, at physical time `physical`, of a message stamped `remote`; returns the
    /// receive event's stamp, or throws when `remote` is beyond the drift bound.
    @discardableResult
    public mutating func receive(_ remote: HLCTimestamp, physical: UInt64) throws(ClockDriftError) -> HLCTimestamp {
        if remote.wallTime > physical && remote.wallTime - physical > self.maxDrift {
            throw ClockDriftError(remote: remote, physical: physical, maxDrift: self.maxDrift)
        }
        let wall = max(self.last.wallTime, remote.wallTime, physical)
        if wall == physical && physical > self.last.wallTime && physical > remote.wallTime {
            self.last = HLCTimestamp(wallTime: wall)
        } else if wall == self.last.wallTime && wall == remote.wallTime {
            self.advanceLogical(from: max(self.last.logical, remote.logical))
        } else if wall == self.last.wallTime {
            self.advanceLogical(from: self.last.logical)
        } else {
            self.last = HLCTimestamp(wallTime: wall, logical: remote.logical)
            self.advanceLogical(from: remote.logical)
        }
        return self.last
    }

    /// The next stamp after (`last.wallTime`, `logical`): the counter plus one, or, when the
    /// counter is exhausted, the next nanosecond.
    private mutating func advanceLogical(from logical: UInt32) {
        if logical < UInt32.max {
            self.last = HLCTimestamp(wallTime: self.last.wallTime, logical: logical + 1)
        } else {
            precondition(self.last.wallTime < UInt64.max, "hybrid logical clock exhausted")
            self.last = HLCTimestamp(wallTime: self.last.wallTime + 1, logical: 0)
        }
    }
}
