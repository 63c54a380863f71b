//! One line of the report: what a test tried, how much, how long, and what went wrong.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::Scale;

/// The prefix of the result line a child prints on its stdout.
const PREFIX: &str = "SOAK-LINE ";

/// A test's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) test: String,
    /// What was tried, in a few words.
    pub(crate) tried: String,
    /// How much (counts, sizes), saying when it was scaled down and why.
    pub(crate) amount: String,
    pub(crate) secs: f64,
    /// Units of work that did not complete as they should (bytes, calls, signals...).
    pub(crate) lost: u64,
    /// Resources not given back (fds, heap bytes above the bound...).
    pub(crate) leaked: u64,
    /// Panics in the process (caught or not).
    pub(crate) panics: u64,
    /// Every check that did not hold, each in a sentence.
    pub(crate) failures: Vec<String>,
    /// Figures worth keeping.
    pub(crate) notes: Vec<String>,
}

impl Line {
    /// An empty line for `test`.
    pub(crate) fn new(test: &str, tried: &str) -> Line {
        Line {
            test: test.to_string(),
            tried: tried.to_string(),
            amount: String::new(),
            secs: 0.0,
            lost: 0,
            leaked: 0,
            panics: 0,
            failures: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Records a check: nothing if it held, a failure otherwise.
    pub(crate) fn check(&mut self, held: bool, failure: impl FnOnce() -> String) {
        if !held {
            self.failures.push(failure());
        }
    }

    /// Adds a failure.
    pub(crate) fn fail(&mut self, failure: impl Into<String>) {
        self.failures.push(failure.into());
    }

    /// Adds a note.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Whether nothing was lost, leaked or panicked and every check held.
    pub(crate) fn passed(&self) -> bool {
        self.lost == 0 && self.leaked == 0 && self.panics == 0 && self.failures.is_empty()
    }

    /// One line for the console.
    pub(crate) fn summary(&self) -> String {
        let verdict = if self.passed() { "ok" } else { "FAILED" };
        format!(
            "{verdict} in {:.1} s: lost {}, leaked {}, panics {}{}",
            self.secs,
            self.lost,
            self.leaked,
            self.panics,
            if self.failures.is_empty() {
                String::new()
            } else {
                format!("; {}", self.failures.join("; "))
            }
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "test": self.test,
            "tried": self.tried,
            "amount": self.amount,
            "secs": self.secs,
            "lost": self.lost,
            "leaked": self.leaked,
            "panics": self.panics,
            "failures": self.failures,
            "notes": self.notes,
        })
    }

    fn from_json(v: &Value) -> Option<Line> {
        let text = |key: &str| v[key].as_str().map(str::to_string);
        let list = |key: &str| -> Option<Vec<String>> {
            v[key]
                .as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        Some(Line {
            test: text("test")?,
            tried: text("tried")?,
            amount: text("amount")?,
            secs: v["secs"].as_f64()?,
            lost: v["lost"].as_u64()?,
            leaked: v["leaked"].as_u64()?,
            panics: v["panics"].as_u64()?,
            failures: list("failures")?,
            notes: list("notes")?,
        })
    }

    /// Prints the line for the parent (the child's last word).
    pub(crate) fn print(&self) {
        println!("{PREFIX}{}", self.to_json());
    }

    /// The last result line in a child's output, if any.
    pub(crate) fn parse_output(stdout: &str) -> Option<Line> {
        stdout
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix(PREFIX))
            .find_map(|json| Line::from_json(&serde_json::from_str(json).ok()?))
    }
}

/// Markdown-safe cell text: no pipes, no newlines.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The whole report, in Markdown.
pub(crate) fn render(lines: &[Line], scale: Scale) -> String {
    let mut out = String::new();
    let kind = if scale.quick {
        "quick run (scaled-down counts; the memory test is full-run only)"
    } else {
        "full run"
    };
    let _ = writeln!(out, "# evloop soak report: {kind}\n");
    let _ = writeln!(
        out,
        "lost: units of work that did not complete as they should (bytes, calls, clients, \
         rows); leaked: fds not given back plus heap bytes over the test's bound; panics: in \
         the test's process. Each must be 0.\n"
    );
    let _ = writeln!(
        out,
        "| test | tried | how much | time | lost | leaked | panics | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---|");
    for l in lines {
        let verdict = if l.passed() {
            "ok".to_string()
        } else if l.failures.is_empty() {
            "FAILED".to_string()
        } else {
            format!("FAILED: {}", l.failures.join("; "))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} s | {} | {} | {} | {} |",
            cell(&l.test),
            cell(&l.tried),
            cell(&l.amount),
            l.secs,
            l.lost,
            l.leaked,
            l.panics,
            cell(&verdict)
        );
    }
    let noted: Vec<&Line> = lines.iter().filter(|l| !l.notes.is_empty()).collect();
    if !noted.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for l in noted {
            for note in &l.notes {
                let _ = writeln!(out, "- {}: {}", l.test, note.replace('\n', "\n  "));
            }
        }
    }
    let failed = lines.iter().filter(|l| !l.passed()).count();
    let _ = writeln!(
        out,
        "\n{} of {} lines passed.",
        lines.len() - failed,
        lines.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_survives_the_trip_through_a_child_output() {
        let mut line = Line::new("churn", "connect/send/close");
        line.amount = "100,000 cycles".into();
        line.secs = 1.5;
        line.leaked = 3;
        line.fail("fds 7 -> 10");
        line.note("heap flat");
        let out = format!("noise\n{PREFIX}{}\nmore noise\n", line.to_json());
        assert_eq!(Line::parse_output(&out), Some(line.clone()));
        assert!(!line.passed());
        assert_eq!(Line::parse_output("nothing here\n"), None);
    }

    #[test]
    fn the_report_has_a_row_per_line_and_escapes_pipes() {
        let mut bad = Line::new("bad-input", "a | b");
        bad.fail("x");
        let ok = Line::new("c10k", "echo");
        let report = render(&[ok, bad], Scale { quick: true });
        assert!(report.contains("| c10k | echo |"));
        assert!(report.contains("a \\| b"));
        assert!(report.contains("FAILED: x"));
        assert!(report.contains("1 of 2 lines passed."));
    }
}
