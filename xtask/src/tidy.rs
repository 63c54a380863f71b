//! Tidy checks: repository rules that the compiler and clippy do not enforce.
//!
//! - every `unsafe {` block and `unsafe impl` in a `.rs` file under
//!   `crates/`, `examples/` or `xtask/` has a `// SAFETY:` comment directly
//!   above it (the comment may span several `//` lines; attribute lines may
//!   stand between it and the code; a statement split after `=` counts from
//!   its first line);
//! - every `unsafe fn` has a `# Safety` section in its doc comment;
//! - every `crates/*/src/lib.rs` opens with a `//!` paragraph that names its
//!   floor ("floor N", or "unpublished"/"benchmark" for the benchmarks) and
//!   says what the crate must never know or depend on (the word "never");
//! - `CHANGELOG.md` has a `## [Unreleased]` section;
//! - no `.rs` file under `crates/` is over [`MAX_LINES`] lines (STYLE.md);
//! - doc examples of the published crates reach everything through `evloop::…`
//!   (`docpaths.rs`), so that they compile in a program depending on evloop alone.
//!
//! Each rule is a function over one file's text, so the tests below feed it
//! small strings. Comments and the contents of string and char literals are
//! blanked out before looking for `unsafe`, so prose and test data do not count.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::Result;
use crate::docpaths;
use crate::layers;

/// The longest a `.rs` file under `crates/` may be: STYLE.md's ceiling.
const MAX_LINES: usize = 800;

/// The folders whose `.rs` files the `unsafe` rules read.
const SOURCE_DIRS: &[&str] = &["crates", "examples", "xtask"];

/// One broken rule, at a 1-based line of a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    file: String,
    line: usize,
    message: String,
}

