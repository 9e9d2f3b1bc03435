//! The driver of the two batch streams, `Enrich` and `HandleEvent`.
//!
//! Each received batch runs on its own task, so batches proceed in parallel
//! on every worker thread; inside a batch every item runs concurrently (see
//! [`crate::concurrency`]) and results are sent as soon as they are ready,
//! coalesced into one response per wake-up.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::Shared;

/// How many received batches of one stream may be in progress at once.
const MAX_BATCHES_IN_FLIGHT: usize = 256;
/// Responses queued per stream before a batch task waits for the network.
const RESPONSE_BUFFER: usize = 256;

/// Reads batches from `inbound` and spawns `handle(instance, batch, sender)`
/// for each, until the client closes its side, the call is cancelled or the
/// plugin shuts down. The response stream ends once every batch has answered.
pub(super) fn drive_batches<T, Req, Resp, H, Fut>(
    shared: Arc<Shared<T>>,
    mut inbound: Streaming<Req>,
    handle: H,
) -> ReceiverStream<Result<Resp, Status>>
where
    T: Send + Sync + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
    H: Fn(Arc<T>, Req, mpsc::Sender<Result<Resp, Status>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(RESPONSE_BUFFER);
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(MAX_BATCHES_IN_FLIGHT));
        loop {
            let next = tokio::select! {
                biased;
                () = shared.shutdown.cancelled() => break,
                () = sender.closed() => break,
                next = inbound.message() => next,
            };
            let batch = match next {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(status = %status, "The hub's side of the stream failed.");
                    break;
                }
            };
            let instance = match shared.instance() {
                Ok(instance) => instance,
                Err(status) => {
                    let _ = sender.send(Err(status)).await;
                    break;
                }
            };
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let work = handle(instance, batch, sender.clone());
            tokio::spawn(async move {
                work.await;
                drop(permit);
            });
        }
    });
    ReceiverStream::new(receiver)
}
