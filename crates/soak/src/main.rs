//! evloop's soak suite: the unpublished package that loads, breaks and misuses evloop the way
//! a program and a reliability reviewer would, each load bounded in count and time. Run it with
//! `cargo xtask soak [--quick]`; `cargo xtask ci` runs `--quick` (scaled-down counts, in the
//! debug build the tests already made). No library crate may ever depend on it.
//!
//! Every test runs in a child process of this binary (`--child NAME`) under a watchdog: a
//! lowered fd limit, a signal storm or an abort stays in its child, and a hung test becomes a
//! failed line, never a hung run. The child prints one result line ([`line::Line`], JSON);
//! the parent writes `report.md` (a line per test) and exits non-zero if any line failed.

mod alloc;
mod asan;
mod bad_input;
mod c10k;
mod c10k_multi;
mod churn;
mod echo;
mod emfile;
mod faults;
mod lifecycle;
mod line;
mod memory;
mod process;
mod sendfile;
mod signals;
mod storm;
mod streams;
mod sys;
mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use line::Line;

/// The counting allocator: every test reads the heap through it.
#[global_allocator]
static HEAP: alloc::Counting = alloc::Counting;

/// A test's entry point, run in the child: it returns the report line.
type Test = fn(&Scale) -> Line;

/// One test of the suite.
struct Entry {
    name: &'static str,
    run: Test,
    /// The watchdog: the child is killed and the line failed after this long.
    limit: Duration,
    /// Whether the quick run (`cargo xtask ci`) skips it.
    full_only: bool,
}

/// Every test, in report order; `--only NAME` picks one by this name.
const TESTS: &[Entry] = &[
    Entry {
        name: "c10k",
        run: c10k::run,
        limit: Duration::from_secs(120),
        full_only: false,
    },
    Entry {
        name: "c10k-multi",
        run: c10k_multi::run,
        limit: Duration::from_secs(120),
        full_only: false,
    },
    Entry {
        name: "churn",
        run: churn::run,
        limit: Duration::from_secs(180),
        full_only: false,
    },
    Entry {
        name: "peer-faults",
        run: faults::run,
        limit: Duration::from_secs(60),
        full_only: false,
    },
    Entry {
        name: "emfile",
        run: emfile::run,
        limit: Duration::from_secs(60),
        full_only: false,
    },
    Entry {
        name: "threadsafe-storm",
        run: storm::run,
        limit: Duration::from_secs(120),
        full_only: false,
    },
    Entry {
        name: "signal-storm",
        run: signals::run,
        limit: Duration::from_secs(60),
        full_only: false,
    },
    Entry {
        name: "lifecycle",
        run: lifecycle::run,
        limit: Duration::from_secs(60),
        full_only: false,
    },
    Entry {
        name: "bad-input",
        run: bad_input::run,
        limit: Duration::from_secs(120),
        full_only: false,
    },
    Entry {
        name: "streams",
        run: streams::run,
        limit: Duration::from_secs(180),
        full_only: false,
    },
    Entry {
        name: "tls",
        run: tls::run,
        limit: Duration::from_secs(180),
        full_only: false,
    },
    Entry {
        name: "subprocess-churn",
        run: process::run,
        limit: Duration::from_secs(120),
        full_only: false,
    },
    Entry {
        name: "sendfile",
        run: sendfile::run,
        limit: Duration::from_secs(150),
        full_only: false,
    },
    Entry {
        name: "memory",
        run: memory::run,
        // Its own budget for valgrind is 9 minutes; building the test binaries comes first.
        limit: Duration::from_secs(720),
        full_only: true,
    },
    Entry {
        name: "asan",
        run: asan::run,
        // Its own budget for the sanitized tests is 5 minutes; the nightly build comes first.
        limit: Duration::from_secs(720),
        full_only: true,
    },
];

/// How much each test does: the full counts, or the quick run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scale {
    /// True for `--quick`.
    pub(crate) quick: bool,
}

