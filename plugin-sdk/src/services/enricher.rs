//! `switchyard.v1.Enricher`: every item of a batch through
//! [`Enricher::enrich`] at once, each answered as soon as it is done; a
//! failure or panic fails only its own item.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use switchyard_wire::pb::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status, Streaming};

use super::batches::drive_batches;
use super::convert::{enrich_items_from_pb, enrich_responses_to_pb, enrich_result_to_pb};
use super::{MAX_MESSAGE_BYTES, Shared};
use crate::concurrency::run_concurrently;
use crate::error::PluginError;
use crate::role::Enricher;

/// Adds `switchyard.v1.Enricher`, served by `T`, to `routes`.
pub(super) fn add_service<T: Enricher>(routes: &mut RoutesBuilder, shared: &Arc<Shared<T>>) {
    routes.add_service(
        pb::enricher_server::EnricherServer::new(EnrichService(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
}

struct EnrichService<T>(Arc<Shared<T>>);

#[tonic::async_trait]
impl<T: Enricher> pb::enricher_server::Enricher for EnrichService<T> {
    type EnrichStream = ReceiverStream<Result<pb::EnrichResponse, Status>>;

    async fn enrich(
        &self,
        request: Request<Streaming<pb::EnrichRequest>>,
    ) -> Result<Response<Self::EnrichStream>, Status> {
        self.0.instance()?;
        let stream = drive_batches(Arc::clone(&self.0), request.into_inner(), enrich_batch::<T>);
        Ok(Response::new(stream))
    }
}

async fn enrich_batch<T: Enricher>(
    instance: Arc<T>,
    batch: pb::EnrichRequest,
    sender: mpsc::Sender<Result<pb::EnrichResponse, Status>>,
) {
    let instance = &*instance;
    let items = enrich_items_from_pb(batch);
    let count = items.len();
    let items = items.map(|(sequence, record)| async move {
        let Some(record) = record else {
            let error = PluginError::permanent("the enrich item carries no record");
            return enrich_result_to_pb(sequence, Err(error));
        };
        let outcome = match AssertUnwindSafe(instance.enrich(record))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => Err(PluginError::from_panic(&panic)),
        };
        enrich_result_to_pb(sequence, outcome)
    });
    run_concurrently(items, count, |results| {
        let sender = sender.clone();
        async move {
            for response in enrich_responses_to_pb(results) {
                if sender.send(Ok(response)).await.is_err() {
                    return false;
                }
            }
            true
        }
    })
    .await;
}
