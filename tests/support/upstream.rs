//! Fake upstream APIs for connector tests: an axum router served on an
//! ephemeral loopback port from a background thread with its own runtime,
//! so blocking tests can use it.

use std::net::SocketAddr;

/// A running fake upstream; the server stops when the test process exits.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
}

/// Serves `router` on `127.0.0.1:0` from a background thread.
///
/// # Panics
/// When no loopback port can be bound or the runtime cannot start.
pub fn serve(router: axum::Router) -> Upstream {
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener,
        Err(err) => panic!("cannot bind a loopback port for a fake upstream: {err}"),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => panic!("no local address: {err}"),
    };
    if let Err(err) = listener.set_nonblocking(true) {
        panic!("cannot make the listener non-blocking: {err}");
    }
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => panic!("cannot start a runtime for a fake upstream: {err}"),
        };
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(err) => panic!("cannot adopt the listener: {err}"),
            };
            axum::serve(listener, router).await.ok();
        });
    });
    Upstream {
        url: format!("http://{addr}"),
        addr,
    }
}
