//! A local axum server for the toolkit's tests (127.0.0.1, ephemeral port),
//! and small helpers shared by them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;

/// A running test server; dropped with the test's runtime.
pub(crate) struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
}

/// Serves `router` on an ephemeral local port.
pub(crate) async fn serve(router: Router) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.ok();
    });
    TestServer {
        url: format!("http://{address}"),
    }
}

/// A shared counter of requests seen by a handler.
#[derive(Clone, Default)]
pub(crate) struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// Counts one and returns the new count.
    pub(crate) fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The count so far.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Waits (up to 10 s) until `condition` holds.
pub(crate) async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Decodes a JSON config for the toolkit, panicking with the errors.
pub(crate) fn config<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    crate::decode_config(json.to_string().as_bytes()).unwrap_or_else(|errors| panic!("{errors}"))
}
