//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer):
//! one per parser Sluice wrote itself, each taking the fuzzer's bytes.
//!
//! Each runs its input through the code the proxy runs, as the proxy calls
//! it, and asserts what can be checked cheaply beyond "no panic": lengths
//! stay within the input, a result does not depend on how the bytes were
//! split into reads, a normalised path normalises to itself, a lookup
//! agrees with a plain model of Ingress matching. They live in the library
//! so that the fuzz crate reaches nothing private, and so that the seed
//! corpus of every target is replayed by `cargo test` on stable (the test
//! at the end of this file), without cargo-fuzz.
//!
//! Not an API: hidden from the docs, and may change with the parsers.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, ReadBuf};

use crate::config::{self, schema, ServerHeader};
use crate::discovery::annotations;
use crate::forwarded::Trusted;
use crate::http::fast::{head, response};
use crate::proxy_protocol::{self, Parsed, Refused};
use crate::routing::{
    normalize, resolve_dots, strip_port, HostMatch, Normalized, PathType, Snapshot,
};
use crate::tls::{Binding, CertTable, Certificate};
use crate::upstream::chunked::{ChunkError, ChunkedScanner, Decoded};

/// A target's name (the file `fuzz/fuzz_targets/NAME.rs` and the seed
/// folder `fuzz/corpus/NAME/`) and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("proxy_protocol", proxy_protocol),
    ("request_head", request_head),
    ("response_head", response_head),
    ("chunked", chunked),
    ("config", config),
    ("annotations", annotations),
    ("routing", routing),
    ("sni", sni),
    ("client_hello", client_hello),
    ("hpack", hpack),
    ("http2", http2),
];

/// HPACK header blocks (the first byte picks the table's size, the rest is
/// two blocks, cut in the middle, for one decoder).
///
/// The table never grows past its size, and what decodes encodes back and
/// decodes again to the same fields.
pub fn hpack(data: &[u8]) {
    use crate::http::h2::hpack::{Decoder, Encoder};
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = Decoder::new(usize::from(size) * 32);
    let (a, b) = rest.split_at(rest.len() / 2);
    for block in [a, b] {
        let mut fields = Vec::new();
        if decoder
            .decode(block, |n, v| fields.push((n.to_vec(), v.to_vec())))
            .is_err()
        {
            return;
        }
        let mut again = Vec::new();
        let mut enc = Encoder::new();
        for (n, v) in &fields {
            enc.field(n, v, &mut again);
        }
        let mut back = Vec::new();
        Decoder::new(4096)
            .decode(&again, |n, v| back.push((n.to_vec(), v.to_vec())))
            .expect("what the encoder wrote decodes");
        assert_eq!(back, fields);
    }
}

/// What an HTTP/2 client sends after its preface and SETTINGS.
///
/// The connection's answer (what it writes, the events it raises, and
/// whether it ends) is the same whether the bytes come whole or in
/// pieces, and never a panic.
pub fn http2(data: &[u8]) {
    use crate::http::h2::{frame, Conn, Settings};
    let settings = Settings {
        max_concurrent_streams: 8,
        stream_window: 65_535,
        connection_window: 1 << 20,
        max_header_size: 16_384,
        max_headers: 64,
    };
    let mut opening = frame::PREFACE.to_vec();
    frame::write_settings(&mut opening, &[]);
    let run = |size: usize| {
        let mut conn: Conn<()> = Conn::new(settings.clone());
        let mut buf = bytes::BytesMut::new();
        let mut events = Vec::new();
        let mut ended = None;
        for piece in opening.chunks(size).chain(data.chunks(size)) {
            buf.extend_from_slice(piece);
            let result = conn.recv(&mut buf);
            events.extend(conn.events.drain(..).map(|e| format!("{e:?}")));
            if let Err(e) = result {
                ended = Some(e.reason);
                break;
            }
        }
        (std::mem::take(&mut conn.out), events, ended)
    };
    let whole = run(usize::MAX);
    for size in [1, 13] {
        assert_eq!(run(size), whole, "in pieces of {size}");
    }
}

