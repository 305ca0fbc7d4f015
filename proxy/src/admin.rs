//! The admin listener: health, readiness, metrics and the live routing
//! table. It has its own port, is never a route target, and is meant to be
//! reachable from the cluster only (never through the LoadBalancer).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::routing::Live;

/// What the admin endpoints read.
pub struct AdminState {
    pub table: Live,
    pub metrics: Arc<Metrics>,
    /// Set once the first table is live and listeners are bound; cleared
    /// when draining, so the LoadBalancer stops sending new connections.
    pub ready: AtomicBool,
}

/// Serves the admin endpoints until the task is dropped; its connections,
/// each in a task it owns, end with it.
///
/// A request head must arrive within `header_timeout` (the traffic
/// listeners' `timeouts.request_header`): the admin port is reachable from
/// the whole cluster, and a client that opens connections and sends half a
/// head would otherwise hold each one, and its task, for ever.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, header_timeout: Duration) {
    let local = listener.local_addr().ok();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let http = Arc::new(http);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            // Finished connections are reaped as they end.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: said, then a short
                // pause rather than a spin on an error that persists.
                tracing::warn!(listener = %crate::logfmt::OptAddr(local), error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let state = state.clone();
        let http = http.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req)) }
            });
            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn text(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn handle(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n", PLAIN);
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n", PLAIN),
        "/readyz" => {
            if state.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ready\n", PLAIN)
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n", PLAIN)
            }
        }
        "/metrics" => {
            update_endpoint_gauges(state);
            text(
                StatusCode::OK,
                state.metrics.encode(),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        }
        "/routes" => {
            let view = state.table.load().describe();
            match serde_json::to_vec_pretty(&view) {
                Ok(json) => text(StatusCode::OK, json, "application/json"),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot encode routes\n",
                    PLAIN,
                ),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz, /metrics or /routes\n",
            PLAIN,
        ),
    }
}

/// Endpoint health changes without a rebuild, so the gauge is filled from
/// the live table at scrape time.
fn update_endpoint_gauges(state: &AdminState) {
    let snap = state.table.load();
    let g = &state.metrics.upstream_endpoints;
    g.reset();
    for r in snap.all_routes() {
        let ejected = r
            .upstream
            .endpoints
            .iter()
            .filter(|e| e.is_ejected())
            .count() as i64;
        let total = r.upstream.endpoints.len() as i64;
        g.with_label_values(&[&*r.name, "healthy"])
            .set(total - ejected);
        g.with_label_values(&[&*r.name, "ejected"]).set(ejected);
    }
}
