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
    /// snapshot's last entry. The acknowledgement leaves once the snapshot is durable. The
    /// snapshot comes in chunks: each is kept if it continues what this follower holds, and
    /// answered with how much it holds; the whole is checked against its checksum.
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
        if index <= self.commitIndex {
            self.receivingSnapshot = nil
        } else {
            var partial = self.receivingSnapshot.flatMap { $0.matches(request) ? $0 : nil }
            if partial == nil && request.offset == 0 {
                partial = PartialSnapshot(
                    position: request.snapshot.position, tag: request.snapshot.tag, identity: request.snapshot.identity,
                    totalBytes: request.totalBytes, checksum: request.checksum, data: [])
            }
            guard var partial else {
                // A chunk of a snapshot this follower holds nothing of: from the start, please.
                let ack = SnapshotAck(term: self.term, position: request.snapshot.position, received: 0)
                self.send(.snapshotAck(ack), to: sender, afterSync: false)
                return
            }
            // A chunk that continues the bytes held is kept; a repeat or one beyond a gap is not.
            let kept = request.offset == UInt64(partial.data.count) && !request.snapshot.data.isEmpty
            if kept {
                partial.data += request.snapshot.data
                if partial.restored {
                    partial.restored = false
                    self.snapshotTransfersResumedAfterRestart += 1
                }
            }
            guard UInt64(partial.data.count) == partial.totalBytes else {
                self.receivingSnapshot = partial
                // Kept durably, and acknowledged once durable: the leader never resumes from
                // beyond what a restart of this follower keeps.
                if kept { self.receivedChunkRecords.append(request) }
                let ack = SnapshotAck(term: self.term, position: partial.position, received: UInt64(partial.data.count))
                self.send(.snapshotAck(ack), to: sender, afterSync: true)
                return
            }
            self.receivingSnapshot = nil
            guard InstallSnapshot.checksum(of: partial.data) == partial.checksum else {
                let ack = SnapshotAck(term: self.term, position: partial.position, received: 0)
                self.send(.snapshotAck(ack), to: sender, afterSync: false)
                return
            }
            let snapshot = Snapshot(position: partial.position, tag: partial.tag, data: partial.data, identity: partial.identity)
            let identity = snapshot.identity
            self.log.install(
                base: index, term: Term(request.snapshot.tag),
                membership: identity.isEmpty ? nil : try? Membership.decode(identity))
            self.refreshMembership()
            self.snapshot = snapshot
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
        self.uncommittedBytes += command?.payload.count ?? 0
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
            follower.acknowledge(through: response.matchIndex)
            // A probe found the match point, or the snapshot arrived: replicate from there.
            if follower.state != .replicate && (follower.state == .probe || follower.matchIndex >= self.log.base) {
                follower.become(.replicate)
                follower.nextIndex = follower.matchIndex.next
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
            // While the snapshot travels, the follower rejects heartbeats at the base (it lacks
            // it): that is what the snapshot is for.
            if follower.state == .snapshot { return }
            follower.become(.probe)
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
        var index = self.commitIndex.next
        while index <= candidate {
            let entry = self.log.entry(at: index)
            if entry.term == self.term { self.uncommittedBytes -= entry.command?.payload.count ?? 0 }
            index = index.next
        }
        self.commitIndex = candidate
        self.leaderCommitted()
    }

    /// Sends heartbeats; recovers followers whose pipelined messages made no progress.
    mutating func heartbeat() {
        for position in self.replicationPositions {
            var follower = self.progress[position]
            switch follower.state {
            case .snapshot:
                // A snapshot is large: resend it only after a few heartbeats unanswered.
                follower.heartbeatsSinceSnapshot += 1
                if follower.heartbeatsSinceSnapshot >= self.options.snapshotResendHeartbeats && follower.probeSent {
                    follower.probeSent = false
                    follower.snapshotResend = true
                }
            case .probe:
                follower.probeSent = false
            case .replicate:
                if !follower.inflight.isEmpty && !follower.progressedSinceHeartbeat {
                    // Messages were lost: fall back to probing from the match point.
                    follower.become(.probe)
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
        case .snapshot:
            // Defensive: the follower's next entry is in the log (its match point reached the
            // base without an acknowledgement of the snapshot): probe from it.
            follower.become(.probe)
            fallthrough
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
            // The window: at most `maxInflightMessages` messages and (short of one message's
            // overshoot) `maxInflightBytes` command bytes unacknowledged.
            let byteBound = self.options.mutation == .inflightWithoutByteBound ? Int.max : self.options.maxInflightBytes
            while follower.inflight.count < self.options.maxInflightMessages && follower.inflightBytes < byteBound
                && follower.nextIndex <= self.log.lastIndex
            {
                let entries = self.log.entries(
                    from: follower.nextIndex, maxCount: self.options.maxEntriesPerMessage,
                    maxPayloadBytes: min(self.options.maxPayloadBytesPerMessage, byteBound - follower.inflightBytes))
                self.sendAppendEntries(to: peer, prevLogIndex: follower.nextIndex.previous, entries: entries)
                follower.nextIndex = follower.nextIndex.advanced(by: entries.count)
                let bytes = entries.reduce(0) { $0 + ($1.command?.payload.count ?? 0) }
                follower.inflight.append(FollowerProgress.Inflight(lastIndex: follower.nextIndex.previous, bytes: bytes))
                follower.inflightBytes += bytes
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

    /// A follower reports how much of the snapshot it holds: the next chunk goes from there
    /// (at the next `ready()`); a follower that holds none of it (it restarted, or this
    /// leader's snapshot changed) gets it from the start.
    mutating func handleSnapshotAck(_ ack: SnapshotAck, from peer: Int) {
        guard self.role == .leader, ack.term == self.term, let snapshot = self.snapshot, peer != self.selfPosition else { return }
        var follower = self.progress[peer]
        guard follower.state == .snapshot, follower.snapshotPosition == snapshot.position, ack.position == snapshot.position,
              ack.received <= UInt64(snapshot.data.count)
        else { return }
        // Progress, or a follower that holds nothing (again); an older report changes nothing.
        guard ack.received > follower.snapshotOffset || (ack.received == 0 && follower.snapshotOffset > 0) else { return }
        follower.snapshotOffset = ack.received
        follower.probeSent = false
        follower.heartbeatsSinceSnapshot = 0
        follower.progressedSinceHeartbeat = true
        self.progress[peer] = follower
    }

    /// §7: the follower needs entries this leader has compacted; it gets the snapshot in
    /// chunks, one in flight at a time, and heartbeats while the snapshot travels. A chunk
    /// unanswered for `snapshotResendHeartbeats` heartbeats is sent again, from where the
    /// follower last said it stood.
    mutating func sendSnapshot(to position: Int, follower: inout FollowerProgress, allowEmpty: Bool) {
        let peer = self.known[position]
        if follower.state != .snapshot { follower.become(.snapshot) }
        if let snapshot = self.snapshot, follower.snapshotPosition != snapshot.position {
            // A newer snapshot than the one under way: from its start.
            follower.snapshotPosition = snapshot.position
            follower.snapshotOffset = 0
            follower.probeSent = false
        }
        if !follower.probeSent, let snapshot = self.snapshot {
            if self.snapshotChecksum?.position != snapshot.position || self.snapshotChecksum?.bytes != snapshot.data.count {
                self.snapshotChecksum = (snapshot.position, snapshot.data.count, InstallSnapshot.checksum(of: snapshot.data))
            }
            let start = Int(follower.snapshotOffset)
            let end = min(snapshot.data.count, start + self.options.maxSnapshotChunkBytes)
            let chunk = Snapshot(
                position: snapshot.position, tag: snapshot.tag,
                data: start == 0 && end == snapshot.data.count ? snapshot.data : Array(snapshot.data[start..<end]),
                identity: snapshot.identity)
            let message = InstallSnapshot(
                term: self.term, snapshot: chunk, offset: UInt64(start), totalBytes: UInt64(snapshot.data.count),
                checksum: self.snapshotChecksum!.value)
            self.send(.installSnapshot(message), to: peer, afterSync: false)
            self.snapshotChunksSent += 1
            if start > 0 && follower.snapshotResend { self.snapshotChunksResumed += 1 }
            follower.snapshotResend = false
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
