import SynodCore

/// Raft's safety properties (§5.2 Figure 3), checked by the simulator after every step:
///
/// - **election safety**: at most one leader per term;
/// - **log matching**: two logs with an entry of the same index and term are identical up to it;
/// - **leader completeness**: a leader's log holds every entry committed in an earlier term;
/// - **state-machine safety**: replicas never commit different entries at one index, and no
///   replica overwrites an entry it knew to be committed;
/// - **lease safety**: a leader never believes its lease holds (and so serves reads without a
///   heartbeat round) once a leader of a later term has been elected.
///
/// The monitor keeps a shadow of each replica's log as a chain of hashes (each entry's hash
/// covers the whole prefix), fed by the records the replica emits, so every check is O(1) or
/// O(log n) per step however long the logs grow.
public struct RaftMonitor: SafetyMonitor {
    public typealias Observed = RaftReplica

    struct Shadow {
        /// `chains[i - 1]` is the chain hash of the prefix ending at index i.
        var chains: [UInt64] = []
        var lastSeenCommit: LogIndex = .zero
        /// The replica's snapshot position: records never rewrite entries up to it.
        var base = 0

        var lastIndex: Int { self.chains.count }
        func chain(at index: Int) -> UInt64 { index == 0 ? 0 : self.chains[index - 1] }
    }

    struct EntryKey: Hashable {
        var index: UInt64
        var term: UInt64
    }

    let members: [NodeID]
    var leaderOfTerm: [Term: NodeID] = [:]
    var newestLeaderTerm = Term.zero
    var shadows: [Shadow]
    var chainOfEntry: [EntryKey: UInt64] = [:]
    var committedChains: [UInt64] = []
    /// For each committed index, an upper bound of the term in which it was committed (the
    /// observer's term when the commit was first seen, kept non-decreasing).
    var commitTerms: [Term] = []
    /// Violations found while a replica restarted, reported at its next step.
    var deferred: [InvariantViolation] = []

    public init(members: [NodeID]) {
        self.members = members.sorted()
        self.shadows = Array(repeating: Shadow(), count: members.count)
    }

    public mutating func observe(
        node: NodeID, replica: RaftReplica, ready: Ready<RaftMessage, RaftRecord>
    ) -> [InvariantViolation] {
        var violations = self.deferred
        self.deferred = []
        let position = self.members.firstIndex(of: node)!
        for event in ready.events {
            guard case .becameLeader(let epoch) = event else { continue }
            let term = Term(epoch)
            if let other = self.leaderOfTerm[term], other != node {
                violations.append(InvariantViolation(
                    invariant: "election-safety", node: node, detail: "\(other) and \(node) both lead \(term)"))
            }
            self.leaderOfTerm[term] = node
            self.newestLeaderTerm = max(self.newestLeaderTerm, term)
        }
        if replica.role == .leader && replica.leaseHolds && self.newestLeaderTerm > replica.term {
            let newer = self.leaderOfTerm[self.newestLeaderTerm].map { "\($0)" } ?? "another replica"
            violations.append(InvariantViolation(
                invariant: "lease-safety", node: node,
                detail: "\(node) still holds its lease of \(replica.term) while \(newer) leads \(self.newestLeaderTerm)"))
        }
        if let snapshot = ready.snapshot {
            if let violation = self.moveBase(to: Int(snapshot.position), installed: ready.installsSnapshot, position: position, node: node) {
                violations.append(violation)
                return violations
            }
        }
        for record in ready.records {
            guard case .entries(let first, let entries) = record else { continue }
            violations += self.applyEntries(first: first, entries, position: position, node: node, live: true)
        }
        violations += self.observeCommit(replica.commitIndex, term: replica.term, position: position, node: node)
        if replica.role == .leader {
            violations += self.checkLeaderCompleteness(term: replica.term, position: position, node: node)
            if let violation = Self.checkFlowControl(replica, node: node) { violations.append(violation) }
        }
        return violations
    }

