//! Cookie affinity's side of the snapshot: what a route's affinity cookie
//! means, as ingress-nginx's sticky balancers read and write it
//! (`rootfs/etc/nginx/lua/balancer/sticky*.lua`).
//!
//! The cookie's value is `KEY|BACKEND`, as ingress-nginx writes it.
//! `BACKEND` names the upstream the session belongs to (the route's, or its
//! canary's), so that a session stays off the canary or on it
//! (`route_to_alternative_balancer`). `KEY` is, in balanced mode, a random
//! number hashed to an endpoint over the endpoints there are now
//! (rendezvous hashing, here instead of nginx's ketama ring: when a pod
//! goes only its sessions move, and when pods come some sessions move to
//! them); in persistent mode, a digest of the endpoint's stable key (the
//! pod, never its address) salted with the upstream's name, as nginx salts
//! its digest of `ip:port` with the backend's name. Neither form shows a
//! pod's address to the client.
//!
//! Everything that hashes a name is done here, once per snapshot; a
//! request hashes its cookie's key once and compares numbers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_64;

use super::canary::cookie_value;
use super::Route;
use crate::spec::{AffinitySpec, SameSite};
use crate::upstream::Upstream;

/// A route's cookie affinity, ready to serve.
#[derive(Debug)]
pub struct Affinity {
    pub spec: Arc<AffinitySpec>,
    main: Pins,
    /// The canary's, unless it has none or is `legacy`
    /// (`affinity-canary-behavior`).
    canary: Option<Pins>,
}

/// One upstream's side of a route's affinity.
#[derive(Debug)]
pub struct Pins {
    /// Names the upstream after the `|` (ingress-nginx's backend key).
    backend: u64,
    /// Each endpoint's persistent key, in the upstream's endpoint order.
    pins: Box<[u64]>,
    /// Each endpoint's rendezvous seed, from its stable key.
    seeds: Box<[u64]>,
    /// The endpoints' weights, when they are not all the same.
    weights: Option<Box<[u32]>>,
}

/// A request's affinity cookie, as read.
#[derive(Debug, Clone, Copy)]
pub struct Cookie<'h> {
    /// What comes before the first `|`; never empty.
    pub key: &'h [u8],
    /// The upstream it names, when it names one this proxy could have
    /// written.
    pub backend: Option<u64>,
}

impl Affinity {
    /// Built with each snapshot, for the route's upstream and, unless its
    /// canary is legacy, the canary's.
    pub fn build(spec: Arc<AffinitySpec>, main: &Upstream, canary: Option<&Upstream>) -> Self {
        Affinity {
            spec,
            main: Pins::build(main),
            canary: canary.map(Pins::build),
        }
    }

    /// Whether a cookie for this request may say `SameSite=None`: unless
    /// `session-cookie-conditional-samesite-none` asks to leave it out for
    /// the request's browser. The User-Agent is read only then.
    pub fn same_site_none_ok(&self, headers: &HeaderMap) -> bool {
        let s = &self.spec;
        !(s.same_site == Some(SameSite::None) && s.conditional_same_site_none)
            || same_site_none_compatible(
                headers
                    .get(http::header::USER_AGENT)
                    .map(HeaderValue::as_bytes),
            )
    }

    /// The route's own upstream's side.
    pub fn main_pins(&self) -> &Pins {
        &self.main
    }

