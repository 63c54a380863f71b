//! Provisioning: the tools a check needs, installed when they are missing.
//!
//! The README's `cargo xtask ci` must pass on a fresh machine with nothing installed by hand, so
//! a check that drives an outside program (the rustup components, the clients of the networking
//! examples, valgrind) asks for it here first. A missing program is installed with the system's
//! package manager (`apt-get`, through `sudo -n` when we are not root); where that cannot be
//! done, the error is one line naming the one command that would do it.

use std::env;
use std::path::Path;
use std::process::Stdio;

use crate::cmd::{Cmd, Result};

/// An outside program and the Debian package that provides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tool {
    /// The program's name, as looked up in `PATH`.
    pub(crate) program: &'static str,
    /// The package that installs it (`apt-get install <package>`).
    pub(crate) package: &'static str,
}

/// The clients the networking examples are checked with (`examples_net.rs`): programs nobody on
/// this team wrote.
pub(crate) const EXAMPLE_CLIENTS: &[Tool] = &[
    Tool {
        program: "curl",
        package: "curl",
    },
    Tool {
        program: "socat",
        package: "socat",
    },
    Tool {
        program: "redis-benchmark",
        package: "redis-tools",
    },
    Tool {
        program: "python3",
        package: "python3",
    },
    Tool {
        program: "openssl",
        package: "openssl",
    },
];

/// valgrind, for the soak suite's memory test (its full run).
pub(crate) const VALGRIND: Tool = Tool {
    program: "valgrind",
    package: "valgrind",
};

/// Whether `program` is an executable file in one of the `PATH` folders.
pub(crate) fn on_path(program: &str) -> bool {
    let Some(paths) = env::var_os("PATH") else {
        return false;
    };
    env::split_paths(&paths).any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The tools of `tools` that are not on `PATH`.
fn missing(tools: &[Tool]) -> Vec<Tool> {
    tools
        .iter()
        .copied()
        .filter(|t| !on_path(t.program))
        .collect()
}

/// The `apt-get install` line for `tools`, as a person would type it.
fn install_line(tools: &[Tool]) -> String {
    let packages: Vec<&str> = tools.iter().map(|t| t.package).collect();
    format!("sudo apt-get install -y {}", packages.join(" "))
}

/// Makes sure every tool of `tools` is on `PATH`, installing the missing ones with `apt-get`.
///
/// # Errors
///
/// - One line naming the command to run, when a tool is missing and cannot be installed here
///   (no `apt-get`, not root and no password-less `sudo`, or the install failed).
pub(crate) fn ensure(tools: &[Tool]) -> Result {
    let absent = missing(tools);
    if absent.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = absent.iter().map(|t| t.program).collect();
    let give_up = |why: &str| {
        format!(
            "{} not installed and {why}: run `{}`, then this command again",
            names.join(", "),
            install_line(&absent)
        )
    };
    if !on_path("apt-get") {
        return Err(give_up("this machine has no apt-get"));
    }
    let sudo: &[&str] = if is_root() {
        &[]
    } else if on_path("sudo") && quiet_output(Cmd::new("sudo").args(["-n", "true"])).is_some() {
        &["sudo", "-n"]
    } else {
        return Err(give_up("installing needs root"));
    };
    println!("provision: installing {}", names.join(", "));
    let apt = |args: &[&str]| {
        let mut words: Vec<&str> = sudo.to_vec();
        words.push("apt-get");
        words.extend_from_slice(args);
        Cmd::new(words[0])
            .args(words[1..].iter().copied())
            .env("DEBIAN_FRONTEND", "noninteractive")
    };
    // A stale package index is the usual reason an install fails on a fresh machine; a failed
    // update is not fatal by itself (the install below says whether it mattered).
    if let Err(e) = apt(&["update", "-q"]).run() {
        println!("provision: {e}; trying the install anyway");
    }
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(absent.iter().map(|t| t.package));
    apt(&install).run().map_err(|e| give_up(&e))?;
    let still = missing(&absent);
    if still.is_empty() {
        Ok(())
    } else {
        Err(give_up("the install did not put them on PATH"))
    }
}

/// The rustup components `cargo fmt` and `cargo clippy` need, added when missing (a toolchain
/// installed with rustup's `minimal` profile has neither).
///
/// # Errors
///
/// - One line naming the command to run, when a component is missing and rustup cannot add it.
pub(crate) fn ensure_components(components: &[&str]) -> Result {
    if !on_path("rustup") {
        // Not a rustup toolchain: cargo itself says what is missing when the step runs.
        return Ok(());
    }
    let installed = quiet_output(Cmd::new("rustup").args(["component", "list", "--installed"]))
        .unwrap_or_default();
    for component in components {
        let present = installed
            .lines()
            .any(|line| line.starts_with(&format!("{component}-")) || line == *component);
        if !present {
            Cmd::new("rustup")
                .args(["component", "add", component])
                .run()
                .map_err(|e| {
                    format!("{e}: run `rustup component add {component}`, then this command again")
                })?;
        }
    }
    Ok(())
}

/// The nightly toolchain, for the soak suite's AddressSanitizer test (its full run), installed
/// with rustup's `minimal` profile when missing.
///
/// # Errors
///
/// - One line naming the command to run, when rustup is absent or cannot install it.
pub(crate) fn ensure_nightly() -> Result {
    let cmd = "rustup toolchain install nightly --profile minimal";
    if !on_path("rustup") {
        return Err(format!(
            "the nightly toolchain needs rustup, which is not on PATH: install rustup, run \
             `{cmd}`, then this command again"
        ));
    }
    if quiet_output(Cmd::new("rustup").args(["run", "nightly", "rustc", "--version"])).is_some() {
        return Ok(());
    }
    println!("provision: installing the nightly toolchain");
    Cmd::new("rustup")
        .args(["toolchain", "install", "nightly", "--profile", "minimal"])
        .run()
        .map_err(|e| format!("{e}: run `{cmd}`, then this command again"))
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `cmd` without printing it or its output; its standard output if it exits with 0.
fn quiet_output(cmd: Cmd) -> Option<String> {
    let out = cmd.command().stderr(Stdio::null()).output().ok()?;
    if out.status.success() {
        String::from_utf8(out.stdout).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_on_path_is_found_and_a_made_up_one_is_not() {
        assert!(on_path("sh"));
        assert!(!on_path("evloop-no-such-program-5d1c"));
    }

    #[test]
    fn nothing_missing_means_nothing_to_do() -> Result {
        ensure(&[Tool {
            program: "sh",
            package: "dash",
        }])
    }

    #[test]
    fn the_install_line_names_every_package() {
        let line = install_line(&EXAMPLE_CLIENTS[1..3]);
        assert_eq!(line, "sudo apt-get install -y socat redis-tools");
    }
}
