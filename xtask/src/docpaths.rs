//! The tidy rule for doc examples: they compile where users paste them.
//!
//! A program that depends on `evloop` alone sees every published crate's docs through the
//! facade, so a doc example must reach everything through `evloop::…`: not through an inner
//! crate (`evloop_net::…`), nor `libc` or a bare `socket2` (re-exported as `evloop::socket2`),
//! which such a program does not have. The doc tests themselves would not notice: each crate's
//! tests compile with its own dependencies in scope.

use crate::tidy::Problem;

/// Names a doc example must not use, and what to say instead.
const FORBIDDEN: &[(&str, &str)] = &[
    ("evloop_sched", "its `evloop::` path"),
    ("evloop_task", "its `evloop::` path"),
    ("evloop_exec", "its `evloop::` path"),
    ("evloop_net", "its `evloop::` path"),
    ("evloop_reactor", "`evloop::raw` or `evloop::signal`"),
    ("evloop_timer", "`evloop::raw`"),
    ("libc::", "`evloop::signal` or `evloop::socket2`"),
];

/// Fence info strings whose blocks are not Rust (so not compiled).
const NOT_RUST: &[&str] = &["text", "sh", "console", "toml", "json", "python", "ignore"];

/// Checks the doc examples of one published crate's source file.
pub(crate) fn check_doc_paths(file: &str, src: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut in_rust = false;
    let mut in_block = false;
    // Inside `use evloop::{ … };`, where `socket2::…` is the facade's.
    let mut in_facade_use = false;
    for (i, line) in src.lines().enumerate() {
        let trimmed = line.trim_start();
        let Some(doc) = trimmed
            .strip_prefix("///")
            .or_else(|| trimmed.strip_prefix("//!"))
        else {
            in_block = false;
            in_rust = false;
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        if let Some(info) = doc.trim_start().strip_prefix("```") {
            if in_block {
                in_block = false;
                in_rust = false;
            } else {
                in_block = true;
                in_rust = !info.split(',').any(|word| NOT_RUST.contains(&word.trim()));
            }
            continue;
        }
        if !in_rust {
            continue;
        }
        for (name, instead) in FORBIDDEN {
            if word_in(doc, name) {
                problems.push(Problem::new(
                    file,
                    i + 1,
                    format!(
                        "doc example uses `{name}`, which a program depending on evloop alone \
                         does not have: use {instead}"
                    ),
                ));
            }
        }
        let code = doc.trim_start();
        let facade_use = in_facade_use || code.starts_with("use evloop::");
        in_facade_use = facade_use && !code.contains(';');
        if !facade_use && bare_socket2(doc) {
            problems.push(Problem::new(
                file,
                i + 1,
                "doc example uses `socket2` directly: use `evloop::socket2`",
            ));
        }
    }
    problems
}

/// Whether `name` occurs in `text` not as the tail of a longer identifier.
fn word_in(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Whether `socket2` is named other than as `evloop::socket2`.
fn bare_socket2(text: &str) -> bool {
    text.match_indices("socket2").any(|(at, _)| {
        let before = &text[..at];
        let ident_tail = before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident_tail && !before.ends_with("evloop::")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_crates_libc_and_bare_socket2_are_flagged_in_rust_examples_only() {
        let src = "\
/// Text mentioning evloop_net is fine.
///
/// ```
/// use evloop_net::Transport;
/// use evloop::socket2::Socket;
/// # unsafe { libc::raise(10) };
/// let s: socket2::Socket = todo!();
/// ```
///
/// ```text
/// evloop_net in a text block is fine
/// ```
fn f() {}
";
        let lines: Vec<usize> = check_doc_paths("f.rs", src)
            .iter()
            .map(|p| p.line())
            .collect();
        assert_eq!(lines, [4, 6, 7]);
    }

    #[test]
    fn facade_paths_pass() {
        let src = "\
//! ```
//! use evloop::{EventLoop, socket2::Socket, signal};
//! use evloop::socket2;
//! use evloop::{
//!     LoopSockExt,
//!     socket2::{Domain, Type},
//! };
//! let t = evloop::socket2::Type::STREAM;
//! ```
";
        assert!(check_doc_paths("lib.rs", src).is_empty());
    }
}
