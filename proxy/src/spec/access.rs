//! Who may use a route, as data: the client address ranges it admits or
//! refuses (ingress-nginx's `allowlist-source-range` /
//! `denylist-source-range`), and the users basic authentication admits
//! (`auth-type: basic`, an htpasswd file in a Secret). Checking a request
//! against it is [`crate::forward::access`]'s.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

/// What a route asks of a client before forwarding anything.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub source: SourceRanges,
    /// `auth-type: basic`: `None` without.
    pub basic: Option<Arc<BasicAuth>>,
    /// `auth-url`: a subrequest to an authentication service decides.
    pub external: Option<Arc<super::ExternalAuth>>,
    /// `enable-cors`: which browser origins may read the answers (and
    /// preflights answered by the proxy).
    pub cors: Option<Arc<super::Cors>>,
    /// Gateway API's CORS filter (its own rules: `spec::GatewayCors`).
    pub gateway_cors: Option<Arc<super::GatewayCors>>,
}

impl Access {
    /// True when every client may use the route as it is.
    pub fn is_open(&self) -> bool {
        self.source.is_empty()
            && self.basic.is_none()
            && self.external.is_none()
            && self.cors.is_none()
            && self.gateway_cors.is_none()
    }
}

/// Client address ranges, checked as nginx's `deny` / `allow` lines that
/// ingress-nginx writes: the deny-list first, then, when there is an
/// allow-list, only the addresses it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRanges {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl SourceRanges {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether `client` may use the route. An IPv4 client seen as an
    /// IPv4-mapped IPv6 address (a dual-stack listener) is matched as the
    /// IPv4 address it is.
    pub fn admits(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        if self.deny.iter().any(|n| n.contains(&client)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&client))
    }
}

/// Basic authentication: the realm named in the challenge, and the users.
#[derive(Debug)]
pub struct BasicAuth {
    /// `WWW-Authenticate`'s value: `Basic realm="..."`.
    pub challenge: http::HeaderValue,
    pub users: Htpasswd,
    /// Credentials bcrypt already accepted (see
    /// [`crate::forward::access`]).
    pub remembered: Remembered,
}

/// Credentials remembered before the memory starts over.
const REMEMBERED: usize = 1024;

/// Credentials that passed, as SHA-256 digests of the Authorization
/// header with the stored hash: never in clear.
#[derive(Debug, Default)]
pub struct Remembered(Mutex<HashSet<[u8; 32]>>);

impl Remembered {
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.0.lock().map(|s| s.contains(key)).unwrap_or(false)
    }

    pub fn insert(&self, key: [u8; 32]) {
        if let Ok(mut s) = self.0.lock() {
            if s.len() >= REMEMBERED {
                s.clear();
            }
            s.insert(key);
        }
    }
}

/// Users and their password hashes, as an htpasswd file holds them.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, PasswordHash>,
}

/// One stored password, in a scheme nginx's `auth_basic_user_file` takes.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$2y$` / `$2a$` / `$2b$` (`htpasswd -B`).
    Bcrypt(String),
    /// `{SHA}` + base64 of SHA-1 (`htpasswd -s`).
    Sha1([u8; 20]),
    /// `$apr1$salt$hash` (`htpasswd -m`, Apache's default) or `$1$salt$hash`
    /// (crypt's MD5): the same algorithm with a different magic.
    Md5Crypt {
        magic: &'static str,
        salt: String,
        hash: String,
    },
    /// `{PLAIN}password`.
    Plain(String),
}

/// Never the hash itself: it must not reach a log.
impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PasswordHash::Bcrypt(_) => "bcrypt",
            PasswordHash::Sha1(_) => "{SHA}",
            PasswordHash::Md5Crypt { .. } => "md5-crypt",
            PasswordHash::Plain(_) => "{PLAIN}",
        })
    }
}

/// Why an htpasswd file (or one of its lines) was refused. It names the
/// line and the user, never the hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtpasswdError {
    #[error("line {0}: not user:hash")]
    NotUserHash(usize),
    #[error("line {line}: user {user:?}: {why}")]
    Hash {
        line: usize,
        user: String,
        why: &'static str,
    },
    #[error("no user")]
    Empty,
}

