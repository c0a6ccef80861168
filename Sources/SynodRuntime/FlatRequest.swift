import Foundation
import SynodKV

/// The fast path for the request bodies almost every client sends to the KV routes: one flat
/// JSON object (`{"key": "Zm9v", "value": "YmFy"}`), read straight from the connection's bytes
/// into a `KVRequest`, with no `JSONSerialization`, no `NSDictionary` and no dynamic casts.
///
/// It accepts only what it can read exactly as the general path (`ClientAPI.decode`) reads
/// it, and gives up (`nil`) on everything else, which then takes the general path: its answer,
/// and its error message, are the same as before. It gives up on: a value that is an object,
/// an array or null; a string with an escape other than `\/`, a control character or a byte
/// outside ASCII; a number with a fraction or exponent, or above 2^53 in size (Foundation
/// reads those as doubles); a repeated field; anything malformed; a field of the wrong type;
/// any field Synod refuses unless zero (`unsupportedFields`); a missing key, bad base64
/// or a negative limit (the general path words the error). A test checks, on generated
/// bodies, that where the fast path answers the general path answers the same.
enum FlatRequest {
    enum Value {
        case text(Text)
        case integer(Int64)
        case bool(Bool)
    }

    /// A string's characters: a run of the body's bytes where it has no escape (so a value,
    /// base64 of up to a mebibyte, is not copied into a `String` on its way to its bytes),
    /// otherwise the unescaped copy. A run is valid only while the body's bytes are.
    enum Text {
        case run(UnsafeRawBufferPointer)
        case unescaped([UInt8])

        func withBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
            switch self {
            case .run(let run): body(run)
            case .unescaped(let bytes): bytes.withUnsafeBytes(body)
            }
        }

        var string: String { self.withBytes { String(decoding: $0, as: UTF8.self) } }
    }

    /// The fields of a flat object, in order, or nil when the body is not one this reader
    /// takes (see above). The values' text points into `bytes`.
    static func fields(_ bytes: UnsafeRawBufferPointer) -> [(name: String, value: Value)]? {
        var reader = Reader(bytes: bytes)
        return reader.object()
    }

    /// Fields of etcd's requests that Synod does not implement: refused unless they carry their
    /// zero value (`ClientAPI.refuseUnsupported`, which names the first one found in this
    /// order), so that a client never silently gets something it did not ask for. The fast
    /// path leaves any body naming one to the general path.
    static let unsupportedFields = [
        "revision", "count_only", "keys_only", "sort_order", "sort_target", "min_mod_revision", "max_mod_revision",
        "min_create_revision", "max_create_revision", "lease", "ignore_value", "ignore_lease",
    ]
    static let unsupported = Set(unsupportedFields)

    /// Each base64 digit's value by its byte; 0xFF for every other byte.
    static let base64Values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in JSONValue.base64Alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }()

    /// The bytes of canonical base64 (RFC 4648: padded with `=` to a multiple of four digits,
    /// nothing else, and zero bits after the last byte), decoded straight into one array; nil
    /// for anything else, which the general path reads with Foundation's decoder, so the two
    /// agree wherever this one answers.
    static func base64(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { Self.base64(digits: UnsafeRawBufferPointer($0)) }
    }

    /// `base64(_:)` of the digits as bytes.
    static func base64(digits: UnsafeRawBufferPointer) -> [UInt8]? {
        let count = digits.count
        guard count % 4 == 0 else { return nil }
        guard count > 0 else { return [] }
        let padding = digits[count - 1] != UInt8(ascii: "=") ? 0 : digits[count - 2] != UInt8(ascii: "=") ? 1 : 2
        let table = Self.base64Values
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count / 4 * 3 - padding)
        var index = 0
        while index < count {
            let last = index + 4 == count
            let first = table[Int(digits[index])]
            let second = table[Int(digits[index + 1])]
            let third = last && padding == 2 ? 0 : table[Int(digits[index + 2])]
            let fourth = last && padding >= 1 ? 0 : table[Int(digits[index + 3])]
            guard first | second | third | fourth < 64 else { return nil }  // not a digit (a `=` inside included)
            let group = UInt32(first) << 18 | UInt32(second) << 12 | UInt32(third) << 6 | UInt32(fourth)
            bytes.append(UInt8(truncatingIfNeeded: group >> 16))
            if last && padding == 2 {
                guard group & 0xFFFF == 0 else { return nil }
            } else {
                bytes.append(UInt8(truncatingIfNeeded: group >> 8))
                if last && padding == 1 {
                    guard group & 0xFF == 0 else { return nil }
                } else {
                    bytes.append(UInt8(truncatingIfNeeded: group))
                }
            }
            index += 4
        }
        return bytes
    }

    /// A strict reader of one flat object (RFC 8259 syntax, narrowed as the type says).
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        /// Integers Foundation reads exactly (it reads JSON numbers as doubles).
        static let exactIntegers: UInt64 = 1 << 53

        mutating func object() -> [(name: String, value: Value)]? {
            self.skipWhitespace()
            guard self.take(UInt8(ascii: "{")) else { return nil }
            var fields: [(name: String, value: Value)] = []
            fields.reserveCapacity(4)
            self.skipWhitespace()
            if !self.take(UInt8(ascii: "}")) {
                while true {
                    self.skipWhitespace()
                    guard let name = self.string()?.string, !fields.contains(where: { $0.name == name }) else { return nil }
                    self.skipWhitespace()
                    guard self.take(UInt8(ascii: ":")) else { return nil }
                    self.skipWhitespace()
                    guard let value = self.value() else { return nil }
                    fields.append((name, value))
                    self.skipWhitespace()
                    if self.take(UInt8(ascii: ",")) { continue }
                    guard self.take(UInt8(ascii: "}")) else { return nil }
                    break
                }
            }
            self.skipWhitespace()
            return self.index == self.bytes.count ? fields : nil
        }

        mutating func value() -> Value? {
            guard self.index < self.bytes.count else { return nil }
            switch self.bytes[self.index] {
            case UInt8(ascii: "\""): return self.string().map { .text($0) }
            case UInt8(ascii: "t"): return self.literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return self.literal("false") ? .bool(false) : nil
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return self.integer().map { .integer($0) }
            default: return nil  // an object, an array, null, or not JSON
            }
        }

        /// A string of printable ASCII whose only escape is `\/` (Foundation's JSONSerialization
        /// escapes every slash, and base64 has slashes).
        mutating func string() -> Text? {
            guard self.take(UInt8(ascii: "\"")) else { return nil }
            var start = self.index
            var unescaped: [UInt8] = []  // the string up to `start`, once an escape was seen
            var escaped = false
            while self.index < self.bytes.count {
                let byte = self.bytes[self.index]
                if byte == UInt8(ascii: "\"") {
                    let run = UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index])
                    self.index += 1
                    guard escaped else { return .run(run) }
                    unescaped.append(contentsOf: run)
                    return .unescaped(unescaped)
                }
                guard byte >= 0x20, byte < 0x7F else { return nil }
                if byte == UInt8(ascii: "\\") {
                    guard self.index + 1 < self.bytes.count, self.bytes[self.index + 1] == UInt8(ascii: "/") else { return nil }
                    if !escaped { unescaped.reserveCapacity(self.bytes.count - start) }
                    escaped = true
                    unescaped.append(contentsOf: UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index]))
                    unescaped.append(UInt8(ascii: "/"))
                    self.index += 2
                    start = self.index
                    continue
                }
                self.index += 1
            }
            return nil
        }

        mutating func integer() -> Int64? {
            let negative = self.take(UInt8(ascii: "-"))
            let start = self.index
            var magnitude: UInt64 = 0
            while self.index < self.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self.bytes[self.index]) {
                magnitude = magnitude * 10 + UInt64(self.bytes[self.index] - UInt8(ascii: "0"))
                self.index += 1
                guard magnitude <= Self.exactIntegers else { return nil }
            }
            let digits = self.index - start
            guard digits > 0, digits == 1 || self.bytes[start] != UInt8(ascii: "0") else { return nil }
            if self.index < self.bytes.count {
                let next = self.bytes[self.index]
                guard next != UInt8(ascii: "."), next != UInt8(ascii: "e"), next != UInt8(ascii: "E") else { return nil }
            }
            return negative ? -Int64(magnitude) : Int64(magnitude)
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard self.bytes.count - self.index >= count else { return false }
            for offset in 0..<count where self.bytes[self.index + offset] != word.utf8Start[offset] { return false }
            self.index += count
            return true
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard self.index < self.bytes.count, self.bytes[self.index] == byte else { return false }
            self.index += 1
            return true
        }

        mutating func skipWhitespace() {
            while self.index < self.bytes.count {
                switch self.bytes[self.index] {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): self.index += 1
                default: return
                }
            }
        }
    }
}

