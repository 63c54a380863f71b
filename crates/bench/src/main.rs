//! evloop's benchmark suite: the unpublished benchmark package, outside the
//! floors. It measures our crates beside their peers (std collections, tokio,
//! Python's asyncio and uvloop) in one run and reports absolute figures and
//! ratios. No library crate may ever depend on it. Run it with
//! `cargo xtask bench [--quick] [--json FILE] [--group PREFIX]`; `cargo xtask ci`
//! runs it with `--smoke` (1/100 scale), which fails only on a wrong result.
//!
//! Each group lives in a file of its own and is registered in [`GROUPS`].

// The harness, Python and system helpers are an API promised to every group
// file; a helper that no group calls yet must not fail the build.
mod callbacks;
mod chain;
mod chart;
mod common;
mod echo;
mod echo_client;
mod echo_epoll;
mod echo_mc;
mod echo_proc;
mod echo_servers;
mod echo_streams;
#[allow(dead_code, reason = "API for the group files; each item is tested")]
mod harness;
mod process;
#[allow(dead_code, reason = "API for the group files; each item is tested")]
mod python;
mod report;
mod sendfile;
#[allow(dead_code, reason = "API for the group files; each item is tested")]
mod sys;
mod syscalls;
mod tasks;
mod timers;
mod tls_echo;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use harness::Ctx;

/// A group's entry point. It returns `Err` only for a wrong result.
type Group = fn(&mut harness::Ctx) -> Result<(), String>;

/// Every benchmark group, by name; `--group PREFIX` picks by this name.
const GROUPS: &[(&str, Group)] = &[
    ("timers", timers::run),
    ("callbacks", callbacks::run),
    ("syscalls", syscalls::run),
    ("tasks", tasks::run),
    ("echo", echo::run),
    ("tls_echo", tls_echo::run),
    ("subprocess", process::run),
    ("sendfile", sendfile::run),
];

const USAGE: &str = "\
usage: evloop-bench [--smoke | --quick] [--json FILE] [--group PREFIX] [--out-dir DIR]

  --smoke         1/100 scale, verify results only (what `cargo xtask ci` runs)
  --quick         full scale, one repeat instead of the median of three
  --json FILE     also write every figure as a JSON array of records
  --group PREFIX  run only the groups whose name starts with PREFIX
  --out-dir DIR   where report.md goes (default: <target dir>/bench)";

/// The command line, parsed.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    smoke: bool,
    quick: bool,
    json: Option<PathBuf>,
    group: String,
    out_dir: PathBuf,
}

/// Parses the arguments (without the program name); `Err` carries the message.
fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        smoke: false,
        quick: false,
        json: None,
        group: String::new(),
        out_dir: default_out_dir(),
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--smoke" => options.smoke = true,
            "--quick" => options.quick = true,
            "--json" => options.json = Some(PathBuf::from(value()?)),
            "--group" => options.group = value()?,
            "--out-dir" => options.out_dir = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.smoke && options.quick {
        return Err("--smoke and --quick exclude each other".to_string());
    }
    Ok(options)
}

