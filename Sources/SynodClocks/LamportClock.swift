import Synchronization

/// A Lamport clock (Lamport 1978; the reference text's section 7.1), as a value.
///
/// Every event, local or a send, advances the clock by one and is stamped with the new time; a
/// receive is an event too, stamped one past the larger of the local time and the message's.
/// So if `a` happens before `b`, `stamp(a) < stamp(b)`. The converse does not hold (the text's
/// "⟺" overstates it): concurrent events may have any order of stamps. For the converse, use
/// a `VectorClock`.
///
/// A value has no sharing and so no race; to share one clock between threads, use
/// `SharedLamportClock`.
public struct LamportClock: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The time of the last event (0 before any).
    public private(set) var time: UInt64

    /// A clock at `time` (0: no event yet).
    public init(time: UInt64 = 0) { self.time = time }

    /// A local event: the clock advances; returns the event's stamp.
    @discardableResult
    public mutating func tick() -> UInt64 {
        self.time = Self.advanced(self.time)
        return self.time
    }

    /// A send: an event like any other; the message carries the returned stamp.
    public mutating func send() -> UInt64 { self.tick() }

    /// A receive of a message stamped `timestamp`: the clock moves past both; returns the
    /// receive event's stamp.
    @discardableResult
    public mutating func receive(_ timestamp: UInt64) -> UInt64 {
        self.time = Self.advanced(max(self.time, timestamp))
        return self.time
    }

    /// `time + 1`, refusing to wrap (a clock that wrapped would order events backwards).
    static func advanced(_ time: UInt64) -> UInt64 {
        precondition(time < UInt64.max, "Lamport clock exhausted")
        return time + 1
    }

    public static func < (lhs: LamportClock, rhs: LamportClock) -> Bool { lhs.time < rhs.time }

    public var description: String { "L\(self.time)" }
}

/// A Lamport clock shared between threads through one atomic word.
///
/// The reference text's `receive_event` loads the counter, computes `max(current, ts) + 1` and
/// stores it: two threads receiving at once can both load the same value, and the later store
/// then goes back below what the other thread already returned (a lost update; the clock is no
/// longer monotonic). Here every update is one compare-and-exchange loop, so each call returns a
/// stamp larger than every stamp returned before it, on any thread.
public final class SharedLamportClock: Sendable {
    private let counter: Atomic<UInt64>

    /// A clock at `time`.
    public init(time: UInt64 = 0) { self.counter = Atomic(time) }

    /// The time of the last event.
    public var time: UInt64 { self.counter.load(ordering: .acquiring) }

    /// A local event (or a send); returns its stamp.
    @discardableResult
    public func tick() -> UInt64 { self.update { $0 } }

    /// A send; the message carries the returned stamp.
    public func send() -> UInt64 { self.tick() }

    /// A receive of a message stamped `timestamp`; returns the receive event's stamp.
    @discardableResult
    public func receive(_ timestamp: UInt64) -> UInt64 { self.update { max($0, timestamp) } }

    /// Sets the clock to `advanced(base(current))` atomically and returns it.
    private func update(_ base: (UInt64) -> UInt64) -> UInt64 {
        var current = self.counter.load(ordering: .relaxed)
        while true {
            let next = LamportClock.advanced(base(current))
            let (exchanged, original) = self.counter.compareExchange(
                expected: current, desired: next, successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed)
            if exchanged { return next }
            current = original
        }
    }
}