/// A PROXY protocol header (v1 or v2), as a LoadBalancer sends it, with
/// whatever follows.
///
/// A header found is within the input and is the same header when cut
/// from it; and reading it from a connection that delivers the bytes in
/// pieces of any size gives the answer parsing them whole gives.
pub fn proxy_protocol(data: &[u8]) {
    let whole = proxy_protocol::parse(data);
    if let Parsed::Header { len, client } = whole {
        assert!(len > 0 && len <= data.len(), "header of {len} bytes");
        match proxy_protocol::parse(&data[..len]) {
            Parsed::Header { len: l, client: c } => assert_eq!((l, c), (len, client)),
            _ => panic!("the header alone does not parse as itself"),
        }
    }
    let peer: SocketAddr = ([192, 0, 2, 1], 7).into();
    for size in [1, 64, usize::MAX] {
        let mut io = Pieces { data, size };
        let got = block_on(proxy_protocol::read(&mut io, peer, &Trusted::default()));
        match (&whole, got) {
            (Parsed::Header { len, client }, Ok((addr, rest))) => {
                assert_eq!(addr, client.unwrap_or(peer), "pieces of {size}");
                assert!(data[*len..].starts_with(&rest), "pieces of {size}");
            }
            // Past the largest header read, the read gives up first.
            (_, Err(Refused::TooLarge)) => assert!(data.len() >= 4096, "pieces of {size}"),
            (Parsed::Invalid, Err(Refused::Malformed)) => {}
            (Parsed::Incomplete, Err(Refused::Truncated)) => {}
            (_, got) => panic!("parsed whole and read in pieces of {size} disagree: {got:?}"),
        }
    }
}

