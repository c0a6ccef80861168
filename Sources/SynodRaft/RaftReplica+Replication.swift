import SynodCore

extension RaftReplica {
    // MARK: Follower side

    /// §5.3: accept entries only when the log contains an entry at `prevLogIndex` whose term is
    /// `prevLogTerm`; delete a conflicting entry and all that follow it; append new entries;
    /// advance the commit index to min(leaderCommit, index of the last new entry).
    mutating func handleAppendEntries(_ request: AppendEntries, from sender: NodeID) {
        guard request.term == self.term else {
            self.send(.appendResponse(self.rejection(of: request, hint: self.log.lastIndex)), to: sender, afterSync: false)
            return
        }
        if self.role != .follower || self.leader != sender {
            // §5.2: a candidate that hears from the leader of its term steps down.
            self.becomeFollower(term: request.term, leader: sender)
        }
        self.electionElapsedTicks = 0
        var request = request
        if request.prevLogIndex < self.log.base {
            // Entries up to the base are committed and held by this replica's snapshot; the
            // leader of this term holds them too (leader completeness): skip them.
            let skipped = Int(self.log.base.rawValue - request.prevLogIndex.rawValue)
            guard request.entries.count > skipped else {
                let covered = request.prevLogIndex.advanced(by: request.entries.count)
                let response = AppendResponse(
                    term: self.term, success: true, matchIndex: covered, rejectedIndex: .zero, hintIndex: .zero,
                    readContext: request.readContext)
                self.send(.appendResponse(response), to: sender, afterSync: true)
                return
            }
            request.entries.removeFirst(skipped)
            request.prevLogIndex = self.log.base
            request.prevLogTerm = self.log.baseTerm
        }
        guard let localTerm = self.log.term(at: request.prevLogIndex) else {
            self.send(.appendResponse(self.rejection(of: request, hint: self.log.lastIndex)), to: sender, afterSync: true)
            return
        }
        guard localTerm == request.prevLogTerm else {
            // Skip back over the whole conflicting term in one round trip.
            let hint = self.log.firstIndex(ofTermAt: request.prevLogIndex).previous
            self.send(.appendResponse(self.rejection(of: request, hint: hint)), to: sender, afterSync: true)
            return
        }
        var index = request.prevLogIndex
        for entry in request.entries {
            index = index.next
            if let existing = self.log.term(at: index) {
                if existing == entry.term { continue }
                self.log.truncate(after: index.previous)
                self.markDirty(from: index)
            } else {
                self.markDirty(from: index)
            }
            self.log.append(entry)
        }
        self.refreshMembership()
        let lastNewIndex = request.prevLogIndex.advanced(by: request.entries.count)
        let newCommit = min(request.leaderCommit, lastNewIndex)
        if newCommit > self.commitIndex { self.commitIndex = newCommit }
        let response = AppendResponse(
            term: self.term, success: true, matchIndex: lastNewIndex, rejectedIndex: .zero, hintIndex: .zero,
            readContext: request.readContext)
        self.send(.appendResponse(response), to: sender, afterSync: true)
    }

    /// §7: a follower that receives the leader's snapshot beyond its commit index replaces its
    /// state with it; it keeps the entries after the snapshot only if its log holds the
    /// snapshot's last entry. The acknowledgement leaves once the snapshot is durable.
    mutating func handleInstallSnapshot(_ request: InstallSnapshot, from sender: NodeID) {
        guard request.term == self.term else {
            let stale = AppendResponse(
                term: self.term, success: false, matchIndex: .zero, rejectedIndex: .zero, hintIndex: .zero, readContext: 0)
            self.send(.appendResponse(stale), to: sender, afterSync: false)
            return
        }
        if self.role != .follower || self.leader != sender {
            self.becomeFollower(term: request.term, leader: sender)
        }
        self.electionElapsedTicks = 0
        let index = LogIndex(request.snapshot.position)
        if index > self.commitIndex {
            let identity = request.snapshot.identity
            self.log.install(
                base: index, term: Term(request.snapshot.tag),
                membership: identity.isEmpty ? nil : try? Membership.decode(identity))
            self.refreshMembership()
            self.snapshot = request.snapshot
            self.commitIndex = index
            self.emittedCommitIndex = index
            self.snapshotHandOver = .received
        }
        let response = AppendResponse(
            term: self.term, success: true, matchIndex: index, rejectedIndex: .zero, hintIndex: .zero, readContext: 0)
        self.send(.appendResponse(response), to: sender, afterSync: true)
    }

