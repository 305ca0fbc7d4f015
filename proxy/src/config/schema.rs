//! The config file's shape, checked before serde reads it, so that a typo
//! is never silently accepted and every problem is reported at once, each
//! at the line and column of its key.
//!
//! serde stops at the first error, and a flattened struct or an untagged
//! enum loses where in the file it was (and with `flatten`, whether a field
//! was unknown at all). So the file is first read into a tree that keeps
//! each node's position ([`Node`], from yaml-rust2's marked events), walked
//! against [`CONFIG`], a description of every mapping's fields, and only a
//! file that passes is handed to serde. The same tree then places the
//! semantic errors of validation ([`Node::locate`]).

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::FieldError;

/// A position in the file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Pos {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// One node of the file.
#[derive(Debug)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    /// A scalar, and whether it was written plain (unquoted).
    Scalar(String, bool),
    Seq(Vec<Node>),
    /// Keys (with their positions) and values.
    Map(Vec<(String, Pos, Node)>),
    /// An alias: `*name`. Not expanded; accepted where anything goes.
    Alias,
}

/// A mapping's fields and the shape of each.
pub type Fields = &'static [(&'static str, Shape)];

/// What a node must look like.
#[derive(Debug)]
pub enum Shape {
    /// Any scalar (strings, durations, sizes, addresses).
    Str,
    Bool,
    /// A whole number.
    Int,
    /// One scalar, or a list of scalars (`listen: ADDR`).
    OneOrMany,
    List(&'static Shape),
    /// A mapping with exactly these fields.
    Map(Fields),
    /// A mapping with the fields of both lists (a route: its own, and a
    /// backend set's).
    Both(Fields, Fields),
    /// `IP:PORT[=WEIGHT]`, or `{address, weight}`.
    Backend,
}

const TIMEOUTS: Shape = Shape::Map(&[
    ("connect", Shape::Str),
    ("response_header", Shape::Str),
    ("upstream_idle", Shape::Str),
    ("request_body", Shape::Str),
    ("request", Shape::Str),
    ("request_header", Shape::Str),
    ("http2_idle", Shape::Str),
    ("send", Shape::Str),
]);
const RETRY: Shape = Shape::Map(&[("attempts", Shape::Int)]);
const HEALTH: Shape = Shape::Map(&[
    ("consecutive_failures", Shape::Int),
    ("base_ejection", Shape::Str),
    ("max_ejection", Shape::Str),
    ("panic_threshold", Shape::Int),
]);
const CERT_FILES: Shape = Shape::Map(&[("cert", Shape::Str), ("key", Shape::Str)]);
const BACKEND_ADDRESS: Shape = Shape::Map(&[("address", Shape::Str), ("weight", Shape::Int)]);

/// A backend set's fields: a route's and `default_backend`'s.
const SET_FIELDS: Fields = &[
    ("strategy", Shape::Str),
    ("upstream_protocol", Shape::Str),
    ("backends", Shape::List(&Shape::Backend)),
    ("timeouts", TIMEOUTS),
    ("retry", RETRY),
    ("health", HEALTH),
    ("max_request_body", Shape::Str),
];

/// A route: its own fields, then a backend set's.
const ROUTE: Shape = Shape::Both(
    &[
        ("name", Shape::Str),
        ("host", Shape::Str),
        ("path", Shape::Str),
        ("path_type", Shape::Str),
        ("ssl_redirect", Shape::Bool),
    ],
    SET_FIELDS,
);

/// `default_backend:`: a backend set alone.
const BACKEND_SET: Shape = Shape::Map(SET_FIELDS);

/// The whole file.
pub const CONFIG: Shape = Shape::Map(&[
    ("listen", Shape::OneOrMany),
    ("listen_tls", Shape::OneOrMany),
    (
        "tls",
        Shape::Map(&[
            ("certificates", Shape::List(&CERT_FILES)),
            ("default_certificate", CERT_FILES),
            ("redirect", Shape::Bool),
            ("redirect_port", Shape::Int),
            (
                "hsts",
                Shape::Map(&[
                    ("max_age", Shape::Str),
                    ("include_subdomains", Shape::Bool),
                    ("preload", Shape::Bool),
                ]),
            ),
        ]),
    ),
    ("admin", Shape::Str),
    ("timeouts", TIMEOUTS),
    ("retry", RETRY),
    ("health", HEALTH),
    (
        "upstream",
        Shape::Map(&[("max_idle_per_endpoint", Shape::Int)]),
    ),
    ("drain_timeout", Shape::Str),
    ("shutdown_delay", Shape::Str),
    ("reload_interval", Shape::Str),
    ("max_request_body", Shape::Str),
    ("access_log", Shape::Str),
    ("proxy_protocol", Shape::Bool),
    ("proxy_protocol_from", Shape::List(&Shape::Str)),
    ("trust_forwarded_for", Shape::List(&Shape::Str)),
    ("forwarded_for", Shape::Str),
    ("forwarded_for_header", Shape::Str),
    ("x_real_ip", Shape::Bool),
    ("http1_fast_path", Shape::Bool),
    ("http2_fast_path", Shape::Bool),
    ("server_header", Shape::Str),
    ("endpoint_metrics", Shape::Bool),
    ("dns_refresh", Shape::Str),
    (
        "limits",
        Shape::Map(&[
            ("max_connections", Shape::Int),
            ("max_uri", Shape::Str),
            ("max_in_flight", Shape::Int),
            ("max_memory", Shape::Str),
            ("http2_max_concurrent_streams", Shape::Int),
            ("max_header_size", Shape::Str),
            ("max_headers", Shape::Int),
            ("http2_stream_window", Shape::Str),
            ("http2_connection_window", Shape::Str),
        ]),
    ),
    ("routes", Shape::List(&ROUTE)),
    ("default_backend", BACKEND_SET),
]);

/// Reads YAML text into a tree of positioned nodes; `None` for an empty
/// document. A syntax error comes back with its position.
pub fn parse(text: &str) -> Result<Option<Node>, (String, Pos)> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut b, false)
        .map_err(|e| (e.info().to_owned(), Pos::from(*e.marker())))?;
    Ok(b.root)
}