/// A request head from a client, on the HTTP/1.1 fast path (with a
/// trusted forwarder, so X-Forwarded-For and -Proto are read too).
///
/// A head served is within the input, whole by itself and not before its
/// last byte; the head written upstream is one well-formed request with
/// the same method and target, one Host, no framing but the one length the
/// plan carries, and one of each forwarding header; the route was looked
/// up with the host without port and a path without dot segments.
pub fn request_head(data: &[u8]) {
    let trusted = Trusted(vec!["10.0.0.0/8".parse().expect("a network")]);
    let peer = IpAddr::from([10, 0, 0, 1]);
    // Odd lengths take ingress-nginx's way of naming the client.
    let forwarding = if data.len() % 2 == 1 {
        crate::policy::Forwarding {
            forwarded_for: crate::policy::ForwardedFor::Replace,
            real_ip: true,
        }
    } else {
        crate::policy::Forwarding::default()
    };
    let run = |buf: &[u8], out: &mut Vec<u8>| {
        let mut looked_up = None;
        let p = head::prepare(
            buf,
            b"192.0.2.1",
            "http",
            Some((&trusted, peer, "x-forwarded-for")),
            forwarding,
            out,
            |host, path, https| {
                looked_up = Some((host.to_owned(), path.to_owned(), https));
                (host != "unrouted.example").then_some(())
            },
        );
        (p, looked_up)
    };
    let mut out = Vec::new();
    let (plan, looked_up) = match run(data, &mut out) {
        (head::Prepared::Partial, _) => {
            assert!(data.len() <= head::MAX_HEAD, "partial past the limit");
            return;
        }
        (head::Prepared::Handover, _) => return,
        (head::Prepared::Ready(plan), looked_up) => (plan, looked_up),
    };
    let (host, path, https) = looked_up.expect("a request served was routed");
    let len = plan.head_len;
    assert!(len > 0 && len <= data.len() && data[..len].ends_with(b"\n"));
    assert!(plan.body_len <= head::MAX_BODY);
    let mut theirs = [httparse::EMPTY_HEADER; 64];
    let mut received = httparse::Request::new(&mut theirs);
    received.parse(data).expect("served, so it parsed");
    let target = received.path.unwrap_or_default();
    assert_eq!(path, target.split_once('?').map_or(target, |(p, _)| p));
    assert!(
        path.starts_with('/') && normalize(&path) == Normalized::Same,
        "{path:?}"
    );
    let sent_host = received
        .headers
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("host"))
        .map(|f| f.value)
        .expect("served, so it named its host");
    assert_eq!(
        Some(host.as_str()),
        std::str::from_utf8(sent_host).ok().map(strip_port)
    );
    assert_eq!(https, plan.https);

    // The same head cut from what followed it; one byte less is not a head.
    let mut again = Vec::new();
    match run(&data[..len], &mut again).0 {
        head::Prepared::Ready(p) => assert_eq!((p.head_len, p.body_len), (len, plan.body_len)),
        other => panic!("the head alone is {other:?}"),
    }
    match run(&data[..len - 1], &mut again).0 {
        head::Prepared::Partial => {}
        head::Prepared::Handover if len > head::MAX_HEAD => {}
        other => panic!("the head less its last byte is {other:?}"),
    }

    // What goes upstream.
    let mut fields = [httparse::EMPTY_HEADER; 80];
    let mut sent = httparse::Request::new(&mut fields);
    assert_eq!(
        sent.parse(&out).ok(),
        Some(httparse::Status::Complete(out.len())),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!((sent.method, sent.path), (received.method, received.path));
    let count = |name: &str| {
        sent.headers
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .count()
    };
    assert_eq!(count("host"), 1);
    assert_eq!(count("x-forwarded-for"), 1);
    assert_eq!(count("x-forwarded-proto"), 1);
    assert_eq!(count("x-forwarded-host"), 1);
    if forwarding.real_ip {
        assert_eq!(count("x-real-ip"), 1);
    }
    for f in sent.headers.iter() {
        let named = |n: &str| f.name.eq_ignore_ascii_case(n);
        if named("x-real-ip") && forwarding.real_ip
            || named("x-forwarded-for")
                && forwarding.forwarded_for == crate::policy::ForwardedFor::Replace
        {
            let ip = std::str::from_utf8(f.value)
                .ok()
                .and_then(|v| v.parse::<IpAddr>().ok());
            assert!(ip.is_some(), "{:?}: one address", f.value);
        }
    }
    assert_eq!(
        count("transfer-encoding") + count("connection") + count("te"),
        0
    );
    assert!(count("content-length") <= 1);
    for f in sent.headers.iter() {
        if f.name.eq_ignore_ascii_case("content-length") {
            assert_eq!(number(f.value), Some(plan.body_len as u64));
        }
        if f.name.eq_ignore_ascii_case("x-forwarded-proto") {
            assert_eq!(f.value, if plan.https { &b"https"[..] } else { b"http" });
        }
    }
    if count("content-length") == 0 {
        assert_eq!(plan.body_len, 0);
    }
    let method = sent.method.unwrap_or_default();
    assert_eq!(plan.head_request, method == "HEAD");
}

