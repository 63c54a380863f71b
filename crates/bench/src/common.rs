//! What the group files share: interleaved measurement with medians, the Python peers, result
//! checks and the tokio runtime every tokio subject runs on.

use crate::harness::{Ctx, median};
use crate::python;

/// A measured subject: its name and a run of size `n` returning milliseconds (or CPU
/// milliseconds), or a wrong result.
pub(crate) type Subject = (&'static str, fn(usize) -> Result<f64, String>);

/// Measures each subject `ctx.repeats()` times, interleaved within each repeat, and records the
/// medians under `metric` in ms.
pub(crate) fn measure(
    ctx: &mut Ctx,
    group: &str,
    metric: &str,
    n: usize,
    subjects: &[Subject],
) -> Result<(), String> {
    let mut samples = vec![Vec::new(); subjects.len()];
    for _ in 0..ctx.repeats() {
        for (i, (name, f)) in subjects.iter().enumerate() {
            let ms = f(n).map_err(|e| format!("{group}/{name}: {e}"))?;
            samples[i].push(ms);
        }
    }
    for (i, (name, _)) in subjects.iter().enumerate() {
        ctx.record(group, name, metric, median(&mut samples[i]), "ms");
    }
    Ok(())
}

/// Runs `script --loop asyncio|uvloop --shape SHAPE N` (a file under `crates/bench/python/`)
/// `ctx.repeats()` times per subject and records the median of each `(metric, unit)` it prints;
/// a peer that cannot run is skipped with the reason, never silently.
pub(crate) fn python_peers(
    ctx: &mut Ctx,
    group: &str,
    script: &str,
    shape: &str,
    n: usize,
    metrics: &[(&str, &str)],
) {
    for subject in ["asyncio", "uvloop", "evloop_py"] {
        let args = ["--shape".to_owned(), shape.to_owned(), n.to_string()];
        let mut values = vec![Vec::new(); metrics.len()];
        for _ in 0..ctx.repeats() {
            let Some(out) = python::python_peer(ctx, group, subject, script, &args) else {
                return;
            };
            for (i, (metric, _)) in metrics.iter().enumerate() {
                if let Some((_, v)) = out.iter().find(|(m, _)| m == metric) {
                    values[i].push(*v);
                }
            }
        }
        for (i, (metric, unit)) in metrics.iter().enumerate() {
            if values[i].is_empty() {
                ctx.skip(
                    group,
                    subject,
                    &format!("the script printed no `{metric}` line"),
                );
            } else {
                ctx.record(group, subject, metric, median(&mut values[i]), unit);
            }
        }
    }
}

/// A wrong count is a wrong result.
pub(crate) fn check(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: counted {got}, expected {want}"))
    }
}

/// tokio's single-threaded runtime, the closest peer of a one-thread loop; with the time driver
/// only for the subjects that sleep (it costs every park a little).
pub(crate) fn tokio_rt(time: bool) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if time {
        builder.enable_time();
    }
    builder.build().map_err(|e| e.to_string())
}
