//! `cargo xtask ci`: every check the project has, in the order CI runs them.
//!
//! The first failure stops the run; the error names the step and repeats the
//! failed command line. At the end the time of each step and of the whole run
//! is printed, with everything that was skipped.

use std::time::{Duration, Instant};

use crate::cmd::{Cmd, Result, human};
use crate::{examples, layers, provision, tidy};

/// One step of the run. It returns the names of what it skipped.
struct Step {
    name: &'static str,
    run: fn() -> Result<Vec<String>>,
}

/// The steps, in order: cheap checks first, so a formatting slip fails in seconds.
const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        run: fmt,
    },
    Step {
        name: "clippy",
        run: clippy,
    },
    Step {
        name: "build",
        run: build,
    },
    Step {
        name: "test",
        run: test,
    },
    Step {
        name: "doc",
        run: doc,
    },
    Step {
        name: "package",
        run: package,
    },
    Step {
        name: "layers",
        run: layers::run,
    },
    Step {
        name: "tidy",
        run: tidy::run,
    },
    Step {
        name: "examples",
        run: examples::run,
    },
    Step {
        name: "bench smoke",
        run: bench_smoke,
    },
    Step {
        name: "soak quick",
        run: soak_quick,
    },
    Step {
        name: "python",
        run: crate::pytest::ci,
    },
];

/// The members that are never published: the checks, the benchmarks, the soak suite.
const UNPUBLISHED: &[&str] = &["xtask", "evloop-bench", "evloop-soak"];

/// `cargo package` of every published crate, each built from its packaged sources (sibling
/// crates resolve from the packages made in the same run), so that the workspace stays
/// publishable.
fn package() -> Result<Vec<String>> {
    forget_packaged_sources()?;
    // A target directory of its own, emptied first: cargo takes a registry crate's build for
    // immutable, so a build of our crates left by an earlier run of the same version would be
    // reused instead of the fresh packages.
    let target = std::path::Path::new("target").join("package-check");
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .map_err(|e| format!("cannot remove {}: {e}", target.display()))?;
    }
    let target = target.display().to_string();
    let mut args = vec![
        "package",
        "--workspace",
        "--allow-dirty",
        "--quiet",
        "--target-dir",
        &target,
    ];
    for name in UNPUBLISHED {
        args.extend(["--exclude", name]);
    }
    Cmd::cargo().args(args).run()?;
    Ok(Vec::new())
}

/// Removes the sources cargo extracted from an earlier `cargo package` run (see
/// [`package`] for the builds).
///
/// `cargo package --workspace` verifies each crate against its siblings' fresh packages
/// through a local registry, and cargo extracts what it takes from there into
/// `$CARGO_HOME/registry/src/-<hash>/<name>-<version>`, as it does for crates.io; like a
/// crates.io download, that copy is never refreshed. Our versions do not change between
/// commits, so a second run would verify against the first run's sources (seen: the facade
/// failed to find items that its sibling's fresh package had). Only those local-registry
/// folders (their names start with `-`) and only our crates' copies are removed.
fn forget_packaged_sources() -> Result {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else {
        return Ok(());
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for krate in crates.flatten() {
            let name = krate.file_name().to_string_lossy().into_owned();
            if name.starts_with("evloop-") || name.starts_with("evloop_") {
                std::fs::remove_dir_all(krate.path())
                    .map_err(|e| format!("cannot remove {}: {e}", krate.path().display()))?;
            }
        }
    }
    Ok(())
}

fn fmt() -> Result<Vec<String>> {
    provision::ensure_components(&["rustfmt"])?;
    Cmd::cargo().args(["fmt", "--all", "--check"]).run()?;
    // The Python module is a workspace of its own (docs/architecture.md, "The Python module").
    Cmd::cargo()
        .args([
            "fmt",
            "--all",
            "--check",
            "--manifest-path",
            layers::PYTHON_MANIFEST,
        ])
        .run()?;
    Ok(Vec::new())
}

fn clippy() -> Result<Vec<String>> {
    provision::ensure_components(&["clippy"])?;
    Cmd::cargo()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;
    // The Python module, in the target directory `cargo xtask pytest` builds it in.
    Cmd::cargo()
        .args([
            "clippy",
            "--all-targets",
            "--manifest-path",
            layers::PYTHON_MANIFEST,
        ])
        .args(["--", "-D", "warnings"])
        .env("CARGO_TARGET_DIR", "target/python")
        .run()?;
    Ok(Vec::new())
}

/// Builds every target, examples included.
fn build() -> Result<Vec<String>> {
    Cmd::cargo()
        .args(["build", "--workspace", "--all-targets"])
        .run()?;
    Ok(Vec::new())
}

/// Unit, integration and doc tests.
fn test() -> Result<Vec<String>> {
    Cmd::cargo().args(["test", "--workspace"]).run()?;
    Ok(Vec::new())
}

/// The docs, private items included (their links are read by whoever maintains the code), with
/// every rustdoc warning an error.
fn doc() -> Result<Vec<String>> {
    Cmd::cargo()
        .args([
            "doc",
            "--workspace",
            "--no-deps",
            "--document-private-items",
        ])
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()?;
    Ok(Vec::new())
}

/// The benchmarks at 1/100 scale in the debug build the tests already made;
/// it fails on a wrong result, never on a time.
fn bench_smoke() -> Result<Vec<String>> {
    Cmd::cargo()
        .args(["run", "-p", "evloop-bench", "--", "--smoke"])
        .run()?;
    Ok(Vec::new())
}

/// The soak suite at its quick scale, in the debug build the tests already made; it fails on
/// any line that lost, leaked or panicked (`target/soak/report.md` says which).
fn soak_quick() -> Result<Vec<String>> {
    crate::soak::run(&["--quick".to_string()])?;
    Ok(Vec::new())
}

/// Runs every step; see the module docs.
pub(crate) fn run() -> Result {
    let started = Instant::now();
    let mut times: Vec<(&str, Duration)> = Vec::new();
    let mut skipped = Vec::new();
    for (i, step) in STEPS.iter().enumerate() {
        println!("\n==> ci step {}/{}: {}", i + 1, STEPS.len(), step.name);
        let step_started = Instant::now();
        let outcome = (step.run)();
        times.push((step.name, step_started.elapsed()));
        match outcome {
            Ok(names) => skipped.extend(names.into_iter().map(|n| format!("{}: {n}", step.name))),
            Err(e) => {
                print_times(&times);
                return Err(format!(
                    "ci step {}/{} ({}) failed after {}: {e}",
                    i + 1,
                    STEPS.len(),
                    step.name,
                    human(started.elapsed())
                ));
            }
        }
    }
    print_times(&times);
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        format!("; SKIPPED: {}", skipped.join(", "))
    };
    println!(
        "ci: ok, {} steps passed in {}{skipped}",
        STEPS.len(),
        human(started.elapsed())
    );
    Ok(())
}

fn print_times(times: &[(&str, Duration)]) {
    println!("\nci: step times");
    for (name, time) in times {
        println!("  {name:<12} {:>12}", human(*time));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_run_in_the_documented_order() {
        let names: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "fmt",
                "clippy",
                "build",
                "test",
                "doc",
                "package",
                "layers",
                "tidy",
                "examples",
                "bench smoke",
                "soak quick",
                "python"
            ]
        );
    }
}