    func rejection(of request: AppendEntries, hint: LogIndex) -> AppendResponse {
        AppendResponse(
            term: self.term, success: false, matchIndex: .zero, rejectedIndex: request.prevLogIndex,
            hintIndex: min(hint, self.log.lastIndex), readContext: request.readContext)
    }

    mutating func markDirty(from index: LogIndex) {
        if let dirty = self.dirtyFromIndex, dirty <= index { return }
        self.dirtyFromIndex = index
    }

    // MARK: Leader side

    @discardableResult
    mutating func appendToOwnLog(_ command: Command?) -> LogIndex {
        let index = self.log.append(RaftEntry(term: self.term, command: command))
        self.markDirty(from: index)
        return index
    }

    /// Asks the driver to tell us, after the next sync, that our own log is durable up to its
    /// current end; only then does the leader count itself toward a commit.
    mutating func acknowledgeOwnLog() {
        let response = AppendResponse(
            term: self.term, success: true, matchIndex: self.log.lastIndex, rejectedIndex: .zero, hintIndex: .zero,
            readContext: 0)
        self.send(.appendResponse(response), to: self.id, afterSync: true)
    }

    mutating func handleAppendResponse(_ response: AppendResponse, from peer: Int) {
        guard self.role == .leader, response.term == self.term else { return }
        // A correct follower only ever names indexes this leader sent it, all within its log;
        // anything beyond is a corrupt or forged message, dropped before any arithmetic.
        let last = self.log.lastIndex
        guard response.matchIndex <= last, response.rejectedIndex <= last, response.hintIndex <= last,
              response.readContext <= self.readContextCounter
        else { return }
        if response.readContext > self.lastReadAcknowledgement[peer] {
            self.lastReadAcknowledgement[peer] = response.readContext
        }
        if peer == self.selfPosition {
            if response.matchIndex > self.progress[peer].matchIndex {
                self.progress[peer].matchIndex = response.matchIndex
                self.maybeCommit()
            }
            return
        }
        var follower = self.progress[peer]
        if response.success {
            // Only a higher match point is progress: heartbeats are acknowledged at the old one
            // even when every entry in flight was lost.
            if response.matchIndex > follower.matchIndex {
                follower.matchIndex = response.matchIndex
                follower.progressedSinceHeartbeat = true
            }
            if follower.nextIndex <= follower.matchIndex { follower.nextIndex = follower.matchIndex.next }
            follower.inflightLastIndexes.removeAll { $0 <= response.matchIndex }
            if follower.state == .probe {
                follower.state = .replicate
                follower.nextIndex = follower.matchIndex.next
                follower.inflightLastIndexes.removeAll()
            }
            self.progress[peer] = follower
            self.maybeCommit()
            if let transferee = self.transferee, self.known[peer] == transferee, follower.matchIndex == self.log.lastIndex {
                self.sendTimeoutNow(to: peer)
            }
        } else {
            // A rejection at or below the match point answers an old message: ignore it. So
            // does one of a heartbeat sent while the follower's snapshot is on its way.
            guard response.rejectedIndex > follower.matchIndex else { return }
            if follower.nextIndex <= self.log.base && follower.probeSent { return }
            follower.state = .probe
            follower.probeSent = false
            follower.inflightLastIndexes.removeAll()
            let hinted = min(response.hintIndex.next, response.rejectedIndex)
            follower.nextIndex = max(follower.matchIndex.next, hinted)
            self.progress[peer] = follower
        }
    }

    /// §5.3, §5.4.2: commit the highest index stored on a quorum, but only if its entry is of
    /// the current term; earlier entries commit with it (Figure 8).
    mutating func maybeCommit() {
        let candidate = LogIndex(self.quorumValue(
            self.progress.map { $0.matchIndex.rawValue },
            newVotersOnly: self.options.mutation == .jointCommitByNewVoters))
        guard candidate > self.commitIndex else { return }
        if self.options.mutation != .commitPreviousTermByCounting {
            guard self.log.term(at: candidate) == self.term else { return }
        }
        self.commitIndex = candidate
        self.leaderCommitted()
    }

