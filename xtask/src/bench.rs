//! `cargo xtask bench`: the benchmark suite, built with optimisations.
//!
//! The arguments go through to `evloop-bench` unchanged, except that the
//! paths given to `--json` and `--out-dir` are made absolute against the
//! folder `cargo xtask` was called from (xtask itself runs in the root).

use std::path::Path;

use crate::cmd::{Cmd, Result};

/// Checks the arguments and runs `cargo run --release -p evloop-bench -- <args>`.
pub(crate) fn run(args: &[String], called_from: &Path) -> Result {
    let args = bench_args(args, called_from)?;
    let mut cmd = Cmd::cargo().args(["run", "--release", "-p", "evloop-bench", "--"]);
    // The `evloop_py` peer (evloop as CPython's asyncio loop) needs the Python module built;
    // smoke runs no Python peer at all. A module that cannot be built is a skip with the
    // reason, as for any other peer.
    if !args.iter().any(|a| a == "--smoke") {
        cmd = match crate::pytest::module_python() {
            Ok(python) => cmd.env(PYTHON_ENV, &python.display().to_string()),
            Err(e) => cmd.env(PYTHON_SKIP_ENV, &e),
        };
    }
    cmd.args(args).run()
}

/// The interpreter with the `evloop` module, for the benchmark's `evloop_py` peer.
const PYTHON_ENV: &str = "EVLOOP_BENCH_PYTHON";
/// Why there is none.
const PYTHON_SKIP_ENV: &str = "EVLOOP_BENCH_PYTHON_SKIP";

/// The arguments for the benchmark binary, or an error naming a bad one.
fn bench_args(args: &[String], called_from: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" | "--smoke" => out.push(arg.clone()),
            "--json" | "--out-dir" | "--group" => {
                let value = iter
                    .next()
                    .ok_or_else(|| format!("bench: {arg} needs a value"))?;
                let value = if arg == "--group" {
                    value.clone()
                } else {
                    called_from.join(value).display().to_string()
                };
                out.extend([arg.clone(), value]);
            }
            _ => {
                return Err(format!(
                    "bench: unknown argument {arg:?} (expected --quick, --json FILE, --group PREFIX, --out-dir DIR)"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paths_become_absolute_and_the_rest_passes_through() -> Result {
        let args = strings(&[
            "--quick",
            "--json",
            "out.json",
            "--group",
            "timers",
            "--out-dir",
            "/abs",
        ]);
        assert_eq!(
            bench_args(&args, Path::new("/work/sub"))?,
            strings(&[
                "--quick",
                "--json",
                "/work/sub/out.json",
                "--group",
                "timers",
                "--out-dir",
                "/abs"
            ])
        );
        Ok(())
    }

    #[test]
    fn bad_arguments_are_named() {
        let err = bench_args(&strings(&["--jsn", "x"]), Path::new("/"));
        assert!(err.is_err_and(|e| e.contains("\"--jsn\"")));
        let err = bench_args(&strings(&["--json"]), Path::new("/"));
        assert!(err.is_err_and(|e| e.contains("--json needs a value")));
    }
}
