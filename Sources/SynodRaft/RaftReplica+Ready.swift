import SynodCore

extension RaftReplica {
    /// Term and vote first, then the log: a recovered log never holds a term newer than the
    /// recovered hard state.
    mutating func emitRecords() {
        if let origin = self.snapshotHandOver {
            // A checkpoint: with the snapshot, these records are the whole durable state.
            self.snapshotHandOver = nil
            self.output.snapshot = self.snapshot
            self.output.installsSnapshot = origin == .received
            self.output.checkpoint = true
            self.hardStateDirty = true
            self.dirtyFromIndex = self.options.mutation == .checkpointWithoutEntries ? nil : self.log.base.next
        }
        if self.hardStateDirty {
            self.hardStateDirty = false
            let vote = self.options.mutation == .volatileVotes ? nil : self.votedFor
            self.output.records.append(.hardState(term: self.term, votedFor: vote))
        }
        if self.output.checkpoint {
            self.output.records.append(.checkpoint(base: self.log.base, term: self.log.baseTerm))
        }
        if let dirty = self.dirtyFromIndex {
            self.dirtyFromIndex = nil
            let first = max(dirty, self.log.base.next)
            let entries = self.log.entries(from: first, maxCount: Int.max)
            self.output.records.append(.entries(first: first, entries))
        }
        if self.output.checkpoint {
            // A partial snapshot is part of the durable state: written again after the
            // checkpoint, one record per chunk.
            self.receivedChunkRecords = []
            if let partial = self.receivingSnapshot {
                var offset = 0
                while offset < partial.data.count {
                    let end = min(partial.data.count, offset + self.options.maxSnapshotChunkBytes)
                    let chunk = Snapshot(
                        position: partial.position, tag: partial.tag, data: Array(partial.data[offset..<end]),
                        identity: partial.identity)
                    self.output.records.append(.snapshotChunk(InstallSnapshot(
                        term: Term(partial.tag), snapshot: chunk, offset: UInt64(offset), totalBytes: partial.totalBytes,
                        checksum: partial.checksum)))
                    offset = end
                }
            }
        }
        for chunk in self.receivedChunkRecords { self.output.records.append(.snapshotChunk(chunk)) }
        self.receivedChunkRecords = []
    }

    mutating func emitCommitted() {
        // Only an unsafe variant can truncate below the commit index; never read past the end.
        let limit = min(self.commitIndex, self.log.lastIndex)
        while self.emittedCommitIndex < limit {
            self.emittedCommitIndex = self.emittedCommitIndex.next
            if let command = self.log.entry(at: self.emittedCommitIndex).command {
                self.output.committed.append(Committed(position: self.emittedCommitIndex.rawValue, command: command))
            }
        }
    }
}
