//! `cargo xtask soak [--quick]`: the soak suite (`crates/soak`), which writes
//! `target/soak/report.md` and fails if any line lost, leaked or panicked.
//!
//! The full run is built with optimisations, so C10K and churn run at speed.
//! `--quick` (what `cargo xtask ci` runs) uses the debug build the ci's build
//! step already made: measured on a 2-core machine, a release build of the
//! suite costs minutes while the quick run takes seconds in debug.

use crate::cmd::{Cmd, Result};
use crate::provision;

/// The command line, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) only: Option<String>,
}

/// Parses `[--quick] [--only NAME]`.
pub(crate) fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        quick: false,
        only: None,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => {
                let name = iter.next().ok_or("soak: --only needs a test name")?;
                options.only = Some(name.clone());
            }
            _ => {
                return Err(format!(
                    "soak: unknown argument {arg:?} (expected --quick, --only NAME)"
                ));
            }
        }
    }
    Ok(options)
}

/// The cargo arguments that run the suite with `options`.
pub(crate) fn cargo_args(options: &Options) -> Vec<String> {
    let mut args: Vec<String> = vec!["run".into()];
    if !options.quick {
        args.push("--release".into());
    }
    args.extend(["-p", "evloop-soak", "--"].map(String::from));
    if options.quick {
        args.push("--quick".into());
    }
    if let Some(name) = &options.only {
        args.extend(["--only".to_string(), name.clone()]);
    }
    args
}

/// Runs the suite; a failed line makes the binary, and so this task, fail.
pub(crate) fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    // The full run's memory test drives valgrind (the quick run and `--only` another test do not).
    if !options.quick && options.only.as_deref().is_none_or(|name| name == "memory") {
        provision::ensure(&[provision::VALGRIND])?;
    }
    // And its AddressSanitizer test builds with the nightly toolchain.
    if !options.quick && options.only.as_deref().is_none_or(|name| name == "asan") {
        provision::ensure_nightly()?;
    }
    Cmd::cargo().args(cargo_args(&options)).run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quick_runs_the_debug_build_and_full_the_release_build() -> Result {
        let quick = parse(&strings(&["--quick"]))?;
        assert_eq!(
            cargo_args(&quick),
            strings(&["run", "-p", "evloop-soak", "--", "--quick"])
        );
        let full = parse(&[])?;
        assert_eq!(
            cargo_args(&full),
            strings(&["run", "--release", "-p", "evloop-soak", "--"])
        );
        let one = parse(&strings(&["--only", "churn", "--quick"]))?;
        assert_eq!(
            one,
            Options {
                quick: true,
                only: Some("churn".into())
            }
        );
        Ok(())
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&strings(&["--fast"])).is_err());
        assert!(parse(&strings(&["--only"])).is_err());
    }
}
