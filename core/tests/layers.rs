//! The core's shape, checked from its source (issue 12): the layers point down only, no
//! two files import each other (directly or around a circle), the server never imports the
//! client, and no function grows past 80 lines.
//!
//!     client/  server/     calls opened and accepted
//!          call/           the protocol-free machinery
//!          protocol/       how a call looks on the wire
//!          transport/      connections and streams
//!
//! `status`, `metadata`, `error` and `runtime` are the vocabulary every layer shares, and
//! import no layer. A `mod.rs` that only re-exports (`pub use`) its children is their
//! facade, not a dependency. `cargo test -p rillrpc --test layers -- --nocapture` prints
//! the import graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LONGEST_FN: usize = 80;

fn layer(module: &str) -> (u8, &str) {
    let top = module.split('/').next().unwrap_or(module);
    match top {
        "transport" => (1, top),
        "protocol" => (2, top),
        "call" => (3, top),
        "client" | "server" => (4, top),
        // The fuzz targets' entry points reach into any layer; nothing imports them.
        "fuzzing" => (5, top),
        _ => (0, top),
    }
}

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("core/src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

/// `call/queue` for core/src/call/queue.rs, `call` for core/src/call/mod.rs.
fn module_of(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = path
        .strip_prefix(&src)
        .expect("under src")
        .with_extension("");
    let s = rel.to_string_lossy().replace('\\', "/");
    s.strip_suffix("/mod").unwrap_or(&s).to_owned()
}

/// The code of a file, without comments, string and char literals, and `#[cfg(test)]`
/// modules' bodies kept (tests are code too).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' || (b[i] == b'r' && b.get(i + 1) == Some(&b'"')) {
            let raw = b[i] == b'r';
            i += if raw { 2 } else { 1 };
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && !raw {
                    i += 1;
                }
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            out.push_str("' '");
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            i += 3;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The crate paths `module`'s code names: its `use` items (brace groups expanded) and the
/// paths written out in its code (`crate::status::Code`, `super::x`, `child::Type`). Its
/// unit tests (an inline `#[cfg(test)] mod`, whose `super` is the file itself) are not its
/// dependencies, and a `mod.rs` re-exporting its children (`pub use`) is their facade.
fn imports(module: &str, code: &str, is_mod_rs: bool) -> BTreeSet<String> {
    let code = match code.find("#[cfg(test)]\nmod ") {
        Some(at) => &code[..at],
        None => code,
    };
    let here: Vec<&str> = module.split('/').collect();
    // `super` is the parent of the module the file is, whether `a/b.rs` or `a/b/mod.rs`.
    let parent = &here[..here.len() - 1];
    let children: BTreeSet<&str> = code
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or(l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';')
        })
        .collect();
    let resolve_path = |path: &str| -> Option<String> {
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let (base, rest): (Vec<&str>, &[&str]) = match segs.first().copied()? {
            "crate" => (Vec::new(), &segs[1..]),
            "super" => {
                let ups = segs.iter().take_while(|s| **s == "super").count();
                let up = (ups - 1).min(parent.len());
                (parent[..parent.len() - up].to_vec(), &segs[ups..])
            }
            "self" => (here.clone(), &segs[1..]),
            h if children.contains(h) => (here.clone(), &segs[..]),
            _ => return None,
        };
        let mut p = base;
        p.extend(rest.iter().copied());
        Some(p.join("/"))
    };
    let mut out = BTreeSet::new();
    // `use` items, their brace groups expanded one level.
    let mut skip = Vec::new();
    let mut rest = code;
    let mut offset = 0;
    while let Some(at) = rest.find("use ") {
        let abs = offset + at;
        let before = &code[..abs];
        let end = code[abs..].find(';').map(|e| abs + e).unwrap_or(code.len());
        offset = end;
        rest = &code[end..];
        if !before.is_empty() && !before.ends_with(char::is_whitespace) {
            continue;
        }
        skip.push(abs..end);
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        if is_mod_rs && before[line_start..].trim_start().starts_with("pub") {
            continue;
        }
        let tree: String = code[abs + 4..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let paths: Vec<String> = match tree.find('{') {
            Some(b) => tree[b + 1..tree.len() - 1]
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| format!("{}{}", &tree[..b], p))
                .collect(),
            None => vec![tree],
        };
        out.extend(paths.iter().filter_map(|p| resolve_path(p)));
    }
    // Paths written out in the code.
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts && (bytes[i].is_ascii_alphabetic()) && !skip.iter().any(|r| r.contains(&i)) {
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] == b':')
            {
                j += 1;
            }
            let path = &code[i..j];
            if path.contains("::") {
                if let Some(p) = resolve_path(path) {
                    out.insert(p);
                }
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The longest prefix of `path` that is a module of the crate.
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let segs: Vec<&str> = path.split('/').collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("/"))
        .find(|m| modules.contains(m))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().map(|p| module_of(p)).collect();
    let mut g = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        let code = code_only(&std::fs::read_to_string(f).expect("source"));
        let is_mod_rs = f.file_name().is_some_and(|n| n == "mod.rs");
        let deps = imports(&m, &code, is_mod_rs)
            .iter()
            .filter_map(|p| resolve(p, &modules))
            .filter(|d| *d != m)
            .collect();
        g.insert(m, deps);
    }
    g
}

