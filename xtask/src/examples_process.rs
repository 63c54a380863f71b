//! Check of the subprocess example: `subprocess_ls` lists the two files it made and reports
//! the child's exit code.

use super::Run;
use crate::cmd::Result;

/// `subprocess_ls`: a header naming `ls -l` and a pid, a line for each of `alpha.txt` and
/// `beta.txt` (sizes 11 and 24 bytes), then `exit code: 0`, and a clean exit.
pub(super) fn subprocess_ls(run: &mut Run) -> Result {
    let out = run.rest()?;
    let lines: Vec<String> = out.iter().map(|l| l.text()).collect();
    let header = lines.first().ok_or("printed nothing")?;
    if !(header.starts_with("ls -l ") && header.contains("(pid ")) {
        return Err(format!("unexpected first line {header:?}"));
    }
    for (name, size) in [("alpha.txt", "11"), ("beta.txt", "24")] {
        let listed = lines.iter().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.last() == Some(&name) && words.contains(&size) && l.starts_with('-')
        });
        if !listed {
            return Err(format!(
                "no `ls -l` line for {name} ({size} bytes) in {lines:?}"
            ));
        }
    }
    if lines.last().map(String::as_str) != Some("exit code: 0") {
        return Err(format!(
            "expected a last line \"exit code: 0\", got {:?}",
            lines.last()
        ));
    }
    run.exits_ok()
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use super::*;

    fn sh(script: &str) -> Result<Run> {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        Run::spawn(command, "test", Duration::from_secs(10))
    }

    const GOOD: &str = "echo 'ls -l /tmp/x (pid 7):'; echo 'total 8'; \
        echo '-rw-r--r-- 1 u u 11 Dec  7 21:17 alpha.txt'; \
        echo '-rw-r--r-- 1 u u 24 Dec  7 21:17 beta.txt'; echo 'exit code: 0'";

    #[test]
    fn the_listing_and_the_exit_code_are_checked() -> Result {
        subprocess_ls(&mut sh(GOOD)?)?;
        let missing = GOOD.replace("beta.txt", "gamma.txt");
        let err = subprocess_ls(&mut sh(&missing)?);
        assert!(err.is_err_and(|e| e.contains("beta.txt")));
        let failed = GOOD.replace("exit code: 0", "exit code: 2");
        let err = subprocess_ls(&mut sh(&failed)?);
        assert!(err.is_err_and(|e| e.contains("exit code: 2")));
        Ok(())
    }
}
