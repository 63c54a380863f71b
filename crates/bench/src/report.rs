//! The report: a table per group on the terminal, the same as markdown in
//! `<out-dir>/report.md`, and optionally every record as a JSON array.
//!
//! Each row that has an `"evloop"` figure of the same group and metric beside
//! it also shows the ratio evloop/subject (`0.42×`: evloop took 0.42 of that
//! subject's time, or did 0.42 of its rate, whichever the unit says).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::harness::{Ctx, Record};
use crate::sys::System;

/// Our own subject's name in every group.
const OURS: &str = "evloop";

/// The column headings of every table.
const HEADINGS: [&str; 5] = ["subject", "metric", "value", "unit", "evloop/subject"];

/// A figure with as many digits as it needs to read well: `1327.5`, `12.34`, `0.0421`.
pub(crate) fn fmt_value(value: f64) -> String {
    let magnitude = value.abs();
    if !value.is_finite() {
        value.to_string()
    } else if magnitude >= 1000.0 {
        format!("{value:.0}")
    } else if magnitude >= 100.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 || magnitude == 0.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    }
}

/// `ours / theirs` as `0.42×`, or `-` when it has no meaning.
fn fmt_ratio(ours: f64, theirs: f64) -> String {
    let ratio = ours / theirs;
    if ratio.is_finite() {
        format!("{ratio:.2}×")
    } else {
        "-".to_string()
    }
}

