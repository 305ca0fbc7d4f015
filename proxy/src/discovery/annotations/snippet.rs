//! ingress-nginx's `configuration-snippet` and `server-snippet`: raw nginx
//! configuration, which sluice never runs. The three directives people
//! put in them far more than any other — headers on the answer
//! (`more_set_headers`, `add_header`) and on the request to the pod
//! (`proxy_set_header`) — are recognised when their values are literal,
//! and mapped to the route's header edits; every other directive (and any
//! value with an nginx `$variable`) is refused by name, loudly.

use http::{HeaderName, HeaderValue};

/// What a snippet's directives ask for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SnippetEdits {
    /// `proxy_set_header`: set on the request sent upstream.
    pub request: Vec<(HeaderName, HeaderValue)>,
    /// `more_set_headers`: set on every answer.
    pub response: Vec<(HeaderName, HeaderValue)>,
    /// `add_header`: added to 2xx and 3xx answers (all with `always`).
    pub added: Vec<(HeaderName, HeaderValue, bool)>,
}

/// Reads a snippet: the edits it maps to, and one line per directive it
/// refused.
pub fn parse(snippet: &str) -> (SnippetEdits, Vec<String>) {
    let mut edits = SnippetEdits::default();
    let mut refused = Vec::new();
    for statement in statements(snippet) {
        let words = match words(&statement) {
            Ok(w) if !w.is_empty() => w,
            Ok(_) => continue,
            Err(why) => {
                refused.push(format!("`{}`: {why}", shorten(&statement)));
                continue;
            }
        };
        let directive = words[0].as_str();
        let args = &words[1..];
        let result = match directive {
            "more_set_headers" => more_set_headers(args, &mut edits),
            "add_header" => add_header(args, &mut edits),
            "proxy_set_header" => proxy_set_header(args, &mut edits),
            _ => Err("raw nginx configuration"),
        };
        if let Err(why) = result {
            refused.push(format!("`{}`: {why}", shorten(&statement)));
        }
    }
    (edits, refused)
}

/// `more_set_headers "Name: value" ...;` (no `-s`/`-t` filters).
fn more_set_headers(args: &[String], edits: &mut SnippetEdits) -> Result<(), &'static str> {
    if args.is_empty() {
        return Err("more_set_headers without a header");
    }
    let mut found = Vec::new();
    for a in args {
        if a.starts_with('-') {
            return Err("more_set_headers' -s and -t filters are not supported");
        }
        let (name, value) = a.split_once(':').ok_or("not `Name: value`")?;
        found.push(header(name.trim(), value.trim())?);
    }
    edits.response.extend(found);
    Ok(())
}

/// `add_header Name value [always];`
fn add_header(args: &[String], edits: &mut SnippetEdits) -> Result<(), &'static str> {
    let always = match args.len() {
        2 => false,
        3 if args[2] == "always" => true,
        _ => return Err("add_header takes a name, a value and `always`"),
    };
    let (n, v) = header(&args[0], &args[1])?;
    edits.added.push((n, v, always));
    Ok(())
}

/// `proxy_set_header Name value;`
fn proxy_set_header(args: &[String], edits: &mut SnippetEdits) -> Result<(), &'static str> {
    let [name, value] = args else {
        return Err("proxy_set_header takes a name and a value");
    };
    let h = header(name, value)?;
    if h.0 == http::header::HOST {
        return Err("the Host sent upstream is upstream-vhost's");
    }
    edits.request.push(h);
    Ok(())
}

/// A header with a literal value: nginx variables have no meaning here.
fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), &'static str> {
    if value.contains('$') {
        return Err("nginx variables are not supported, only literal values");
    }
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "not a header name")?;
    if crate::policy::HOP_BY_HOP.contains(&n.as_str()) || n == http::header::CONTENT_LENGTH {
        return Err("a connection header cannot be set");
    }
    let v = HeaderValue::from_str(value).map_err(|_| "not a header value")?;
    Ok((n, v))
}

/// The statements of a snippet, split at `;` outside quotes; comments
/// dropped. A block (`if (...) { ... }`) is one statement, refused whole.
fn statements(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), '\\') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                let _ = q;
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '#') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                cur.push(' ');
            }
            (None, '{') => {
                depth += 1;
                cur.push(c);
            }
            (None, '}') => {
                depth = depth.saturating_sub(1);
                cur.push(c);
                if depth == 0 {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (None, ';') if depth == 0 => out.push(std::mem::take(&mut cur)),
            (None, c) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A statement's words, quotes removed.
fn words(statement: &str) -> Result<Vec<String>, &'static str> {
    if statement.contains('{') {
        return Err("raw nginx configuration");
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = statement.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote");
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// A statement as messages quote it: its first line, at most 60 chars,
/// control characters shown as `?` (the message reaches logs and Events).
fn shorten(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut out: String = line
        .chars()
        .take(60)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if line.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_directives_are_mapped_and_the_rest_refused() {
        let (e, refused) = parse(
            r#"
            more_set_headers "X-Frame-Options: DENY" "X-Content-Type-Options: nosniff";
            add_header Cache-Control "no-store" always;
            add_header X-Served-By sluice;
            proxy_set_header X-Forwarded-Proto https;
            # a comment; with a semicolon
            rewrite ^/old /new break;
            proxy_set_header X-Real-IP $remote_addr;
            if ($host = x) { return 403; }
            more_set_headers -s 404 "X-Err: 1";
            "#,
        );
        assert_eq!(e.response.len(), 2);
        assert_eq!(e.response[0].0, "x-frame-options");
        assert_eq!(e.response[0].1, "DENY");
        assert_eq!(e.added.len(), 2);
        assert!(e.added[0].2 && !e.added[1].2);
        assert_eq!(
            e.request,
            vec![(
                HeaderName::from_static("x-forwarded-proto"),
                HeaderValue::from_static("https")
            )]
        );
        assert_eq!(refused.len(), 4, "{refused:#?}");
        assert!(
            refused[0].starts_with("`rewrite ^/old /new break`"),
            "{refused:?}"
        );
        assert!(refused[1].contains("variables"), "{refused:?}");
        assert!(refused[2].starts_with("`if ($host = x)"), "{refused:?}");
    }

    #[test]
    fn bad_headers_and_quotes() {
        let (e, refused) = parse("more_set_headers \"Bad Name: x\"; add_header Connection close; more_set_headers \"X: y");
        assert_eq!(e, SnippetEdits::default());
        assert_eq!(refused.len(), 3, "{refused:?}");
    }
}
