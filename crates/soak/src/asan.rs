//! AddressSanitizer (full run only): the test binaries of sched and task (the loop's callbacks
//! and the task core on `async-task`, where evloop's `unsafe` code lives) built by the nightly
//! toolchain with `-Zsanitizer=address` and run with leak detection on: no invalid access, no
//! use after free, no leak. `cargo xtask soak` installs the nightly toolchain when it is absent
//! (xtask's provisioning); without it the line fails and says how to get it.
//!
//! The build has its own target directory (`target/asan`), so it never invalidates the stable
//! builds, and names the host target explicitly, so that build scripts and proc macros are
//! built without the sanitizer.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Scale;
use crate::line::Line;
use crate::memory;
use crate::sys;

const CRATES: &[&str] = &["evloop-sched", "evloop-task"];
/// The watchdog of one test binary.
const PER_BINARY: Duration = Duration::from_secs(120);
/// All binaries together; what is left when it runs out is a failure, not a hang.
const BUDGET: Duration = Duration::from_secs(300);

/// The test's line.
pub(crate) fn run(_scale: &Scale) -> Line {
    sys::measured(
        "asan",
        "sched and task test binaries under AddressSanitizer (nightly -Zsanitizer=address)",
        asan,
    )
}

/// The host's target triple, which the sanitizer build names explicitly.
fn host_target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// `rustup run nightly <program>`, with the variables the outer (stable) cargo set removed, so
/// that they do not pin the inner build to the stable toolchain.
fn nightly(program: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", program])
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTDOC");
    cmd
}

fn has_nightly() -> bool {
    nightly("rustc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn asan(line: &mut Line) -> Result<(), String> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        line.note("AddressSanitizer runs on x86_64 Linux only; not run here");
        return Ok(());
    }
    if !has_nightly() {
        return Err(
            "the nightly toolchain is not installed: `cargo xtask soak` installs it, or run \
             `rustup toolchain install nightly --profile minimal`"
                .to_string(),
        );
    }
    let root = crate::workspace_root();
    let mut build = nightly("cargo");
    build
        .current_dir(&root)
        .env("RUSTFLAGS", "-Zsanitizer=address")
        .env("CARGO_TARGET_DIR", root.join("target").join("asan"))
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "--lib",
            "--tests",
        ])
        .args(["--target", &host_target()]);
    let bins = memory::test_binaries(build, CRATES)?;
    line.amount = format!("{} test binaries", bins.len());
    let started = Instant::now();
    let mut clean = 0;
    for (package, target, exe) in &bins {
        let left = BUDGET.saturating_sub(started.elapsed());
        if left.is_zero() {
            line.fail(format!(
                "{package} {target}: not run, the {} s budget was spent",
                BUDGET.as_secs()
            ));
            continue;
        }
        let mut cmd = Command::new(exe);
        cmd.current_dir(
            root.join("crates")
                .join(package.trim_start_matches("evloop-")),
        )
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .arg("--test-threads=2");
        let f = sys::run_with_watchdog(cmd, PER_BINARY.min(left), false)
            .map_err(|e| format!("{exe}: {e}"))?;
        if f.status.is_some_and(|s| s.success()) {
            clean += 1;
        } else {
            line.leaked += 1;
            line.fail(format!(
                "{package} {target}: {}; {}",
                sys::describe(f.status, PER_BINARY.min(left)),
                summarize(&f.stdout, &f.stderr)
            ));
        }
    }
    line.note(format!(
        "{clean} of {} test binaries run clean under AddressSanitizer",
        bins.len()
    ));
    Ok(())
}

/// What went wrong, in one sentence: the failed tests and the sanitizer's first report line
/// with the first frame in evloop.
fn summarize(stdout: &str, stderr: &str) -> String {
    let mut parts = Vec::new();
    let failed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .collect();
    if !failed.is_empty() {
        parts.push(format!("tests failed: {}", failed.join(", ")));
    }
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(i) = lines.iter().position(|l| l.contains("ERROR: ")) {
        let report = lines[i].split_once("ERROR: ").map_or(lines[i], |(_, r)| r);
        let frame = lines[i + 1..]
            .iter()
            .find(|l| l.contains("evloop"))
            .map(|l| l.trim());
        parts.push(match frame {
            Some(frame) => format!("{report} at {frame}"),
            None => report.to_string(),
        });
    }
    if parts.is_empty() {
        parts.push(sys::tail(stderr, 2));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_summarized_by_its_kind_and_first_evloop_frame() {
        let stderr = "\
=================================================================
==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010
READ of size 8 at 0x602000000010 thread T0
    #0 0x55d in core::ptr::read /rustc/library/core/src/ptr/mod.rs:1
    #1 0x55e in evloop_task::step::run /work/crates/task/src/step.rs:10:5
";
        assert_eq!(
            summarize("test a ... FAILED\n", stderr),
            "tests failed: a; AddressSanitizer: heap-use-after-free on address 0x602000000010 \
             at #1 0x55e in evloop_task::step::run /work/crates/task/src/step.rs:10:5"
        );
    }

    #[test]
    fn the_host_target_is_a_linux_triple() {
        assert!(host_target().ends_with("-unknown-linux-gnu"));
    }
}
