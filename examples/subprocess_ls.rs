//! `ls -l` on a fresh temporary directory through `subprocess_exec` and a
//! `SubprocessProtocol` (asyncio's "Subprocess using transport and protocol" example): the
//! protocol collects what the child writes, and the program prints it and the exit code.
//!
//! Usage: `subprocess_ls`. It prints the listing (two files, `alpha.txt` and `beta.txt`),
//! then `exit code: 0`, and removes the directory.

use std::io;
use std::path::PathBuf;

use evloop::prelude::*;
use evloop::{ProcessOptions, ProcessStdio, SubprocessProtocol};

/// Collects the child's stdout and stderr; stops the loop when it is all over.
struct Listing {
    out: Vec<u8>,
    err: Vec<u8>,
    lp: EventLoop,
}

impl SubprocessProtocol for Listing {
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        match fd {
            1 => self.out.extend_from_slice(data),
            _ => self.err.extend_from_slice(data),
        }
    }

    fn connection_lost(&mut self, _err: Option<io::Error>) {
        // The child exited and both pipes are closed: nothing more will come.
        self.lp.stop();
    }
}

/// A directory of our own under the system's temporary directory.
fn make_dir() -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("evloop-subprocess-ls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("alpha.txt"), b"first file\n")?;
    std::fs::write(dir.join("beta.txt"), b"the second, longer file\n")?;
    Ok(dir)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = make_dir()?;
    let lp = EventLoop::new()?;
    let l2 = lp.clone();
    let options = ProcessOptions::new()
        .stdin(ProcessStdio::Null)
        .env("LC_ALL", "C");
    let started = lp.run_until_complete(lp.subprocess_exec(
        move || Listing {
            out: Vec::new(),
            err: Vec::new(),
            lp: l2,
        },
        "ls",
        ["-l".as_ref(), dir.as_os_str()],
        options,
    ))?;
    let (transport, listing) = match started {
        Ok(pair) => pair,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(err.into());
        }
    };
    println!("ls -l {} (pid {}):", dir.display(), transport.get_pid());
    lp.run_forever()?;
    let listing = listing.borrow();
    print!("{}", String::from_utf8_lossy(&listing.out));
    eprint!("{}", String::from_utf8_lossy(&listing.err));
    match transport.get_returncode() {
        Some(code) => println!("exit code: {code}"),
        None => println!("exit code: unknown"),
    }
    lp.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
