//! go-plugin's own services, which every go-plugin host may call:
//! `plugin.GRPCController` (Shutdown), `plugin.GRPCStdio` and `plugin.GRPCBroker`.

use switchyard_wire::pb::plugin as gp;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{broker_offer_id, empty_to_pb};

/// Adds the Controller, Stdio and Broker services to `routes`; `shutdown` is
/// what Controller.Shutdown cancels and what ends their streams.
pub(super) fn add_services(routes: &mut RoutesBuilder, shutdown: &CancellationToken) {
    routes
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(
            Controller {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(gp::grpc_stdio_server::GrpcStdioServer::new(Stdio {
            shutdown: shutdown.clone(),
        }))
        .add_service(gp::grpc_broker_server::GrpcBrokerServer::new(Broker {
            shutdown: shutdown.clone(),
        }));
}

/// `plugin.GRPCController`: Shutdown starts the plugin's graceful stop.
struct Controller {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _request: Request<gp::Empty>) -> Result<Response<gp::Empty>, Status> {
        tracing::debug!("The host asked the plugin to shut down.");
        self.shutdown.cancel();
        Ok(Response::new(empty_to_pb()))
    }
}

/// A response stream that sends nothing and stays open until the client goes
/// away or the plugin shuts down.
fn hold_open<M: Send + 'static>(shutdown: CancellationToken) -> ReceiverStream<Result<M, Status>> {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = sender.closed() => {}
        }
    });
    ReceiverStream::new(receiver)
}

/// `plugin.GRPCStdio`: Rust plugins log on the real stderr (and stdout carries
/// only the handshake), so there is nothing to forward; the stream is held open.
struct Stdio {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = ReceiverStream<Result<gp::StdioData, Status>>;

    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(hold_open(self.shutdown.clone())))
    }
}

/// `plugin.GRPCBroker`: Switchyard needs no sub-connections; the stream is
/// accepted, drained and held open so Go hosts are content.
struct Broker {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = ReceiverStream<Result<gp::ConnInfo, Status>>;

    async fn start_stream(
        &self,
        request: Request<Streaming<gp::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    message = inbound.message() => match message {
                        Ok(Some(offer)) => tracing::debug!(service_id = broker_offer_id(&offer), "Ignored a broker offer."),
                        Ok(None) | Err(_) => break,
                    },
                }
            }
        });
        Ok(Response::new(hold_open(self.shutdown.clone())))
    }
}