/// The groups in the order they first appear in records, skips or notes.
fn groups(ctx: &Ctx) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let all = ctx
        .records()
        .iter()
        .map(|r| &r.group)
        .chain(ctx.skips().iter().map(|s| &s.group))
        .chain(ctx.notes().iter().map(|(g, _)| g));
    for name in all {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The rows of one group's table, as the five columns of [`HEADINGS`].
fn rows(records: &[Record], group: &str) -> Vec<[String; 5]> {
    let ours = |metric: &str| {
        records
            .iter()
            .find(|r| r.group == group && r.subject == OURS && r.metric == metric)
            .map(|r| r.value)
    };
    records
        .iter()
        .filter(|r| r.group == group)
        .map(|r| {
            let ratio = match ours(&r.metric) {
                Some(value) if r.subject != OURS => fmt_ratio(value, r.value),
                _ => String::new(),
            };
            [
                r.subject.clone(),
                r.metric.clone(),
                fmt_value(r.value),
                r.unit.clone(),
                ratio,
            ]
        })
        .collect()
}

/// Prints a table per group, its skips, and any wrong results.
pub(crate) fn print_tables(ctx: &Ctx, failures: &[(String, String)]) {
    for group in groups(ctx) {
        println!("\n{group}");
        let rows = rows(ctx.records(), &group);
        let mut widths = HEADINGS.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 5]| {
            let [subject, metric, value, unit, ratio] = cells;
            let [w0, w1, w2, w3, w4] = widths;
            let text =
                format!("  {subject:<w0$}  {metric:<w1$}  {value:>w2$}  {unit:<w3$}  {ratio:>w4$}");
            println!("{}", text.trim_end());
        };
        line(HEADINGS);
        for row in &rows {
            line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
        for skip in ctx.skips().iter().filter(|s| s.group == group) {
            println!("  skipped: {}: {}", skip.subject, skip.reason);
        }
    }
    for (group, message) in failures {
        println!("\nWRONG RESULT in group {group}: {message}");
    }
}

/// The markdown report.
pub(crate) fn markdown(ctx: &Ctx, system: &System, failures: &[(String, String)]) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail; the results of `writeln!` are ignored.
    let _ = writeln!(md, "# evloop benchmark report\n");
    let _ = writeln!(md, "- date: {}", utc_now());
    let _ = writeln!(md, "- kernel: {} (`uname -r`)", system.kernel);
    let _ = writeln!(md, "- cores: {} (nproc)", system.nproc);
    let _ = writeln!(
        md,
        "- taskset: {}",
        if system.taskset {
            "available"
        } else {
            "not found"
        }
    );
    let _ = writeln!(md, "- mode: {}", ctx.mode());
    let _ = writeln!(
        md,
        "- ratios: evloop/subject of the same metric, measured in the same run"
    );
    for group in groups(ctx) {
        let _ = writeln!(md, "\n## {group}\n");
        let rows = rows(ctx.records(), &group);
        if !rows.is_empty() {
            let _ = writeln!(md, "| {} |", HEADINGS.join(" | "));
            let _ = writeln!(md, "|---|---|---:|---|---:|");
            for row in rows {
                let _ = writeln!(md, "| {} |", row.join(" | "));
            }
            md.push('\n');
        }
        for (_, text) in ctx.notes().iter().filter(|(g, _)| *g == group) {
            let _ = writeln!(md, "- {text}");
        }
        for skip in ctx.skips().iter().filter(|s| s.group == group) {
            let _ = writeln!(md, "- skipped: {}: {}", skip.subject, skip.reason);
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(md, "\n## Wrong results\n");
        for (group, message) in failures {
            let _ = writeln!(md, "- {group}: {message}");
        }
    }
    md
}

/// Every record as a JSON array of
/// `{"group": str, "subject": str, "metric": str, "value": number, "unit": str}`.
/// A value that is not finite, which JSON cannot hold, is written as `null`.
pub(crate) fn json(records: &[Record]) -> String {
    let mut out = String::from("[");
    for (i, r) in records.iter().enumerate() {
        let value = if r.value.is_finite() {
            // `Display` of a finite f64 is plain decimal, valid JSON.
            r.value.to_string()
        } else {
            "null".to_string()
        };
        let _ = write!(
            out,
            "{}\n  {{\"group\": {}, \"subject\": {}, \"metric\": {}, \"value\": {value}, \"unit\": {}}}",
            if i == 0 { "" } else { "," },
            json_string(&r.group),
            json_string(&r.subject),
            json_string(&r.metric),
            json_string(&r.unit),
        );
    }
    out.push_str(if records.is_empty() { "]\n" } else { "\n]\n" });
    out
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC`, by the civil-from-days
/// algorithm (proleptic Gregorian calendar).
fn utc_date(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let minutes = secs % 86_400 / 60;
    // Shift the epoch to 0000-03-01 so that leap days end each 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn sample() -> Ctx {
        let mut ctx = Ctx::new(false, true, PathBuf::from("/nonexistent"));
        ctx.record("timers_100k", "evloop", "total", 10.0, "ms");
        ctx.record("timers_100k", "binaryheap", "total", 25.0, "ms");
        ctx.record("timers_100k", "btreemap", "insert", 5.0, "ms");
        ctx.skip("timers_100k", "uvloop", "python3 not found");
        ctx.note("timers_100k", "delayqueue: one runtime, time paused");
        ctx.record("other", "tokio", "total", 1.0, "ms");
        ctx
    }

    #[test]
    fn ratios_only_where_evloop_has_the_same_metric() {
        let rows = rows(sample().records(), "timers_100k");
        let ratios: Vec<&str> = rows.iter().map(|r| r[4].as_str()).collect();
        assert_eq!(ratios, ["", "0.40×", ""]);
        assert_eq!(rows[1][..4], ["binaryheap", "total", "25.00", "ms"]);
    }

    #[test]
    fn markdown_has_header_tables_notes_and_skips() {
        let system = System {
            kernel: "6.1.0".to_string(),
            nproc: 2,
            taskset: true,
        };
        let failures = [("other".to_string(), "order differs at entry 3".to_string())];
        let md = markdown(&sample(), &system, &failures);
        assert!(md.contains("- kernel: 6.1.0"));
        assert!(md.contains("- cores: 2"));
        assert!(md.contains("- mode: quick"));
        assert!(md.contains("| binaryheap | total | 25.00 | ms | 0.40× |"));
        assert!(md.contains("- delayqueue: one runtime, time paused"));
        assert!(md.contains("- skipped: uvloop: python3 not found"));
        assert!(md.contains("## Wrong results\n\n- other: order differs at entry 3"));
        let order: Vec<usize> = ["## timers_100k", "## other"]
            .iter()
            .map(|h| md.find(h).unwrap_or(usize::MAX))
            .collect();
        assert!(order[0] < order[1], "{md}");
    }

    #[test]
    fn json_is_an_array_of_records_with_escaped_strings() {
        let mut ctx = Ctx::new(true, false, PathBuf::from("/nonexistent"));
        ctx.record("g\"1", "evloop", "a\\b\n", 1327.5, "ms");
        ctx.record("g", "x", "m", f64::NAN, "\u{1}");
        assert_eq!(
            json(ctx.records()),
            "[\n  {\"group\": \"g\\\"1\", \"subject\": \"evloop\", \"metric\": \"a\\\\b\\n\", \"value\": 1327.5, \"unit\": \"ms\"},\n  {\"group\": \"g\", \"subject\": \"x\", \"metric\": \"m\", \"value\": null, \"unit\": \"\\u0001\"}\n]\n"
        );
        assert_eq!(json(&[]), "[]\n");
    }

    #[test]
    fn values_read_well() {
        assert_eq!(fmt_value(1327.46), "1327");
        assert_eq!(fmt_value(123.456), "123.5");
        assert_eq!(fmt_value(12.345), "12.35");
        assert_eq!(fmt_value(0.0), "0.00");
        assert_eq!(fmt_value(0.042_13), "0.0421");
        assert_eq!(fmt_ratio(1.0, 0.0), "-");
    }

    #[test]
    fn dates_from_epoch_seconds() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 12:34 UTC, a leap day in a year divisible by 400.
        assert_eq!(utc_date(951_827_640), "2000-02-29 12:34 UTC");
        // 2024-12-31 23:59 UTC.
        assert_eq!(utc_date(1_735_689_540), "2024-12-31 23:59 UTC");
    }
}