/// Builds the tree from the parser's events.
#[derive(Default)]
struct Builder {
    /// Open collections: the node, and for a mapping a key waiting for
    /// its value.
    stack: Vec<(Node, Option<(String, Pos)>)>,
    root: Option<Node>,
}

impl Builder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some((parent, pending)) => match &mut parent.kind {
                Kind::Seq(items) => items.push(node),
                Kind::Map(entries) => match pending.take() {
                    None => {
                        // A key: mappings as keys are not config; name it by
                        // its text when it is a scalar.
                        let name = match node.kind {
                            Kind::Scalar(s, _) => s,
                            _ => "?".to_owned(),
                        };
                        *pending = Some((name, node.pos));
                    }
                    Some((key, pos)) => entries.push((key, pos, node)),
                },
                _ => {}
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from(mark);
        match ev {
            Event::Scalar(s, style, _, _) => self.push(Node {
                pos,
                kind: Kind::Scalar(s, style == TScalarStyle::Plain),
            }),
            Event::Alias(_) => self.push(Node {
                pos,
                kind: Kind::Alias,
            }),
            Event::SequenceStart(..) => self.stack.push((
                Node {
                    pos,
                    kind: Kind::Seq(Vec::new()),
                },
                None,
            )),
            Event::MappingStart(..) => self.stack.push((
                Node {
                    pos,
                    kind: Kind::Map(Vec::new()),
                },
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((mut node, _)) = self.stack.pop() {
                    // A mapping is where its first key is (the parser's
                    // mark for its start can lie past it).
                    if let Kind::Map(entries) = &node.kind {
                        if let Some((_, first, _)) = entries.first() {
                            node.pos = *first;
                        }
                    }
                    self.push(node);
                }
            }
            _ => {}
        }
    }
}

impl Node {
    /// A plain scalar that YAML reads as null (`~`, `null`, or nothing).
    fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s, true) if s.is_empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    }

    fn what(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(_, _) if self.is_null() => "nothing",
            Kind::Scalar(_, _) => "a single value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Alias => "an alias",
        }
    }

    /// Where the field at `path` (as validation names it:
    /// `routes[2].backends[0].weight`) is written: its key, or the list
    /// item. The nearest enclosing place when the path goes further than
    /// the file.
    pub fn locate(&self, path: &str) -> Option<Pos> {
        let mut node = self;
        let mut found = None;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let (name, indices) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !name.is_empty() {
                let Kind::Map(entries) = &node.kind else {
                    return found;
                };
                let Some((_, key_pos, value)) = entries.iter().find(|(k, _, _)| k == name) else {
                    return found;
                };
                found = Some(*key_pos);
                node = value;
            }
            for index in indices
                .split(['[', ']'])
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<usize>().ok())
            {
                let (Some(i), Kind::Seq(items)) = (index, &node.kind) else {
                    return found;
                };
                let Some(item) = items.get(i) else {
                    return found;
                };
                found = Some(item.pos);
                node = item;
            }
        }
        found
    }
}

