//! `sendfile` on a transport: the buffer first, the file, then more writes; a reset mid-file;
//! writes while it runs; TLS and pipes through the fallback, under flow control.

mod proto;
mod tlsutil;
mod util;

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::rc::Rc;

use evloop_net::{
    ConnectOptions, LoopSendfileExt, LoopStreamExt, SendfileNotAvailableError, ServerOptions,
    StartTlsOptions, TlsConfig, Transport,
};
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, run_until};
use tlsutil::{BoxError, pki};
use util::sendfile::{
    Checksum, join, pattern, pattern_file, read_to_eof, reset_after, small_buffers, sum_to_eof,
    tcp_pair,
};

type TestResult = Result<(), BoxError>;

/// A transport on our end of a TCP pair, with a [`Recorder`] logging into `log`.
fn transport_on(lp: &EventLoop, sock: socket2::Socket, log: &Log) -> io::Result<Transport> {
    let l2 = log.clone();
    let (t, _p) =
        lp.run_until_complete(lp.connect_accepted_socket(move || Recorder::new(&l2), sock))??;
    Ok(t)
}

/// The messages the exception handler gets from now on.
fn reports(lp: &EventLoop) -> Rc<RefCell<Vec<String>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push(ctx.message().to_owned());
    })));
    seen
}