/// A response head from an upstream, on the fast path, for a GET and for
/// a HEAD, under each `server_header` setting.
///
/// A head is within the input, and the head written to the client is one
/// well-formed response with the same status whose framing fields say
/// what the framing found says (no length beside chunked, none of the
/// upstream's Connection fields). A chunked body after it is scanned too,
/// as the fast path scans it.
pub fn response_head(data: &[u8]) {
    let settings = [
        (false, false, None, ServerHeader::Add),
        (true, true, Some(&b"max-age=60"[..]), ServerHeader::Off),
        (false, true, None, ServerHeader::Pass),
    ];
    let mut out = Vec::new();
    for (head_request, close_client, hsts, server) in settings {
        let head = match response::prepare(data, head_request, close_client, hsts, server, &mut out)
        {
            response::Parsed::Partial => {
                assert!(data.len() <= response::MAX_HEAD);
                return;
            }
            response::Parsed::Interim(n) => {
                assert!(n > 0 && n <= data.len());
                return;
            }
            response::Parsed::Invalid(_) => return,
            response::Parsed::Ready(head) => head,
        };
        assert!(head.len > 0 && head.len <= data.len());
        let mut fields = [httparse::EMPTY_HEADER; 110];
        let mut sent = httparse::Response::new(&mut fields);
        assert_eq!(
            sent.parse(&out).ok(),
            Some(httparse::Status::Complete(out.len())),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(sent.code, Some(head.status));
        let values = |name: &str| {
            sent.headers
                .iter()
                .filter(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| f.value)
                .collect::<Vec<_>>()
        };
        let connection = values("connection");
        assert!(connection.len() <= 1, "{connection:?}");
        assert_eq!(
            connection == [b"close"],
            head.close_client,
            "{connection:?}"
        );
        assert!(!close_client || head.close_client);
        let empty = head_request || head.status == 204 || head.status == 304;
        assert_eq!(head.framing == response::Framing::Empty, empty);
        match head.framing {
            response::Framing::Chunked => {
                assert!(values("content-length").is_empty());
                let rest = &data[head.len..];
                if let Ok(Some(end)) = ChunkedScanner::default().feed(rest) {
                    assert!(end > 0 && end <= rest.len());
                }
            }
            response::Framing::Length(n) => {
                assert!(values("transfer-encoding").is_empty());
                for v in values("content-length") {
                    for part in v.split(|&b| b == b',') {
                        assert_eq!(number(part.trim_ascii()), Some(n));
                    }
                }
            }
            response::Framing::Eof => assert!(head.close_client && !head.reusable),
            response::Framing::Empty => {}
        }
        if server == ServerHeader::Off {
            assert!(values("server").is_empty());
        }
    }
}

/// A chunked response body, as the fast path scans it for its end and the
/// raw upstream exchange decodes it.
///
/// The bytes as they are: the end (or error) found does not depend on how
/// they were split into reads, and lies within them; decoding finds the
/// same. The bytes as a body: chunk-encoded (sizes, case, extensions,
/// whitespace and trailers chosen from the bytes themselves) and followed
/// by the next response, the end found is exactly the end of the encoding,
/// and decoding gives back the bytes, however the reads cut them.
pub fn chunked(data: &[u8]) {
    let whole = ChunkedScanner::default().feed(data);
    if let Ok(Some(end)) = whole {
        assert!(end > 0 && end <= data.len());
    }
    assert_eq!(scan_in_pieces(data, 1), whole, "byte by byte");
    assert_eq!(scan_in_pieces(data, 7), whole, "in pieces of 7");
    if let Some(&first) = data.first() {
        assert_eq!(scan_in_pieces(data, usize::from(first) + 1), whole);
    }

    let encoded = encode_chunked(data);
    let mut stream = encoded.clone();
    stream.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    let want = Ok(Some(encoded.len()));
    assert_eq!(ChunkedScanner::default().feed(&stream), want);
    assert_eq!(scan_in_pieces(&stream, 1), want);
    assert_eq!(scan_in_pieces(&stream, 5), want);
    // Cut short anywhere, it waits for more.
    let cut = data.len() % encoded.len();
    assert_eq!(ChunkedScanner::default().feed(&encoded[..cut]), Ok(None));

    assert_eq!(decode_in_pieces(data, 3).map(|(_, end)| end), whole);
    for size in [1, 5, stream.len()] {
        assert_eq!(
            decode_in_pieces(&stream, size),
            Ok((data.to_vec(), Some(encoded.len()))),
            "decoded in pieces of {size}"
        );
    }
}

/// Decodes `data` with a fresh scanner `size` bytes at a time: the chunk
/// data, and where the body ended, counted from the start of `data`.
fn decode_in_pieces(data: &[u8], size: usize) -> Result<(Vec<u8>, Option<usize>), ChunkError> {
    let mut s = ChunkedScanner::default();
    let mut out = Vec::new();
    let mut start = 0;
    for piece in data.chunks(size.max(1)) {
        let mut at = 0;
        loop {
            match s.decode(&piece[at..])? {
                Decoded::Data { skip, len } => {
                    out.extend_from_slice(&piece[at + skip..at + skip + len]);
                    at += skip + len;
                }
                Decoded::More => break,
                Decoded::End(n) => return Ok((out, Some(start + at + n))),
            }
        }
        start += piece.len();
    }
    Ok((out, None))
}

/// The config file: YAML read into the positioned tree, checked against
/// the schema, read by serde and validated, as `sluice check` does.
///
/// Every error placed in the file is placed at a line and column that
/// exist; a valid config builds a routing table.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines as YAML counts them: CRLF, LF or a lone CR ends one.
    let lines = 1 + text.matches('\n').count() + text.replace("\r\n", "\n").matches('\r').count();
    let placed = |e: &config::FieldError| {
        if let Some(line) = e.line {
            assert!(
                line >= 1 && line <= lines + 1,
                "line {line} of {lines}: {e:?}"
            );
            assert!(e.column.is_some_and(|c| c >= 1), "{e:?}");
        }
    };
    if let Ok(Some(tree)) = schema::parse(text) {
        let mut errors = Vec::new();
        schema::check(&tree, &schema::CONFIG, "", &mut errors);
        for e in &errors {
            assert!(e.line.is_some(), "{e:?}");
            placed(e);
            if let Some(pos) = tree.locate(&e.field) {
                assert!(pos.line >= 1 && pos.line <= lines + 1);
            }
        }
    }
    match config::parse_str(text, "fuzz.yaml") {
        Ok(c) => {
            c.warnings.iter().for_each(placed);
            let metrics = crate::metrics::Metrics::new();
            let snap = Snapshot::build(&c.routes, c.default_backend.as_ref(), None, &metrics);
            assert!(snap.all_routes().count() <= c.routes.len() + 1);
        }
        Err(e) => {
            let problems = e.problems();
            assert!(!problems.is_empty());
            problems.iter().for_each(placed);
            let _ = e.to_string();
        }
    }
}

