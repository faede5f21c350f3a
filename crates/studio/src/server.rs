//! The HTTP server around the router, with the limits that keep it answering under slow or
//! hostile clients. Everything here is hyper's and tower's, only put together:
//!
//! - **at most `max_connections` connections** at once: a semaphore permit is taken *before*
//!   each `accept`, so beyond the maximum new connections wait in the kernel's listen queue
//!   instead of costing a file handle each (the app's listener queues 4,096: tokio's default
//!   of 1,024 dropped the handshakes of later ones under a flood);
//! - **header read timeout** (hyper's `http1::Builder::header_read_timeout`): a connection
//!   whose request head is not complete in time is closed. Hyper starts that clock whenever
//!   it waits for a request head, from the connection's opening or from the end of the
//!   previous response, so it is also the idle timeout of kept-alive connections;
//! - **request timeout** (tower-http's `TimeoutLayer`): a request (its body included) not
//!   answered in time gets 408, as our JSON error.
//!
//! Upgraded connections (the self-hosted connector's WebSocket) leave the count when they
//! upgrade: they are not HTTP any more and have their own heartbeat.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// The server's limits (`http.*` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Time a client has to send a complete request head; also how long a kept-alive
    /// connection may wait for its next request.
    pub header_read_timeout: Duration,
    /// Time a request (its body included) may take before it is answered 408.
    pub request_timeout: Duration,
}

impl Default for ServerLimits {
    /// 1024 connections, 10 s for a request head (and idle), 60 s per request.
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Serve `app` on `listener` within `limits` until `shutdown` completes; then stop accepting,
/// let open connections finish their requests, and return.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let app = app
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::map_response(crate::error::json_error_body));
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file handles and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = app.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            req
        });
        let conn = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .with_upgrades();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let stopping = tokio::select! {
                _ = conn.as_mut() => false,
                r = stop.wait_for(|s| *s) => r.is_ok(),
            };
            if stopping {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it is done: having them all means all are done.
    let _ = permits.acquire_many(max as u32).await;
    Ok(())
}
