//! Checking a request against its route's [`Access`] before anything is
//! forwarded: the client address ranges first (403, as nginx's `deny`
//! lines answer before any password is asked), then basic authentication
//! (401 with the route's challenge).
//!
//! Passwords are compared in constant time. bcrypt costs milliseconds by
//! design, so it runs on the blocking pool, and a credential it accepted
//! is remembered (as a SHA-256 digest, never in clear) for the life of
//! the route: a browser sends the same header with every request.

use std::net::IpAddr;

use base64::Engine;
use http::HeaderValue;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::Answer;
use crate::spec::{Access, BasicAuth, PasswordHash};

/// Whether the request may go on; `Err` is the answer it gets instead.
pub async fn check(
    access: &Access,
    client: IpAddr,
    authorization: Option<&HeaderValue>,
) -> Result<(), Answer> {
    if !access.source.admits(client) {
        return Err(Answer::Forbidden);
    }
    if let Some(basic) = &access.basic {
        if !authorized(basic, authorization).await {
            return Err(Answer::Unauthorized(basic.challenge.clone()));
        }
    }
    Ok(())
}

async fn authorized(basic: &BasicAuth, authorization: Option<&HeaderValue>) -> bool {
    let Some((user, password)) = authorization.and_then(|h| credentials(h.as_bytes())) else {
        return false;
    };
    let Some(stored) = basic.users.get(&user) else {
        return false;
    };
    match stored {
        PasswordHash::Bcrypt(hash) => {
            let key: [u8; 32] = sha2::Sha256::new()
                .chain_update(authorization.map_or(&[][..], HeaderValue::as_bytes))
                .chain_update(hash.as_bytes())
                .finalize()
                .into();
            if basic.remembered.contains(&key) {
                return true;
            }
            let hash = hash.clone();
            let ok = tokio::task::spawn_blocking(move || {
                bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            if ok {
                basic.remembered.insert(key);
            }
            ok
        }
        other => verify(other, password.as_bytes()),
    }
}

/// The user and password of a `Basic` Authorization header.
fn credentials(header: &[u8]) -> Option<(String, String)> {
    header
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case(b"basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(header[6..].trim_ascii())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Checks a password against every scheme but bcrypt (which
/// [`authorized`] sends to the blocking pool).
fn verify(stored: &PasswordHash, password: &[u8]) -> bool {
    match stored {
        PasswordHash::Plain(p) => p.as_bytes().ct_eq(password).into(),
        PasswordHash::Sha1(digest) => {
            let got: [u8; 20] = sha1::Sha1::digest(password).into();
            got.ct_eq(digest).into()
        }
        PasswordHash::Md5Crypt { magic, salt, hash } => {
            let got = md5_crypt(password, salt.as_bytes(), magic.as_bytes());
            got.as_bytes().ct_eq(hash.as_bytes()).into()
        }
        PasswordHash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
    }
}

/// Poul-Henning Kamp's MD5-crypt, as FreeBSD's crypt(3) (`$1$`) and
/// Apache's htpasswd (`$apr1$`, the same with another magic) compute it:
/// the 22-character encoded hash. No maintained crate implements the
/// `$apr1$` variant; the algorithm is short and fixed.
fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> String {
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(magic)
        .chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alternate[..n]);
        left -= n;
    }
    let mut bits = password.len();
    while bits != 0 {
        if bits & 1 != 0 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 != 0 {
            c.update(password);
        } else {
            c.update(digest);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 != 0 {
            c.update(digest);
        } else {
            c.update(password);
        }
        digest = c.finalize();
    }
    const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let d = digest;
    let mut out = String::with_capacity(22);
    let mut put = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(
            (u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]),
            4,
        );
    }
    put(u32::from(d[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Htpasswd, SourceRanges};
    use std::sync::Arc;

    #[test]
    fn md5_crypt_matches_htpasswd_and_openssl() {
        // `htpasswd -m` / `openssl passwd -apr1` for "password".
        assert_eq!(
            md5_crypt(b"password", b"lZL6V/ci", b"$apr1$"),
            "eIMz/iKDkbtys/uU7LEK00"
        );
        // `openssl passwd -1 -salt saltsalt password`.
        assert_eq!(
            md5_crypt(b"password", b"saltsalt", b"$1$"),
            "qjXMvbEw8oaL.CzflDtaK/"
        );
    }

    fn basic(file: &str) -> Access {
        Access {
            source: SourceRanges::default(),
            basic: Some(Arc::new(BasicAuth {
                challenge: HeaderValue::from_static("Basic realm=\"shop\""),
                users: Htpasswd::parse(file).unwrap(),
                remembered: Default::default(),
            })),
            ..Default::default()
        }
    }

    fn header(user: &str, password: &str) -> HeaderValue {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {b}")).unwrap()
    }

    #[tokio::test]
    async fn every_scheme_checks_its_password() {
        let bcrypt = bcrypt::hash("b-pass", 4).unwrap();
        let a = basic(&format!(
            "sha:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\napr:$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00\nplain:{{PLAIN}}pw\nbc:{bcrypt}\n"
        ));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for (user, good) in [
            ("sha", "password"),
            ("apr", "password"),
            ("plain", "pw"),
            ("bc", "b-pass"),
        ] {
            assert_eq!(
                check(&a, ip, Some(&header(user, good))).await,
                Ok(()),
                "{user}"
            );
            assert!(
                matches!(
                    check(&a, ip, Some(&header(user, "wrong"))).await,
                    Err(Answer::Unauthorized(_))
                ),
                "{user}"
            );
        }
        // The remembered bcrypt credential still passes; others do not.
        assert_eq!(check(&a, ip, Some(&header("bc", "b-pass"))).await, Ok(()));
        for bad in [
            None,
            Some(HeaderValue::from_static("Bearer abc")),
            Some(HeaderValue::from_static("Basic !!!")),
            Some(header("nobody", "pw")),
        ] {
            assert!(check(&a, ip, bad.as_ref()).await.is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn ranges_refuse_before_any_password_is_asked() {
        let mut a = basic("plain:{PLAIN}pw\n");
        a.source.allow = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            check(&a, "192.168.0.1".parse().unwrap(), None).await,
            Err(Answer::Forbidden)
        );
        assert!(matches!(
            check(&a, "10.0.0.1".parse().unwrap(), None).await,
            Err(Answer::Unauthorized(_))
        ));
    }
}