/// An object's annotations, one `key=value` per line, as an Ingress,
/// Service or pod carries them.
///
/// What they set stays in range (canary weight within its total, timeouts
/// of 1 s to a day, a pod weight of 1 to 10,000), every problem names an
/// annotation given, and annotations outside `sluice.dev/` and
/// ingress-nginx's prefix change nothing.
pub fn annotations(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let map: BTreeMap<String, String> = text
        .split('\n')
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let a = annotations::parse(&Some(map.clone()));
    assert!(
        a.canary_total >= 1 && a.canary_weight <= a.canary_total,
        "{a:?}"
    );
    for d in [a.connect_timeout, a.read_timeout].into_iter().flatten() {
        assert!((1..=86_400).contains(&d.as_secs()), "{d:?}");
    }
    let ours: BTreeMap<String, String> = map
        .iter()
        .filter(|(k, _)| {
            k.starts_with("sluice.dev/") || k.starts_with("nginx.ingress.kubernetes.io/")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Each problem names the annotation it is about (a snippet may have
    // one per directive it refuses).
    for p in &a.problems {
        assert!(
            ours.keys()
                .any(|k| p.starts_with(k.as_str()) && p[k.len()..].starts_with(':')),
            "a problem naming no annotation given: {p:?}"
        );
    }
    assert_eq!(annotations::parse(&Some(ours)), a);
    if let Ok(Some(w)) = annotations::pod_weight(&Some(map)) {
        assert!((1..=10_000).contains(&w));
    }
}

/// A request's Host and path against a set of routes: the first line is
/// the Host header (empty: none), the second the path, each further line
/// a route `HOST PATH [Exact|Prefix|ImplementationSpecific]`.
///
/// Dot segments resolve to a path without any, which resolves to itself;
/// rule paths normalise to themselves; and the routing table picks the
/// route a plain model of Ingress matching picks (the host's own rules,
/// else its one-label wildcard's, else the rules without a host; Exact,
/// then the longest Prefix by path element; the first of equal rules),
/// whatever the case of the Host.
pub fn routing(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let host = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();

    // Normalizing is idempotent, and its result has no escaped unreserved
    // character, no lower-case escape and no dot segment.
    if let Normalized::Changed(n) = normalize(path) {
        assert_eq!(normalize(&n), Normalized::Same, "{path:?} became {n:?}");
        let b = n.as_bytes();
        for (i, _) in n.match_indices('%') {
            let esc = &b[i + 1..i + 3];
            assert!(
                esc.iter()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
                "{n:?}"
            );
        }
    }
    let resolved = resolve_dots(path);
    match &resolved {
        Some(r) => {
            assert!(r.starts_with('/'), "{path:?} resolved to {r:?}");
            assert!(!r.split('/').any(|s| s == "." || s == ".."), "{r:?}");
            assert_eq!(resolve_dots(r), None, "{r:?} is not resolved");
        }
        None if path.starts_with('/') => {
            assert!(!path.split('/').any(|s| s == "." || s == ".."), "{path:?}");
        }
        None => {}
    }
    let path = resolved.as_deref().unwrap_or(path);

    let rules: Vec<(HostMatch, String, PathType)> = lines
        .take(16)
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            let host = HostMatch::parse(parts.next()?).ok()?;
            let path = parts.next().filter(|p| p.starts_with('/'))?;
            let ty = parts
                .next()
                .and_then(|t| t.parse().ok())
                .unwrap_or_default();
            Some((host, path.to_owned(), ty))
        })
        .collect();
    for (_, p, ty) in &rules {
        let n = ty.normalize(p);
        assert_eq!(ty.normalize(&n), n);
    }
    if host.is_empty() || !crate::http::valid_host(host.as_bytes()) {
        return;
    }
    let template = route_template();
    let specs: Vec<_> = rules
        .iter()
        .enumerate()
        .map(|(i, (h, p, ty))| {
            let mut s = template.clone();
            s.name = format!("r{i}").into();
            s.host = h.clone();
            s.path = p.clone();
            s.path_type = *ty;
            s
        })
        .collect();
    let snap = Snapshot::build(&specs, None, None, route_metrics());
    let name = |host: &str| {
        snap.lookup(Some(strip_port(host)), path)
            .map(|r| r.name.to_string())
    };
    let want = model_route(&rules, strip_port(host), path).map(|i| format!("r{i}"));
    assert_eq!(name(host), want, "{host:?} {path:?} {rules:?}");
    assert_eq!(
        name(&host.to_ascii_uppercase()),
        want,
        "upper-case {host:?}"
    );
    assert_eq!(
        name(&host.to_ascii_lowercase()),
        want,
        "lower-case {host:?}"
    );
}

/// A ClientHello's server name, looked up in a certificate table of a few
/// exact and wildcard names and a default certificate.
///
/// The certificate served is the one a plain model picks (exact name, else
/// a wildcard one label up, else the default; any case), and a certificate
/// of the table's own covers the name it was served for.
pub fn sni(data: &[u8]) {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    let t = sni_table();
    let lower = name.to_ascii_lowercase();
    let want = t
        .exact
        .iter()
        .find(|(n, _)| *n == lower)
        .or_else(|| {
            let (_, suffix) = lower.split_once('.')?;
            t.wildcard.iter().find(|(s, _)| *s == suffix)
        })
        .map(|(_, c)| c);
    let got = t.table.resolve(Some(name)).expect("there is a default");
    match want {
        Some(c) => {
            assert!(Arc::ptr_eq(&got, &c.key), "{name:?}");
            assert!(
                c.covers(&lower),
                "{name:?} served a certificate for {:?}",
                c.names
            );
        }
        None => assert!(Arc::ptr_eq(&got, &t.default.key), "{name:?}"),
    }
    assert_eq!(t.table.has_host(&lower), want.is_some());
}

/// The TLS passthrough peek: the server name read from a connection's
/// first bytes, as the HTTPS listener reads them (the first record whole,
/// by its header). The name lies inside the record, and bytes after the
/// record never change it.
pub fn client_hello(data: &[u8]) {
    use crate::tls::client_hello::{record_len, sni, Sni, RECORD_HEADER};
    let got = sni(data);
    if let Sni::Name(name) = got {
        let start = name.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + name.len() <= data.len());
        assert!(!name.is_empty());
    }
    let Some(header) = data.get(..RECORD_HEADER) else {
        assert_eq!(got, Sni::Unreadable);
        return;
    };
    match record_len(header.try_into().expect("5 bytes")) {
        Some(len) if len <= data.len() => assert_eq!(sni(&data[..len]), got),
        _ => assert_eq!(got, Sni::Unreadable),
    }
}

