//! The command runner every task goes through.
//!
//! A [`Cmd`] is printed (`+ cargo clippy ...`) before it runs, its output
//! streams through to ours, and a failure becomes an error that repeats the
//! command line, so the last thing on the screen says what to run again.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a task returns; `main` prints the error and exits non-zero.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root: xtask lives one folder below it.
pub(crate) fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // `xtask/` is always a direct child of the root (see the root manifest's
    // `members`), so it has a parent; fall back to the folder itself rather
    // than panic if someone moves it.
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A command line to print and run.
pub(crate) struct Cmd {
    /// What is executed.
    program: OsString,
    /// How the program is printed (`cargo` rather than the full `$CARGO` path).
    shown: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Cmd {
    /// A command running `program`, looked up in `PATH`.
    pub(crate) fn new(program: &str) -> Cmd {
        Cmd {
            program: program.into(),
            shown: program.to_string(),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// A cargo command: the cargo that runs xtask (`$CARGO`), printed as `cargo`.
    pub(crate) fn cargo() -> Cmd {
        let mut cmd = Cmd::new("cargo");
        if let Some(cargo) = std::env::var_os("CARGO") {
            cmd.program = cargo;
        }
        cmd
    }

    /// Appends arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the child (and shows it in the printed line).
    pub(crate) fn env(mut self, key: &str, value: &str) -> Cmd {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Prints the command line, runs it with its output streaming through, and
    /// fails unless it exits with status 0.
    pub(crate) fn run(&self) -> Result {
        println!("+ {self}");
        let status = self
            .command()
            .status()
            .map_err(|e| format!("could not start `{self}`: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("command failed ({status}): {self}"))
        }
    }

    /// Prints the command line, runs it and returns its standard output; its
    /// standard error streams through.
    pub(crate) fn read(&self) -> Result<String> {
        println!("+ {self}");
        let output = self
            .command()
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("could not start `{self}`: {e}"))?;
        if !output.status.success() {
            return Err(format!("command failed ({}): {self}", output.status));
        }
        String::from_utf8(output.stdout).map_err(|_| format!("`{self}` printed invalid UTF-8"))
    }

    /// The `std` command, for callers that manage the child themselves.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }
}

impl fmt::Display for Cmd {
    /// The command line as one would type it into a POSIX shell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.envs {
            write!(f, "{key}={} ", quote(value))?;
        }
        f.write_str(&quote(&self.shown))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes a word for a POSIX shell, leaving plain words as they are.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A duration as people read it in a log: `0.4 s`, `12.3 s`, `5 min 02 s`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = d.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_env_program_and_args() {
        let cmd = Cmd::cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings");
        assert_eq!(
            cmd.to_string(),
            "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps"
        );
    }

    #[test]
    fn quote_leaves_plain_words_and_escapes_the_rest() {
        assert_eq!(quote("--all-targets"), "--all-targets");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("a b"), "'a b'");
    }

    #[test]
    fn failure_repeats_the_command_line() {
        let err = Cmd::new("false").args(["--flag"]).run();
        let message = err.expect_err("`false` exits with status 1");
        assert!(message.ends_with(": false --flag"), "{message}");
        assert!(message.contains("exit status: 1"), "{message}");
    }

    #[test]
    fn read_returns_stdout() -> Result {
        assert_eq!(Cmd::new("echo").args(["hi there"]).read()?, "hi there\n");
        Ok(())
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(420)), "0.4 s");
        assert_eq!(human(Duration::from_secs(59)), "59.0 s");
        assert_eq!(human(Duration::from_secs(302)), "5 min 02 s");
    }
}
