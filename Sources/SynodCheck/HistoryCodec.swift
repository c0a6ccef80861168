/// A history line that does not follow the format: where, and why.
public struct HistoryFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Why a line was refused.
    public struct Reason: Error, Sendable, Equatable {
        public var text: String
        init(_ text: String) { self.text = text }
    }

    /// 1-based line number.
    public var line: Int
    /// What is wrong.
    public var reason: String

    public var description: String { "line \(self.line): \(self.reason)" }
}

/// Reads and writes histories in the JSON Lines format of DESIGN.md.
public enum HistoryCodec {
    static let fieldNames: Set<String> = ["client", "op", "key", "value", "expected", "output", "call", "return", "unknown"]

    /// Parses a whole history; blank lines are skipped.
    ///
    /// A client is sequential: two completed operations of one client that overlap in time are
    /// refused (the later line is named); one may call at the instant the previous returned. An operation whose outcome is unknown may overlap its
    /// client's later ones (the client gave up on it and went on).
    /// - Throws: `HistoryFormatError` for the first bad line.
    public static func decode(_ text: some Collection<UInt8>) throws(HistoryFormatError) -> [HistoryOperation] {
        var operations: [HistoryOperation] = []
        var lines: [Int] = []
        var lineNumber = 0
        for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) { continue }
            do {
                operations.append(try Self.decodeLine(line))
                lines.append(lineNumber)
            } catch {
                throw HistoryFormatError(line: lineNumber, reason: error.text)
            }
        }
        if let overlap = Self.overlap(in: operations) {
            let (earlier, later) = (operations[overlap.earlier], operations[overlap.later])
            throw HistoryFormatError(
                line: lines[overlap.later],
                reason: "client \(later.client) calls at \(later.call) while its operation of line \(lines[overlap.earlier]) "
                    + "(\(earlier.kind.rawValue), \(earlier.call)...\(earlier.returnTime!)) is under way: a client runs one operation at a time")
        }
        return operations
    }

    /// Two completed operations of one client whose intervals overlap (by index; `later` calls
    /// second), or `nil`.
    public static func overlap(in operations: [HistoryOperation]) -> (earlier: Int, later: Int)? {
        var byClient: [Int: [Int]] = [:]
        for index in operations.indices where !operations[index].isPending { byClient[operations[index].client, default: []].append(index) }
        var found: (earlier: Int, later: Int)?
        for indices in byClient.values {
            let sorted = indices.sorted { (operations[$0].call, $0) < (operations[$1].call, $1) }
            for (earlier, later) in zip(sorted, sorted.dropFirst()) where operations[later].call < operations[earlier].returnTime! {
                if found == nil || later < found!.later { found = (earlier, later) }
                break
            }
        }
        return found
    }

    /// Parses one line.
    public static func decodeLine(_ line: some Sequence<UInt8>) throws(HistoryFormatError.Reason) -> HistoryOperation {
        var fields: [String: FlatJSONValue] = [:]
        for (name, value) in try FlatJSONParser.parse(line) {
            guard Self.fieldNames.contains(name) else { throw .init("unknown field \"\(name)\"") }
            fields[name] = value
        }
        func require(_ name: String) throws(HistoryFormatError.Reason) -> FlatJSONValue {
            guard let value = fields[name] else { throw .init("missing field \"\(name)\"") }
            return value
        }
        func integer(_ name: String) throws(HistoryFormatError.Reason) -> Int64 {
            let value = try require(name)
            guard case .integer(let number) = value else { throw .init("\"\(name)\" must be an integer, not \(value.typeName)") }
            guard number >= 0 else { throw .init("\"\(name)\" must not be negative") }
            return number
        }
        func optionalString(_ name: String) throws(HistoryFormatError.Reason) -> String? {
            switch fields[name] ?? .null {
            case .string(let text): return text
            case .null: return nil
            case let other: throw .init("\"\(name)\" must be a string or null, not \(other.typeName)")
            }
        }
        func absent(_ name: String, because reason: String) throws(HistoryFormatError.Reason) {
            if let value = fields[name], value != .null { throw .init("\"\(name)\" must be absent or null \(reason)") }
        }

        let client = try integer("client")
        guard case .string(let opName) = try require("op") else { throw .init("\"op\" must be a string") }
        guard let kind = HistoryOperation.Kind(rawValue: opName) else {
            throw .init("unknown op \"\(opName)\"; known: get, put, append, cas, delete")
        }
        guard case .string(let key) = try require("key") else { throw .init("\"key\" must be a string") }
        let call = try integer("call")
        var unknown = false
        if let value = fields["unknown"] {
            guard case .bool(let flag) = value else { throw .init("\"unknown\" must be a boolean, not \(value.typeName)") }
            unknown = flag
        }
        var returnTime: UInt64?
        switch fields["return"] {
        case .integer(let end)?:
            guard end >= 0 else { throw .init("\"return\" must not be negative") }
            guard end >= call else { throw .init("return \(end) is before call \(call)") }
            returnTime = UInt64(end)
        case .null?, nil:
            guard unknown else { throw .init(fields["return"] == nil ? "missing field \"return\"" : "\"return\" is null but \"unknown\" is not true") }
        case let other?:
            throw .init("\"return\" must be an integer or null, not \(other.typeName)")
        }

        var operation = HistoryOperation(
            client: Int(client), kind: kind, key: key, call: UInt64(call), returnTime: returnTime, unknown: unknown)
        switch kind {
        case .put:
            // A put of null leaves the key absent, as a delete does (a get's null means absent).
            _ = try require("value")
            operation.value = try optionalString("value")
        case .append, .cas:
            guard case .string(let value) = try require("value") else { throw .init("\(opName) needs a string \"value\"") }
            operation.value = value
        case .get, .delete:
            try absent("value", because: "for \(opName)")
        }
        if kind == .cas {
            _ = try require("expected")
            operation.expected = try optionalString("expected")
        } else {
            try absent("expected", because: "for \(opName)")
        }
        if unknown {
            try absent("output", because: "when the outcome is unknown")
        } else {
            switch kind {
            case .get:
                _ = try require("output")
                operation.output = .value(try optionalString("output"))
            case .cas:
                guard case .bool(let swapped) = try require("output") else { throw .init("cas needs a boolean \"output\"") }
                operation.output = .swapped(swapped)
            case .put, .append, .delete:
                try absent("output", because: "for \(opName)")
            }
        }
        return operation
    }

    /// Encodes one operation as a line (without the newline).
    public static func encode(_ operation: HistoryOperation) -> String {
        var line = "{\"client\":\(operation.client),\"op\":\"\(operation.kind.rawValue)\",\"key\":\(Self.json(operation.key))"
        line += ",\"value\":\(Self.json(operation.value)),\"expected\":\(Self.json(operation.expected))"
        switch operation.output {
        case .none: line += ",\"output\":null"
        case .value(let value): line += ",\"output\":\(Self.json(value))"
        case .swapped(let swapped): line += ",\"output\":\(swapped)"
        }
        line += ",\"call\":\(operation.call),\"return\":\(operation.returnTime.map(String.init) ?? "null")"
        // An operation that never returned is an unknown outcome, whatever its flag says.
        line += ",\"unknown\":\(operation.isPending)}"
        return line
    }

    /// Encodes a whole history, one line per operation.
    public static func encode(_ history: [HistoryOperation]) -> String {
        history.map { Self.encode($0) + "\n" }.joined()
    }

    static func json(_ text: String?) -> String {
        guard let text else { return "null" }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