/// Every place where `node` does not have the shape `shape`: unknown
/// fields (with the expected ones, and a likely meant one), and values of
/// the wrong kind.
pub fn check(node: &Node, shape: &Shape, path: &str, errors: &mut Vec<FieldError>) {
    if matches!(node.kind, Kind::Alias) || node.is_null() {
        return;
    }
    let mut wrong = |expected: &str| {
        errors.push(FieldError {
            field: path.to_owned(),
            message: format!("expected {expected}, found {}", node.what()),
            line: Some(node.pos.line),
            column: Some(node.pos.column),
        })
    };
    match shape {
        Shape::Str => {
            if !matches!(node.kind, Kind::Scalar(..)) {
                wrong("a single value");
            }
        }
        Shape::Bool => match &node.kind {
            Kind::Scalar(s, true) if s == "true" || s == "false" => {}
            _ => wrong("true or false"),
        },
        Shape::Int => match &node.kind {
            Kind::Scalar(s, true) if s.parse::<u64>().is_ok() => {}
            _ => wrong("a whole number"),
        },
        Shape::OneOrMany => match &node.kind {
            Kind::Scalar(..) => {}
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(item, &Shape::Str, &format!("{path}[{i}]"), errors);
                }
            }
            _ => wrong("an address or a list of addresses"),
        },
        Shape::List(inner) => match &node.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(item, inner, &format!("{path}[{i}]"), errors);
                }
            }
            _ => wrong("a list"),
        },
        Shape::Backend => match &node.kind {
            Kind::Scalar(..) => {}
            Kind::Map(_) => check(node, &BACKEND_ADDRESS, path, errors),
            _ => wrong("IP:PORT, IP:PORT=WEIGHT or {address, weight}"),
        },
        Shape::Map(_) | Shape::Both(..) => {
            let (own, more): (Fields, Fields) = match shape {
                Shape::Both(a, b) => (a, b),
                Shape::Map(a) => (a, &[]),
                _ => unreachable!("matched above"),
            };
            let Kind::Map(entries) = &node.kind else {
                wrong("a mapping of fields");
                return;
            };
            for (key, key_pos, value) in entries {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match own.iter().chain(more).find(|(name, _)| name == key) {
                    Some((_, inner)) => check(value, inner, &field, errors),
                    None => errors.push(FieldError {
                        field,
                        message: unknown(key, own.iter().chain(more).map(|(n, _)| *n)),
                        line: Some(key_pos.line),
                        column: Some(key_pos.column),
                    }),
                }
            }
        }
    }
}

/// "unknown field `wieght`: did you mean `weight`? expected one of …"
fn unknown<'a>(key: &str, fields: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = fields.collect();
    let close = names
        .iter()
        .map(|n| (distance(key, n), *n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min();
    let mut s = format!("unknown field `{key}`");
    if let Some((_, n)) = close {
        s.push_str(&format!(": did you mean `{n}`?"));
    }
    s.push_str(&format!(" (expected one of: {})", names.join(", ")));
    s
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<FieldError> {
        let node = parse(text).unwrap().unwrap();
        let mut errors = Vec::new();
        check(&node, &CONFIG, "", &mut errors);
        errors
    }

    #[test]
    fn every_unknown_field_is_named_at_its_key() {
        let e = problems(
            "listen: 127.0.0.1:8080\nroutes:\n  - name: a\n    pathh: /x\n    backends:\n      - {address: 127.0.0.1:9001, wieght: 5}\ndefault_backend:\n  backendz: [127.0.0.1:9001]\n",
        );
        let at: Vec<(String, usize, usize)> = e
            .iter()
            .map(|e| (e.field.clone(), e.line.unwrap(), e.column.unwrap()))
            .collect();
        assert_eq!(
            at,
            [
                ("routes[0].pathh".to_owned(), 4, 5),
                ("routes[0].backends[0].wieght".to_owned(), 6, 35),
                ("default_backend.backendz".to_owned(), 8, 3),
            ]
        );
        assert!(
            e[1].message.contains("did you mean `weight`?"),
            "{}",
            e[1].message
        );
        assert!(
            e[0].message.contains("expected one of: name, host, path"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn wrong_kinds_are_named() {
        let e = problems("retry:\n  attempts: many\nhttp1_fast_path: yes please\nroutes: {}\n");
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["retry.attempts", "http1_fast_path", "routes"]);
        assert!(e[0].message.contains("expected a whole number"));
    }

    #[test]
    fn paths_locate_their_keys() {
        let node = parse("routes:\n  - name: a\n    retry:\n      attempts: 50\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            node.locate("routes[0].retry.attempts"),
            Some(Pos { line: 4, column: 7 })
        );
        assert_eq!(node.locate("routes[0]"), Some(Pos { line: 2, column: 5 }));
        // Beyond the file: the nearest place.
        assert_eq!(
            node.locate("routes[0].backends"),
            Some(Pos { line: 2, column: 5 })
        );
    }
}