/// A Content-Length value's number (leading zeros and all).
fn number(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Feeds `data` to a fresh scanner `size` bytes at a time; the end is
/// counted from the start of `data`.
fn scan_in_pieces(data: &[u8], size: usize) -> Result<Option<usize>, ChunkError> {
    let mut s = ChunkedScanner::default();
    let mut start = 0;
    for piece in data.chunks(size.max(1)) {
        if let Some(end) = s.feed(piece)? {
            return Ok(Some(start + end));
        }
        start += piece.len();
    }
    Ok(None)
}

/// `data` as a chunked body. Its first byte picks the chunk size and its
/// length the style, so that the fuzzer steers both.
fn encode_chunked(data: &[u8]) -> Vec<u8> {
    let size = usize::from(data.first().copied().unwrap_or(0)) % 64 + 1;
    let style = data.len();
    let mut out = Vec::with_capacity(data.len() * 2 + 32);
    for chunk in data.chunks(size) {
        if style & 1 == 0 {
            out.extend_from_slice(format!("{:x}", chunk.len()).as_bytes());
        } else {
            out.extend_from_slice(format!("{:X}", chunk.len()).as_bytes());
        }
        if style & 2 != 0 {
            out.extend_from_slice(b" \t");
        }
        if style & 4 != 0 {
            out.extend_from_slice(b";name=\"v a l\";flag");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(if style & 8 != 0 {
        b"0;last\r\n"
    } else {
        b"0\r\n"
    });
    if style & 16 != 0 {
        out.extend_from_slice(b"x-checksum: abc\r\nx-more: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Polls a future that never waits (its reads are from memory).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = Box::pin(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("reads from memory never wait"),
    }
}

/// A connection that delivers `data` at most `size` bytes per read.
struct Pieces<'a> {
    data: &'a [u8],
    size: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.size.min(self.data.len()).min(buf.remaining());
        let (piece, rest) = self.data.split_at(n);
        buf.put_slice(piece);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// The route Ingress semantics choose, by index into `rules`. A name
/// longer than a DNS name (253) matches no host rule.
fn model_route(rules: &[(HostMatch, String, PathType)], host: &str, path: &str) -> Option<usize> {
    let host = if host.len() > 253 {
        String::new()
    } else {
        host.to_ascii_lowercase()
    };
    let exact = HostMatch::Exact(host.clone());
    let wildcard = host
        .split_once('.')
        .map(|(_, suffix)| HostMatch::Wildcard(suffix.to_owned()));
    let of_host = |h: &HostMatch| rules.iter().any(|(rh, _, _)| rh == h);
    let table = if of_host(&exact) {
        exact
    } else {
        match wildcard {
            Some(w) if of_host(&w) => w,
            _ => HostMatch::Any,
        }
    };
    // The first of rules with the same normalised path and kind of match.
    let mut seen = Vec::new();
    let mut live = Vec::new();
    for (i, (h, p, ty)) in rules.iter().enumerate() {
        if *h != table {
            continue;
        }
        let key = (ty.normalize(p), *ty == PathType::Exact);
        if !seen.contains(&key) {
            seen.push(key.clone());
            live.push((i, key));
        }
    }
    if let Some((i, _)) = live.iter().find(|(_, (p, exact))| *exact && p == path) {
        return Some(*i);
    }
    live.iter()
        .filter(|(_, (p, exact))| {
            !exact
                && (p == "/"
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
        })
        .max_by_key(|(_, (p, _))| p.len())
        .map(|(i, _)| *i)
}

/// A valid route (one backend), whose host and path each input sets.
fn route_template() -> &'static config::RouteSpec {
    static TEMPLATE: OnceLock<config::RouteSpec> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let c = config::quick(
            Vec::new(),
            None,
            &["127.0.0.1:1".parse().expect("a valid backend")],
            crate::balance::Strategy::RoundRobin,
        )
        .expect("a valid backend");
        c.routes.into_iter().next().expect("one route")
    })
}

/// One registry for every input: route names are `r0` to `r15`, so its
/// series stay bounded.
fn route_metrics() -> &'static crate::metrics::Metrics {
    static METRICS: OnceLock<crate::metrics::Metrics> = OnceLock::new();
    METRICS.get_or_init(crate::metrics::Metrics::new)
}

/// The certificate table the `sni` target looks names up in, and what it
/// holds, for the model.
struct SniTable {
    table: CertTable,
    exact: Vec<(&'static str, Arc<Certificate>)>,
    wildcard: Vec<(&'static str, Arc<Certificate>)>,
    default: Certificate,
}

fn sni_table() -> &'static SniTable {
    static TABLE: OnceLock<SniTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let cert = |names: &[&str]| {
            let c = rcgen::generate_simple_self_signed(
                names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            )
            .expect("rcgen makes a certificate");
            Arc::new(
                Certificate::from_pem(
                    c.cert.pem().as_bytes(),
                    c.signing_key.serialize_pem().as_bytes(),
                )
                .expect("a certificate made here loads"),
            )
        };
        let bind = |source: &str, hosts: &[&str], cert: &Arc<Certificate>| Binding {
            source: source.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            cert: cert.clone(),
        };
        let a = cert(&["a.example.com", "www.example.com"]);
        let w = cert(&["*.example.com"]);
        let shop = cert(&["shop.example.org", "*.shop.example.org"]);
        let late = cert(&["a.example.com", "late.example.net"]);
        let default = Certificate::self_signed();
        let (table, _) = CertTable::build(
            &[
                bind("a", &[], &a),
                bind("w", &[], &w),
                // Only the host named is served, not the wildcard; the host
                // it does not cover is left to the default.
                bind("shop", &["Shop.Example.org", "other.example.org"], &shop),
                // Earlier bindings win a host.
                bind("late", &[], &late),
            ],
            Some(&default),
        );
        SniTable {
            table,
            exact: vec![
                ("a.example.com", a.clone()),
                ("www.example.com", a),
                ("shop.example.org", shop),
                ("late.example.net", late),
            ],
            wildcard: vec![("example.com", w)],
            default,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fuzz_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
    }

    /// Every seed of every target, through the target's entry point: what
    /// the fuzzer starts from stays meaningful without it. Seeds have a
    /// file extension; what libFuzzer adds to a corpus (named by SHA-1, and
    /// ignored by git) has none and is left out.
    #[test]
    fn seed_corpora_replay() {
        for (name, run) in TARGETS {
            let dir = fuzz_dir().join("corpus").join(name);
            let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("a directory entry").path())
                .filter(|p| p.extension().is_some())
                .collect();
            seeds.sort();
            assert!(seeds.len() >= 3, "{name} has {} seeds", seeds.len());
            for seed in seeds {
                let data = std::fs::read(&seed).expect("a seed file");
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "{name} fails on {}", seed.display());
            }
        }
    }

    /// The HTTP/2 targets on mutations of their seeds (bytes flipped,
    /// dropped, repeated), with a fixed seed: a few thousand runs of
    /// fuzzing on stable, each time the tests run.
    #[test]
    fn http2_and_hpack_survive_mutated_seeds() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (name, run) in TARGETS
            .iter()
            .filter(|(n, _)| *n == "http2" || *n == "hpack")
        {
            let dir = fuzz_dir().join("corpus").join(name);
            let seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| std::fs::read(e.unwrap().path()).unwrap())
                .collect();
            for i in 0..3000 {
                let mut data = seeds[i % seeds.len()].clone();
                for _ in 0..1 + next() % 4 {
                    if data.is_empty() {
                        break;
                    }
                    let at = (next() as usize) % data.len();
                    match next() % 4 {
                        0 => data[at] = next() as u8,
                        1 => data[at] ^= 1 << (next() % 8),
                        2 => {
                            data.remove(at);
                        }
                        _ => {
                            let end = (at + 1 + (next() as usize) % 16).min(data.len());
                            let piece = data[at..end].to_vec();
                            data.splice(at..at, piece);
                        }
                    }
                }
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "{name} fails on {data:02x?}");
            }
        }
    }

    /// A target file for each entry point, and an entry point for each
    /// target file.
    #[test]
    fn every_target_has_a_file() {
        let mut files: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
            .expect("fuzz/fuzz_targets")
            .map(|e| e.expect("a directory entry").path())
            .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
            .collect();
        files.sort();
        let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        assert_eq!(files, names);
    }
}
