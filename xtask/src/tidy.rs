//! Source rules checked without compiling, as rust-analyzer's `tidy` does:
//! every Rust file opens with a `//!` line saying what it is, and inside
//! `vergent-node` the modules import one another in one direction only
//! (docs/architecture.md, "Inside the node"). Run by `cargo xtask test` and
//! as ordinary tests of this crate.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// One forbidden edge between top-level modules of a crate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rule {
    /// The importing module (`*`: any module but the crate root).
    pub(crate) from: &'static str,
    /// The imported module.
    pub(crate) to: &'static str,
    /// Why the edge is forbidden, printed with a violation.
    pub(crate) why: &'static str,
}

/// The node crate's layering: frontends -> local service -> storage, peer
/// protocols -> local service, and `node.rs` composes them all.
pub(crate) const NODE_RULES: &[Rule] = &[
    Rule {
        from: "*",
        to: "node",
        why: "node.rs is the composition root; nothing imports it",
    },
    Rule {
        from: "kv",
        to: "api",
        why: "the local service is protocol-agnostic; frontends adapt it, not the reverse",
    },
    Rule {
        from: "kv",
        to: "peer",
        why: "peer protocols call the local service, not the reverse",
    },
    Rule {
        from: "api",
        to: "peer",
        why: "a frontend reads peer state only through the status snapshots",
    },
    Rule {
        from: "peer",
        to: "api",
        why: "peer protocols do not depend on a client frontend",
    },
    Rule {
        from: "strong",
        to: "api",
        why: "strong operations are protocol-agnostic; the gRPC frontend calls them",
    },
    Rule {
        from: "strong",
        to: "peer",
        why: "the peer layer routes consensus frames to strong, not the reverse",
    },
    Rule {
        from: "kv",
        to: "strong",
        why: "the local service knows nothing of consensus; strong builds on it",
    },
    Rule {
        from: "status",
        to: "*",
        why: "the status snapshots are plain data that every layer may fill or read",
    },
    Rule {
        from: "metrics",
        to: "*",
        why: "the event metrics are plain counters that every layer may record into",
    },
    Rule {
        from: "http",
        to: "peer",
        why: "the operations frontend reads peer state only through the status snapshots",
    },
    Rule {
        from: "http",
        to: "api",
        why: "the two frontends are independent; they share the layers below",
    },
];

/// Every check of this module, over the workspace at `root`.
pub(crate) fn check(root: &Path) -> anyhow::Result<()> {
    let mut problems = missing_module_docs(&rust_files(root)?, root)?;
    let node_src = root.join("crates/node/src");
    let modules = rust_files(&node_src)?
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
            Ok((module_of(&node_src, &p), text))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    problems.extend(
        forbidden_edges(&modules, NODE_RULES)
            .into_iter()
            .map(|v| format!("crates/node/src: {v}")),
    );
    if !problems.is_empty() {
        bail!("tidy:\n  {}", problems.join("\n  "));
    }
    eprintln!("tidy: ok");
    Ok(())
}

/// Rust sources under `dir`, skipping build output and hidden directories.
fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("read {}", d.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Files whose first line is not a `//!` module doc line.
fn missing_module_docs(files: &[PathBuf], root: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?;
        if !starts_with_module_doc(&text) {
            let shown = f.strip_prefix(root).unwrap_or(f).display();
            out.push(format!(
                "{shown}: the first line must be a `//!` line saying what the file is for"
            ));
        }
    }
    Ok(out)
}

fn starts_with_module_doc(text: &str) -> bool {
    text.lines().next().is_some_and(|l| l.starts_with("//!"))
}

/// The module path of `file` under a crate's `src` (`peer/mod.rs` is
/// `peer`, `peer/inbound.rs` is `peer::inbound`, `lib.rs` the root `""`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The top-level modules `text` (the source of module `module`) refers to
/// through `crate::` and `super::` paths, comments aside.
fn imported_layers(module: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // The whole file at once, so a `use crate::{` group spread over lines
    // is read as one path.
    let code: String = text
        .lines()
        .map(without_comment)
        .collect::<Vec<_>>()
        .join("\n");
    {
        for (prefix, base) in [("crate::", String::new()), ("super::", parent(module))] {
            let mut rest = code.as_str();
            while let Some(at) = rest.find(prefix) {
                // `super::` inside a longer word is not a path.
                let whole = at == 0
                    || !rest[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_');
                let after = &rest[at + prefix.len()..];
                rest = after;
                if !whole {
                    continue;
                }
                for first in first_segments(after) {
                    let path = if base.is_empty() {
                        first
                    } else {
                        format!("{base}::{first}")
                    };
                    if let Some(layer) = path.split("::").next().filter(|l| !l.is_empty()) {
                        out.push(layer.to_string());
                    }
                }
            }
        }
    }
    out
}

/// `line` up to a `//` comment; a `//` inside a string literal (a URL)
/// does not start one, so code after it on the line is still read.
fn without_comment(line: &str) -> &str {
    let mut in_string = false;
    let mut escaped = false;
    let bytes = line.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            return &line[..i];
        }
    }
    line
}