    /// Flow control: what a leader has sent a pipelining follower beyond its match point (the
    /// entries' command bytes, counted from the log, not from the leader's own bookkeeping)
    /// stays within the window, short of the newest message's overshoot; the leader's record of
    /// the messages in flight agrees with its log.
    static func checkFlowControl(_ leader: RaftReplica, node: NodeID) -> InvariantViolation? {
        let options = leader.options
        for position in leader.replicationPositions {
            let follower = leader.progress[position]
            guard follower.state == .replicate, follower.matchIndex >= leader.log.base, follower.nextIndex > follower.matchIndex.next else {
                continue
            }
            let entries = leader.log.entries(from: follower.matchIndex.next, maxCount: Int(follower.nextIndex.rawValue - follower.matchIndex.next.rawValue))
            let bytes = entries.reduce(0) { $0 + ($1.command?.payload.count ?? 0) }
            let peer = leader.known[position]
            if follower.inflight.count > options.maxInflightMessages {
                return InvariantViolation(
                    invariant: "flow-control", node: node,
                    detail: "\(follower.inflight.count) messages in flight to \(peer), window \(options.maxInflightMessages)")
            }
            if follower.inflight.isEmpty || bytes - follower.inflight.last!.bytes >= options.maxInflightBytes {
                return InvariantViolation(
                    invariant: "flow-control", node: node,
                    detail: "entries i\(follower.matchIndex.next.rawValue)...i\(follower.nextIndex.previous.rawValue) (\(bytes) bytes in "
                        + "\(follower.inflight.count) messages) in flight to \(peer), beyond the window of \(options.maxInflightBytes) bytes")
            }
        }
        return nil
    }

    public mutating func restarted(node: NodeID, replica: RaftReplica, recovered: Recovered<RaftRecord>) {
        // The shadow is rebuilt from what the replica restored (its snapshot's committed
        // prefix, then its log), so it follows the core's restore rules exactly; what that finds
        // is reported at the replica's next step.
        let position = self.members.firstIndex(of: node)!
        self.shadows[position] = Shadow()
        let base = replica.log.base
        if base > .zero, let violation = self.moveBase(to: Int(base.rawValue), installed: true, position: position, node: node) {
            self.deferred.append(violation)
            return
        }
        let entries = replica.log.entries(from: base.next, maxCount: .max)
        self.deferred += self.applyEntries(first: base.next, entries, position: position, node: node, live: false)
    }

    /// A snapshot at `base`: the replica's own compaction keeps its shadow; an installed (or
    /// recovered) one must hold committed entries only, and replaces the shadow's prefix by the
    /// committed one (keeping the entries after it only when the prefix already matched).
    mutating func moveBase(to base: Int, installed: Bool, position: Int, node: NodeID) -> InvariantViolation? {
        var shadow = self.shadows[position]
        if installed {
            guard base <= self.committedChains.count else {
                return InvariantViolation(
                    invariant: "state-machine-safety", node: node,
                    detail: "installed a snapshot through i\(base), beyond every commit seen (i\(self.committedChains.count))")
            }
            let matches = base == 0 || (shadow.lastIndex >= base && shadow.chain(at: base) == self.committedChains[base - 1])
            if !matches { shadow.chains = Array(self.committedChains[0..<base]) }
            shadow.lastSeenCommit = max(shadow.lastSeenCommit, LogIndex(UInt64(base)))
        } else if base > shadow.lastIndex || base > Int(shadow.lastSeenCommit.rawValue) {
            return InvariantViolation(
                invariant: "state-machine-safety", node: node,
                detail: "compacted through i\(base), beyond its commit point i\(shadow.lastSeenCommit)")
        }
        shadow.base = base
        self.shadows[position] = shadow
        return nil
    }

