//! HTTP/2 sends: one multiplexed connection per endpoint, shared by every
//! request to it and made when there is none or it closed.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::oneshot;

use super::{response_within, unsent, ConnectError, SendError, SendLimits};
use crate::upstream::endpoint::Endpoint;
use crate::upstream::transport;
use crate::upstream::upload::RequestBody;

/// Sends over the endpoint's shared connection, made first when there is
/// none or it closed.
pub(super) async fn send(
    endpoint: &Arc<Endpoint>,
    req: Request<RequestBody>,
    mut upload: Option<oneshot::Receiver<()>>,
    limits: SendLimits,
) -> Result<Response<Incoming>, SendError> {
    let mut sender = match endpoint.pool.shared_h2() {
        Some(s) => s,
        None => {
            let stream =
                match transport::connect(endpoint.addr, endpoint.tls.as_deref(), limits.connect)
                    .await
                {
                    Ok(s) => s,
                    Err(e) => return Err(unsent(req, e)),
                };
            let (sender, conn) = match http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(stream))
                .await
            {
                Ok(x) => x,
                Err(e) => return Err(unsent(req, ConnectError::Handshake(e))),
            };
            crate::upstream::drivers::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended");
                }
            });
            endpoint.pool.share_h2(sender.clone());
            sender
        }
    };
    // Waits for a free stream when the upstream's concurrency limit is
    // reached: bounded like the response headers are.
    match tokio::time::timeout(limits.response_header, sender.ready()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(unsent(req, ConnectError::closed())),
        Err(_) => return Err(SendError::Timeout(limits.response_header)),
    }
    let sent = sender.try_send_request(req);
    match response_within(sent, &mut upload, limits.response_header).await? {
        Ok(resp) => Ok(resp),
        Err(mut e) => match e.take_message() {
            Some(r) => Err(unsent(r, ConnectError::Handshake(e.into_error()))),
            None => Err(SendError::Upstream(e.into_error())),
        },
    }
}
