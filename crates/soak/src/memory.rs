//! Memory (full run only): the test binaries of timer, sched, task and net under
//! `valgrind --leak-check=full --error-exitcode=1`: no errors, no definite leaks. `cargo xtask
//! soak` installs valgrind when it is absent (xtask's provisioning, shared with ci); without it
//! the line fails and says how to get it. In the binaries that run TLS (`tls_*`,
//! `sendfile_transport`) only, valgrind's blind spot in ring's assembly is suppressed by
//! `crates/soak/valgrind/ring.supp`; in every binary, glibc's resolver cache by
//! `crates/soak/valgrind/glibc.supp`. Each file says why.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Scale;
use crate::line::Line;
use crate::sys;

const CRATES: &[&str] = &["evloop-timer", "evloop-sched", "evloop-task", "evloop-net"];
/// The watchdog of one test binary under valgrind.
const PER_BINARY: Duration = Duration::from_secs(240);
/// All binaries together; what is left when it runs out is a failure, not a hang.
const BUDGET: Duration = Duration::from_secs(540);
/// Binaries (or single tests, with `--skip`) left out, and why; the line's notes say so. Each
/// is an artefact of running under valgrind, not a question of memory.
const SKIPPED: &[(&str, &str, Option<&str>, &str)] = &[
    (
        "evloop-timer",
        "model",
        None,
        "1,040 proptest cases take more than 4 minutes under valgrind; the wheel is safe Rust \
         and the other timer binaries run",
    ),
    (
        "evloop-net",
        "server_emfile",
        None,
        "it lowers the fd limit, which valgrind's own fds above the limit defeat",
    ),
    (
        "evloop-net",
        "process_exit",
        Some("a_missing_program_is_not_found_naming_it"),
        "under valgrind a failed exec in the child is not reported back through the spawn's \
         error pipe, so the spawn of a missing program looks successful",
    ),
    (
        "evloop-sched",
        "io_readers",
        Some("bad_fds_are_clear_errors"),
        "it takes the soft fd limit as a number no fd can have; under valgrind that fd is \
         valgrind's own",
    ),
];

/// The test's line.
pub(crate) fn run(_scale: &Scale) -> Line {
    sys::measured(
        "memory",
        "timer, sched, task and net test binaries under valgrind --leak-check=full",
        memory,
    )
}

fn has_valgrind() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The test binaries of `crates` that `cmd` (a `cargo test --no-run --message-format=json`
/// without its `-p` arguments) builds: (package, target name, path).
pub(crate) fn test_binaries(
    mut cmd: Command,
    crates: &[&str],
) -> Result<Vec<(String, String, String)>, String> {
    for c in crates {
        cmd.args(["-p", c]);
    }
    let f = sys::run_with_watchdog(cmd, Duration::from_secs(300), false)
        .map_err(|e| format!("cargo test --no-run: {e}"))?;
    if !f.status.is_some_and(|s| s.success()) {
        return Err(format!(
            "cargo test --no-run failed: {}",
            sys::tail(&f.stderr, 3)
        ));
    }
    let mut bins = Vec::new();
    for l in f.stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let package = v["package_id"].as_str().unwrap_or_default();
        let Some(name) = crates.iter().find(|c| {
            package.contains(&format!("/{}#", c.trim_start_matches("evloop-")))
                || package.contains(&format!("{c}@"))
                || package.contains(&format!("{c} "))
        }) else {
            continue;
        };
        let target = v["target"]["name"].as_str().unwrap_or("?").to_string();
        bins.push((name.to_string(), target, exe.to_string()));
    }
    if bins.is_empty() {
        return Err("cargo test --no-run listed no test binary".into());
    }
    Ok(bins)
}

/// The stable toolchain's `cargo test --no-run --message-format=json`, run at the workspace root.
fn cargo_no_run() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(crate::workspace_root())
        .args(["test", "--no-run", "--message-format=json"]);
    cmd
}

/// What went wrong under valgrind, in one sentence: the failed tests, the first error, and
/// for definite leaks their size and the first frames in evloop or the test.
fn summarize(target: &str, stdout: &str, stderr: &str) -> String {
    let strip = |l: &str| {
        l.split_once("== ")
            .map_or(l, |(_, rest)| rest)
            .trim()
            .to_string()
    };
    let mut parts = Vec::new();
    let failed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .collect();
    if !failed.is_empty() {
        parts.push(format!(
            "tests failed under valgrind: {}",
            failed.join(", ")
        ));
    }
    let lines: Vec<&str> = stderr.lines().collect();
    let first_error = lines.iter().position(|l| {
        [
            "Invalid ",
            "Conditional jump",
            "Use of uninitialised",
            "Mismatched free",
            "definitely lost in loss record",
        ]
        .iter()
        .any(|k| l.contains(k))
    });
    if let Some(i) = first_error {
        let frames: Vec<String> = lines[i + 1..]
            .iter()
            .take_while(|l| l.contains(" at ") || l.contains(" by "))
            // Frames in evloop or the test, not in the standard library.
            .filter(|l| !l.contains("(library/") && !l.contains("(in /"))
            .filter(|l| l.contains("evloop") || l.contains(target))
            .take(2)
            .map(|l| strip(l).trim_start_matches("by ").to_string())
            .collect();
        parts.push(format!("{}: {}", strip(lines[i]), frames.join(" <- ")));
    }
    if parts.is_empty() {
        parts.push(sys::tail(stderr, 2));
    }
    parts.join("; ")
}

