import NIOCore

/// Runs Swift tasks on one NIO event loop: with `withTaskExecutorPreference(executor)`, the
/// HTTP server's connection and request tasks (children of the task that runs the server)
/// execute on the node's own thread instead of Swift's global pool. A request then goes from
/// the socket to the core and its answer back to the socket without waking another thread; on
/// the global pool it crossed threads four times (socket to handler, handler to core, answer
/// to handler, response to socket), each a wake-up and a context switch.
///
/// Nothing that runs there may block: the request handlers only parse, hand the request to the
/// node and suspend until it answers.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let loop: any EventLoop

    public init(_ loop: any EventLoop) {
        self.loop = loop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.loop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
