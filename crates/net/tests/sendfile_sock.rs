//! `sock_sendfile`: a file sent on a socket the caller owns, natively or by the fallback.

mod util;

use std::fs::File;
use std::io::{self, Seek, Write};

use evloop_net::{LoopSendfileExt, LoopSockExt, SendfileNotAvailableError};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use socket2::{Domain, Socket, Type};
use util::sendfile::{
    join, pattern, pattern_file, read_to_eof, small_buffers, sum_to_eof, tcp_pair,
};
use util::{TestResult, nonblocking, run};

/// The size of the big file: 50 MB, as the issue asks.
const BIG: u64 = 50 * 1000 * 1000;

fn is_not_available(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Unsupported
        && err
            .get_ref()
            .is_some_and(|e| e.is::<SendfileNotAvailableError>())
}

// CPython: test_asyncio/test_sendfile.py::SockSendfileMixin::test_sock_sendfile_success, with
// a 50 MB file checked by checksum.
#[test]
fn a_50_mb_file_arrives_byte_exact() -> TestResult {
    let lp = EventLoop::new()?;
    let (file, sum) = pattern_file(BIG)?;
    let (ours, peer) = tcp_pair()?;
    let reader = sum_to_eof(peer);
    let l2 = lp.clone();
    let (sent, mut file) = run(&lp, async move {
        let sent = l2.sock_sendfile(&ours, &file, 0, None, false).await?;
        Ok((sent, file))
    })?;
    assert_eq!(sent, BIG);
    assert_eq!(join(reader)?, (BIG, sum));
    assert_eq!(
        file.stream_position()?,
        BIG,
        "the position is past the file"
    );
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_sendfile.py::SockSendfileMixin::test_sock_sendfile_with_offset_and_count
#[test]
fn offset_and_count_are_honoured() -> TestResult {
    let lp = EventLoop::new()?;
    let (file, _) = pattern_file(128 * 1024 + 16)?;
    let (ours, peer) = tcp_pair()?;
    small_buffers(&ours, &peer)?;
    let reader = read_to_eof(peer);
    let l2 = lp.clone();
    let (sent, mut file) = run(&lp, async move {
        let sent = l2
            .sock_sendfile(&ours, &file, 1000, Some(2000), false)
            .await?;
        Ok((sent, file))
    })?;
    assert_eq!(sent, 2000);
    assert_eq!(join(reader)?, pattern(1000, 2000));
    assert_eq!(file.stream_position()?, 3000);
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_sendfile.py::SockSendfileMixin::test_sock_sendfile_zero_size
#[test]
fn an_empty_file_sends_nothing() -> TestResult {
    let lp = EventLoop::new()?;
    let (file, _) = pattern_file(0)?;
    let (ours, peer) = tcp_pair()?;
    let reader = read_to_eof(peer);
    let l2 = lp.clone();
    let (sent, mut file) = run(&lp, async move {
        let sent = l2.sock_sendfile(&ours, &file, 0, None, false).await?;
        Ok((sent, file))
    })?;
    assert_eq!(sent, 0);
    assert_eq!(join(reader)?, b"");
    assert_eq!(file.stream_position()?, 0);
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_sendfile.py::SockSendfileMixin::test_sock_sendfile_mix_with_regular_send
#[test]
fn sendfile_mixes_with_regular_sends() -> TestResult {
    let lp = EventLoop::new()?;
    let len = 128 * 1024 + 16;
    let (file, _) = pattern_file(len)?;
    let (ours, peer) = tcp_pair()?;
    small_buffers(&ours, &peer)?;
    let reader = read_to_eof(peer);
    let buf = b"mix_regular_send".repeat(4 * 1024);
    let b2 = buf.clone();
    let l2 = lp.clone();
    let sent = run(&lp, async move {
        l2.sock_sendall(&ours, &b2).await?;
        let sent = l2.sock_sendfile(&ours, &file, 0, None, true).await?;
        l2.sock_sendall(&ours, &b2).await?;
        Ok(sent)
    })?;
    assert_eq!(sent, len);
    let mut expected = buf.clone();
    expected.extend(pattern(0, len));
    expected.extend(&buf);
    assert!(join(reader)? == expected, "the bytes differ");
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_base_events.py::BaseLoopSockSendfileTests::test_nonbinary_file,
// test_nonstream_socket, test_notint_count, test_negative_count, test_negative_offset (a
// `u64` cannot be negative; count 0 is asyncio's "positive integer" error) and
// test_asyncio/test_sock_lowlevel.py's non-blocking check (asyncio: debug mode only).
#[test]
fn bad_arguments_are_invalid_input() -> TestResult {
    let lp = EventLoop::new()?;
    let (file, _) = pattern_file(100)?;
    let (ours, _peer) = tcp_pair()?;
    let udp = nonblocking(Domain::IPV4, Type::DGRAM)?;
    let blocking = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let l2 = lp.clone();
    let errors = run(&lp, async move {
        let mut errors = Vec::new();
        for (sock, offset, count) in [
            (&ours, 0, Some(0)),
            (&ours, u64::MAX, None),
            (&udp, 0, None),
            (&blocking, 0, None),
        ] {
            let err = l2
                .sock_sendfile(sock, &file, offset, count, true)
                .await
                .err();
            errors.push(err.map(|e| (e.kind(), e.to_string())));
        }
        Ok(errors)
    })?;
    let invalid = |msg: &str| Some((io::ErrorKind::InvalidInput, msg.to_owned()));
    assert_eq!(
        errors[0],
        invalid("count must be a positive integer (got 0)")
    );
    assert_eq!(
        errors[1],
        invalid(&format!(
            "offset must be at most i64::MAX (got {})",
            u64::MAX
        ))
    );
    assert_eq!(
        errors[2],
        invalid("only SOCK_STREAM type sockets are supported")
    );
    assert_eq!(errors[3], invalid("the socket must be non-blocking"));
    lp.close()?;
    Ok(())
}

/// A pipe fed `data` by a thread, its read end as a `File`: not a source `sendfile(2)` takes.
fn pipe_file(data: &[u8]) -> io::Result<File> {
    let (r, w) = util::pipe()?;
    let data = data.to_vec();
    // The writer ends (and closes its end: end of file) once everything was read.
    std::thread::spawn(move || File::from(w).write_all(&data));
    Ok(File::from(r))
}

// CPython: test_asyncio/test_base_events.py::BaseLoopSockSendfileTests::test_sock_sendfile_no_fallback
// and test_sock_sendfile_fallback (there a mocked native path; here a pipe, which
// sendfile(2) does not take as its source).
#[test]
fn a_pipe_falls_back_or_is_not_available() -> TestResult {
    let lp = EventLoop::new()?;
    let data = pattern(0, 300 * 1024);
    let (ours, peer) = tcp_pair()?;
    let reader = read_to_eof(peer);
    let pipe = pipe_file(&data)?;
    let l2 = lp.clone();
    let (refused, sent) = run(&lp, async move {
        let refused = l2.sock_sendfile(&ours, &pipe, 0, None, false).await.err();
        let sent = l2.sock_sendfile(&ours, &pipe, 0, None, true).await?;
        Ok((refused, sent))
    })?;
    let refused = refused.ok_or("no fallback, yet sent")?;
    assert!(is_not_available(&refused), "{refused:?}");
    assert_eq!(sent, data.len() as u64);
    assert!(join(reader)? == data, "the fallback's bytes differ");
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_base_events.py::BaseLoopSockSendfileTests::test_sock_sendfile_fallback_offset_and_count
#[test]
fn the_fallback_honours_offset_and_count() -> TestResult {
    let lp = EventLoop::new()?;
    let (ours, peer) = tcp_pair()?;
    let reader = read_to_eof(peer);
    // The fallback is reached through a pipe, which sendfile(2) does not take.
    let data = pattern(0, 600 * 1024);
    let pipe = pipe_file(&data)?;
    let l2 = lp.clone();
    let sent = run(&lp, async move {
        // A pipe cannot seek: an offset is an error there, as `file.seek` is in asyncio.
        let seek = l2.sock_sendfile(&ours, &pipe, 10, None, true).await.err();
        let sent = l2
            .sock_sendfile(&ours, &pipe, 0, Some(300_000), true)
            .await?;
        Ok((seek.map(|e| e.raw_os_error()), sent))
    })?;
    assert_eq!(sent.0, Some(Some(libc::ESPIPE)));
    assert_eq!(sent.1, 300_000);
    assert!(join(reader)? == pattern(0, 300_000), "the bytes differ");
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_unix_events.py::SelectorEventLoopUnixSockSendfileTests::test_sock_sendfile_cancel1
// and test_sock_sendfile_cancel2: a cancelled sendfile leaves the file's position past what
// went out, and no writer behind (the socket takes the next send).
#[test]
fn a_cancelled_sendfile_leaves_the_position_at_what_was_sent() -> TestResult {
    let lp = EventLoop::new()?;
    let len = 1 << 20;
    let (file, _) = pattern_file(len)?;
    let file = std::rc::Rc::new(file);
    let (ours, peer) = tcp_pair()?;
    small_buffers(&ours, &peer)?;
    let ours = std::rc::Rc::new(ours);
    let (l2, s2, f2) = (lp.clone(), ours.clone(), file.clone());
    let task = lp.create_task(async move { l2.sock_sendfile(&s2, &f2, 0, None, false).await })?;
    lp.run_until_complete(evloop_task::sleep(std::time::Duration::from_millis(50)))??;
    assert!(!task.done(), "1 MiB went into 4 KiB buffers");
    assert!(task.cancel(None));
    let outcome = lp.run_until_complete(task)?;
    assert!(outcome.is_err_and(|e| e.is_cancelled()));
    let sent = (&*file).stream_position()?;
    assert!((1..len).contains(&sent), "position {sent}");
    let reader = read_to_eof(peer);
    let l3 = lp.clone();
    let s3 = ours.clone();
    run(&lp, async move { l3.sock_sendall(&s3, b"after").await })?;
    drop(ours);
    let mut expected = pattern(0, sent);
    expected.extend(b"after");
    assert!(
        join(reader)? == expected,
        "the peer's bytes are not the file up to the position"
    );
    lp.close()?;
    Ok(())
}
