/// A bound on what a JSON body costs to parse, checked in one pass over its bytes before any
/// parser builds objects from it: nesting depth, elements per array, and values (object keys
/// included) in the whole body. A transaction of 30,000 operations, or an object of 300,000
/// members, is refused after reading its bytes once, never parsed into that many objects on
/// the node's event loop.
public enum RequestShape {
    /// What is wrong with a body's shape.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        /// Nested deeper than allowed.
        case tooDeep(limit: Int)
        /// An array with more elements than allowed (transaction operations, comparisons).
        case tooManyElements(limit: Int)
        /// More values and keys in the body than allowed.
        case tooManyValues(limit: Int)

        public var description: String {
            switch self {
            case .tooDeep(let limit): "the JSON body nests deeper than \(limit) levels"
            case .tooManyElements(let limit): "a list in the body holds more than \(limit) entries (the limit on transaction operations)"
            case .tooManyValues(let limit): "the JSON body holds more than \(limit) values and keys"
            }
        }
    }

    /// The bounds the client API applies: depth 8 (an etcd transaction needs 4), 128 elements
    /// per list (the transaction limit), 16,384 values (a transaction of three full lists needs
    /// about 4,000).
    public static let clientAPI = (maximumDepth: 8, maximumValues: 16_384)

    /// Checks `bytes` without parsing them; malformed JSON passes (the parser refuses it
    /// next), only the costly shapes are refused.
    public static func check(
        _ bytes: UnsafeRawBufferPointer, maximumDepth: Int, maximumArrayElements: Int, maximumValues: Int = .max
    ) -> Problem? {
        // Per open container: -1 for an object, else the elements seen so far in an array.
        var stack: [Int] = []
        stack.reserveCapacity(maximumDepth)
        var inString = false
        var escaped = false
        // A value (or key) may start here: at the beginning, after [ { , and :.
        var expectingValue = true
        var values = 0
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                continue
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                _ = stack.popLast()
                expectingValue = false
                continue
            case UInt8(ascii: ","):
                if let top = stack.last, top >= 0 {
                    stack[stack.count - 1] = top + 1
                    if top + 1 > maximumArrayElements { return .tooManyElements(limit: maximumArrayElements) }
                }
                expectingValue = true
                continue
            case UInt8(ascii: ":"):
                expectingValue = true
                continue
            default:
                break
            }
            // The start of a value or key, or the middle of a number or literal.
            if expectingValue {
                values += 1
                if values > maximumValues { return .tooManyValues(limit: maximumValues) }
                expectingValue = false
            }
            // An array's first element counts here.
            if let top = stack.last, top == 0 { stack[stack.count - 1] = 1 }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                guard stack.count < maximumDepth else { return .tooDeep(limit: maximumDepth) }
                stack.append(byte == UInt8(ascii: "[") ? 0 : -1)
                expectingValue = true
            default:
                break
            }
        }
        return nil
    }
}
