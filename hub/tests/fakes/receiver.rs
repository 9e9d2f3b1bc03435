//! A webhook receiver that verifies Standard Webhooks signatures with the
//! official `standardwebhooks` crate: 204 for a valid POST, 401 otherwise.
//! For the `http-output` plugin's conformance run.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// A running receiver; stopped when dropped.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`, the `url` to configure.
    pub url: String,
    /// Every verified body.
    pub bodies: Arc<Mutex<Vec<Value>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Shared = (Arc<standardwebhooks::Webhook>, Arc<Mutex<Vec<Value>>>);

impl Receiver {
    /// Starts a receiver verifying with `secret` (`whsec_…`).
    pub fn start(secret: &str) -> Receiver {
        let webhook = Arc::new(standardwebhooks::Webhook::new(secret).unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state: Shared = (webhook, Arc::clone(&bodies));
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new()
                    .route("/hook", post(receive))
                    .with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Receiver {
            url,
            bodies,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn receive(
    State((webhook, bodies)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if webhook.verify(&body, &headers).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    match serde_json::from_slice(&body) {
        Ok(value) => {
            bodies.lock().unwrap().push(value);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}
