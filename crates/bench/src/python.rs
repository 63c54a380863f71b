//! Python's asyncio, uvloop and evloop's own Python module (`evloop_py`) as peers, run in the
//! same benchmark run.
//!
//! A peer is a script under `crates/bench/python/` that takes
//! `--loop asyncio|uvloop` and its own arguments, does the same work as the
//! Rust side, and prints one `metric value` line per figure (`total 1327.5`).
//! asyncio runs on the `python3` found on `PATH`; uvloop runs in a venv under
//! `<out-dir>/venv`, made once and reused. Whatever goes wrong becomes a
//! skip with its reason in the report: a peer never vanishes silently.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Ctx;
use crate::sys::run_with_limit;

/// How long one peer script may run before it is killed.
const PEER_LIMIT: Duration = Duration::from_secs(600);

/// How long making the uvloop venv may take (`venv` plus `pip install`).
const VENV_LIMIT: Duration = Duration::from_secs(180);

/// The folder of the peer scripts.
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Runs `script` (a file name under `crates/bench/python/`) as the peer
/// `subject` (`"asyncio"` or `"uvloop"`) with `args`, and returns the figures
/// it printed as `(metric, value)` pairs in order.
///
/// Returns `None` after calling [`Ctx::skip`] with the reason when the peer
/// cannot run: smoke mode, no `python3`, no uvloop, a missing script, a
/// failure or time-out of the script, or output that is not `metric value` lines.
pub(crate) fn python_peer(
    ctx: &mut Ctx,
    group: &str,
    subject: &str,
    script: &str,
    args: &[String],
) -> Option<Vec<(String, f64)>> {
    if ctx.smoke {
        ctx.skip(group, subject, "python peers are not run in smoke mode");
        return None;
    }
    match run_peer(ctx, subject, script, args) {
        Ok(figures) => Some(figures),
        Err(reason) => {
            ctx.skip(group, subject, &reason);
            None
        }
    }
}

fn run_peer(
    ctx: &mut Ctx,
    subject: &str,
    script: &str,
    args: &[String],
) -> Result<Vec<(String, f64)>, String> {
    let path = scripts_dir().join(script);
    if !path.is_file() {
        return Err(format!("peer script {} not found", path.display()));
    }
    let python = match subject {
        "asyncio" => system_python()?,
        "uvloop" => uvloop_python(ctx)?,
        "evloop_py" => evloop_python()?,
        other => {
            return Err(format!(
                "unknown Python peer {other:?} (expected asyncio, uvloop or evloop_py)"
            ));
        }
    };
    let mut cmd = Command::new(&python);
    cmd.arg(&path).args(["--loop", subject]).args(args);
    println!(
        "+ {} {script} --loop {subject} {}",
        python.display(),
        args.join(" ")
    );
    let done = run_with_limit(&mut cmd, PEER_LIMIT).map_err(|e| format!("{script}: {e}"))?;
    if !done.status.success() {
        return Err(format!(
            "{script} exited with {}: {}",
            done.status,
            last_line(&done.stderr)
        ));
    }
    parse_figures(&done.stdout).map_err(|e| format!("{script}: {e}"))
}

/// The `python3` on `PATH`.
fn system_python() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "python3 not found on PATH".to_string())
}

/// The interpreter with the `evloop` Python module (`crates/python`) that `cargo xtask
/// bench` built and named in `EVLOOP_BENCH_PYTHON`; or why there is none.
pub(crate) fn evloop_python() -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os("EVLOOP_BENCH_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    Err(match std::env::var("EVLOOP_BENCH_PYTHON_SKIP") {
        Ok(why) => format!("the evloop Python module could not be built: {why}"),
        Err(_) => "the evloop Python module is built by `cargo xtask bench` (or `cargo xtask \
                   pytest`); this run was started without it"
            .to_string(),
    })
}

/// The interpreter of the uvloop venv, made on first use in this run and
/// remembered (failure included) for the rest of it.
fn uvloop_python(ctx: &mut Ctx) -> Result<PathBuf, String> {
    if let Some(known) = &ctx.uvloop_python {
        return known.clone();
    }
    let made = make_uvloop_venv(&ctx.out_dir.join("venv"));
    ctx.uvloop_python = Some(made.clone());
    made
}