// CPython: test_asyncio/test_sendfile.py::SendfileMixin::test_sendfile and
// test_sendfile_pre_and_post_data, with a 50 MB file checked by checksum.
#[test]
fn the_buffer_drains_first_and_50_mb_arrive_byte_exact() -> TestResult {
    const BIG: u64 = 50 * 1000 * 1000;
    let lp = EventLoop::new()?;
    let (file, _) = pattern_file(BIG)?;
    let (ours, peer) = tcp_pair()?;
    let reader = sum_to_eof(peer);
    let log = Log::default();
    let t = transport_on(&lp, ours, &log)?;
    // A prefix larger than the kernel's buffers: part of it waits in the transport's buffer
    // when sendfile starts, and must go out before the file.
    let prefix = vec![b'P'; 8 << 20];
    let suffix = b"--SUFFIX".repeat(1024);
    t.write(&prefix);
    let (l2, t2) = (lp.clone(), t.clone());
    let (sent, mut file) = lp.run_until_complete(async move {
        let sent = l2.sendfile(&t2, &file, 0, None, true).await;
        (sent, file)
    })?;
    assert_eq!(sent?, BIG);
    assert_eq!(file.stream_position()?, BIG);
    t.write(&suffix);
    t.close();
    assert!(run_until(&lp, 600, || log
        .borrow()
        .contains(&Ev::Lost(None)))?);
    let mut expected = Checksum::of(&prefix);
    let mut at = 0;
    while at < BIG {
        let chunk = pattern(at, (BIG - at).min(1 << 20));
        expected.update(&chunk);
        at += chunk.len() as u64;
    }
    expected.update(&suffix);
    let (n, got) = join(reader)?;
    assert_eq!(n, prefix.len() as u64 + BIG + suffix.len() as u64);
    assert_eq!(
        got, expected,
        "the stream differs from prefix + file + suffix"
    );
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_sendfile.py::SendfileMixin::test_sendfile_partial
#[test]
fn offset_and_count_are_honoured() -> TestResult {
    let lp = EventLoop::new()?;
    let (file, _) = pattern_file(128 * 1024 + 16)?;
    let (ours, peer) = tcp_pair()?;
    small_buffers(&ours, &peer)?;
    let reader = read_to_eof(peer);
    let log = Log::default();
    let t = transport_on(&lp, ours, &log)?;
    let (l2, t2) = (lp.clone(), t.clone());
    let (sent, mut file) = lp.run_until_complete(async move {
        let sent = l2.sendfile(&t2, &file, 1000, Some(100), true).await;
        (sent, file)
    })?;
    assert_eq!(sent?, 100);
    assert_eq!(file.stream_position()?, 1100);
    t.close();
    assert!(run_until(&lp, 100, || log
        .borrow()
        .contains(&Ev::Lost(None)))?);
    assert_eq!(join(reader)?, pattern(1000, 100));
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_sendfile.py::SendfileMixin::test_sendfile_for_closing_transp and
// test_sendfile_not_supported (there a datagram transport; here a pipe transport).
#[test]
fn a_closing_or_pipe_transport_is_refused() -> TestResult {
    let lp = EventLoop::new()?;
    let (file, _) = pattern_file(1000)?;
    let (ours, _peer) = tcp_pair()?;
    let log = Log::default();
    let t = transport_on(&lp, ours, &log)?;
    t.close();
    let (r, _w) = util::pipe()?;
    let l3 = log.clone();
    let (pipe, _p) =
        lp.run_until_complete(lp.connect_read_pipe(move || Recorder::new(&l3), r))??;
    let (l2, t2, p2) = (lp.clone(), t.clone(), pipe.clone());
    let (closing, piped, mut file) = lp.run_until_complete(async move {
        let closing = l2.sendfile(&t2, &file, 0, None, true).await.err();
        let piped = l2.sendfile(&p2, &file, 0, None, true).await.err();
        (closing, piped, file)
    })?;
    let closing = closing.ok_or("sent on a closing transport")?;
    assert_eq!(closing.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(closing.to_string(), "transport is closing");
    let piped = piped.ok_or("sent on a read pipe")?;
    assert_eq!(piped.kind(), io::ErrorKind::InvalidInput);
    assert!(piped.to_string().contains("not supported"), "{piped}");
    assert_eq!(file.stream_position()?, 0);
    pipe.close();
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_sendfile.py::SendfileMixin::test_sendfile_close_peer_in_the_middle_of_receiving
// (the case: the protocol gets connection_lost with the error).
#[test]
fn a_peer_reset_mid_file_is_connection_lost_with_the_error() -> TestResult {
    let lp = EventLoop::new()?;
    let len = 4 << 20;
    let (file, _) = pattern_file(len)?;
    let (ours, peer) = tcp_pair()?;
    small_buffers(&ours, &peer)?;
    let resetter = reset_after(peer, 1024);
    let log = Log::default();
    let t = transport_on(&lp, ours, &log)?;
    let (l2, t2) = (lp.clone(), t.clone());
    let (sent, mut file) = lp.run_until_complete(async move {
        let sent = l2.sendfile(&t2, &file, 0, None, true).await;
        (sent, file)
    })?;
    let err = sent
        .err()
        .ok_or("the whole file went to a peer that reset")?;
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{err:?}"
    );
    let read = join(resetter)? as u64;
    let pos = file.stream_position()?;
    assert!(
        (read..len).contains(&pos),
        "position {pos}, peer read {read}"
    );
    assert!(t.is_closing());
    assert!(run_until(&lp, 100, || log
        .borrow()
        .iter()
        .any(|e| matches!(e, Ev::Lost(_))))?);
    assert_eq!(log.borrow().last(), Some(&Ev::Lost(Some(err.kind()))));
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_sendfile.py::SendfileMixin::test_sendfile_prevents_bare_write
// (asyncio raises RuntimeError "sendfile is in progress"; evloop's write returns nothing, so
// the data is dropped and reported to the exception handler).
#[test]
fn a_write_during_a_native_sendfile_is_dropped_and_reported() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = reports(&lp);
    let len = 1 << 20;
    let (file, _) = pattern_file(len)?;
    let (ours, peer) = tcp_pair()?;
    small_buffers(&ours, &peer)?;
    let log = Log::default();
    let t = transport_on(&lp, ours, &log)?;
    let (l2, t2) = (lp.clone(), t.clone());
    let task = lp.create_task(async move { l2.sendfile(&t2, &file, 0, None, true).await })?;
    // Let the sendfile start and fill the kernel's buffers; the peer reads nothing yet.
    lp.run_until_complete(evloop_task::sleep(std::time::Duration::from_millis(50)))??;
    assert!(!task.done(), "1 MiB went into 4 KiB buffers");
    t.write(b"data");
    assert_eq!(t.get_write_buffer_size(), 0, "the write was buffered");
    assert_eq!(seen.borrow().len(), 1, "{:?}", seen.borrow());
    assert!(seen.borrow()[0].contains("sendfile is in progress"));
    let reader = read_to_eof(peer);
    assert_eq!(lp.run_until_complete(task)???, len);
    t.close();
    assert!(run_until(&lp, 100, || log
        .borrow()
        .contains(&Ev::Lost(None)))?);
    assert!(join(reader)? == pattern(0, len), "the bytes differ");
    lp.close()?;
    Ok(())
}

/// A TLS server whose protocols log into `log`, and a TLS client transport to it.
fn tls_pair(lp: &EventLoop, log: &Log) -> Result<(evloop_net::Server, Transport), BoxError> {
    let (_, client_config, server_config, _) = pki()?;
    let l2 = log.clone();
    let server = lp.run_until_complete(
        lp.create_server(
            move || Recorder::new(&l2),
            ServerOptions::new()
                .host("127.0.0.1")
                .port(0)
                .ssl(server_config),
        ),
    )??;
    let port = server.sockets()[0]
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or("not inet")?;
    let (t, _p) = lp.run_until_complete(
        lp.create_connection(
            Recorder::default,
            ConnectOptions::new()
                .host("127.0.0.1")
                .port(port)
                .ssl(client_config)
                .server_hostname("localhost"),
        ),
    )??;
    Ok((server, t))
}

// CPython: test_asyncio/test_sendfile.py::SendfileMixin::test_sendfile_ssl_pre_and_post_data,
// test_sendfile_ssl_partial and test_sendfile_no_fallback_for_fallback_transport (TLS is the
// fallback: asyncio's "fallback is disabled" error).
#[test]
fn tls_goes_through_the_fallback() -> TestResult {
    let lp = EventLoop::new()?;
    let slog = Log::default();
    let (server, t) = tls_pair(&lp, &slog)?;
    let len = 1 << 20;
    let (file, _) = pattern_file(len)?;
    t.write(b"PREFIX");
    let (l2, t2) = (lp.clone(), t.clone());
    let (refused, sent, partial, mut file) = lp.run_until_complete(async move {
        let refused = l2.sendfile(&t2, &file, 0, None, false).await.err();
        let sent = l2.sendfile(&t2, &file, 0, None, true).await;
        let partial = l2.sendfile(&t2, &file, 1000, Some(100), true).await;
        (refused, sent, partial, file)
    })?;
    let refused = refused.ok_or("sent over TLS without the fallback")?;
    assert!(
        refused
            .get_ref()
            .is_some_and(|e| e.is::<SendfileNotAvailableError>()),
        "{refused:?}"
    );
    assert_eq!(sent?, len);
    assert_eq!(partial?, 100);
    assert_eq!(file.stream_position()?, 1100);
    t.write(b"SUFFIX");
    let mut expected = b"PREFIX".to_vec();
    expected.extend(pattern(0, len));
    expected.extend(pattern(1000, 100));
    expected.extend(b"SUFFIX");
    let want = expected.len();
    assert!(run_until(&lp, 300, || Recorder::data(&slog).len() >= want)?);
    assert!(Recorder::data(&slog) == expected, "the bytes differ");
    t.close();
    server.close();
    lp.close()?;
    Ok(())
}

// CPython: asyncio/base_events.py `_sendfile_fallback`, which awaits the protocol's drain
// before each write: against a peer that does not read, the buffer stops at the high-water
// mark plus one chunk, and the sendfile waits.
#[test]
fn the_fallback_keeps_flow_control() -> TestResult {
    let lp = EventLoop::new()?;
    let data = pattern(0, 4 << 20);
    let (r, w) = util::pipe()?;
    let d2 = data.clone();
    let writer = std::thread::spawn(move || File::from(w).write_all(&d2));
    let pipe = File::from(r);
    let (ours, peer) = tcp_pair()?;
    // Kernel buffers small enough for the transport's own buffer to fill, large enough for
    // loopback TCP to stay fast once the peer reads (4 KiB windows wait on delayed ACKs).
    ours.set_send_buffer_size(64 * 1024)?;
    socket2::SockRef::from(&peer).set_recv_buffer_size(64 * 1024)?;
    let log = Log::default();
    let t = transport_on(&lp, ours, &log)?;
    let (l2, t2) = (lp.clone(), t.clone());
    let task = lp.create_task(async move { l2.sendfile(&t2, &pipe, 0, None, true).await })?;
    lp.run_until_complete(evloop_task::sleep(std::time::Duration::from_millis(500)))??;
    let (_, high) = t.get_write_buffer_limits();
    let buffered = t.get_write_buffer_size();
    assert!(buffered <= high + 256 * 1024, "{buffered} bytes buffered");
    assert!(!task.done(), "4 MiB went to a peer that reads nothing");
    assert!(log.borrow().contains(&Ev::Pause));
    let reader = read_to_eof(peer);
    assert_eq!(lp.run_until_complete(task)???, data.len() as u64);
    writer.join().map_err(|_| "the pipe writer panicked")??;
    t.close();
    assert!(run_until(&lp, 600, || t.fileno().is_none())?);
    assert!(join(reader)? == data, "the bytes differ");
    lp.close()?;
    Ok(())
}

// The plain handle of a socket that start_tls upgraded: its writes are refused (they would
// land in the middle of the TLS stream), and so is a sendfile (asyncio has no such handle).
#[test]
fn the_plain_handle_of_an_upgraded_transport_is_refused() -> TestResult {
    let (_, client_config, _, _) = pki()?;
    let lp = EventLoop::new()?;
    let (file, _) = pattern_file(1000)?;
    let (ours, _peer) = tcp_pair()?;
    let log = Log::default();
    let plain = transport_on(&lp, ours, &log)?;
    let (l2, p2) = (lp.clone(), plain.clone());
    // The peer never answers the hello: the upgrade stays in its handshake.
    let upgrade = lp.create_task(async move {
        let proto = Rc::new(RefCell::new(Recorder::default()));
        let options = StartTlsOptions::new().server_hostname("localhost");
        l2.start_tls(&p2, proto, TlsConfig::Client(client_config), options)
            .await
            .map(drop)
    })?;
    let (l3, p3) = (lp.clone(), plain.clone());
    let refused = lp.run_until_complete(async move {
        evloop_task::sleep(std::time::Duration::from_millis(20)).await?;
        Ok::<_, BoxError>(l3.sendfile(&p3, &file, 0, None, true).await.err())
    })??;
    let refused = refused.ok_or("sent plaintext under TLS")?;
    assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
    assert!(refused.to_string().contains("start_tls"), "{refused}");
    assert!(!upgrade.done());
    plain.abort();
    upgrade.cancel(None);
    let _ = lp.run_until_complete(upgrade);
    lp.close()?;
    Ok(())
}