    mutating func applyEntries(
        first: LogIndex, _ entries: [RaftEntry], position: Int, node: NodeID, live: Bool
    ) -> [InvariantViolation] {
        var violations: [InvariantViolation] = []
        var shadow = self.shadows[position]
        var start = Int(first.rawValue)
        var entries = entries[...]
        precondition(start >= 1 && start <= max(shadow.lastIndex, shadow.base) + 1, "record leaves a gap in the shadow log")
        if start <= shadow.base {
            // The snapshot holds these entries already.
            entries = entries.dropFirst(shadow.base - start + 1)
            start = shadow.base + 1
        }
        shadow.chains.removeSubrange((start - 1)...)
        var chain = shadow.chain(at: start - 1)
        for (offset, entry) in entries.enumerated() {
            let index = UInt64(start + offset)
            chain = Self.chain(chain, entry)
            shadow.chains.append(chain)
            let key = EntryKey(index: index, term: entry.term.rawValue)
            if let known = self.chainOfEntry[key] {
                if known != chain {
                    violations.append(InvariantViolation(
                        invariant: "log-matching", node: node,
                        detail: "entry i\(index) of \(entry.term) follows a different prefix than on another replica"))
                }
            } else {
                self.chainOfEntry[key] = chain
            }
        }
        // A live replica must never replace an entry it knows is committed. (A stale follower
        // may legally overwrite entries that others committed since: it learns of them later.)
        let known = Int(shadow.lastSeenCommit.rawValue)
        if live && known >= start
            && (shadow.lastIndex < known || shadow.chain(at: known) != self.committedChains[known - 1])
        {
            violations.append(InvariantViolation(
                invariant: "state-machine-safety", node: node,
                detail: "overwrote committed entries at or after i\(start)"))
        }
        self.shadows[position] = shadow
        return violations
    }

    mutating func observeCommit(_ commitIndex: LogIndex, term: Term, position: Int, node: NodeID) -> [InvariantViolation] {
        var shadow = self.shadows[position]
        let commit = min(Int(commitIndex.rawValue), shadow.lastIndex)
        guard commit > Int(shadow.lastSeenCommit.rawValue) else { return [] }
        shadow.lastSeenCommit = LogIndex(UInt64(commit))
        self.shadows[position] = shadow
        let overlap = min(commit, self.committedChains.count)
        if overlap > 0 && shadow.chain(at: overlap) != self.committedChains[overlap - 1] {
            return [InvariantViolation(
                invariant: "state-machine-safety", node: node,
                detail: "committed a different entry than another replica at or below i\(overlap)")]
        }
        if commit > self.committedChains.count {
            for index in (self.committedChains.count + 1)...commit {
                self.committedChains.append(shadow.chains[index - 1])
                self.commitTerms.append(max(term, self.commitTerms.last ?? .zero))
            }
        }
        return []
    }

    /// The leader of `term` must hold every entry committed in a term before `term`.
    func checkLeaderCompleteness(term: Term, position: Int, node: NodeID) -> [InvariantViolation] {
        // Commit terms never decrease with the index: binary search the last one before `term`.
        var low = 0
        var high = self.commitTerms.count
        while low < high {
            let middle = (low + high) / 2
            if self.commitTerms[middle] < term { low = middle + 1 } else { high = middle }
        }
        let required = low
        guard required > 0 else { return [] }
        let shadow = self.shadows[position]
        if shadow.lastIndex < required || shadow.chain(at: required) != self.committedChains[required - 1] {
            return [InvariantViolation(
                invariant: "leader-completeness", node: node,
                detail: "leader of \(term) lacks committed entries up to i\(required)")]
        }
        return []
    }

    static func chain(_ previous: UInt64, _ entry: RaftEntry) -> UInt64 {
        var hasher = StableHasher(seed: previous)
        hasher.combine(entry.term.rawValue)
        if let command = entry.command {
            hasher.combine(command.client)
            hasher.combine(command.sequence)
            hasher.combine(command.payload.count)
        } else if let configuration = entry.configuration {
            hasher.combine(UInt64.max - 1)
            for node in configuration.voters + [NodeID(0)] + configuration.learners + [NodeID(0)] + configuration.outgoing {
                hasher.combine(UInt64(node.rawValue))
            }
        } else {
            hasher.combine(UInt64.max)
        }
        return hasher.value
    }
}