/// Makes (or reuses) a venv in `dir` with uvloop installed.
fn make_uvloop_venv(dir: &Path) -> Result<PathBuf, String> {
    let python = dir.join("bin").join("python");
    if has_uvloop(&python) {
        return Ok(python);
    }
    let started = Instant::now();
    let system = system_python()?;
    println!("+ {} -m venv {}", system.display(), dir.display());
    let mut venv = Command::new(&system);
    venv.arg("-m").arg("venv").arg(dir);
    step("python3 -m venv", &mut venv, VENV_LIMIT)?;
    println!("+ {} -m pip install -q uvloop", python.display());
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "-q", "uvloop"]);
    step(
        "pip install uvloop",
        &mut pip,
        VENV_LIMIT.saturating_sub(started.elapsed()),
    )?;
    if has_uvloop(&python) {
        Ok(python)
    } else {
        Err(format!(
            "uvloop does not import in {} after pip install",
            dir.display()
        ))
    }
}

/// Runs one set-up command; its failure becomes a reason naming `what`.
fn step(what: &str, cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let done = run_with_limit(cmd, limit).map_err(|e| format!("{what}: {e}"))?;
    if done.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            done.status,
            last_line(&done.stderr)
        ))
    }
}

fn has_uvloop(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args(["-c", "import uvloop"])
            .output()
            .is_ok_and(|o| o.status.success())
}

/// The last non-empty line of a program's error output, for a skip reason.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no error output)")
}

/// Reads `metric value` lines; blank lines and `#` comments are allowed.
fn parse_figures(stdout: &str) -> Result<Vec<(String, f64)>, String> {
    let mut figures = Vec::new();
    for line in stdout.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let figure = match (words.next(), words.next(), words.next()) {
            (Some(metric), Some(value), None) => {
                value.parse::<f64>().ok().map(|v| (metric.to_string(), v))
            }
            _ => None,
        };
        figures.push(figure.ok_or_else(|| format!("expected `metric value`, got {line:?}"))?);
    }
    if figures.is_empty() {
        return Err("printed no figures".to_string());
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(smoke: bool) -> Ctx {
        Ctx::new(smoke, true, std::env::temp_dir().join("evloop-bench-test"))
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn asyncio_peer_returns_what_the_script_printed() {
        let mut ctx = ctx(false);
        let figures = python_peer(
            &mut ctx,
            "selfcheck",
            "asyncio",
            "selfcheck.py",
            &strings(&["20", "22"]),
        );
        match system_python() {
            Ok(_) => {
                let expected = vec![("sum".to_string(), 42.0), ("count".to_string(), 2.0)];
                assert_eq!(figures, Some(expected), "{:?}", ctx.skips());
                assert!(ctx.skips().is_empty());
            }
            Err(_) => {
                assert_eq!(figures, None);
                assert_eq!(ctx.skips()[0].reason, "python3 not found on PATH");
            }
        }
    }

    #[test]
    fn smoke_mode_skips_with_a_reason() {
        let mut ctx = ctx(true);
        assert_eq!(
            python_peer(&mut ctx, "g", "uvloop", "selfcheck.py", &[]),
            None
        );
        assert_eq!(ctx.skips()[0].subject, "uvloop");
        assert_eq!(
            ctx.skips()[0].reason,
            "python peers are not run in smoke mode"
        );
    }

    #[test]
    fn missing_script_and_unknown_subject_are_skips() {
        let mut ctx = ctx(false);
        assert_eq!(
            python_peer(&mut ctx, "g", "asyncio", "no_such_script.py", &[]),
            None
        );
        assert!(
            ctx.skips()[0]
                .reason
                .contains("no_such_script.py not found")
        );
        assert_eq!(
            python_peer(&mut ctx, "g", "pypy", "selfcheck.py", &[]),
            None
        );
        assert!(
            ctx.skips()[1]
                .reason
                .contains("unknown Python peer \"pypy\"")
        );
    }

    #[test]
    fn failing_script_is_a_skip_with_its_error() {
        let mut ctx = ctx(false);
        // argparse rejects a non-integer and exits with status 2.
        let figures = python_peer(&mut ctx, "g", "asyncio", "selfcheck.py", &strings(&["x"]));
        assert_eq!(figures, None);
        if system_python().is_ok() {
            assert!(
                ctx.skips()[0].reason.contains("exit status: 2"),
                "{:?}",
                ctx.skips()
            );
        }
    }

    #[test]
    fn figures_are_metric_value_lines() {
        assert_eq!(
            parse_figures("# comment\ntotal 1327.5\n\nrate 3e6\n"),
            Ok(vec![
                ("total".to_string(), 1327.5),
                ("rate".to_string(), 3e6)
            ])
        );
        assert!(parse_figures("total\n").is_err());
        assert!(parse_figures("total 1 ms\n").is_err());
        assert!(parse_figures("total fast\n").is_err());
        assert_eq!(parse_figures("\n"), Err("printed no figures".to_string()));
    }
}
