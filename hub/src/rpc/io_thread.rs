//! One thread per plugin connection, running a single-threaded tokio runtime
//! that owns the connection's socket and every task of its gRPC channel
//! (tonic's buffer worker, hyper's HTTP/2 connection task and its request
//! body pipes).
//!
//! Why: on the hub's multi-threaded runtime those tasks and the socket's
//! readiness events wander between the worker threads, and a call's round
//! trip pays several cross-thread wake-ups (futex and eventfd, each a
//! scheduler hop of tens of microseconds on a busy machine). Here a request
//! crosses threads once on its way out (the caller hands it to the
//! connection's thread) and a response once on its way back, and everything
//! in between (encoding, HTTP/2 framing, the socket) stays on one thread.
//! See docs/benchmarks.md, "Where a call's time goes".
//!
//! The thread ends by itself: the runtime lives while any clone of the
//! [`IoExecutor`] does (the channel and its connection hold them); once the
//! last one is dropped the thread returns and the runtime, with anything left
//! on it, is dropped.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Spawns a connection's tasks on its own thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct IoExecutor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    handle: Handle,
    /// Dropped with the last executor: ends the thread.
    _stop: oneshot::Sender<()>,
}

impl IoExecutor {
    /// Starts the thread (named `name`, as shown by `top -H` and in
    /// profiles) and its runtime.
    pub fn start(name: &str) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Resolves when the last executor is dropped.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(IoExecutor {
            inner: Arc::new(Inner {
                handle,
                _stop: stop,
            }),
        })
    }

    /// Runs `future` on the connection's thread and waits for its result
    /// (to open the socket there, so its readiness events reach that
    /// thread's reactor, and to run a whole call there). Dropping the
    /// returned future cancels `future` too, as if it ran in the caller.
    pub async fn run<F>(&self, future: F) -> std::io::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut task = AbortOnDrop(self.inner.handle.spawn(future));
        (&mut task.0).await.map_err(|error| {
            std::io::Error::other(format!("the connection thread failed: {error}"))
        })
    }
}

impl<F> hyper::rt::Executor<F> for IoExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        // The task keeps the runtime alive as long as it runs.
        let keep = self.clone();
        self.inner.handle.spawn(async move {
            future.await;
            drop(keep);
        });
    }
}

/// Aborts the task when the caller stops waiting for it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_futures_on_its_own_thread_and_ends_with_the_last_clone() {
        let executor = IoExecutor::start("sy-test-io").unwrap();
        let name = executor
            .run(async { std::thread::current().name().map(str::to_owned) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("sy-test-io"));
        let (done, finished) = oneshot::channel();
        hyper::rt::Executor::execute(&executor, async move {
            let _ = done.send(std::thread::current().name().map(str::to_owned));
        });
        assert_eq!(finished.await.unwrap().as_deref(), Some("sy-test-io"));
        // A call whose caller stops waiting is cancelled on the thread too.
        let (held, released) = oneshot::channel::<()>();
        let waiting = executor.run(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), waiting)
                .await
                .is_err()
        );
        assert!(released.await.is_err(), "the abandoned call was dropped");
        let handle = executor.inner.handle.clone();
        drop(executor);
        // Once the thread has returned, the runtime is gone and spawning fails.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let probe = handle.spawn(async {});
            if probe.await.is_err() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the thread never ended"
            );
            tokio::task::yield_now().await;
        }
    }
}