/// `a::b` gives `["a"]`; `{a::b, c}` gives `["a", "c"]`.
fn first_segments(after: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = after.strip_prefix('{') else {
        return vec![ident(after)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
    };
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.retain(|s| !s.is_empty() && s != "self");
    out
}

fn parent(module: &str) -> String {
    module.rsplit_once("::").map_or("", |(p, _)| p).to_string()
}

/// Every edge of `modules` (module path, source) that `rules` forbid, as
/// "module imports target: why".
pub(crate) fn forbidden_edges(modules: &[(String, String)], rules: &[Rule]) -> Vec<String> {
    let mut out = Vec::new();
    for (module, text) in modules {
        // The crate root declares the modules and re-exports the API.
        if module.is_empty() {
            continue;
        }
        let from = module.split("::").next().unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for to in imported_layers(module, text) {
            if to == from || !seen.insert(to.clone()) {
                continue;
            }
            for rule in rules {
                let from_matches = rule.from == "*" || rule.from == from;
                let to_matches = rule.to == "*" || rule.to == to;
                if from_matches && to_matches {
                    out.push(format!(
                        "forbidden edge {from} -> {to} ({module} imports crate::{to}): {}",
                        rule.why
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str, text: &str) -> (String, String) {
        (path.to_string(), text.to_string())
    }

    /// The "forbidden edge a -> b" part of each violation, without the why.
    fn edge_names(found: &[String]) -> Vec<&str> {
        found
            .iter()
            .map(|f| f.split(" (").next().unwrap_or(""))
            .collect()
    }

    #[test]
    fn the_workspace_passes_every_tidy_rule() {
        check(&crate::root()).expect("tidy rules hold");
    }

    #[test]
    fn an_import_of_the_composition_root_is_reported_with_the_edge_and_why() {
        let modules = [
            m(
                "peer::inbound",
                "use std::sync::Arc;\nuse crate::node::Shared;\n",
            ),
            m("", "mod node;\npub use node::Node;\n"),
        ];
        let found = forbidden_edges(&modules, NODE_RULES);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("forbidden edge peer -> node"),
            "{}",
            found[0]
        );
        assert!(found[0].contains("composition root"), "{}", found[0]);
    }

    #[test]
    fn grouped_inline_and_super_paths_are_all_seen() {
        let modules = [
            m(
                "kv::writer",
                "use crate::{clock::NodeClock, api::status::ApiError};\n",
            ),
            m(
                "kv",
                "fn f() { let _ = crate::peer::roster::Roster::load; }\n",
            ),
            m("api", "use super::node::Shared;\n"),
            m(
                "peer::repair",
                "use super::purge; // crate::api::x in a comment\n",
            ),
        ];
        let found = forbidden_edges(&modules, NODE_RULES);
        assert_eq!(
            edge_names(&found),
            [
                "forbidden edge kv -> api",
                "forbidden edge kv -> peer",
                "forbidden edge api -> node"
            ],
            "{found:?}"
        );
    }

    #[test]
    fn a_group_over_several_lines_and_code_after_a_url_string_are_seen() {
        let modules = [
            m(
                "kv",
                "use crate::{\n    clock::NodeClock,\n    peer::PeerCtx,\n};\n",
            ),
            m(
                "kv::feed",
                "const U: &str = \"https://x\"; use crate::api::Kv; // crate::node\n",
            ),
        ];
        let found = forbidden_edges(&modules, NODE_RULES);
        assert_eq!(
            edge_names(&found),
            ["forbidden edge kv -> peer", "forbidden edge kv -> api"],
            "{found:?}"
        );
    }

    #[test]
    fn allowed_edges_and_imports_within_a_layer_pass() {
        let modules = [
            m(
                "api",
                "use crate::kv::{KvError, LocalKv};\nuse crate::status::Snapshot;\n",
            ),
            m(
                "peer::inbound",
                "use super::convert::decode;\nuse crate::kv::LocalKv;\n",
            ),
            m("kv::feed", "mod tests { use super::*; }\n"),
        ];
        assert!(forbidden_edges(&modules, NODE_RULES).is_empty());
    }

    #[test]
    fn a_file_without_a_module_doc_line_is_named() {
        let dir = std::env::temp_dir().join(format!("vergent-tidy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good.rs");
        let bad = dir.join("bad.rs");
        std::fs::write(&good, "//! Says what it is.\nfn f() {}\n").expect("write");
        std::fs::write(&bad, "// not a module doc\nfn f() {}\n").expect("write");
        let found = missing_module_docs(&[good, bad], &dir).expect("read");
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("bad.rs:"), "{}", found[0]);
    }

    #[test]
    fn module_paths_follow_the_file_layout() {
        let src = Path::new("/x/src");
        assert_eq!(module_of(src, Path::new("/x/src/lib.rs")), "");
        assert_eq!(module_of(src, Path::new("/x/src/peer/mod.rs")), "peer");
        assert_eq!(
            module_of(src, Path::new("/x/src/peer/inbound.rs")),
            "peer::inbound"
        );
        assert_eq!(module_of(src, Path::new("/x/src/node.rs")), "node");
    }
}
