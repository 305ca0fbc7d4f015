//! A check that the crate's modules import one way (see the crate's
//! documentation for the layers): no two top-level modules reach into each
//! other, directly or through others, and neither do two files of one
//! module folder (such as `upstream/endpoint.rs` and `upstream/idle.rs`).
//!
//! It reads the sources: every `crate::module` and `super::sibling` path
//! outside comments and `#[cfg(test)]` modules is an edge. A folder's
//! `mod.rs` is its namespace: it declares and re-exports its files, and
//! they may name what it defines, so edges between a folder and its own
//! files are not counted. Tests may import anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module: `("upstream", None)` for `upstream/mod.rs` or `upstream.rs`,
/// `("upstream", Some("pool"))` for `upstream/pool.rs` or any file of
/// `upstream/pool/`; `("", None)` is the crate root (`lib.rs`, with its
/// inline `build` module).
type Module = (String, Option<String>);

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [f] if f == "lib" => Some((String::new(), None)),
        // The binary is a crate of its own.
        [f] if f == "main" => None,
        [f] => Some((f.clone(), None)),
        [d, f] if f == "mod" => Some((d.clone(), None)),
        [d, f] => Some((d.clone(), Some(f.clone()))),
        // Deeper files belong to their second-level module.
        [d, f, ..] => Some((d.clone(), Some(f.clone()))),
        [] => None,
    }
}

/// The text without comments and without `#[cfg(test)]` modules.
fn code(text: &str) -> String {
    let no_comments: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::with_capacity(no_comments.len());
    let mut rest = no_comments.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // Only a module is skipped; a test-only `use` or fn is short.
        let head_end = after.find(['{', ';']).unwrap_or(after.len());
        if !after[..head_end].contains("mod ") || !after[head_end..].starts_with('{') {
            out.push_str(&after[..head_end.min(after.len())]);
            rest = &after[head_end.min(after.len())..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[head_end..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = head_end + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The identifiers that follow `prefix` (`crate::`, `super::`), including
/// each first name of a `crate::{a, b::c}` group.
fn names_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let ident = |s: &'a str| {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        &s[..end]
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices(prefix) {
        // `super::super::` and `foo::crate::` are not what is meant here.
        let before = &code[..i];
        if before.ends_with("::")
            || before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let after = &code[i + prefix.len()..];
        if let Some(group) = after.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())));
        } else {
            out.push(ident(after));
        }
    }
    out
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut texts = BTreeMap::new();
    for f in &files {
        if let Some(m) = module_of(&src, f) {
            let text = std::fs::read_to_string(f).expect("a source file is readable");
            texts.insert(m, code(&text));
        }
    }
    let top: BTreeSet<String> = texts.keys().map(|(t, _)| t.clone()).collect();
    let subs: BTreeSet<Module> = texts.keys().filter(|(_, s)| s.is_some()).cloned().collect();
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for ((t, sub), code) in &texts {
        let here = (t.clone(), sub.clone());
        let edges = g.entry(here.clone()).or_default();
        let mut add = |m: Module| {
            // A folder and its own files: namespace, not layering.
            if m.0 != *t || (m.1.is_some() && sub.is_some() && m != here) {
                edges.insert(m);
            }
        };
        for name in names_after(code, "crate::") {
            if top.contains(name) && name != "build" {
                add((name.to_owned(), None));
            } else if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                // `crate::Error`: the root.
                add((String::new(), None));
            }
        }
        if sub.is_some() {
            for name in names_after(code, "super::") {
                let sibling = (t.clone(), Some(name.to_owned()));
                if subs.contains(&sibling) {
                    add(sibling);
                }
            }
            // `crate::upstream::pool` from `upstream/endpoint.rs`.
            for name in names_after(code, &format!("crate::{t}::")) {
                let sibling = (t.clone(), Some(name.to_owned()));
                if subs.contains(&sibling) {
                    add(sibling);
                }
            }
        }
        if t.is_empty() {
            // The root names its modules without `crate::`
            // (`config::ConfigError`).
            for name in top.iter().filter(|n| !n.is_empty()) {
                if !names_after(code, &format!("{name}::")).is_empty() {
                    add((name.clone(), None));
                }
            }
        }
    }
    g
}

/// The first cycle found, as the modules around it.
fn cycle(g: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        m: &Module,
        g: &BTreeMap<Module, BTreeSet<Module>>,
        marks: &mut BTreeMap<Module, Mark>,
        path: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        match marks.get(m) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|p| p == m).unwrap_or(0);
                return Some(path[from..].to_vec());
            }
            None => {}
        }
        marks.insert(m.clone(), Mark::Open);
        path.push(m.clone());
        for next in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, g, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(m.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for m in g.keys() {
        if let Some(c) = visit(m, g, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn show(c: &[Module]) -> String {
    let name = |(t, s): &Module| match (t.as_str(), s) {
        ("", _) => "crate root".to_owned(),
        (t, None) => t.to_owned(),
        (t, Some(s)) => format!("{t}::{s}"),
    };
    let mut names: Vec<String> = c.iter().map(name).collect();
    names.push(name(&c[0]));
    names.join(" → ")
}

#[test]
fn top_level_modules_import_one_way() {
    // Files count as their module: `upstream::pool` naming `proxy` is
    // `upstream` naming `proxy`.
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for ((t, _), edges) in graph() {
        let from = (t.clone(), None);
        let set = g.entry(from).or_default();
        set.extend(
            edges
                .into_iter()
                .filter(|(to, _)| *to != t)
                .map(|(to, _)| (to, None)),
        );
    }
    if let Some(c) = cycle(&g) {
        panic!("modules import each other: {}", show(&c));
    }
}

#[test]
fn files_of_a_module_import_one_way() {
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, edges) in graph() {
        if from.1.is_none() {
            continue;
        }
        let set = g.entry(from.clone()).or_default();
        set.extend(
            edges
                .into_iter()
                .filter(|to| to.0 == from.0 && to.1.is_some()),
        );
    }
    if let Some(c) = cycle(&g) {
        panic!("files of one module import each other: {}", show(&c));
    }
}

/// The check finds what it is for: a cycle, written the ways the crate
/// writes imports.
#[test]
fn the_check_sees_a_cycle() {
    let a = code("use crate::b::X;\n// crate::c in a comment\n#[cfg(test)]\nmod tests {\n    use crate::c::Y;\n}\n");
    assert_eq!(names_after(&a, "crate::"), ["b"]);
    let b = code("use crate::{a::Z, d};\nuse super::pool::P;\n");
    assert_eq!(names_after(&b, "crate::"), ["a", "d"]);
    assert_eq!(names_after(&b, "super::"), ["pool"]);
    let m = |s: &str| (s.to_owned(), None);
    let g = BTreeMap::from([
        (m("a"), BTreeSet::from([m("b")])),
        (m("b"), BTreeSet::from([m("a"), m("d")])),
    ]);
    assert_eq!(show(&cycle(&g).unwrap()), "a → b → a");
}
