//! The HTTP side: the two paths a request may take and what they share.
//!
//! [`fast`] serves plain HTTP/1.1 keep-alive requests on raw bytes; the
//! [`hyper`] path serves everything else (HTTP/2, upgrades, streamed
//! uploads, odd heads) on hyper's types. Both read the same [`Handler`]
//! (the live snapshot, the overload guard, the access log), know the client
//! through the same [`Client`], and call the same core
//! ([`crate::forward`]) to pick endpoints, retry and answer.

mod client;
pub mod external_auth;
pub mod fast;
pub mod h2;
mod handler;
pub mod headers;
pub mod hyper;
mod tunnels;

pub(crate) use client::https_redirect;
pub use client::{valid_host, Client};
pub use handler::{Handler, InFlightRequest};
pub use tunnels::Tunnels;
