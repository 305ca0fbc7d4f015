//! An Ingress's access annotations made into a route's [`Access`]: its
//! address ranges as parsed, and its basic authentication with the users
//! of the Secret it names. A Secret that is missing, or holds no usable
//! user, denies the route (503) rather than open it: ingress-nginx does
//! the same. External authentication (`auth-url`) and CORS are made
//! from their notes; an `auth-url` that cannot be honoured denies too.

use std::sync::Arc;

use http::HeaderValue;

use super::routes::Backends;
use crate::discovery::annotations::AccessNotes;
use crate::spec::{Access, BasicAuth, Htpasswd};

/// ingress-nginx's realm when `auth-realm` is not given.
const DEFAULT_REALM: &str = "Authentication Required";

impl Backends<'_> {
    /// The route's access, or why it is denied.
    pub(super) fn access(&self, ns: &str, notes: &AccessNotes) -> Result<Access, String> {
        if let Some(why) = &notes.denied {
            return Err(why.clone());
        }
        let basic = if notes.basic {
            let Some(secret) = &notes.secret else {
                return Err("auth-type: basic without auth-secret".into());
            };
            let (sns, sname) = secret.resolve(ns);
            let Some(found) = self.secret(&sns, &sname) else {
                return Err(format!("auth-secret {sns}/{sname}: not found"));
            };
            let data = found.data.as_ref();
            let users = if notes.secret_is_map {
                let entries: Vec<(&str, &str)> = data
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(&v.0).ok()?)))
                    .collect();
                Htpasswd::from_map(entries)
            } else {
                let Some(file) = data.and_then(|d| d.get("auth")) else {
                    return Err(format!("auth-secret {sns}/{sname}: lacks the key auth"));
                };
                let text = std::str::from_utf8(&file.0)
                    .map_err(|_| format!("auth-secret {sns}/{sname}: auth is not text"))?;
                Htpasswd::parse(text)
            }
            .map_err(|e| format!("auth-secret {sns}/{sname}: {e}"))?;
            let realm = notes.realm.as_deref().unwrap_or(DEFAULT_REALM);
            let challenge = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
                .map_err(|_| format!("auth-realm {realm:?} cannot be sent"))?;
            Some(Arc::new(BasicAuth {
                challenge,
                users,
                remembered: Default::default(),
            }))
        } else {
            None
        };
        Ok(Access {
            source: notes.source.clone(),
            basic,
            external: notes.external.spec()?,
            cors: notes.cors.spec(),
            gateway_cors: None,
        })
    }
}
