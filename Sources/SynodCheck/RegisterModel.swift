/// The sequential specification of one key: a register holding a string or nothing.
enum RegisterModel {
    /// True when the operation leaves the state unchanged in every state where it can take
    /// effect: a read, a cas that failed, a cas to the value it expects.
    static func neverWrites(_ operation: HistoryOperation) -> Bool {
        switch operation.kind {
        case .get: return true
        case .cas: return operation.output == .swapped(false) || operation.expected == operation.value
        case .put, .append, .delete: return false
        }
    }

    /// The state after applying `operation` to `state`, or `nil` when the operation cannot take
    /// effect (or return what it returned) in that state.
    ///
    /// A pending operation (outcome unknown) is only ever linearized as *taking effect*: a
    /// pending cas that fails, like any pending operation that never happens, changes nothing,
    /// and the search covers that case by leaving the operation out.
    static func step(_ state: String?, _ operation: HistoryOperation) -> String?? {
        switch operation.kind {
        case .get:
            guard case .value(let seen) = operation.output else { return .some(state) }
            return seen == state ? .some(state) : nil
        case .put:
            return .some(operation.value)
        case .append:
            return .some((state ?? "") + (operation.value ?? ""))
        case .delete:
            return .some(nil)
        case .cas:
            let matches = state == operation.expected
            switch operation.output {
            case .swapped(true), .none: return matches ? .some(operation.value) : nil
            case .swapped(false): return matches ? nil : .some(state)
            case .value: return nil
            }
        }
    }
}