    /// The request's affinity cookie: the first one with the route's cookie
    /// name, read as nginx reads cookies.
    pub fn read<'h>(&self, headers: &'h HeaderMap) -> Option<Cookie<'h>> {
        let value = cookie_value(headers, self.spec.name.as_bytes())?;
        let mut parts = value.split(|&b| b == b'|');
        let key = parts.next().filter(|k| !k.is_empty())?;
        let backend = parts.next().and_then(parse_hex);
        Some(Cookie { key, backend })
    }

    /// The upstream one request goes to, with its side of the affinity
    /// (`None`: a legacy canary, which keeps no session). A cookie naming
    /// the main upstream keeps the request off the canary whatever its
    /// header, cookie or weight say; one naming the canary keeps it there;
    /// otherwise the canary's rules decide (ingress-nginx's
    /// `route_to_alternative_balancer`).
    pub fn choose<'r>(
        &'r self,
        route: &'r Route,
        headers: &HeaderMap,
        cookie: Option<&Cookie<'_>>,
    ) -> (&'r Arc<Upstream>, Option<&'r Pins>) {
        let main = (&route.upstream, Some(&self.main));
        let Some(canary) = &route.canary else {
            return main;
        };
        let backend = cookie.and_then(|c| c.backend);
        if backend == Some(self.main.backend) {
            return main;
        }
        let on_canary = (&canary.upstream, self.canary.as_ref());
        match &self.canary {
            Some(p) if backend == Some(p.backend) => on_canary,
            _ if canary.takes(Some(headers)) => on_canary,
            _ => main,
        }
    }

    /// The `Set-Cookie` value pinning a session to `key` on `pins`'s
    /// upstream, with the attributes ingress-nginx writes, in its order
    /// (lua-resty-cookie's): `Expires`, `Max-Age`, `Domain`, `Path`,
    /// `Secure`, `HttpOnly`, `SameSite`. `https`: the request came over
    /// TLS (`Secure` unless `session-cookie-secure` forces it);
    /// `none_ok`: `SameSite=None` may be written ([`Self::same_site_none_ok`]).
    pub fn set_cookie(
        &self,
        key: u64,
        pins: &Pins,
        https: bool,
        none_ok: bool,
        now: SystemTime,
    ) -> Option<HeaderValue> {
        use std::fmt::Write;
        let s = &self.spec;
        let mut out = format!("{}={key:016x}|{:016x}", s.name, pins.backend);
        if let Some(secs) = s.expires {
            let now = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let _ = write!(out, "; Expires={}", cookie_time(now.saturating_add(secs)));
        }
        if let Some(n) = s.max_age {
            let _ = write!(out, "; Max-Age={n}");
        }
        if let Some(d) = &s.domain {
            let _ = write!(out, "; Domain={d}");
        }
        let _ = write!(out, "; Path={}", s.path);
        if s.secure || https {
            out.push_str("; Secure");
        }
        out.push_str("; HttpOnly");
        let same_site = s.same_site.filter(|&v| v != SameSite::None || none_ok);
        if let Some(v) = same_site {
            let _ = write!(out, "; SameSite={}", v.as_str());
        }
        HeaderValue::from_str(&out).ok()
    }
}

impl Pins {
    fn build(upstream: &Upstream) -> Self {
        // The upstream as the cluster names it (`ns/service:port`), without
        // the strategy and protocol the snapshot adds after `#`: changing
        // the balancing annotation keeps the sessions.
        let name = upstream.name.split('#').next().unwrap_or_default();
        let digest = |parts: &[&[u8]]| {
            let mut h = Sha256::new();
            h.update(b"sluice affinity\0");
            for p in parts {
                h.update(p);
                h.update(b"\0");
            }
            let d = h.finalize();
            u64::from_be_bytes(d[..8].try_into().expect("8 bytes of 32"))
        };
        let endpoints = &upstream.endpoints;
        let uniform = upstream.weights.windows(2).all(|w| w[0] == w[1]);
        Pins {
            backend: digest(&[name.as_bytes()]),
            pins: endpoints
                .iter()
                .map(|e| digest(&[name.as_bytes(), e.key.as_bytes()]))
                .collect(),
            seeds: endpoints
                .iter()
                .map(|e| xxh3_64(e.key.as_bytes()))
                .collect(),
            weights: (!uniform).then(|| upstream.weights.clone()),
        }
    }

