//! Gateway API's RequestMirror: a copy of the request, as its own upstream
//! gets it, sent to each mirror on a task of its own. Fire and forget: the
//! mirror's answer is read (its first MiB) and dropped, its failures are
//! logged at debug level and counted (`sluice_mirrored_requests_total`),
//! and nothing of it ever
//! holds the client's answer back (a body is copied as the request's own
//! upstream reads it, and a mirror that falls behind is cut off:
//! [`crate::client_body::Teed`]). Bounded: a mirror has at most
//! [`crate::routing::MIRRORS_IN_FLIGHT`] copies in flight (a request is
//! not copied past that), each for at most a minute.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Request, Version};
use http_body::Body;
use tokio::sync::OwnedSemaphorePermit;

use super::{headers, Client};
use crate::client_body::{ClientBody, Teed};
use crate::forward::{Attempts, Pick};
use crate::routing::Route;
use crate::upstream::pool;
use crate::upstream::Upstream;

/// Starts the route's mirrors drawn for this request. `req` is the request
/// about to go to its own upstream, rewritten as the route says; its body
/// is teed when it has one. Upgrades (WebSocket) are not mirrored.
pub(super) fn start(
    route: &Arc<Route>,
    req: &mut Request<ClientBody>,
    conn: &Client,
    client: IpAddr,
) {
    if req.headers().contains_key(header::UPGRADE) {
        return;
    }
    let to: Vec<(Arc<Upstream>, OwnedSemaphorePermit)> = route
        .mirrors
        .iter()
        .filter_map(|m| match m.draw()? {
            Ok(slot) => Some((m.upstream.clone(), slot)),
            Err(()) => {
                route.metrics.mirrored("skipped");
                None
            }
        })
        .collect();
    if to.is_empty() {
        return;
    }
    // One request id for the request and its copies.
    headers::ensure_request_id(req.headers_mut());
    // What every copy is sent as: origin form, HTTP/1.1 (a new
    // `Request`'s), the headers as the request's own upstream gets them.
    let uri: http::Uri = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse()
        .expect("a path");
    let mut h = req.headers().clone();
    headers::strip_hop_by_hop(&mut h);
    if req.version() == Version::HTTP_2 {
        headers::join_cookies(&mut h);
    }
    super::forwarding(&mut h, req.uri().authority(), conn, client);
    headers::apply_edits(&mut h, &route.headers);
    let bodies = if req.body().is_end_stream() {
        (0..to.len()).map(|_| ClientBody::Empty).collect()
    } else {
        let body = std::mem::replace(req.body_mut(), ClientBody::Empty);
        let (teed, copies) = Teed::split(body, to.len());
        *req.body_mut() = teed;
        copies
    };
    for ((upstream, slot), body) in to.into_iter().zip(bodies) {
        let mut copy = Request::new(body);
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = uri.clone();
        *copy.headers_mut() = h.clone();
        let route = route.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let name = route.name.clone();
            let metrics = route.metrics.clone();
            match tokio::time::timeout(DEADLINE, send(route, upstream, copy, client)).await {
                Ok(true) => metrics.mirrored("answered"),
                Ok(false) => metrics.mirrored("failed"),
                Err(_) => {
                    tracing::debug!(route = %name, "mirrored request cut off at its deadline");
                    metrics.mirrored("failed");
                }
            }
        });
    }
}

/// The longest a copy may take, its answer read: a mirror is never waited
/// for, and must not hold a connection and a slot for ever.
const DEADLINE: Duration = Duration::from_secs(60);

/// How much of a mirror's answer is read (so that its connection may be
/// used again); past it, the connection is dropped instead.
const READ_AT_MOST: usize = 1 << 20;

/// Sends one copy to one endpoint of the mirror, and reads its answer to
/// the end (so that its connection may be used again), dropping it.
/// Whether it was answered.
async fn send(
    route: Arc<Route>,
    upstream: Arc<Upstream>,
    req: Request<ClientBody>,
    client: IpAddr,
) -> bool {
    let limits = super::send_limits(&route, &upstream, false, false);
    let mut attempts = Attempts::start(&route, &upstream, client, false, None);
    let Some(Pick {
        endpoint,
        in_flight,
    }) = attempts.next()
    else {
        tracing::debug!(route = %route.name, mirror = %upstream.name, "mirror has no endpoint");
        return false;
    };
    let addr = endpoint.addr;
    match pool::send(endpoint, req, limits).await {
        Ok(resp) => {
            let mut body = crate::upstream::ResponseBody::upstream(
                resp.into_body(),
                in_flight,
                route.timeouts.response_header,
            );
            let mut read = 0;
            while let Some(frame) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
            {
                match frame {
                    Ok(f) => {
                        read += f.data_ref().map_or(0, |d| d.len());
                        if read > READ_AT_MOST {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            true
        }
        Err(e) => {
            tracing::debug!(route = %route.name, mirror = %upstream.name, endpoint = %addr, error = ?e, "mirrored request failed");
            false
        }
    }
}
