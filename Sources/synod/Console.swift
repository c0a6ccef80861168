#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Standard output and standard error that never trap: a write that fails (a full log disk, a
/// closed pipe) is dropped, and the exit status still says what happened. (Foundation's
/// `FileHandle.write` traps on a failed write, turning an error exit into a crash.)
enum Console {
    /// Writes `text` to standard error.
    static func error(_ text: String) { Self.write(2, text) }

    /// Writes `text` to standard output.
    static func out(_ text: String) { Self.write(1, text) }

    private static func write(_ descriptor: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return }
            written += count
        }
    }
}
