/// A small JSON writer for the API's responses: objects with sorted keys, arrays, strings,
/// booleans and integers. Foundation's JSONSerialization spends most of its time in dynamic
/// casts (measured: a fifth of a leader's CPU under load); responses here are a closed set of
/// shapes, written directly into bytes.
enum JSONValue {
    case string(String)
    case bool(Bool)
    case integer(Int64)
    case array([JSONValue])
    /// Fields written in key order: sorted here unless they come sorted.
    case object([(String, JSONValue)])
    /// A string holding these bytes in base64 (with padding, as Foundation writes it),
    /// written without an intermediate `Data` or `String`.
    case base64([UInt8])
    /// JSON already written (by `JSONObjectWriter`, say), copied as it is.
    case raw([UInt8])

    func write(into bytes: inout [UInt8]) {
        switch self {
        case .string(let text):
            Self.writeString(text, into: &bytes)
        case .bool(let flag):
            bytes.append(contentsOf: flag ? "true".utf8 : "false".utf8)
        case .integer(let number):
            bytes.append(contentsOf: String(number).utf8)
        case .array(let values):
            bytes.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                value.write(into: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let fields):
            bytes.append(UInt8(ascii: "{"))
            let isSorted = fields.indices.dropFirst().allSatisfy { fields[$0 - 1].0 < fields[$0].0 }
            for (index, field) in (isSorted ? fields : fields.sorted(by: { $0.0 < $1.0 })).enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                Self.writeString(field.0, into: &bytes)
                bytes.append(UInt8(ascii: ":"))
                field.1.write(into: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        case .base64(let data):
            bytes.append(UInt8(ascii: "\""))
            Self.writeBase64(data, into: &bytes)
            bytes.append(UInt8(ascii: "\""))
        case .raw(let json):
            bytes.append(contentsOf: json)
        }
    }

    static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// RFC 4648 base64 with `=` padding and no line breaks.
    static func writeBase64(_ data: [UInt8], into bytes: inout [UInt8]) {
        bytes.reserveCapacity(bytes.count + (data.count + 2) / 3 * 4)
        let alphabet = Self.base64Alphabet
        var index = 0
        while index + 3 <= data.count {
            let group = UInt32(data[index]) << 16 | UInt32(data[index + 1]) << 8 | UInt32(data[index + 2])
            bytes.append(alphabet[Int(group >> 18 & 63)])
            bytes.append(alphabet[Int(group >> 12 & 63)])
            bytes.append(alphabet[Int(group >> 6 & 63)])
            bytes.append(alphabet[Int(group & 63)])
            index += 3
        }
        switch data.count - index {
        case 1:
            let group = UInt32(data[index]) << 16
            bytes.append(alphabet[Int(group >> 18 & 63)])
            bytes.append(alphabet[Int(group >> 12 & 63)])
            bytes.append(UInt8(ascii: "="))
            bytes.append(UInt8(ascii: "="))
        case 2:
            let group = UInt32(data[index]) << 16 | UInt32(data[index + 1]) << 8
            bytes.append(alphabet[Int(group >> 18 & 63)])
            bytes.append(alphabet[Int(group >> 12 & 63)])
            bytes.append(alphabet[Int(group >> 6 & 63)])
            bytes.append(UInt8(ascii: "="))
        default:
            break
        }
    }

    static func writeString(_ text: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A number as a JSON string (etcd's gateway writes 64-bit numbers so).
    static func writeQuoted(_ number: some BinaryInteger, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: String(number).utf8)
        bytes.append(UInt8(ascii: "\""))
    }

    var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        self.write(into: &bytes)
        return bytes
    }
}

/// Writes one object's braces and field names straight into bytes, for answers whose shape is
/// fixed: the caller names the fields in key order (as `JSONValue.object` would sort them) and
/// writes each value after its name.
struct JSONObjectWriter {
    private(set) var isEmpty = true

    init(into bytes: inout [UInt8]) { bytes.append(UInt8(ascii: "{")) }

    /// A comma unless it is the first field, then `"name":` (names are plain ASCII, written as given).
    mutating func field(_ name: StaticString, into bytes: inout [UInt8]) {
        if !self.isEmpty { bytes.append(UInt8(ascii: ",")) }
        self.isEmpty = false
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    func end(into bytes: inout [UInt8]) { bytes.append(UInt8(ascii: "}")) }
}
