//! The layout holds: imports between the rooms of `src/` point one way (the data flow), no two
//! files import each other (directly or in a circle), and the decision core stays pure.
//!
//! Read from the source text: every `use crate::...` (with `{...}` groups expanded) and every
//! `crate::...` path outside comments. docs/architecture.md draws the same rooms.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// The rooms, bottom first, each with the rooms it may import. `sim` (the simulator, the demo,
/// the modelled pods and HPA) may use everything and nothing may use it.
const ROOMS: &[(&str, &[&str])] = &[
    ("read", &[]),
    ("decide", &["read"]),
    ("fetch", &["read"]),
    ("spec", &["read", "decide", "fetch"]),
    ("discovery", &["spec"]),
    ("run", &["read", "decide", "spec", "fetch", "discovery"]),
    ("serve", &["read", "decide", "spec", "fetch", "discovery", "run"]),
    ("sim", &["read", "decide", "spec", "fetch", "discovery", "run", "serve"]),
];

/// What the decision core must not touch: an async runtime, the network, files, the clock, logs
/// (it explains its decisions in the values it returns instead).
const IMPURE: &[&str] =
    &["tokio", "std::net", "std::fs", "std::time::Instant", "std::time::SystemTime", "hyper", "reqwest", "kube", "tracing"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file, e.g. `src/run/collector.rs` -> `run::collector`, `src/spec/mod.rs`
/// -> `spec`, `src/lib.rs` -> ``.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

/// Source text without comments (line comments, doc comments and block comments).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_block = false;
    for line in text.lines() {
        let mut rest = line;
        if in_block {
            match rest.find("*/") {
                Some(end) => {
                    rest = &rest[end + 2..];
                    in_block = false;
                }
                None => continue,
            }
        }
        if let Some(start) = rest.find("/*") {
            in_block = !rest[start..].contains("*/");
            rest = &rest[..start];
        }
        let code = match rest.find("//") {
            Some(c) => &rest[..c],
            None => rest,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Expands a use tree such as `a::{b, c::{d, e}}` into full paths.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = if head.is_empty() { prefix.to_string() } else { format!("{prefix}::{head}") };
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&base, &inner[start..], out);
    } else if !tree.is_empty() {
        let item = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(if item == "self" { prefix.to_string() } else { format!("{prefix}::{item}") });
    }
}

/// Every path a file's `use` statements bring in, whatever the root (`use std::{time::Instant}`
/// -> `std::time::Instant`).
fn all_use_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for stmt in code.split(';') {
        let Some(at) = stmt.find("use ") else { continue };
        let before = stmt[..at].trim_end();
        if !(before.is_empty() || before.ends_with('}') || before.ends_with("pub") || before.ends_with(')') || before.ends_with(']')) {
            continue; // `use` inside a word or expression
        }
        let tree = stmt[at + 4..].trim();
        let (root, rest) = match tree.find("::") {
            Some(i) => (&tree[..i], &tree[i + 2..]),
            None => (tree, ""),
        };
        if rest.is_empty() {
            paths.push(root.to_string());
        } else {
            expand(root, rest, &mut paths);
        }
    }
    paths
}

/// Every `crate::` path a file's code names.
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use crate::") {
        let after = &rest[at + "use crate::".len()..];
        let end = after.find(';').unwrap_or(after.len());
        expand("crate", &after[..end], &mut paths);
        rest = &after[end..];
    }
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let end = after.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(after.len());
        paths.push(format!("crate::{}", after[..end].trim_end_matches(':')));
        rest = &after[end..];
    }
    paths
}

struct Tree {
    /// module path -> (file, code without comments)
    files: BTreeMap<String, (PathBuf, String)>,
}

impl Tree {
    fn load() -> Tree {
        let mut paths = Vec::new();
        rust_files(&src(), &mut paths);
        let files = paths
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("read source");
                (module_of(&p), (p, code_only(&text)))
            })
            .collect();
        Tree { files }
    }

    /// The longest module path that is a file of the tree, for `crate::a::b::Item`.
    fn resolve(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.trim_start_matches("crate::").split("::").collect();
        (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| self.files.contains_key(m))
    }

    /// File-level import edges, from module to module (within a file's own module tree, such
    /// as its `mod tests`, nothing counts).
    fn edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, (_, code)) in &self.files {
            for path in crate_paths(code) {
                if let Some(target) = self.resolve(&path)
                    && &target != module
                    && !module.starts_with(&format!("{target}::"))
                    && !target.is_empty()
                {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
        edges
    }
}

fn room(module: &str) -> &str {
    module.split("::").next().unwrap_or("")
}

#[test]
fn imports_between_rooms_follow_the_data_flow() {
    let tree = Tree::load();
    let allowed: BTreeMap<&str, &[&str]> = ROOMS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (from, targets) in tree.edges() {
        let from_room = room(&from);
        if from_room.is_empty() || from_room == "main" || from_room == "proto" {
            continue; // lib.rs and the binary edge may use every room
        }
        let Some(ok) = allowed.get(from_room) else {
            wrong.push(format!("{from}: room `{from_room}` is not in tests/architecture.rs ROOMS (add it, and to docs/architecture.md)"));
            continue;
        };
        for to in targets {
            let to_room = room(&to);
            if to_room != from_room && to_room != "proto" && !ok.contains(&to_room) {
                wrong.push(format!("{from} imports {to}: `{from_room}` may use only {ok:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the data flow:\n{}", wrong.join("\n"));
}

#[test]
fn no_files_import_each_other_directly_or_in_a_circle() {
    let tree = Tree::load();
    let edges = tree.edges();
    // Depth-first search for a back edge; report the circle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        circles: &mut Vec<String>,
    ) {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                0 => visit(next, edges, state, stack, circles),
                1 => {
                    let from = stack.iter().position(|m| m == next).unwrap_or(0);
                    circles.push(format!("{} -> {next}", stack[from..].join(" -> ")));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    let mut circles = Vec::new();
    for node in edges.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            visit(node, &edges, &mut state, &mut Vec::new(), &mut circles);
        }
    }
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

#[test]
fn the_decision_core_does_no_io_and_reads_no_clock() {
    let tree = Tree::load();
    let mut found = Vec::new();
    for (module, (file, code)) in &tree.files {
        if room(module) != "decide" {
            continue;
        }
        // `mod tests` may use what it likes; it ends the file by convention.
        let code = code.split("#[cfg(test)]").next().unwrap_or(code);
        let mut used: Vec<String> = all_use_paths(code);
        used.extend(IMPURE.iter().filter(|bad| code.contains(&format!("{bad}::"))).map(|b| format!("{b}::")));
        for path in used {
            if let Some(bad) = IMPURE.iter().find(|bad| path == **bad || path.starts_with(&format!("{bad}::"))) {
                found.push(format!("{}: {bad} ({path})", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "the decision core must stay pure:\n{}", found.join("\n"));
}

#[test]
fn the_checker_reads_grouped_and_inline_paths() {
    let paths = crate_paths("use crate::{a::{self, B}, c::D as E};\nfn f() { crate::g::h(); }\n");
    assert_eq!(paths[..3], ["crate::a", "crate::a::B", "crate::c::D"].map(String::from));
    assert!(paths.contains(&"crate::g::h".to_string()));
    assert_eq!(code_only("a // b\n/* c\n d */ e\n"), "a \n\n e\n");
    let used = all_use_paths("use std::{fmt, time::{Duration, Instant}};\npub use tokio::sync::watch;\n");
    assert_eq!(used, ["std::fmt", "std::time::Duration", "std::time::Instant", "tokio::sync::watch"].map(String::from));
}