fn memory(line: &mut Line) -> Result<(), String> {
    if !has_valgrind() {
        return Err(
            "valgrind is not installed: `cargo xtask soak` installs it, or run \
             `sudo apt-get install -y valgrind`"
                .to_string(),
        );
    }
    let bins = test_binaries(cargo_no_run(), CRATES)?;
    // valgrind's blind spot in ring's assembly, explained in the file; for the binaries that
    // run TLS. glibc's resolver cache, explained in its file; for every binary.
    let valgrind_dir = crate::workspace_root()
        .join("crates")
        .join("soak")
        .join("valgrind");
    let suppressions = valgrind_dir.join("ring.supp");
    let glibc = format!(
        "--suppressions={}",
        valgrind_dir.join("glibc.supp").display()
    );
    line.amount = format!("{} test binaries", bins.len());
    let mut clean = 0;
    let started = Instant::now();
    let mut ran = 0;
    for (package, target, exe) in &bins {
        let skip = SKIPPED
            .iter()
            .find(|(p, t, _, _)| p == package && t == target);
        let mut skip_test = None;
        if let Some((_, _, test, why)) = skip {
            match test {
                None => {
                    line.note(format!("left out {package} {target}: {why}"));
                    continue;
                }
                Some(test) => {
                    line.note(format!("left out {package} {target} {test}: {why}"));
                    skip_test = Some(*test);
                }
            }
        }
        let left = BUDGET.saturating_sub(started.elapsed());
        if left.is_zero() {
            line.fail(format!(
                "{package} {target}: not run, the {} s budget was spent",
                BUDGET.as_secs()
            ));
            continue;
        }
        ran += 1;
        let mut cmd = Command::new("valgrind");
        cmd.current_dir(
            crate::workspace_root()
                .join("crates")
                .join(package.trim_start_matches("evloop-")),
        )
        .args([
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=1",
            "--quiet",
            glibc.as_str(),
        ])
        .args(runs_tls(target).then(|| format!("--suppressions={}", suppressions.display())))
        .args([exe.as_str(), "--test-threads=2"]);
        if let Some(test) = skip_test {
            cmd.args(["--skip", test, "--exact"]);
        }
        let f = sys::run_with_watchdog(cmd, PER_BINARY.min(left), false)
            .map_err(|e| format!("valgrind: {e}"))?;
        if f.status.is_some_and(|s| s.success()) {
            clean += 1;
        } else {
            line.leaked += 1;
            line.fail(format!(
                "{package} {target}: {}; {}",
                sys::describe(f.status, PER_BINARY.min(left)),
                summarize(target, &f.stdout, &f.stderr)
            ));
        }
    }
    line.note(format!(
        "{clean} of {ran} test binaries run clean under valgrind ({} found)",
        bins.len()
    ));
    Ok(())
}

/// Whether the test binary `target` runs TLS (rustls on ring): the `tls_*` binaries, and the
/// sendfile tests, whose TLS transports take the read-and-write fallback.
fn runs_tls(target: &str) -> bool {
    target.starts_with("tls_") || target == "sendfile_transport"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leak_is_summarized_by_its_size_and_its_evloop_frames() {
        let stderr = "\
==7== 44,390 (736 direct, 43,654 indirect) bytes in 1 blocks are definitely lost in loss record 26 of 26
==7==    at 0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
==7==    by 0x2E6FD5: alloc::rc::Rc<T>::new (library/alloc/src/rc.rs:420)
==7==    by 0x2E1F74: evloop_sched::event_loop::EventLoop::new (event_loop.rs:153)
==7==    by 0x1D6FCC: fd_claims::a_test (fd_claims.rs:70)
==7==    by 0x1C81C6: core::ops::function::FnOnce::call_once (function.rs:250)
==7== 
";
        assert_eq!(
            summarize("fd_claims", "test a_test ... ok\n", stderr),
            "44,390 (736 direct, 43,654 indirect) bytes in 1 blocks are definitely lost in loss \
             record 26 of 26: 0x2E1F74: evloop_sched::event_loop::EventLoop::new \
             (event_loop.rs:153) <- 0x1D6FCC: fd_claims::a_test (fd_claims.rs:70)"
        );
    }

    #[test]
    fn failed_tests_are_named() {
        let out = "test a ... ok\ntest b ... FAILED\n";
        assert_eq!(summarize("x", out, ""), "tests failed under valgrind: b");
    }
}