    /// Sends heartbeats; recovers followers whose pipelined messages made no progress.
    mutating func heartbeat() {
        for position in self.replicationPositions {
            var follower = self.progress[position]
            switch follower.state {
            case .probe:
                if follower.nextIndex <= self.log.base {
                    // A snapshot is large: resend it only after a few heartbeats unanswered.
                    follower.heartbeatsSinceSnapshot += 1
                    if follower.heartbeatsSinceSnapshot >= self.options.snapshotResendHeartbeats { follower.probeSent = false }
                } else {
                    follower.probeSent = false
                }
            case .replicate:
                if !follower.inflightLastIndexes.isEmpty && !follower.progressedSinceHeartbeat {
                    // Messages were lost: fall back to probing from the match point.
                    follower.state = .probe
                    follower.probeSent = false
                    follower.inflightLastIndexes.removeAll()
                    follower.nextIndex = follower.matchIndex.next
                }
            }
            follower.progressedSinceHeartbeat = false
            follower.sentSinceHeartbeat = false
            self.progress[position] = follower
        }
        // With leases, every heartbeat round carries a new read context: its acknowledgement
        // by a quorum renews the lease from the moment it was sent.
        if self.options.leaseReads { self.readContextCounter += 1 }
        self.noteContextSent()
        self.readContextSent = self.readContextCounter
        for position in self.replicationPositions {
            self.sendAppend(to: position, allowEmpty: true)
        }
    }

    /// Sends what each follower is missing; called once per `ready()`, which batches every
    /// proposal since the previous call into one message per follower.
    mutating func flushLeaderMessages() {
        let readContextPending = self.readContextCounter > self.readContextSent
        if self.dirtyFromIndex != nil { self.acknowledgeOwnLog() }
        for position in self.replicationPositions {
            self.sendAppend(to: position, allowEmpty: readContextPending)
        }
        if readContextPending {
            self.readContextSent = self.readContextCounter
            self.noteContextSent()
        }
    }

    mutating func sendAppend(to position: Int, allowEmpty: Bool) {
        var follower = self.progress[position]
        let peer = self.known[position]
        if follower.nextIndex <= self.log.base {
            self.sendSnapshot(to: position, follower: &follower, allowEmpty: allowEmpty)
            self.progress[position] = follower
            return
        }
        var sent = false
        switch follower.state {
        case .probe:
            if !follower.probeSent {
                let entries = self.log.entries(
                    from: follower.nextIndex, maxCount: self.options.maxEntriesPerMessage,
                    maxPayloadBytes: self.options.maxPayloadBytesPerMessage)
                if !entries.isEmpty || allowEmpty {
                    self.sendAppendEntries(to: peer, prevLogIndex: follower.nextIndex.previous, entries: entries)
                    follower.probeSent = true
                    sent = true
                }
            }
        case .replicate:
            while follower.inflightLastIndexes.count < self.options.maxInflightMessages
                && follower.nextIndex <= self.log.lastIndex
            {
                let entries = self.log.entries(
                    from: follower.nextIndex, maxCount: self.options.maxEntriesPerMessage,
                    maxPayloadBytes: self.options.maxPayloadBytesPerMessage)
                self.sendAppendEntries(to: peer, prevLogIndex: follower.nextIndex.previous, entries: entries)
                follower.nextIndex = follower.nextIndex.advanced(by: entries.count)
                follower.inflightLastIndexes.append(follower.nextIndex.previous)
                sent = true
            }
        }
        if !sent && allowEmpty {
            // A heartbeat anchored at the match point, which the follower can always accept
            // (or at the base, when the match point is compacted here).
            self.sendAppendEntries(to: peer, prevLogIndex: max(follower.matchIndex, self.log.base), entries: [])
            sent = true
        }
        if sent { follower.sentSinceHeartbeat = true }
        self.progress[position] = follower
    }

    /// §7: the follower needs entries this leader has compacted; it gets the snapshot, one at a
    /// time, and heartbeats while the snapshot travels.
    mutating func sendSnapshot(to position: Int, follower: inout FollowerProgress, allowEmpty: Bool) {
        let peer = self.known[position]
        if follower.state == .replicate {
            follower.state = .probe
            follower.probeSent = false
            follower.inflightLastIndexes.removeAll()
        }
        if !follower.probeSent, let snapshot = self.snapshot {
            self.send(.installSnapshot(InstallSnapshot(term: self.term, snapshot: snapshot)), to: peer, afterSync: false)
            follower.probeSent = true
            follower.heartbeatsSinceSnapshot = 0
            follower.sentSinceHeartbeat = true
        } else if allowEmpty {
            self.sendAppendEntries(to: peer, prevLogIndex: self.log.base, entries: [])
            follower.sentSinceHeartbeat = true
        }
    }

    mutating func sendAppendEntries(to peer: NodeID, prevLogIndex: LogIndex, entries: [RaftEntry]) {
        let message = AppendEntries(
            term: self.term, prevLogIndex: prevLogIndex, prevLogTerm: self.log.term(at: prevLogIndex)!,
            entries: entries, leaderCommit: self.commitIndex, readContext: self.readContextCounter)
        self.send(.appendEntries(message), to: peer, afterSync: false)
    }
}
