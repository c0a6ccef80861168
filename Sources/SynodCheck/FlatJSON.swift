/// A value of a flat JSON object: the only shapes a history line may hold.
enum FlatJSONValue: Equatable {
    case string(String)
    case integer(Int64)
    case bool(Bool)
    case null

    var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}

/// A strict parser for one JSON object whose values are strings, integers, booleans or null
/// (RFC 8259 syntax; nested objects, arrays and fractions are refused). Hand-written so that
/// every refusal says exactly what is wrong, integers and booleans never blur, and a line of
/// any content fails cleanly instead of trapping.
public struct FlatJSONParser {
    /// Longest line accepted, in bytes: a bound on work and memory per line, above any line a
    /// Synod history holds (the server takes values of up to 1 MiB; a line holds up to three,
    /// each up to six bytes per byte once escaped).
    public static let maximumLineBytes = 32 << 20

    private let bytes: [UInt8]
    private var index = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Parses one line into its fields, in order. Throws a reason on malformed input.
    static func parse(_ line: some Sequence<UInt8>) throws(HistoryFormatError.Reason) -> [(String, FlatJSONValue)] {
        let bytes = Array(line)
        guard bytes.count <= Self.maximumLineBytes else {
            throw .init("line longer than \(Self.maximumLineBytes) bytes")
        }
        var parser = FlatJSONParser(bytes)
        return try parser.object()
    }

    private mutating func object() throws(HistoryFormatError.Reason) -> [(String, FlatJSONValue)] {
        self.skipWhitespace()
        guard self.peek() == UInt8(ascii: "{") else { throw .init("not a JSON object") }
        self.index += 1
        var fields: [(String, FlatJSONValue)] = []
        var names: Set<String> = []
        self.skipWhitespace()
        if self.peek() == UInt8(ascii: "}") {
            self.index += 1
        } else {
            while true {
                self.skipWhitespace()
                guard self.peek() == UInt8(ascii: "\"") else { throw .init("expected a field name at byte \(self.index + 1)") }
                let name = try self.string()
                guard names.insert(name).inserted else { throw .init("field \"\(name)\" appears twice") }
                self.skipWhitespace()
                guard self.peek() == UInt8(ascii: ":") else { throw .init("expected ':' after \"\(name)\"") }
                self.index += 1
                self.skipWhitespace()
                fields.append((name, try self.value(field: name)))
                self.skipWhitespace()
                if self.peek() == UInt8(ascii: ",") {
                    self.index += 1
                    continue
                }
                guard self.peek() == UInt8(ascii: "}") else { throw .init("expected ',' or '}' at byte \(self.index + 1)") }
                self.index += 1
                break
            }
        }
        self.skipWhitespace()
        guard self.index == self.bytes.count else { throw .init("unexpected text after the object at byte \(self.index + 1)") }
        return fields
    }

    private mutating func value(field: String) throws(HistoryFormatError.Reason) -> FlatJSONValue {
        guard let byte = self.peek() else { throw .init("field \"\(field)\" has no value") }
        switch byte {
        case UInt8(ascii: "\""): return .string(try self.string())
        case UInt8(ascii: "t"): try self.literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try self.literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try self.literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .integer(try self.integer(field: field))
        case UInt8(ascii: "{"), UInt8(ascii: "["): throw .init("field \"\(field)\" holds an object or array; only strings, integers, booleans and null are allowed")
        default: throw .init("field \"\(field)\" has an invalid value at byte \(self.index + 1)")
        }
    }

    private mutating func literal(_ word: StaticString) throws(HistoryFormatError.Reason) {
        let expected = word.withUTF8Buffer { Array($0) }
        guard self.bytes.count - self.index >= expected.count,
              Array(self.bytes[self.index..<(self.index + expected.count)]) == expected
        else { throw .init("invalid literal at byte \(self.index + 1)") }
        self.index += expected.count
    }

    private mutating func integer(field: String) throws(HistoryFormatError.Reason) -> Int64 {
        let start = self.index
        if self.peek() == UInt8(ascii: "-") { self.index += 1 }
        var magnitude: UInt64 = 0
        var digits = 0
        while let byte = self.peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
            let (times, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1 && !overflow2 else { throw .init("field \"\(field)\" is out of range") }
            magnitude = sum
            digits += 1
            self.index += 1
        }
        guard digits > 0 else { throw .init("field \"\(field)\" has an invalid number") }
        let firstDigit = self.bytes[self.bytes[start] == UInt8(ascii: "-") ? start + 1 : start]
        guard digits == 1 || firstDigit != UInt8(ascii: "0") else { throw .init("field \"\(field)\" has a leading zero") }
        if let byte = self.peek(), byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            throw .init("field \"\(field)\" must be an integer")
        }
        let negative = self.bytes[start] == UInt8(ascii: "-")
        guard magnitude <= UInt64(Int64.max) else { throw .init("field \"\(field)\" is out of range") }
        return negative ? -Int64(magnitude) : Int64(magnitude)
    }

    private mutating func string() throws(HistoryFormatError.Reason) -> String {
        self.index += 1  // the opening quote
        var scalars = String.UnicodeScalarView()
        var run: [UInt8] = []
        func flush() throws(HistoryFormatError.Reason) {
            guard !run.isEmpty else { return }
            guard let text = String(validating: run, as: UTF8.self) else { throw .init("a string is not valid UTF-8") }
            scalars.append(contentsOf: text.unicodeScalars)
            run.removeAll(keepingCapacity: true)
        }
        while true {
            guard let byte = self.peek() else { throw .init("unterminated string") }
            self.index += 1
            switch byte {
            case UInt8(ascii: "\""):
                try flush()
                return String(scalars)
            case UInt8(ascii: "\\"):
                try flush()
                scalars.append(try self.escape())
            case 0..<0x20:
                throw .init("control character inside a string at byte \(self.index)")
            default:
                run.append(byte)
            }
        }
    }

    private mutating func escape() throws(HistoryFormatError.Reason) -> Unicode.Scalar {
        guard let byte = self.peek() else { throw .init("unterminated escape") }
        self.index += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let first = try self.hex4()
            if (0xD800..<0xDC00).contains(first) {
                guard self.peek() == UInt8(ascii: "\\") else { throw .init("unpaired surrogate in a string") }
                self.index += 1
                guard self.peek() == UInt8(ascii: "u") else { throw .init("unpaired surrogate in a string") }
                self.index += 1
                let second = try self.hex4()
                guard (0xDC00..<0xE000).contains(second) else { throw .init("unpaired surrogate in a string") }
                let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                return Unicode.Scalar(combined)!
            }
            guard let scalar = Unicode.Scalar(first) else { throw .init("unpaired surrogate in a string") }
            return scalar
        default:
            throw .init("invalid escape '\\\(Character(Unicode.Scalar(byte)))'")
        }
    }

    private mutating func hex4() throws(HistoryFormatError.Reason) -> UInt32 {
        guard self.bytes.count - self.index >= 4 else { throw .init("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw .init("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            self.index += 1
        }
        return value
    }

    private func peek() -> UInt8? { self.index < self.bytes.count ? self.bytes[self.index] : nil }

    private mutating func skipWhitespace() {
        while let byte = self.peek(),
              byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")
        {
            self.index += 1
        }
    }
}
