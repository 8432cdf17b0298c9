//! The shape of the source, checked: no import cycle between modules, no
//! function over 120 lines, no file over 500 lines without a reason at
//! its top. Text-level checks over `src/`, `ui/src/` and `tests/`: cheap,
//! and they fail with the place to look.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The module a file of `src/` belongs to for the cycle check: the
/// top-level module, or `wire/<sub>` (the two protocols must not use each
/// other both ways).
fn module_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [w, sub, ..] if w == "wire" && sub != "mod" => format!("wire/{sub}"),
        [first, ..] => first.clone(),
        [] => String::new(),
    }
}

/// Which modules each module names (`crate::x`, and `super::x` inside wire).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let me = module_of(rel);
        // Code only: a doc link is not a dependency.
        let text: String = std::fs::read_to_string(&f)
            .expect("read")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut add = |to: String| {
            if to != me && !to.is_empty() && to != "lib" && to != "main" {
                g.entry(me.clone()).or_default().insert(to);
            }
        };
        for (i, _) in text.match_indices("crate::") {
            let word: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let rest = &text[i + 7 + word.len()..];
            if word == "wire" {
                let sub: String = rest
                    .trim_start_matches("::")
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                match sub.as_str() {
                    "ctl" | "peer" | "types" => add(format!("wire/{sub}")),
                    _ => add("wire".into()),
                }
            } else if word.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                add(word);
            }
        }
        if me.starts_with("wire/") {
            for sub in ["ctl", "peer", "types"] {
                if text.contains(&format!("super::{sub}")) {
                    add(format!("wire/{sub}"));
                }
            }
        }
    }
    g
}

#[test]
fn no_import_cycle_between_modules() {
    let g = graph();
    // Depth-first search for a back edge; report the cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(k) = path.iter().position(|p| p == n) {
            let mut cycle = path[k..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(n, &g, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}\nthe graph: {g:#?}", c.join(" -> "));
        }
    }
    // The layers: the engine knows only the wire; the wire knows nothing.
    let uses = |m: &str| g.get(m).cloned().unwrap_or_default();
    assert!(
        uses("engine").iter().all(|m| m.starts_with("wire")),
        "engine uses {:?}",
        uses("engine")
    );
    for w in ["wire", "wire/ctl", "wire/peer", "wire/types"] {
        assert!(
            uses(w).iter().all(|m| m.starts_with("wire")),
            "{w} uses {:?}",
            uses(w)
        );
    }
}

fn sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for d in ["src", "ui/src", "tests", "examples"] {
        rust_files(&root().join(d), &mut files);
    }
    files.sort();
    files
}

#[test]
fn no_function_over_120_lines() {
    let mut long = Vec::new();
    for f in sources() {
        let text = std::fs::read_to_string(&f).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let indent = l.len() - t.len();
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
                "pub async fn ",
            ]
            .iter()
            .any(|p| t.starts_with(p));
            if !is_fn || t.ends_with(';') {
                continue;
            }
            let close = format!("{}}}", " ".repeat(indent));
            let end = lines[i..]
                .iter()
                .position(|x| *x == close)
                .map_or(0, |n| n + 1);
            if end > 120 {
                long.push(format!("{}:{} ({end} lines)", f.display(), i + 1));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over 120 lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn no_file_over_500_lines_without_a_reason() {
    let mut long = Vec::new();
    for f in sources() {
        let text = std::fs::read_to_string(&f).expect("read");
        let n = text.lines().count();
        let head: String = text.lines().take(30).collect::<Vec<_>>().join("\n");
        if n > 500 && !head.contains("Why this file is long:") {
            long.push(format!("{} ({n} lines)", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over 500 lines with no `Why this file is long:` in their first 30 lines:\n{}",
        long.join("\n")
    );
}
