//! Subprocesses: data through the pipes, `communicate`, redirections, environment.

#[path = "util/process.rs"]
mod process_util;

use std::time::Duration;

use evloop_net::{DEFAULT_LIMIT, LoopProcessExt, ProcessOptions, ProcessStdio};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use process_util::{Ev, Log, Rec, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TEN_MB: usize = 10 * 1024 * 1024;

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_pause_reading (much output
// through a pipe), test_events.py SubprocessTestsMixin::test_subprocess_exec: 10 MB arrive
// in full through the protocol, with no deadlock.
#[test]
fn ten_megabytes_of_output_arrive_through_the_protocol() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let stop = lp.clone();
    let options = ProcessOptions::new().stdin(ProcessStdio::Null);
    let (t, p) = lp.run_until_complete(lp.subprocess_exec(
        move || Rec {
            count_only: true,
            stop_on_lost: Some(stop),
            ..Rec::new(&l2)
        },
        "head",
        ["-c", &TEN_MB.to_string(), "/dev/zero"],
        options,
    ))??;
    assert!(run_until(&lp, Duration::from_secs(60), || log
        .borrow()
        .contains(&Ev::Lost))?);
    assert_eq!(p.borrow().bytes, [0, TEN_MB, 0]);
    assert_eq!(t.get_returncode(), Some(0));
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_communicate,
// test_stdin_stdout: input goes in, the same bytes come out, and the return code is 0.
#[test]
fn communicate_feeds_stdin_and_collects_both_outputs() -> TestResult {
    let lp = EventLoop::new()?;
    let input: Vec<u8> = (0..TEN_MB).map(|i| (i % 251) as u8).collect();
    let l2 = lp.clone();
    let sent = input.clone();
    let (out, err, code) = lp.run_until_complete(async move {
        let mut child = l2
            .create_subprocess_exec("cat", [""; 0], ProcessOptions::new())
            .await?;
        let (out, err) = child.communicate(Some(&sent)).await?;
        Ok::<_, std::io::Error>((out, err, child.returncode()))
    })??;
    assert!(
        out.as_deref() == Some(&input[..]),
        "stdout differs from the input"
    );
    assert_eq!(err.as_deref(), Some(&b""[..]));
    assert_eq!(code, Some(0));

    // CPython: test_subprocess.py test_communicate_empty_input; stderr kept apart.
    let l2 = lp.clone();
    let (out, err) = lp.run_until_complete(async move {
        let mut child = l2
            .create_subprocess_shell("cat; echo oops >&2; exit 3", ProcessOptions::new())
            .await?;
        let got = child.communicate(Some(b"")).await?;
        assert_eq!(child.returncode(), Some(3));
        Ok::<_, std::io::Error>(got)
    })??;
    assert_eq!(out.as_deref(), Some(&b""[..]));
    assert_eq!(err.as_deref(), Some(&b"oops\n"[..]));
    lp.close()?;
    Ok(())
}

// A reader that does not keep up stops the pipe above twice the stream limit (asyncio's
// StreamReader flow control) and gets every byte once it reads.
// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_pause_reading
#[test]
fn a_slow_reader_pauses_the_pipe_and_loses_nothing() -> TestResult {
    let lp = EventLoop::new()?;
    let l2 = lp.clone();
    let total = 8 * DEFAULT_LIMIT;
    let got = lp.run_until_complete(async move {
        let opts = ProcessOptions::new().stdin(ProcessStdio::Null);
        let mut child = l2
            .create_subprocess_exec("head", ["-c", &total.to_string(), "/dev/zero"], opts)
            .await?;
        let mut out = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        // Let the child write while nobody reads: the pipe pauses at the limit.
        let pipe = child.transport().get_pipe_transport(1);
        let mut paused = false;
        for _ in 0..1000 {
            paused = pipe
                .as_ref()
                .is_some_and(|p| !p.is_reading() && !p.is_closing());
            if paused {
                break;
            }
            evloop_task::sleep(0.01)
                .await
                .map_err(std::io::Error::other)?;
        }
        let mut got = 0;
        loop {
            let chunk = out.read(4096).await?;
            if chunk.is_empty() {
                break;
            }
            got += chunk.len();
        }
        child.wait().await?;
        Ok::<_, std::io::Error>((paused, got))
    })??;
    assert_eq!(got, (true, total));
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_events.py SubprocessTestsMixin::test_subprocess_stderr,
// test_subprocess_stderr_redirect_to_stdout
#[test]
fn stderr_can_join_stdout() -> TestResult {
    let lp = EventLoop::new()?;
    let log = Log::default();
    let l2 = log.clone();
    let options = ProcessOptions::new()
        .stdin(ProcessStdio::Null)
        .stderr(ProcessStdio::Stdout);
    let (t, _p) = lp.run_until_complete(lp.subprocess_shell(
        move || Rec::new(&l2),
        "echo out; echo err >&2",
        options,
    ))??;
    assert!(t.get_pipe_transport(2).is_none());
    assert!(t.get_pipe_transport(0).is_none());
    assert!(run_until(&lp, Duration::from_secs(10), || log
        .borrow()
        .contains(&Ev::Lost))?);
    assert_eq!(Rec::data(&log, 1), b"out\nerr\n");
    assert!(!log.borrow().iter().any(|e| matches!(e, Ev::Data(2, _))));
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_devnull_input,
// test_devnull_output, test_devnull_error; env and cwd as subprocess.Popen takes them.
#[test]
fn null_streams_environment_and_directory() -> TestResult {
    let lp = EventLoop::new()?;
    let dir = std::env::temp_dir().canonicalize()?;
    let options = ProcessOptions::new()
        .stdin(ProcessStdio::Null)
        .stderr(ProcessStdio::Null)
        .env_clear()
        .env("EVLOOP_X", "42")
        .cwd(&dir);
    let l2 = lp.clone();
    let out = lp.run_until_complete(async move {
        let mut child = l2
            .create_subprocess_exec(
                "/bin/sh",
                ["-c", "cat; echo \"$EVLOOP_X $HOME\"; pwd; echo gone >&2"],
                options,
            )
            .await?;
        assert!(child.stdin.is_none() && child.stderr.is_none());
        child.communicate(None).await
    })??;
    let expected = format!("42 \n{}\n", dir.display());
    assert_eq!(out.0.as_deref(), Some(expected.as_bytes()));
    assert_eq!(out.1, None);
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_subprocess.py SubprocessMixin::test_stdin_broken_pipe (drain
// fails with BrokenPipeError once the child is gone) and test_communicate_ignore_broken_pipe.
#[test]
fn a_child_that_stops_reading_breaks_drain_but_not_communicate() -> TestResult {
    let lp = EventLoop::new()?;
    let big = vec![b'x'; 4 * 1024 * 1024];
    let l2 = lp.clone();
    let input = big.clone();
    let err = lp.run_until_complete(async move {
        let opts = ProcessOptions::new().stdout(ProcessStdio::Null);
        let child = l2.create_subprocess_exec("head", ["-c", "1"], opts).await?;
        let stdin = child
            .stdin
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        stdin.write(&input);
        let drained = stdin.drain().await;
        child.wait().await?;
        Ok::<_, std::io::Error>(drained.err())
    })??;
    let err = err.ok_or("drain succeeded with the reader gone")?;
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");

    let l2 = lp.clone();
    let (out, code) = lp.run_until_complete(async move {
        let mut child = l2
            .create_subprocess_exec("head", ["-c", "1"], ProcessOptions::new())
            .await?;
        let (out, _) = child.communicate(Some(&big)).await?;
        Ok::<_, std::io::Error>((out, child.returncode()))
    })??;
    assert_eq!(out.as_deref(), Some(&b"x"[..]));
    assert_eq!(code, Some(0));
    lp.close()?;
    Ok(())
}
