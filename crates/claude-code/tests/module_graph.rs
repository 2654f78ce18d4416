//! The crate's layers, checked: no import cycles between modules, and the SDK never
//! reaches into the hosting layer (`hosting` builds on the SDK, not the other way round).
//! A module is a top-level module of `src/` (`session`, `options`, …) or one of
//! `hosting/` (`hosting::pool`, …); an edge is any `crate::…` path in code (comments and
//! doc links do not count).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `session`, `hosting::pool`, … for a file under `src/`.
fn module_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [first, second, ..] if first == "hosting" && second != "mod" => {
            format!("hosting::{second}")
        }
        [first, ..] => first.clone(),
        [] => String::new(),
    }
}

/// The module a `crate::a::b` path points into.
fn target_of(path: &str) -> String {
    let mut parts = path.split("::").skip(1);
    match (parts.next(), parts.next()) {
        (Some("hosting"), Some(second)) => format!("hosting::{second}"),
        (Some(first), _) => first.to_string(),
        _ => String::new(),
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let from = module_of(rel);
        if from == "lib" {
            continue; // the crate root re-exports everything
        }
        let text = std::fs::read_to_string(&file).expect("read");
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(tail.len());
                let to = target_of(&tail[..end]);
                if !to.is_empty() && to != from && !(from.starts_with("hosting") && to == "hosting")
                {
                    edges.entry(from.clone()).or_default().insert(to);
                }
                rest = &tail[end.max(7)..];
            }
        }
        edges.entry(from).or_default();
    }
    edges
}

#[test]
fn no_module_import_cycles() {
    let edges = graph();
    // Depth-first search for a back edge; report the cycle found.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "import cycle: {}\nall edges: {edges:#?}",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_sdk_does_not_depend_on_the_hosting_layer() {
    for (from, tos) in graph() {
        if from.starts_with("hosting") {
            continue;
        }
        let into_hosting: Vec<_> = tos.iter().filter(|t| t.starts_with("hosting")).collect();
        assert!(
            into_hosting.is_empty(),
            "the SDK module `{from}` uses the hosting layer: {into_hosting:?}"
        );
    }
}
