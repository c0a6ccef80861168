/// A register's value as bytes: strings compare by their UTF-8 bytes, never by Unicode
/// canonical equivalence (Swift's `String ==` would call NFC "é" and NFD "e\u{301}" equal,
/// while a byte store and JSON tell them apart).
typealias RegisterValue = [UInt8]

/// One operation in the model's terms: every string already turned into bytes.
struct ModelOperation {
    var kind: HistoryOperation.Kind
    var value: RegisterValue?
    var expected: RegisterValue?
    /// get: what was read (`.some(nil)`: absent); `nil` when the read's outcome is unknown.
    var seen: RegisterValue??
    /// cas: whether it swapped; `nil` when unknown.
    var swapped: Bool?

    init(_ operation: HistoryOperation) {
        self.kind = operation.kind
        self.value = operation.value.map { Array($0.utf8) }
        self.expected = operation.expected.map { Array($0.utf8) }
        switch operation.output {
        case .none: break
        case .value(let seen): self.seen = .some(seen.map { Array($0.utf8) })
        case .swapped(let swapped): self.swapped = swapped
        }
    }
}

/// The sequential specification of one key: a register holding bytes or nothing.
enum RegisterModel {
    /// True when the operation leaves the state unchanged in every state where it can take
    /// effect: a read, a cas that failed, a cas to the value it expects.
    static func neverWrites(_ operation: ModelOperation) -> Bool {
        switch operation.kind {
        case .get: return true
        case .cas: return operation.swapped == false || operation.expected == operation.value
        case .put, .append, .delete: return false
        }
    }

    /// The state after applying `operation` to `state` (states interned in `table`), or -1
    /// when the operation cannot take effect (or return what it returned) in that state.
    ///
    /// A pending operation (outcome unknown) is only ever linearized as *taking effect*: a
    /// pending cas that fails, like any pending operation that never happens, changes nothing,
    /// and the search covers that case by leaving the operation out.
    static func step(_ state: Int32, _ operation: ModelOperation, _ table: inout StateTable) -> Int32 {
        switch operation.kind {
        case .get:
            guard let seen = operation.seen else { return state }
            return table.holds(state, seen) ? state : -1
        case .put:
            return table.intern(operation.value)  // a put of null leaves the key absent
        case .append:
            return table.intern(appending: operation.value ?? [], to: state)
        case .delete:
            return 0
        case .cas:
            let matches = table.holds(state, operation.expected)
            switch operation.swapped {
            case true?, nil: return matches ? table.intern(operation.value) : -1
            case false?: return matches ? -1 : state
            }
        }
    }
}
