//! What the proxy writes besides the answers it passes on: the access
//! log's format (`access_log`) and the `Server` header (`server_header`).

use super::Validator;
use crate::config::raw::RawConfig;
use crate::spec::ServerHeader;

impl Validator {
    pub(super) fn access_log(&mut self, raw: &RawConfig) -> crate::access_log::Format {
        match raw.access_log.as_deref().map(str::parse) {
            None => crate::access_log::Format::default(),
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                self.error("access_log", e);
                crate::access_log::Format::default()
            }
        }
    }

    pub(super) fn server_header(&mut self, raw: &RawConfig) -> ServerHeader {
        match raw.server_header.as_deref().map(str::trim) {
            None | Some("add") => ServerHeader::Add,
            Some("pass") => ServerHeader::Pass,
            Some("off") => ServerHeader::Off,
            Some(other) => {
                self.error(
                    "server_header",
                    format!("{other:?} is not add, pass or off"),
                );
                ServerHeader::Add
            }
        }
    }
}
