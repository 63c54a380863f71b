//! The `syscalls_per_iteration` group: how many system calls one iteration of the loop costs under
//! the chained `call_soon` benchmark, counted by `strace -c -f` on the `syscall_probe` binary as
//! (calls(n) − calls(0)) / n, so that start-up and shut-down cancel out.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::Ctx;

const GROUP: &str = "syscalls_per_iteration";

pub(crate) fn run(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n(1_000_000);
    let probe = match probe_path() {
        Some(p) => p,
        None => {
            ctx.skip(GROUP, "evloop", "the syscall_probe binary is not built next to evloop-bench (cargo build -p evloop-bench --bins)");
            return Ok(());
        }
    };
    if Command::new("strace").arg("-V").output().is_err() {
        ctx.skip(
            GROUP,
            "evloop",
            "strace is not installed (apt-get install strace)",
        );
        return Ok(());
    }
    let dir = ctx.out_dir.join("strace");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let base = match count(&probe, 0, &dir.join("base.txt")) {
        Ok(c) => c,
        Err(e) => {
            ctx.skip(GROUP, "evloop", &format!("strace failed: {e}"));
            return Ok(());
        }
    };
    let full = count(&probe, n, &dir.join("chained.txt"))?;
    let per = full.saturating_sub(base) as f64 / n as f64;
    ctx.record(GROUP, "evloop", "syscalls", per, "per_iteration");
    ctx.note(GROUP, &format!("strace -f -c of `syscall_probe {n}` minus `syscall_probe 0`: {full} − {base} calls over {n} chained callbacks (one callback per iteration)"));
    Ok(())
}

fn probe_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let probe = exe.with_file_name("syscall_probe");
    probe.exists().then_some(probe)
}

/// Runs the probe under `strace -c -f` and returns the total number of syscalls.
fn count(probe: &Path, n: usize, out: &Path) -> Result<u64, String> {
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out)
        .arg(probe)
        .arg(n.to_string())
        .status()
        .map_err(|e| format!("strace: {e}"))?;
    if !status.success() {
        return Err(format!("strace {} {n}: {status}", probe.display()));
    }
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    parse_total(&text).ok_or_else(|| format!("no total line in {}", out.display()))
}

/// The `calls` column of strace's `total` line.
fn parse_total(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with("total"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    // % time, seconds, usecs/call, calls, [errors,] "total"
    fields.get(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_total;

    #[test]
    fn reads_the_calls_column_of_the_total_line() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    100.00    0.000508           2       212        10 total\n";
        assert_eq!(parse_total(text), Some(212));
        let no_errors = "100.00    0.000100           1        15           total\n";
        assert_eq!(parse_total(no_errors), Some(15));
        assert_eq!(parse_total("nothing here"), None);
    }
}
