//! The harness every benchmark group uses: the run's mode and scale, timing
//! helpers, and the records, skips and notes that become the report.
//!
//! A group is a function `fn(&mut Ctx) -> Result<(), String>`. It measures
//! each subject (our own is always `"evloop"`), checks that every subject
//! computed the same result, and calls [`Ctx::record`] with the figures. An
//! `Err` means a wrong result, never a slow one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// In smoke mode every size is divided by this: the suite runs at 1/100 scale.
const SMOKE_DIVISOR: usize = 100;

/// Repeats per measurement in a full run; the report shows their median.
const FULL_REPEATS: usize = 3;

/// One figure: `value` `unit` of `metric`, measured on `subject` in `group`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) group: String,
    pub(crate) subject: String,
    pub(crate) metric: String,
    pub(crate) value: f64,
    pub(crate) unit: String,
}

/// A subject that could not be measured, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    pub(crate) group: String,
    pub(crate) subject: String,
    pub(crate) reason: String,
}

/// The state of one benchmark run, handed to every group.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// 1/100 scale, verify only: the figures mean nothing, the results must be right.
    pub(crate) smoke: bool,
    /// One repeat per measurement instead of three.
    pub(crate) quick: bool,
    /// Where the report, and Python's venv, go.
    pub(crate) out_dir: PathBuf,
    records: Vec<Record>,
    skips: Vec<Skip>,
    /// `(group, text)` lines for the report.
    notes: Vec<(String, String)>,
    /// The uvloop venv's interpreter, or why there is none; made once per run
    /// (see `python.rs`).
    pub(crate) uvloop_python: Option<Result<PathBuf, String>>,
}

impl Ctx {
    /// A run in the given mode, writing under `out_dir`.
    pub(crate) fn new(smoke: bool, quick: bool, out_dir: PathBuf) -> Ctx {
        Ctx {
            smoke,
            quick,
            out_dir,
            records: Vec::new(),
            skips: Vec::new(),
            notes: Vec::new(),
            uvloop_python: None,
        }
    }

    /// The size to use for a benchmark whose full size is `full`: `full` in a
    /// normal or quick run, `full / 100` in a smoke run, and at least 1.
    pub(crate) fn n(&self, full: usize) -> usize {
        let n = if self.smoke {
            full / SMOKE_DIVISOR
        } else {
            full
        };
        n.max(1)
    }

    /// How many times to repeat a measurement: 3 normally, 1 in quick or smoke mode.
    pub(crate) fn repeats(&self) -> usize {
        if self.smoke || self.quick {
            1
        } else {
            FULL_REPEATS
        }
    }

    /// The mode as the report names it.
    pub(crate) fn mode(&self) -> &'static str {
        if self.smoke {
            "smoke (1/100 scale, results verified, figures meaningless)"
        } else if self.quick {
            "quick (full scale, 1 repeat)"
        } else {
            "full (full scale, median of 3 repeats)"
        }
    }

    /// Records a figure and prints it at once.
    pub(crate) fn record(
        &mut self,
        group: &str,
        subject: &str,
        metric: &str,
        value: f64,
        unit: &str,
    ) {
        println!(
            "  {group}/{subject}: {metric} = {} {unit}",
            crate::report::fmt_value(value)
        );
        self.records.push(Record {
            group: group.to_string(),
            subject: subject.to_string(),
            metric: metric.to_string(),
            value,
            unit: unit.to_string(),
        });
    }

    /// Records that `subject` was not measured, prints
    /// `skipped: <group>/<subject>: <reason>` at once and lists it in the report.
    pub(crate) fn skip(&mut self, group: &str, subject: &str, reason: &str) {
        println!("skipped: {group}/{subject}: {reason}");
        self.skips.push(Skip {
            group: group.to_string(),
            subject: subject.to_string(),
            reason: reason.to_string(),
        });
    }

    /// Adds a line under the group in the report (how a peer was measured, say).
    pub(crate) fn note(&mut self, group: &str, text: &str) {
        self.notes.push((group.to_string(), text.to_string()));
    }

    /// Every figure recorded so far, in order.
    pub(crate) fn records(&self) -> &[Record] {
        &self.records
    }

    /// Every skip so far, in order.
    pub(crate) fn skips(&self) -> &[Skip] {
        &self.skips
    }

    /// Every note so far, in order, as `(group, text)`.
    pub(crate) fn notes(&self) -> &[(String, String)] {
        &self.notes
    }
}

/// The median of `xs` (sorted in place); the mean of the middle two for an
/// even count, NaN for none.
pub(crate) fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    match xs.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => xs[mid],
        _ => (xs[mid - 1] + xs[mid]) / 2.0,
    }
}

/// This process's CPU time so far, user plus system (`getrusage(RUSAGE_SELF)`).
pub(crate) fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` points to writable memory of the size and alignment of
    // `rusage`, which getrusage fills in when it returns 0.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        // RUSAGE_SELF with a valid pointer cannot fail (EINVAL/EFAULT only).
        return Duration::ZERO;
    }
    // SAFETY: getrusage returned 0, so it initialised `usage`.
    let usage = unsafe { usage.assume_init() };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

/// The wall time of one call of `f`, in milliseconds.
pub(crate) fn time_ms<F: FnOnce()>(f: F) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(smoke: bool, quick: bool) -> Ctx {
        Ctx::new(smoke, quick, PathBuf::from("/nonexistent"))
    }

    #[test]
    fn n_scales_down_only_in_smoke_mode() {
        assert_eq!(ctx(false, false).n(100_000), 100_000);
        assert_eq!(ctx(false, true).n(100_000), 100_000);
        assert_eq!(ctx(true, false).n(100_000), 1_000);
        assert_eq!(ctx(true, false).n(50), 1);
        assert_eq!(ctx(false, false).n(0), 1);
    }

    #[test]
    fn repeats_by_mode() {
        assert_eq!(ctx(false, false).repeats(), 3);
        assert_eq!(ctx(false, true).repeats(), 1);
        assert_eq!(ctx(true, false).repeats(), 1);
    }

    #[test]
    fn records_skips_and_notes_keep_their_order() {
        let mut c = ctx(false, true);
        c.record("g", "evloop", "total", 1.5, "ms");
        c.skip("g", "uvloop", "no python3");
        c.record("g", "tokio", "total", 3.0, "ms");
        c.note("g", "measured so");
        let subjects: Vec<&str> = c.records().iter().map(|r| r.subject.as_str()).collect();
        assert_eq!(subjects, ["evloop", "tokio"]);
        assert_eq!(c.records()[1].value, 3.0);
        assert_eq!(c.skips()[0].reason, "no python3");
        assert_eq!(c.notes(), [("g".to_string(), "measured so".to_string())]);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let started = Instant::now();
        let before = cpu_time();
        let mut x = 0u64;
        // Spin until 20 ms of CPU time are used; a shared machine may give us
        // less than a full core, so the wall-clock cap is generous.
        while cpu_time() - before < Duration::from_millis(20)
            && started.elapsed() < Duration::from_secs(10)
        {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let spent = cpu_time() - before;
        let wall = started.elapsed();
        // No upper bound: other tests' threads count too (RUSAGE_SELF).
        assert!(spent >= Duration::from_millis(20), "{spent:?} in {wall:?}");
    }

    #[test]
    fn time_ms_measures_the_call() {
        let ms = time_ms(|| std::thread::sleep(Duration::from_millis(20)));
        assert!(ms >= 20.0, "{ms}");
        assert!(ms < 2_000.0, "{ms}");
    }
}