    /// The endpoint a balanced key's `hash` goes to: the highest score
    /// among the endpoints `skip` leaves (rendezvous hashing, weighted when
    /// the weights differ). `None` when it leaves none.
    pub fn rank(&self, hash: u64, skip: impl Fn(usize) -> bool) -> Option<usize> {
        let scores = self.seeds.iter().enumerate().filter(|&(i, _)| !skip(i));
        match &self.weights {
            None => scores.max_by_key(|&(_, &s)| mix(hash ^ s)).map(|(i, _)| i),
            Some(w) => scores
                .map(|(i, &s)| {
                    // -w / ln(u), u uniform in (0, 1): endpoint i wins a
                    // share w / sum(w) of the keys.
                    let u = ((mix(hash ^ s) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                    (i, -f64::from(w[i]) / u.ln())
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i),
        }
    }

    /// The endpoint a persistent key names, if it is still there.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let pin = parse_hex(key)?;
        self.pins.iter().position(|&p| p == pin)
    }

    /// Endpoint `i`'s persistent key.
    pub fn pin(&self, i: usize) -> u64 {
        self.pins[i]
    }
}

/// What a balanced key hashes to.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// The text of a key this proxy makes: 16 lowercase hex digits.
pub fn key_text(key: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        let nibble = (key >> (60 - 4 * i)) & 0xf;
        *b = b"0123456789abcdef"[nibble as usize];
    }
    out
}

/// 16 hex digits, as this proxy writes them.
fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

/// murmur3's 64-bit finalizer: every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// ingress-nginx's `same_site_none_compatible` (`util/same_site.lua`): the
/// browsers that reject `SameSite=None` or read it as `Strict`.
fn same_site_none_compatible(user_agent: Option<&[u8]>) -> bool {
    let Some(ua) = user_agent else {
        return true;
    };
    let has = |needle: &[u8]| ua.windows(needle.len()).any(|w| w == needle);
    !(has(b"Chrome/4")
        || has(b"Chrome/5")
        || has(b"Chrome/6")
        || has(b"CPU iPhone OS 12")
        || has(b"iPad; CPU OS 12")
        || (has(b"Macintosh") && has(b"Intel Mac OS X 10_14") && has(b"Safari") && !has(b"Chrome")))
}

/// nginx's `ngx_http_cookie_time`: `Thu, 18-Nov-10 11:27:35 GMT`, with a
/// two-digit year up to 2037 and four digits after.
fn cookie_time(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let year = if y > 2037 { y } else { y % 100 };
    format!(
        "{}, {:02}-{}-{:02} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The civil date of a day count from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::Strategy;
    use crate::upstream::{EndpointReuse, EndpointSpec, HealthPolicy, Protocol, UpstreamSpec};

    fn upstream(name: &str, pods: &[&str]) -> Upstream {
        let endpoints = pods
            .iter()
            .enumerate()
            .map(|(i, p)| EndpointSpec {
                addr: format!("10.0.0.{}:80", i + 1).parse().unwrap(),
                weight: 1,
                key: (*p).into(),
            })
            .collect();
        Upstream::build(
            &UpstreamSpec {
                name: name.into(),
                strategy: Strategy::RoundRobin,
                protocol: Protocol::Http1,
                endpoints,
                health: HealthPolicy::default(),
                max_idle_per_endpoint: 1,
                tls: None,
                response_head: None,
                names: Vec::new(),
            },
            &EndpointReuse::default(),
        )
    }

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, cookie.parse().unwrap());
        h
    }

    #[test]
    fn nginx_cookie_times() {
        assert_eq!(cookie_time(1_290_079_655), "Thu, 18-Nov-10 11:27:35 GMT");
        assert_eq!(cookie_time(1_486_908_672), "Sun, 12-Feb-17 14:11:12 GMT");
        assert_eq!(cookie_time(0), "Thu, 01-Jan-70 00:00:00 GMT");
        // Past 2037, four digits.
        assert_eq!(cookie_time(2_208_988_800), "Sun, 01-Jan-2040 00:00:00 GMT");
    }

