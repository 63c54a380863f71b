//! `cargo xtask`: the project's own tasks, in Rust, so CI and people run the
//! same thing (`.ci/run` calls `cargo xtask ci`).
//!
//! This package is unpublished and outside the floors: no crate may ever
//! depend on it. One file per task; every external command goes through
//! [`cmd::Cmd`], which prints it before it runs.

mod bench;
mod ci;
mod cmd;
mod docpaths;
mod examples;
mod layers;
mod provision;
mod pytest;
mod soak;
mod tidy;

use std::env;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci                     every check, in order: fmt, clippy, build, test, doc, package,
                         layers, tidy, examples, bench smoke, soak --quick,
                         pytest --core
  bench [--quick] [--json FILE] [--group PREFIX] [--out-dir DIR]
                         the benchmark suite (release build); report in target/bench/
  soak [--quick] [--only NAME]
                         the soak suite (release build; --quick: debug build,
                         scaled down); report in target/soak/report.md
  pytest [--python PYTHON] [--core | --all | MODULE...]
                         CPython's test.test_asyncio on the evloop Python module
                         (built with maturin into target/pyvenv-<version>)
  layers                 the layering check alone
  tidy                   the tidy checks alone
  examples               build, run and check the reference examples alone
  help                   this text";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let task = args.first().map(String::as_str);
    let rest = args.get(1..).unwrap_or_default();
    if matches!(task, None | Some("help" | "--help" | "-h")) {
        println!("{USAGE}");
        return if task.is_none() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let called_from = env::current_dir().unwrap_or_else(|_| cmd::root());
    if let Err(e) = env::set_current_dir(cmd::root()) {
        eprintln!(
            "error: cannot enter the workspace root {}: {e}",
            cmd::root().display()
        );
        return ExitCode::FAILURE;
    }
    let result = match task {
        Some("bench") => bench::run(rest, &called_from),
        Some("soak") => soak::run(rest),
        Some("pytest") => pytest::run(rest),
        Some("ci") => no_args("ci", rest).and_then(|()| ci::run()),
        Some("layers") => no_args("layers", rest).and_then(|()| layers::run().map(drop)),
        Some("tidy") => no_args("tidy", rest).and_then(|()| tidy::run().map(drop)),
        Some("examples") => no_args("examples", rest).and_then(|()| examples::run().map(drop)),
        Some(other) => Err(format!("unknown task {other:?}\n\n{USAGE}")),
        None => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nerror: {e}");
            ExitCode::FAILURE
        }
    }
}

fn no_args(task: &str, rest: &[String]) -> cmd::Result {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{task} takes no arguments, got {rest:?}\n\n{USAGE}"
        ))
    }
}
