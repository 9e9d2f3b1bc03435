//! Running many futures of one batch at once: every enrich item of a batch,
//! every event of an output batch (the default [`Output::handle_batch`]).
//!
//! Used by the role traits' default methods and by the gRPC services alike,
//! so it lives outside `services/` and knows nothing of gRPC.
//!
//! [`Output::handle_batch`]: crate::Output::handle_batch

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

/// Runs `futures` concurrently and hands their outputs to `flush` as they
/// finish, everything that finished in one wake-up at once; stops early when
/// `flush` answers false (nobody is listening any more).
///
/// Futures are started in order and polled once in place: as long as they
/// finish on that first poll (a synchronous enricher, an output that acks at
/// once) nothing is allocated per item. From the first one that waits on,
/// that one is driven in place and the rest in a [`FuturesUnordered`], so
/// waiting items never hold up the others.
pub(crate) async fn run_concurrently<I, O, Flush, Flushed>(
    futures: I,
    capacity: usize,
    mut flush: Flush,
) where
    I: IntoIterator,
    I::Item: Future<Output = O>,
    Flush: FnMut(Vec<O>) -> Flushed,
    Flushed: Future<Output = bool>,
{
    let mut futures = futures.into_iter();
    let mut ready = Vec::with_capacity(capacity);
    while let Some(future) = futures.next() {
        let mut future = std::pin::pin!(future);
        match std::future::poll_fn(|context| Poll::Ready(future.as_mut().poll(context))).await {
            Poll::Ready(output) => ready.push(output),
            Poll::Pending => {
                let rest: FuturesUnordered<I::Item> = futures.collect();
                drive_waiting(future, rest, ready, flush).await;
                return;
            }
        }
    }
    if !ready.is_empty() {
        flush(ready).await;
    }
}

/// The second half of [`run_concurrently`]: flushes what is `ready`, then
/// drives `first` (pinned in the caller's frame) and `rest` until all finish.
async fn drive_waiting<F, O, Flush, Flushed>(
    mut first: Pin<&mut F>,
    mut rest: FuturesUnordered<F>,
    mut ready: Vec<O>,
    mut flush: Flush,
) where
    F: Future<Output = O>,
    Flush: FnMut(Vec<O>) -> Flushed,
    Flushed: Future<Output = bool>,
{
    let mut first_done = false;
    loop {
        if !ready.is_empty() && !flush(std::mem::take(&mut ready)).await {
            return;
        }
        if first_done && rest.is_empty() {
            return;
        }
        std::future::poll_fn(|context| {
            if !first_done && let Poll::Ready(output) = first.as_mut().poll(context) {
                ready.push(output);
                first_done = true;
            }
            while let Poll::Ready(Some(output)) = rest.poll_next_unpin(context) {
                ready.push(output);
            }
            if ready.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}