impl Htpasswd {
    /// Parses an htpasswd file: `user:hash` per line; blank lines and `#`
    /// comments are skipped. A line that cannot be used is an error, and
    /// so is a file without a user: a typo must not open a route, nor lock
    /// everyone out silently.
    pub fn parse(text: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or(HtpasswdError::NotUserHash(i + 1))?;
            if user.is_empty() {
                return Err(HtpasswdError::NotUserHash(i + 1));
            }
            let hash = PasswordHash::parse(hash).map_err(|why| HtpasswdError::Hash {
                line: i + 1,
                user: user.to_owned(),
                why,
            })?;
            users.insert(user.to_owned(), hash);
        }
        if users.is_empty() {
            return Err(HtpasswdError::Empty);
        }
        Ok(Htpasswd { users })
    }

    /// ingress-nginx's `auth-secret-type: auth-map`: each Secret key a
    /// user, each value a hash.
    pub fn from_map<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Htpasswd, HtpasswdError> {
        let mut users = HashMap::new();
        for (i, (user, hash)) in entries.into_iter().enumerate() {
            let hash = PasswordHash::parse(hash.trim()).map_err(|why| HtpasswdError::Hash {
                line: i + 1,
                user: user.to_owned(),
                why,
            })?;
            users.insert(user.to_owned(), hash);
        }
        if users.is_empty() {
            return Err(HtpasswdError::Empty);
        }
        Ok(Htpasswd { users })
    }

    /// The stored hash of `user`.
    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.users.get(user)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl PasswordHash {
    /// One stored hash. crypt(3)'s DES and SHA-crypt schemes are refused:
    /// the first is broken, and neither is what `htpasswd` writes.
    pub fn parse(h: &str) -> Result<PasswordHash, &'static str> {
        use base64::Engine;
        if let Some(rest) = h.strip_prefix("{SHA}") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| "{SHA} hash is not base64")?;
            let digest: [u8; 20] = bytes.try_into().map_err(|_| "{SHA} hash is not 20 bytes")?;
            return Ok(PasswordHash::Sha1(digest));
        }
        if let Some(rest) = h.strip_prefix("{PLAIN}") {
            return Ok(PasswordHash::Plain(rest.to_owned()));
        }
        if ["$2y$", "$2a$", "$2b$"].iter().any(|p| h.starts_with(p)) {
            // Checked now, so a broken one is a problem at load, not a 500.
            h.parse::<bcrypt::HashParts>()
                .map_err(|_| "bcrypt hash is malformed")?;
            return Ok(PasswordHash::Bcrypt(h.to_owned()));
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = h.strip_prefix(magic) {
                let (salt, hash) = rest
                    .split_once('$')
                    .ok_or("md5-crypt hash lacks its salt")?;
                if salt.len() > 8 || hash.len() != 22 {
                    return Err("md5-crypt hash is malformed");
                }
                return Ok(PasswordHash::Md5Crypt {
                    magic,
                    salt: salt.to_owned(),
                    hash: hash.to_owned(),
                });
            }
        }
        if h.starts_with("$5$") || h.starts_with("$6$") {
            return Err("SHA-crypt hashes are not supported (use htpasswd -B, bcrypt)");
        }
        Err("not a bcrypt, {SHA}, $apr1$ or {PLAIN} hash (crypt's DES is not supported)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_deny_first_then_allow() {
        let r = SourceRanges {
            allow: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            deny: vec!["10.1.0.0/16".parse().unwrap()],
        };
        assert!(r.admits("10.2.3.4".parse().unwrap()));
        assert!(!r.admits("10.1.3.4".parse().unwrap()));
        assert!(!r.admits("192.168.1.1".parse().unwrap()));
        assert!(r.admits("::1".parse().unwrap()));
        // A mapped IPv4 client matches as IPv4.
        assert!(r.admits("::ffff:10.2.3.4".parse().unwrap()));
        assert!(!r.admits("::ffff:10.1.3.4".parse().unwrap()));
        let deny_only = SourceRanges {
            allow: vec![],
            deny: vec!["127.0.0.2/32".parse().unwrap()],
        };
        assert!(deny_only.admits("127.0.0.1".parse().unwrap()));
        assert!(!deny_only.admits("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn htpasswd_lines() {
        let file = "# users\nalice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n\nbob:$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00\ncarol:{PLAIN}pw\n";
        let h = Htpasswd::parse(file).unwrap();
        assert_eq!(h.len(), 3);
        assert!(matches!(h.get("alice"), Some(PasswordHash::Sha1(_))));
        assert!(matches!(
            h.get("bob"),
            Some(PasswordHash::Md5Crypt {
                magic: "$apr1$",
                ..
            })
        ));
        assert_eq!(Htpasswd::parse("").unwrap_err(), HtpasswdError::Empty);
        assert_eq!(
            Htpasswd::parse("alice\n").unwrap_err(),
            HtpasswdError::NotUserHash(1)
        );
        let e = Htpasswd::parse("a:{PLAIN}x\nbob:abDEF1234xyz\n").unwrap_err();
        assert!(matches!(e, HtpasswdError::Hash { line: 2, .. }), "{e}");
        // The message names the user, never the hash.
        assert!(!e.to_string().contains("abDEF"), "{e}");
        assert!(Htpasswd::parse("a:$6$salt$hash").is_err());
        assert!(Htpasswd::parse("a:$2y$05$short").is_err());
    }
}