#[test]
fn layers_point_down_and_nothing_goes_around_in_a_circle() {
    let g = graph();
    let mut bad = Vec::new();
    for (m, deps) in &g {
        let (lm, tm) = layer(m);
        for d in deps {
            let (ld, td) = layer(d);
            if ld > lm || (ld == lm && ld == 4 && td != tm) {
                bad.push(format!("{m} ({tm}) imports {d} ({td})"));
            }
        }
    }
    let mut by_layer: BTreeMap<u8, Vec<String>> = BTreeMap::new();
    for (m, deps) in &g {
        let list: Vec<&str> = deps.iter().map(String::as_str).collect();
        by_layer
            .entry(layer(m).0)
            .or_default()
            .push(format!("  {m} -> {}", list.join(", ")));
    }
    for (l, lines) in by_layer.iter().rev() {
        println!("layer {l}:\n{}", lines.join("\n"));
    }
    assert!(bad.is_empty(), "arrows up or across:\n{}", bad.join("\n"));

    // Depth-first search for a circle.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let at = path.iter().position(|p| p == m).expect("on the path");
                let mut c = path[at..].to_vec();
                c.push(m.to_owned());
                return Some(c);
            }
            _ => {}
        }
        state.insert(m.to_owned(), 1);
        path.push(m.to_owned());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, g, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(m.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in g.keys() {
        if let Some(c) = visit(m, &g, &mut state, &mut Vec::new()) {
            panic!("an import circle: {}", c.join(" -> "));
        }
    }
}

#[test]
fn no_function_is_longer_than_80_lines() {
    let mut long = Vec::new();
    for f in sources() {
        let code = code_only(&std::fs::read_to_string(&f).expect("source"));
        let lines: Vec<&str> = code.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let is_fn = t.starts_with("fn ")
                || t.contains(" fn ") && !t.contains("impl Fn") && !t.trim_end().ends_with(';');
            if !is_fn || t.contains("-> impl Fn") {
                continue;
            }
            // The body: from the first `{` after the signature to its matching `}`.
            let mut depth = 0i32;
            let mut opened = false;
            let mut end = i;
            'scan: for (j, l2) in lines.iter().enumerate().skip(i) {
                for c in l2.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        ';' if !opened && depth == 0 => break 'scan,
                        _ => {}
                    }
                    if opened && depth == 0 {
                        end = j;
                        break 'scan;
                    }
                }
            }
            let n = end + 1 - i;
            if opened && n > LONGEST_FN {
                long.push(format!(
                    "{}:{} ({n} lines): {}",
                    module_of(&f),
                    i + 1,
                    t.trim()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {LONGEST_FN} lines:\n{}",
        long.join("\n")
    );
}