impl Problem {
    pub(crate) fn new(file: &str, line: usize, message: impl Into<String>) -> Problem {
        Problem {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl Problem {
    /// The 1-based line of the problem.
    #[cfg(test)]
    pub(crate) fn line(&self) -> usize {
        self.line
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// `cargo xtask tidy`: runs every rule on the working tree and prints each
/// problem as `file:line: message`.
pub(crate) fn run() -> Result<Vec<String>> {
    println!("+ tidy (in xtask: unsafe comments, crate docs, changelog, file length)");
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        rust_files(Path::new(dir), &mut files)?;
    }
    files.sort();
    for path in &files {
        let name = path.display().to_string();
        let src = read(path)?;
        problems.extend(check_unsafe(&name, &src));
        if path.starts_with("crates") {
            problems.extend(check_length(&name, &src));
        }
        if is_published_source(path) {
            problems.extend(docpaths::check_doc_paths(&name, &src));
        }
    }
    for (lib, package) in crate_libs()? {
        let name = lib.display().to_string();
        problems.extend(check_crate_doc(&name, &read(&lib)?, &package));
    }
    let changelog = Path::new("CHANGELOG.md");
    let text = if changelog.exists() {
        read(changelog)?
    } else {
        String::new()
    };
    problems.extend(check_changelog("CHANGELOG.md", &text));

    for problem in &problems {
        println!("tidy: {problem}");
    }
    if problems.is_empty() {
        println!("tidy: {} Rust files checked, no problems", files.len());
        Ok(Vec::new())
    } else {
        Err(format!("tidy: {} problem(s)", problems.len()))
    }
}

/// The unpublished members, whose docs no user sees through the facade.
const UNPUBLISHED: &[&str] = &["bench", "soak", "python"];

/// Whether `path` is under `crates/<published crate>/src/`.
fn is_published_source(path: &Path) -> bool {
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    matches!(parts.as_slice(), ["crates", name, "src", ..] if !UNPUBLISHED.contains(name))
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| format!("tidy: cannot read {}: {e}", path.display()))
}

/// Collects the `.rs` files under `dir`, skipping `target` and hidden folders.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result {
    if !dir.is_dir() {
        return Ok(());
    }
    let entries =
        fs::read_dir(dir).map_err(|e| format!("tidy: cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("tidy: cannot list {}: {e}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every `crates/*/src/lib.rs` with its package name (from `crates/*/Cargo.toml`).
fn crate_libs() -> Result<Vec<(PathBuf, String)>> {
    let mut libs = Vec::new();
    let Ok(entries) = fs::read_dir("crates") else {
        return Ok(libs);
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let lib = dir.join("src/lib.rs");
        let manifest = dir.join("Cargo.toml");
        if lib.is_file() && manifest.is_file() {
            let name = package_name(&read(&manifest)?).unwrap_or_else(|| dir.display().to_string());
            libs.push((lib, name));
        }
    }
    libs.sort();
    Ok(libs)
}

/// The `name` of the `[package]` section of a manifest.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(value) = line.strip_prefix("name").map(str::trim_start) {
                if let Some(value) = value.strip_prefix('=') {
                    return Some(value.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

/// The `unsafe` rules on one file: `// SAFETY:` above every block and impl,
/// `# Safety` in the docs of every `unsafe fn`.
pub(crate) fn check_unsafe(file: &str, src: &str) -> Vec<Problem> {
    let lines: Vec<&str> = src.lines().collect();
    let code = code_lines(src);
    let mut problems = Vec::new();
    for (idx, code_line) in code.iter().enumerate() {
        let uses = unsafe_uses(code_line);
        if (uses.block || uses.imp) && !has_safety_comment(&lines, &code, idx) {
            let what = if uses.imp {
                "unsafe impl"
            } else {
                "unsafe block"
            };
            problems.push(Problem::new(
                file,
                idx + 1,
                format!("{what} without a `// SAFETY:` comment directly above it"),
            ));
        }
        if uses.function && !has_safety_doc(&lines, idx) {
            problems.push(Problem::new(
                file,
                idx + 1,
                "unsafe fn without a `# Safety` section in its doc comment",
            ));
        }
    }
    problems
}

/// What a line of code does with the `unsafe` keyword.
#[derive(Debug, Default, PartialEq, Eq)]
struct UnsafeUses {
    block: bool,
    imp: bool,
    function: bool,
}

fn unsafe_uses(code: &str) -> UnsafeUses {
    let mut uses = UnsafeUses::default();
    let mut from = 0;
    while let Some(pos) = code[from..].find("unsafe").map(|p| p + from) {
        from = pos + "unsafe".len();
        let before = code[..pos].chars().next_back();
        if before.is_some_and(is_ident) {
            continue;
        }
        let rest = &code[from..];
        if rest.starts_with(is_ident) {
            continue;
        }
        let rest = rest.trim_start();
        if rest.starts_with('{') {
            uses.block = true;
        } else if word_at(rest, "impl") {
            uses.imp = true;
        } else {
            // `unsafe fn name`, `unsafe extern "C" fn name`; not the pointer
            // type `unsafe fn(...)`.
            let rest = match rest.strip_prefix("extern") {
                Some(tail) if !tail.starts_with(is_ident) => {
                    let tail = tail.trim_start();
                    tail.strip_prefix("\"\"").unwrap_or(tail).trim_start()
                }
                _ => rest,
            };
            if let Some(tail) = rest.strip_prefix("fn") {
                let named = tail.starts_with(char::is_whitespace)
                    && tail.trim_start().starts_with(is_ident);
                uses.function |= named;
            }
        }
    }
    uses
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `text` starts with `word` as a whole word.
fn word_at(text: &str, word: &str) -> bool {
    text.strip_prefix(word)
        .is_some_and(|tail| !tail.starts_with(is_ident))
}

fn is_attribute(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("#[") || line.starts_with("#![")
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with("//")
}

/// Whether a `// SAFETY:` comment stands directly above line `idx` (0-based).
fn has_safety_comment(lines: &[&str], code: &[String], idx: usize) -> bool {
    let mut i = idx;
    // A statement that rustfmt split after `=` counts from its first line.
    while i > 0 && code[i - 1].trim_end().ends_with('=') && !is_comment(lines[i - 1]) {
        i -= 1;
    }
    while i > 0 && is_attribute(lines[i - 1]) {
        i -= 1;
    }
    let mut found = false;
    while i > 0 && is_comment(lines[i - 1]) {
        found |= lines[i - 1].contains("SAFETY:");
        i -= 1;
    }
    found
}

/// Whether the doc comment above line `idx` (0-based) has a `# Safety` heading.
fn has_safety_doc(lines: &[&str], idx: usize) -> bool {
    let mut i = idx;
    while i > 0 && (is_attribute(lines[i - 1]) || is_comment(lines[i - 1])) {
        if lines[i - 1].trim() == "/// # Safety" {
            return true;
        }
        i -= 1;
    }
    false
}

/// Each line of `src` with comments and the contents of string and char
/// literals removed, so that only code is left to search.
fn code_lines(src: &str) -> Vec<String> {
    #[derive(Clone, Copy)]
    enum State {
        Code,
        /// Inside `/* */`, at this nesting depth.
        Block(u32),
        Str,
        /// Inside a raw string closed by `"` and this many `#`.
        Raw(usize),
    }
    let mut state = State::Code;
    let mut out = Vec::new();
    for line in src.lines() {
        let chars: Vec<char> = line.chars().collect();
        let at = |i: usize| chars.get(i).copied();
        let mut code = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match state {
                State::Code => {
                    if c == '/' && at(i + 1) == Some('/') {
                        break;
                    } else if c == '/' && at(i + 1) == Some('*') {
                        state = State::Block(1);
                        code.push(' ');
                        i += 2;
                    } else if c == '"' {
                        state = State::Str;
                        code.push('"');
                        i += 1;
                    } else if c == 'r'
                        && raw_prefix_ok(&chars, i)
                        && matches!(at(i + 1), Some('"' | '#'))
                    {
                        let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
                        if at(i + 1 + hashes) == Some('"') {
                            state = State::Raw(hashes);
                            code.push('"');
                            i += hashes + 2;
                        } else {
                            code.push(c);
                            i += 1;
                        }
                    } else if c == '\'' && at(i + 1) == Some('\\') {
                        // An escaped char literal: skip to its closing quote.
                        let close = (i + 3..chars.len()).find(|&j| chars[j] == '\'');
                        code.push_str("' '");
                        i = close.map_or(chars.len(), |j| j + 1);
                    } else if c == '\'' && at(i + 2) == Some('\'') {
                        code.push_str("' '");
                        i += 3;
                    } else {
                        // Code, or the quote of a lifetime.
                        code.push(c);
                        i += 1;
                    }
                }
                State::Block(depth) => {
                    if c == '*' && at(i + 1) == Some('/') {
                        state = if depth == 1 {
                            State::Code
                        } else {
                            State::Block(depth - 1)
                        };
                        i += 2;
                    } else if c == '/' && at(i + 1) == Some('*') {
                        state = State::Block(depth + 1);
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                State::Str => {
                    if c == '\\' {
                        i += 2;
                    } else if c == '"' {
                        state = State::Code;
                        code.push('"');
                        i += 1;
                    } else {
                        i += 1;
                    }
                }
                State::Raw(hashes) => {
                    let closes = c == '"' && (1..=hashes).all(|k| at(i + k) == Some('#'));
                    if closes {
                        state = State::Code;
                        code.push('"');
                        i += hashes + 1;
                    } else {
                        i += 1;
                    }
                }
            }
        }
        out.push(code);
    }
    out
}

/// Whether the `r` at `i` can start a raw string: not the end of an
/// identifier, except in a `br` byte-string prefix.
fn raw_prefix_ok(chars: &[char], i: usize) -> bool {
    match i.checked_sub(1).map(|j| chars[j]) {
        None => true,
        Some('b') => i < 2 || !is_ident(chars[i - 2]),
        Some(c) => !is_ident(c),
    }
}

/// The crate-doc rule on one `lib.rs`.
pub(crate) fn check_crate_doc(file: &str, src: &str, package: &str) -> Vec<Problem> {
    let paragraph: Vec<&str> = src
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .map_while(|l| l.trim_start().strip_prefix("//!"))
        .take_while(|text| !text.trim().is_empty())
        .collect();
    if paragraph.is_empty() {
        return vec![Problem::new(
            file,
            1,
            "does not open with a `//!` paragraph",
        )];
    }
    let text = paragraph.join(" ").to_lowercase();
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut problems = Vec::new();
    if package == "evloop-bench" {
        if !text.contains("unpublished") && !text.contains("benchmark") {
            problems.push(Problem::new(
                file,
                1,
                "the opening `//!` paragraph does not say this is the unpublished benchmark package",
            ));
        }
    } else if let Some(floor) = layers::floor_of(package) {
        let names_floor = words
            .windows(2)
            .any(|w| w[0] == "floor" && w[1] == floor.to_string());
        if !names_floor {
            problems.push(Problem::new(
                file,
                1,
                format!("the opening `//!` paragraph does not name its floor (\"floor {floor}\")"),
            ));
        }
    } else {
        problems.push(Problem::new(
            file,
            1,
            format!("package {package} has no floor assigned (xtask/src/layers.rs)"),
        ));
    }
    if !words.contains(&"never") {
        problems.push(Problem::new(
            file,
            1,
            "the opening `//!` paragraph does not say what the crate must never know or depend on",
        ));
    }
    problems
}

/// The changelog rule.
pub(crate) fn check_changelog(file: &str, src: &str) -> Vec<Problem> {
    if src.lines().any(|l| l.trim_end() == "## [Unreleased]") {
        Vec::new()
    } else {
        vec![Problem::new(file, 1, "no `## [Unreleased]` section")]
    }
}

/// The file-length rule.
pub(crate) fn check_length(file: &str, src: &str) -> Vec<Problem> {
    let count = src.lines().count();
    if count > MAX_LINES {
        vec![Problem::new(
            file,
            MAX_LINES + 1,
            format!("{count} lines, over the {MAX_LINES}-line ceiling (STYLE.md)"),
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(problems: &[Problem]) -> Vec<usize> {
        problems.iter().map(|p| p.line).collect()
    }

    #[test]
    fn unsafe_block_needs_a_safety_comment() {
        let src = "fn f() {\n    let x = unsafe { g() };\n}\n";
        let problems = check_unsafe("a.rs", src);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "a.rs:2: unsafe block without a `// SAFETY:` comment directly above it"
        );
    }

    #[test]
    fn safety_comment_may_span_lines_and_precede_attributes() {
        let src = "\
// SAFETY: the pointer comes from `Box::into_raw`
// and is used once.
#[allow(clippy::something)]
let x = unsafe { g() };
fn h() {
    // SAFETY: fd is open for the whole call.
    let ret =
        unsafe { libc::close(fd) };
}
";
        assert_eq!(check_unsafe("a.rs", src), []);
    }

    #[test]
    fn comment_separated_by_code_does_not_count() {
        let src = "// SAFETY: stale.\nlet a = 1;\nunsafe { g() }\n// Not a safety note.\nunsafe { h() }\n";
        assert_eq!(lines_of(&check_unsafe("a.rs", src)), [3, 5]);
    }

    #[test]
    fn unsafe_impl_needs_a_safety_comment() {
        let src = "unsafe impl Send for A {}\n// SAFETY: B owns no thread-bound state.\nunsafe impl Sync for B {}\n";
        let problems = check_unsafe("a.rs", src);
        assert_eq!(lines_of(&problems), [1]);
        assert!(problems[0].message.starts_with("unsafe impl"));
    }

    #[test]
    fn unsafe_in_strings_and_comments_is_ignored() {
        let src = r####"
let s = "unsafe { not code }";
let r = r#"unsafe impl "X" {}"#;
// unsafe { in a comment }
/* unsafe { in a block
   comment unsafe { } */
let c = '"'; let t = "unsafe {";
let multi = "first line
unsafe { still a string }";
fn not_unsafe_fn() {}
"####;
        assert_eq!(check_unsafe("a.rs", src), []);
    }

    #[test]
    fn unsafe_fn_needs_a_safety_section() {
        let src = "\
/// Frees it.
pub unsafe fn free(p: *mut u8) {}
/// Frees it.
///
/// # Safety
///
/// `p` came from `alloc`.
#[inline]
pub unsafe fn free_ok(p: *mut u8) {}
unsafe extern \"C\" fn callback() {}
type F = unsafe fn(*const ());
";
        assert_eq!(lines_of(&check_unsafe("a.rs", src)), [2, 10]);
    }

    #[test]
    fn code_lines_blank_literals_and_comments() {
        let code = code_lines(
            "a /* b */ c // d\nlet x = b\"y\"; let l: &'a str = br#\"z\"#;\nlet c = '\\'';",
        );
        assert_eq!(
            code,
            [
                "a   c ",
                "let x = b\"\"; let l: &'a str = b\"\";",
                "let c = ' ';"
            ]
        );
    }

    #[test]
    fn crate_doc_names_floor_and_never() {
        let good = "//! Floor 1 of evloop: the timer wheel. It must never know the loop.\n//!\n//! More.\n";
        assert_eq!(check_crate_doc("lib.rs", good, "evloop-timer"), []);
        let punctuated = "//! evloop-timer (floor: 1) never knows the loop.\n";
        assert_eq!(check_crate_doc("lib.rs", punctuated, "evloop-timer"), []);
        let wrong_floor = "//! Floor 2: the timer wheel; never the loop.\n";
        assert_eq!(
            lines_of(&check_crate_doc("lib.rs", wrong_floor, "evloop-timer")),
            [1]
        );
        let no_never = "//! Floor 1: the timer wheel.\n";
        let problems = check_crate_doc("lib.rs", no_never, "evloop-timer");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("never"));
    }

    #[test]
    fn crate_doc_counts_the_opening_paragraph_only() {
        let src = "//! The timer wheel.\n//!\n//! Floor 1; it never knows the loop.\n";
        assert_eq!(check_crate_doc("lib.rs", src, "evloop-timer").len(), 2);
        let late = "use x;\n//! Floor 1, never.\n";
        let problems = check_crate_doc("lib.rs", late, "evloop-timer");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("does not open"));
    }

    #[test]
    fn crate_doc_of_bench_and_unknown_packages() {
        let bench = "//! The unpublished benchmark package; never a dependency.\n";
        assert_eq!(check_crate_doc("lib.rs", bench, "evloop-bench"), []);
        let unknown = "//! Floor 3, never.\n";
        let problems = check_crate_doc("lib.rs", unknown, "evloop-other");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("no floor assigned"));
    }

    #[test]
    fn changelog_needs_unreleased() {
        assert_eq!(
            check_changelog("CHANGELOG.md", "# Changelog\n\n## [Unreleased]\n"),
            []
        );
        assert_eq!(
            check_changelog("CHANGELOG.md", "# Changelog\n## [0.1.0]\n").len(),
            1
        );
    }

    #[test]
    fn length_ceiling_is_800_lines() {
        let ok = "x\n".repeat(800);
        assert_eq!(check_length("a.rs", &ok), []);
        let long = "x\n".repeat(801);
        assert_eq!(
            check_length("a.rs", &long)[0].to_string(),
            "a.rs:801: 801 lines, over the 800-line ceiling (STYLE.md)"
        );
    }

    #[test]
    fn package_name_reads_the_package_section() {
        let manifest = "[package]\nname = \"evloop-timer\"\n\n[dependencies]\nname = \"nope\"\n";
        assert_eq!(package_name(manifest).as_deref(), Some("evloop-timer"));
        assert_eq!(package_name("[workspace]\n"), None);
    }
}