    #[test]
    fn same_site_none_incompatible_browsers() {
        assert!(same_site_none_compatible(None));
        assert!(same_site_none_compatible(Some(b"curl/8.0")));
        assert!(!same_site_none_compatible(Some(
            b"Mozilla/5.0 (X11) AppleWebKit/537.36 Chrome/51.0.2704.103 Safari/537.36"
        )));
        assert!(!same_site_none_compatible(Some(
            b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_0) AppleWebKit/605.1.15 Version/12.0 Safari/605.1.15"
        )));
        assert!(same_site_none_compatible(Some(
            b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_0) Chrome/90.0 Safari/537.36"
        )));
    }

    #[test]
    fn set_cookie_attributes_in_nginx_order() {
        let u = upstream("shop/web:80#round-robin", &["shop/web-0:80"]);
        let mut spec = AffinitySpec::new("/app");
        spec.name = "route".into();
        spec.expires = Some(172_800);
        spec.max_age = Some(172_800);
        spec.domain = Some(".example.com".into());
        spec.same_site = Some(SameSite::None);
        spec.conditional_same_site_none = true;
        let a = Affinity::build(Arc::new(spec), &u, None);
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_486_735_872);
        let v = a.set_cookie(0xab, &a.main, false, true, now).unwrap();
        let backend = format!("{:016x}", a.main.backend);
        assert_eq!(
            v.to_str().unwrap(),
            format!("route=00000000000000ab|{backend}; Expires=Sun, 12-Feb-17 14:11:12 GMT; Max-Age=172800; Domain=.example.com; Path=/app; HttpOnly; SameSite=None")
        );
        // Over TLS: Secure; an old Safari: no SameSite=None.
        let mut old = HeaderMap::new();
        let ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) Version/12.1 Safari/605.1.15";
        old.insert(http::header::USER_AGENT, ua.parse().unwrap());
        assert!(a.same_site_none_ok(&HeaderMap::new()));
        let none_ok = a.same_site_none_ok(&old);
        assert!(!none_ok);
        let v = a.set_cookie(1, &a.main, true, none_ok, now).unwrap();
        assert!(v
            .to_str()
            .unwrap()
            .ends_with("; Path=/app; Secure; HttpOnly"));
        // The defaults: Path and HttpOnly only.
        let a = Affinity::build(Arc::new(AffinitySpec::new("/")), &u, None);
        let v = a.set_cookie(1, &a.main, false, true, now).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            format!("INGRESSCOOKIE=0000000000000001|{backend}; Path=/; HttpOnly")
        );
    }

    #[test]
    fn the_cookie_is_read_as_nginx_reads_it() {
        let u = upstream("u", &["a"]);
        let a = Affinity::build(Arc::new(AffinitySpec::new("/")), &u, None);
        let h = headers("other=1; ingresscookie=abc|00000000000000ff|x");
        let c = a.read(&h).unwrap();
        assert_eq!((c.key, c.backend), (&b"abc"[..], Some(0xff)));
        let h = headers("INGRESSCOOKIE=abc");
        let c = a.read(&h).unwrap();
        assert_eq!((c.key, c.backend), (&b"abc"[..], None));
        assert!(a
            .read(&headers("INGRESSCOOKIE=|00000000000000ff"))
            .is_none());
        assert!(a.read(&headers("other=1")).is_none());
    }

    #[test]
    fn persistent_keys_name_pods_not_addresses_and_survive_reordering() {
        let u = upstream(
            "shop/web:80#round-robin",
            &["shop/web-0:80", "shop/web-1:80"],
        );
        let p = Pins::build(&u);
        let key = key_text(p.pin(1));
        assert_eq!(p.find(&key), Some(1));
        assert_eq!(p.find(b"0000000000000000"), None);
        assert_eq!(p.find(b"shop/web-1"), None);
        // Another snapshot, another pod set, another strategy: the same key.
        let v = upstream("shop/web:80#ip-hash", &["shop/web-1:80", "shop/web-2:80"]);
        let q = Pins::build(&v);
        assert_eq!(q.find(&key), Some(0));
        assert_eq!(p.backend, q.backend);
        // Another Service: nothing.
        let w = upstream("shop/api:80#round-robin", &["shop/web-1:80"]);
        assert_eq!(Pins::build(&w).find(&key), None);
        assert!(!String::from_utf8_lossy(&key).contains("10.0.0"));
    }

    #[test]
    fn balanced_keys_spread_and_mostly_stay_when_pods_come_and_go() {
        let three = upstream("u", &["a", "b", "c"]);
        let four = upstream("u", &["a", "b", "c", "d"]);
        let (p3, p4) = (Pins::build(&three), Pins::build(&four));
        let mut counts = [0usize; 3];
        let (mut moved, mut to_new) = (0, 0);
        for k in 0..30_000u64 {
            let h = key_hash(&key_text(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            let i = p3.rank(h, |_| false).unwrap();
            counts[i] += 1;
            let j = p4.rank(h, |_| false).unwrap();
            if three.endpoints[i].key != four.endpoints[j].key {
                moved += 1;
                if &*four.endpoints[j].key == "d" {
                    to_new += 1;
                }
            }
            // Without its endpoint, a key goes elsewhere; the others stay.
            let k2 = p3.rank(h, |x| x == 0).unwrap();
            assert!(k2 != 0 && (i == 0 || k2 == i));
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        // About a quarter move, all of them to the new pod.
        assert_eq!(moved, to_new);
        assert!((6_500..8_500).contains(&moved), "{moved}");
    }

    #[test]
    fn weighted_rendezvous_follows_the_weights() {
        let mut u = upstream("u", &["a", "b"]);
        u.weights = vec![1, 3].into();
        let p = Pins::build(&u);
        let b = (0..20_000u64)
            .filter(|k| p.rank(key_hash(&key_text(*k)), |_| false) == Some(1))
            .count();
        assert!((14_000..16_000).contains(&b), "{b}");
    }

    #[test]
    fn keys_as_text() {
        assert_eq!(&key_text(0xab), b"00000000000000ab");
        assert_eq!(parse_hex(&key_text(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_hex(b"00000000000000AB"), Some(0xab));
        assert_eq!(parse_hex(b"ab"), None);
    }
}
