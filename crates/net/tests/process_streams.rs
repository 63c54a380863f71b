//! `Process`'s stdin, stdout and stderr are the streams' `StreamWriter` and `StreamReader`s:
//! asyncio's methods, its limit and flow control, and the `futures-io` traits, over the
//! child's pipes.

mod util;

use std::io;

use evloop_net::{LoopProcessExt, Process, ProcessOptions, ProcessStdio, StreamReader};
use evloop_sched::get_running_loop;
use futures_util::io::AsyncBufReadExt;
use futures_util::stream::TryStreamExt;
use util::streams::{overrun_of, run};

/// Starts `cmd` with the shell as a `Process` on the running loop.
async fn shell(cmd: &str, options: ProcessOptions) -> io::Result<Process> {
    get_running_loop()?
        .create_subprocess_shell(cmd, options)
        .await
}

fn piped<T>(stream: Option<T>) -> io::Result<T> {
    stream.ok_or_else(|| io::Error::other("the stream is not piped"))
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_send_signal (a line read
// from stdout as the child's signal that it is ready), test_streams.py::test_readline.
#[test]
fn readline_reads_the_childs_lines_as_they_come() -> io::Result<()> {
    let code = run(async {
        let opts = ProcessOptions::new().stdin(ProcessStdio::Null);
        let mut child = shell("echo one; echo two; echo sleeping; exec sleep 30", opts).await?;
        let stdout = piped(child.stdout.as_mut())?;
        assert_eq!(stdout.readline().await?, b"one\n");
        assert_eq!(stdout.readline().await?, b"two\n");
        assert_eq!(stdout.readline().await?, b"sleeping\n");
        assert!(!stdout.at_eof());
        child.send_signal(libc::SIGHUP)?;
        let code = child.wait().await?;
        let stdout = piped(child.stdout.as_mut())?;
        assert_eq!(stdout.readline().await?, b"");
        assert!(stdout.at_eof());
        Ok(code)
    })?;
    assert_eq!(code, -libc::SIGHUP);
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_stdin_stdout (write, drain,
// close; the child sees end of file and the parent reads everything back),
// test_read_stdout_after_process_exit.
#[test]
fn stdin_write_drain_close_then_the_child_sees_eof() -> io::Result<()> {
    let (out, code) = run(async {
        let mut child = shell("cat; echo done", ProcessOptions::new()).await?;
        let stdin = piped(child.stdin.as_ref())?;
        stdin.write(b"some ");
        stdin.writelines(&[b"da", b"ta\n"]);
        stdin.drain().await?;
        stdin.close();
        assert!(stdin.is_closing());
        stdin.wait_closed().await?;
        // `cat` ends only at end of file: `done` proves the close reached the child.
        let code = child.wait().await?;
        let out = piped(child.stdout.as_mut())?.read_all().await?;
        Ok((out, code))
    })?;
    assert_eq!(out, b"some data\ndone\n");
    assert_eq!(code, 0);
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_pause_reading (stdin's side:
// `drain` waits while the pipe's write buffer is above its high-water mark) and
// test_streams.py::test_drain; asyncio's pipe transport calls `pause_writing` synchronously.
#[test]
fn drain_waits_until_the_pipe_took_the_data() -> io::Result<()> {
    let (buffered, low, code) = run(async {
        let opts = ProcessOptions::new().stdout(ProcessStdio::Null);
        let child = shell("cat", opts).await?;
        let stdin = piped(child.stdin.as_ref())?;
        let pipe = stdin.transport().clone();
        let (_high, low) = pipe.get_write_buffer_limits();
        // Far more than the pipe's capacity: most of it stays in the transport's buffer.
        stdin.write(&vec![b'x'; 4 * 1024 * 1024]);
        stdin.drain().await?;
        let buffered = pipe.get_write_buffer_size();
        stdin.close();
        Ok((buffered, low, child.wait().await?))
    })?;
    assert!(
        buffered <= low,
        "drain returned with {buffered} bytes buffered (low-water mark {low})"
    );
    assert_eq!(code, 0);
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_pause_reading (much more
// than twice the limit arrives through the reader, which pauses the pipe and resumes it),
// test_streams.py::test_read_all_from_pipe_reader.
#[test]
fn read_all_reads_to_eof_past_the_limit() -> io::Result<()> {
    let total = 1024 * 1024;
    let (got, code) = run(async move {
        let opts = ProcessOptions::new().stdin(ProcessStdio::Null).limit(4096);
        let mut child = shell(&format!("head -c {total} /dev/zero"), opts).await?;
        let stdout = piped(child.stdout.as_mut())?;
        assert_eq!(stdout.limit(), 4096);
        let got = stdout.read_all().await?;
        assert!(stdout.at_eof());
        Ok((got, child.wait().await?))
    })?;
    assert_eq!(got.len(), total);
    assert!(got.iter().all(|&b| b == 0));
    assert_eq!(code, 0);
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_communicate,
// test_communicate_empty_input; a line read first is not returned again.
#[test]
fn communicate_feeds_stdin_and_reads_both_after_a_readline() -> io::Result<()> {
    let (first, out, err, code) = run(async {
        let mut child = shell(
            "echo first; cat; echo oops >&2; exit 3",
            ProcessOptions::new(),
        )
        .await?;
        let first = piped(child.stdout.as_mut())?.readline().await?;
        let (out, err) = child.communicate(Some(b"some data")).await?;
        assert!(piped(child.stdin.as_ref())?.is_closing());
        Ok((first, out, err, child.returncode()))
    })?;
    assert_eq!(first, b"first\n");
    assert_eq!(out.as_deref(), Some(&b"some data"[..]));
    assert_eq!(err.as_deref(), Some(&b"oops\n"[..]));
    assert_eq!(code, Some(3));
    Ok(())
}

// CPython: test_asyncio/test_streams.py::test_readline_limit_with_existing_data and
// test_readuntil_limit_found_sep: a line longer than the limit is a LimitOverrunError
// (ValueError from readline) and the reader goes on after it.
#[test]
fn a_line_over_the_limit_is_an_overrun_and_reading_goes_on() -> io::Result<()> {
    let (err, rest) = run(async {
        let opts = ProcessOptions::new().stdin(ProcessStdio::Null).limit(1024);
        let mut child = shell("head -c 3000 /dev/zero | tr '\\0' x; echo; echo next", opts).await?;
        let stdout = piped(child.stdout.as_mut())?;
        let err = match stdout.readline().await {
            Ok(line) => return Err(io::Error::other(format!("read {} bytes", line.len()))),
            Err(err) => err,
        };
        let rest = stdout.read_all().await?;
        child.wait().await?;
        Ok((err, rest))
    })?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(overrun_of(&err).is_some_and(|consumed| consumed > 1024));
    assert!(
        rest.ends_with(b"next\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    Ok(())
}

// CPython: Lib/asyncio/streams.py StreamReader.__init__ refuses `limit <= 0`, which
// `create_subprocess_exec(limit=0)` reaches before the child starts.
#[test]
fn a_zero_limit_is_refused_before_the_child_starts() -> io::Result<()> {
    let err = run(async {
        let started = shell("exit 0", ProcessOptions::new().limit(0)).await;
        Ok(started.err())
    })?;
    let err = err.ok_or_else(|| io::Error::other("a zero limit was accepted"))?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "limit cannot be <= 0");
    Ok(())
}

// futures-io: `AsyncBufReadExt::lines` reads the child's stdout through `fill_buf`.
#[test]
fn futures_io_lines_over_stdout() -> io::Result<()> {
    let lines = run(async {
        let opts = ProcessOptions::new().stdin(ProcessStdio::Null);
        let mut child = shell("printf 'alpha\\nbeta\\ngamma'", opts).await?;
        let stdout: StreamReader = piped(child.stdout.take())?;
        let lines: Vec<String> = stdout.lines().try_collect().await?;
        // A stream taken out of the process is no longer `communicate`'s.
        let (out, err) = child.communicate(None).await?;
        assert_eq!((out, err), (None, Some(Vec::new())));
        Ok(lines)
    })?;
    assert_eq!(lines, ["alpha", "beta", "gamma"]);
    Ok(())
}