/// `<target dir>/bench`: `CARGO_TARGET_DIR` if set, else the workspace's `target/`.
fn default_out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // This package is `crates/bench`, two folders below the root.
            let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            let root = manifest_dir.parent().and_then(Path::parent);
            root.unwrap_or(manifest_dir).join("target")
        });
    target.join("bench")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Hidden: the echo groups re-run this binary as the server under test.
    if args.first().is_some_and(|a| a == "--serve") {
        return echo_servers::serve_main(&args[1..]);
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("evloop-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let selected: Vec<_> = GROUPS
        .iter()
        .filter(|(name, _)| name.starts_with(&options.group))
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = GROUPS.iter().map(|(name, _)| *name).collect();
        eprintln!(
            "evloop-bench: no group starts with {:?}; groups: {}",
            options.group,
            names.join(", ")
        );
        return ExitCode::from(2);
    }

    let mut ctx = Ctx::new(options.smoke, options.quick, options.out_dir.clone());
    println!("evloop-bench: mode {}", ctx.mode());
    let mut failures = Vec::new();
    for (name, run) in selected {
        println!("\n== group {name}");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut ctx)));
        let error = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(message)) => message,
            Err(_) => "the group panicked (see the message above)".to_string(),
        };
        println!("WRONG RESULT in group {name}: {error}");
        failures.push((name.to_string(), error));
    }

    report::print_tables(&ctx, &failures);
    let system = sys::System::describe();
    let mut ok = write_reports(&ctx, &options, &system, &failures);
    if !failures.is_empty() {
        eprintln!(
            "evloop-bench: {} group(s) gave a wrong result",
            failures.len()
        );
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes report.md (report-smoke.md in smoke mode, so that a smoke run never
/// replaces real figures) and the JSON file; says where, or why not.
fn write_reports(
    ctx: &Ctx,
    options: &Options,
    system: &sys::System,
    failures: &[(String, String)],
) -> bool {
    let name = if ctx.smoke {
        "report-smoke.md"
    } else {
        "report.md"
    };
    let md_path = options.out_dir.join(name);
    let mut ok = true;
    let written = std::fs::create_dir_all(&options.out_dir)
        .and_then(|()| std::fs::write(&md_path, report::markdown(ctx, system, failures)));
    match written {
        Ok(()) => println!("\nreport: {}", md_path.display()),
        Err(e) => {
            eprintln!("evloop-bench: cannot write {}: {e}", md_path.display());
            ok = false;
        }
    }
    // The chart beside the report (report-smoke.svg in smoke mode, for the same reason).
    let svg_path = md_path.with_extension("svg");
    let caption = format!(
        "{}, {} cores, kernel {}, mode {}",
        report::utc_now(),
        system.nproc,
        system.kernel,
        ctx.mode()
    );
    match chart::svg(ctx.records(), &caption)
        .and_then(|svg| std::fs::write(&svg_path, svg).map_err(|e| e.to_string()))
    {
        Ok(()) => println!("chart: {}", svg_path.display()),
        Err(e) => {
            eprintln!("evloop-bench: cannot write {}: {e}", svg_path.display());
            ok = false;
        }
    }
    if let Some(json_path) = &options.json {
        match std::fs::write(json_path, report::json(ctx.records())) {
            Ok(()) => println!("json: {}", json_path.display()),
            Err(e) => {
                eprintln!("evloop-bench: cannot write {}: {e}", json_path.display());
                ok = false;
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_every_option() -> Result<(), String> {
        let options = parse_args(&strings(&[
            "--quick",
            "--json",
            "out.json",
            "--group",
            "timers",
            "--out-dir",
            "/tmp/b",
        ]))?;
        assert_eq!(
            options,
            Options {
                smoke: false,
                quick: true,
                json: Some(PathBuf::from("out.json")),
                group: "timers".to_string(),
                out_dir: PathBuf::from("/tmp/b"),
            }
        );
        Ok(())
    }

    #[test]
    fn defaults_run_everything_into_target_bench() -> Result<(), String> {
        let options = parse_args(&[])?;
        assert!(!options.smoke && !options.quick && options.json.is_none());
        assert_eq!(options.group, "");
        assert!(
            options.out_dir.ends_with("bench"),
            "{}",
            options.out_dir.display()
        );
        Ok(())
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_eq!(
            parse_args(&strings(&["--fast"])),
            Err("unknown argument \"--fast\"".to_string())
        );
        assert_eq!(
            parse_args(&strings(&["--json"])),
            Err("--json needs a value".to_string())
        );
        assert!(parse_args(&strings(&["--smoke", "--quick"])).is_err());
    }

    #[test]
    fn every_group_has_a_unique_name() {
        let mut names: Vec<&str> = GROUPS.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), GROUPS.len());
    }
}