/// The fast path's way out: the body goes to the general path.
private struct GiveUp: Error {}

extension ClientAPI {
    /// The request a flat body asks for, and whether a range may be served locally; nil
    /// sends the body to the general path.
    static func flatRequest(_ operation: Operation, _ body: UnsafeRawBufferPointer) -> (KVRequest, Bool)? {
        guard let fields = FlatRequest.fields(body) else { return nil }
        for field in fields where FlatRequest.unsupported.contains(field.name) { return nil }
        func value(_ name: String) -> FlatRequest.Value? { fields.first { $0.name == name }?.value }
        /// Absent: empty (unless required); a string of base64: its bytes.
        func bytes(_ name: String, required: Bool = false) throws(GiveUp) -> [UInt8] {
            guard let value = value(name) else {
                if required { throw GiveUp() }
                return []
            }
            guard case .text(let text) = value, let bytes = text.withBytes(FlatRequest.base64(digits:)) else { throw GiveUp() }
            return bytes
        }
        /// Absent: false.
        func flag(_ name: String) throws(GiveUp) -> Bool {
            guard let value = value(name) else { return false }
            guard case .bool(let flag) = value else { throw GiveUp() }
            return flag
        }
        do throws(GiveUp) {
            switch operation {
            case .put:
                return (.put(key: try bytes("key", required: true), value: try bytes("value"), previous: try flag("prev_kv")), false)
            case .range:
                let limit: Int64
                switch value("limit") {
                case nil: limit = 0
                case .text(let text)?:
                    guard let number = Int64(text.string) else { throw GiveUp() }
                    limit = number
                case .integer(let number)?: limit = number
                case .bool?: throw GiveUp()
                }
                guard limit >= 0 else { throw GiveUp() }
                return (.range(KeyRange(key: try bytes("key", required: true), end: try bytes("range_end")), limit: limit),
                        try flag("serializable"))
            case .deleteRange:
                return (.deleteRange(KeyRange(key: try bytes("key", required: true), end: try bytes("range_end")),
                                     previous: try flag("prev_kv")), false)
            case .txn:
                return nil
            }
        } catch {
            return nil
        }
    }
}
