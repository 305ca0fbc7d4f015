//! Support for the behaviour tests: backends, the `sluice` binary, clients
//! and deadlines. Every server binds 127.0.0.x with port 0 and reports the
//! port it got (sluice prints its own), or, where a port must be named
//! before a program starts, a port the OS just handed out; every wait has a
//! deadline.
//!
//! One module per kind of thing; everything a test uses is re-exported
//! here, so a test file starts with `use sluice_integration::*;`.

mod backend;
mod client;
mod ports;
mod programs;
mod raw_backend;
mod raw_client;
mod reload;
mod sluice;
mod tcp_queues;
mod temp_dir;
mod wait;

pub mod cluster;
pub mod corpus;
pub mod grpc;
pub mod kube_api;
pub mod report;
pub mod tls;

pub use backend::Backend;
pub use client::{body, client, empty, get, get_as, get_host, h2c, request, Body, Connection};
pub use ports::{blackhole, dead, free_addr, free_addrs, stable_addr, Blackhole, Dead};
pub use programs::{deploy_bin, run, sluice_bin, workspace_root};
pub use raw_backend::{RawAnswer, RawBackend, RawConn, Shared};
pub use raw_client::{read_until, until_closed, Received};
pub use reload::{fill, generation, reload_to, replace_file};
pub use sluice::{hyper_only, Sluice, ANY_PORT};
pub use tcp_queues::{tcp_queues, unread, TcpQueues};
pub use temp_dir::TempDir;
pub use wait::wait_until;