impl Scale {
    /// `full` in the full run, `quick` in the quick one.
    pub(crate) fn pick(self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

const USAGE: &str = "\
usage: evloop-soak [--quick] [--only NAME] [--out-dir DIR]

  --quick         scaled-down counts, the memory test skipped (what `cargo xtask ci` runs)
  --only NAME     run only the test called NAME
  --out-dir DIR   where report.md goes (default: <target dir>/soak)";

/// The command line, parsed.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    quick: bool,
    only: Option<String>,
    out_dir: PathBuf,
    /// Hidden: run the test (or helper) of this name here and print its line.
    child: Option<String>,
    /// Hidden: the helper's own arguments, after `--child NAME`.
    child_args: Vec<String>,
}

/// Parses the arguments (without the program name); `Err` carries the message.
fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        only: None,
        out_dir: default_out_dir(),
        child: None,
        child_args: Vec::new(),
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => {
                let name = value()?;
                if !TESTS.iter().any(|t| t.name == name) {
                    let names: Vec<&str> = TESTS.iter().map(|t| t.name).collect();
                    return Err(format!(
                        "no test called {name:?} (tests: {})",
                        names.join(", ")
                    ));
                }
                options.only = Some(name);
            }
            "--out-dir" => options.out_dir = PathBuf::from(value()?),
            "--child" => {
                options.child = Some(value()?);
                options.child_args = iter.cloned().collect();
                break;
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(options)
}

/// The workspace root: this package is `crates/soak`, two folders below it.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// `<target dir>/soak`: `$CARGO_TARGET_DIR`, else the workspace's `target`.
fn default_out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("soak")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("evloop-soak: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let scale = Scale {
        quick: options.quick,
    };
    if let Some(name) = &options.child {
        return child_main(name, &options.child_args, scale);
    }
    let lines = run_suite(&options, scale);
    let report = line::render(&lines, scale);
    let path = options.out_dir.join("report.md");
    if let Err(e) =
        std::fs::create_dir_all(&options.out_dir).and_then(|()| std::fs::write(&path, &report))
    {
        eprintln!("evloop-soak: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("\n{report}");
    println!("soak: report written to {}", path.display());
    let failed: Vec<&str> = lines
        .iter()
        .filter(|l| !l.passed())
        .map(|l| l.test.as_str())
        .collect();
    if failed.is_empty() {
        println!(
            "soak: ok, {} tests, 0 lost, 0 leaked, 0 panics",
            lines.len()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("soak: FAILED: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// Runs every selected test in a child process of its own, each under its watchdog.
fn run_suite(options: &Options, scale: Scale) -> Vec<Line> {
    let mut lines = Vec::new();
    for test in TESTS {
        if options
            .only
            .as_deref()
            .is_some_and(|only| only != test.name)
        {
            continue;
        }
        if test.full_only && scale.quick && options.only.is_none() {
            continue;
        }
        println!("soak: {} ...", test.name);
        let mut args = vec!["--child".to_string(), test.name.to_string()];
        if scale.quick {
            args.insert(0, "--quick".to_string());
        }
        let line = sys::run_child_line(test.name, &args, test.limit);
        println!("soak: {} {}", test.name, line.summary());
        lines.push(line);
    }
    lines
}

/// The child's side: a test, or a helper process a test started.
fn child_main(name: &str, args: &[String], scale: Scale) -> ExitCode {
    sys::count_panics();
    if let Some(code) = helper_main(name, args) {
        return code;
    }
    let Some(test) = TESTS.iter().find(|t| t.name == name) else {
        eprintln!("evloop-soak: no test or helper called {name:?}");
        return ExitCode::from(2);
    };
    let line = (test.run)(&scale);
    line.print();
    ExitCode::SUCCESS
}

/// The helper processes tests start (clients, signal senders, one bad-input row).
fn helper_main(name: &str, args: &[String]) -> Option<ExitCode> {
    let result = match name {
        "c10k-clients" => c10k::clients_main(args),
        "emfile-clients" => emfile::clients_main(args),
        "sigusr1-sender" => signals::sender_main(args),
        "bad-input-row" => bad_input::row_main(args),
        _ => return None,
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evloop-soak {name}: {e}");
            ExitCode::FAILURE
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_parse() -> Result<(), String> {
        let options = parse_args(&strings(&["--quick", "--only", "churn", "--out-dir", "/x"]))?;
        assert!(options.quick);
        assert_eq!(options.only.as_deref(), Some("churn"));
        assert_eq!(options.out_dir, PathBuf::from("/x"));
        assert_eq!(options.child, None);
        Ok(())
    }

    #[test]
    fn a_child_takes_the_rest_as_its_own_arguments() -> Result<(), String> {
        let options = parse_args(&strings(&[
            "--quick",
            "--child",
            "bad-input-row",
            "3",
            "--x",
        ]))?;
        assert!(options.quick);
        assert_eq!(options.child.as_deref(), Some("bad-input-row"));
        assert_eq!(options.child_args, strings(&["3", "--x"]));
        Ok(())
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse_args(&strings(&["--only", "nope"])).is_err());
        assert!(parse_args(&strings(&["--only"])).is_err());
        assert!(parse_args(&strings(&["--fast"])).is_err());
    }

    #[test]
    fn the_memory_and_sanitizer_tests_are_the_only_full_run_tests() {
        let full_only: Vec<&str> = TESTS
            .iter()
            .filter(|t| t.full_only)
            .map(|t| t.name)
            .collect();
        assert_eq!(full_only, ["memory", "asan"]);
    }
}
