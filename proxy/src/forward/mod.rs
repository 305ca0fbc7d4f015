//! The request-handling core both HTTP paths call: which endpoint to try
//! and what each outcome means ([`Attempts`]), the answers the proxy makes
//! itself ([`Answer`]); the proxying rules it applies are [`crate::policy`].
//!
//! It knows nothing of either path. The hyper path (`proxy`) works on
//! header maps and hyper's client, the fast path (`fast`) on bytes and raw
//! sockets; both ask this module what to do and render its answers their
//! own way, so a rule written here holds on both. `sticky` is cookie
//! affinity's endpoint order, which `Attempts` follows on such routes.

pub mod access;
mod answer;
mod attempt;
pub mod cors;
pub mod external_auth;
pub mod sticky;

pub use answer::{is_grpc, Answer, GrpcCode, HostError};
pub use attempt::{Attempts, Failure, Pick, Verdict};

/// Why the overload guard refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// `limits.max_in_flight` requests were in flight.
    InFlight,
    /// The process's memory was past `limits.max_memory`.
    Memory,
}

impl Overload {
    /// The reason label of `sluice_requests_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Overload::InFlight => "overload",
            Overload::Memory => "memory",
        }
    }
}
