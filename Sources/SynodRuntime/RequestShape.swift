/// A bound on what a JSON body costs to parse, checked in one pass over its bytes before any
/// parser builds objects from it: nesting depth and elements per array. A transaction of 30,000
/// operations is refused after reading its bytes once, never parsed into 30,000 dictionaries
/// on the node's event loop.
public enum RequestShape {
    /// What is wrong with a body's shape.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        /// Nested deeper than allowed.
        case tooDeep(limit: Int)
        /// An array with more elements than allowed (transaction operations, comparisons).
        case tooManyElements(limit: Int)

        public var description: String {
            switch self {
            case .tooDeep(let limit): "the JSON body nests deeper than \(limit) levels"
            case .tooManyElements(let limit): "a list in the body holds more than \(limit) entries (the limit on transaction operations)"
            }
        }
    }

    /// Checks `bytes` without parsing them; malformed JSON passes (the parser refuses it
    /// next), only the costly shapes are refused.
    public static func check(_ bytes: UnsafeRawBufferPointer, maximumDepth: Int, maximumArrayElements: Int) -> Problem? {
        // Per open container: -1 for an object, else the elements seen so far in an array.
        var stack: [Int] = []
        stack.reserveCapacity(maximumDepth)
        var inString = false
        var escaped = false
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
                continue
            case UInt8(ascii: ","):
                if let top = stack.last, top >= 0 {
                    stack[stack.count - 1] = top + 1
                    if top + 1 > maximumArrayElements { return .tooManyElements(limit: maximumArrayElements) }
                }
                continue
            default:
                break
            }
            // The start of a value (or of a key, or the middle of a number or literal): an
            // empty array's first element counts here.
            if let top = stack.last, top == 0 { stack[stack.count - 1] = 1 }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                guard stack.count < maximumDepth else { return .tooDeep(limit: maximumDepth) }
                stack.append(byte == UInt8(ascii: "[") ? 0 : -1)
            default:
                break
            }
        }
        return nil
    }
}
