//! TLS on the other stream calls: Unix servers and connections, `connect_accepted_socket`,
//! and the shutdown timeout of a `close()` whose flush never finishes.

mod proto;
mod tlsutil;
mod util;

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use evloop_net::{
    AcceptedOptions, ConnectOptions, LoopStreamExt, UnixConnectOptions, UnixServerOptions,
};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, run_until};
use tlsutil::{BoxError, pki};
use util::TempPath;

type TestResult = Result<(), BoxError>;

// CPython: test_asyncio/test_events.py::EventLoopTestsMixin::test_create_unix_server_ssl and
// test_create_unix_server_ssl_verified (an echo over TLS on a Unix socket, the name checked).
#[test]
fn a_unix_server_and_connection_speak_tls() -> TestResult {
    let (_, client_config, server_config, _) = pki()?;
    let lp = EventLoop::new()?;
    let path = TempPath::new("tls");
    let slog = Log::default();
    let s2 = slog.clone();
    let server = lp.run_until_complete(lp.create_unix_server(
        move || Recorder {
            echo: true,
            ..Recorder::new(&s2)
        },
        &path.0,
        UnixServerOptions::new().ssl(server_config),
    ))??;
    // A Unix path is no host name: server_hostname is required.
    let err = lp
        .run_until_complete(lp.create_unix_connection_with(
            Recorder::default,
            &path.0,
            UnixConnectOptions::new().ssl(client_config.clone()),
        ))?
        .err()
        .ok_or("connected without server_hostname")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("server_hostname"), "{err}");
    let clog = Log::default();
    let c2 = clog.clone();
    let (t, _p) = lp.run_until_complete(
        lp.create_unix_connection_with(
            move || Recorder::new(&c2),
            &path.0,
            UnixConnectOptions::new()
                .ssl(client_config)
                .server_hostname("localhost"),
        ),
    )??;
    assert!(t.is_tls());
    t.write(b"over a unix socket");
    assert!(run_until(&lp, 50, || Recorder::data(&clog) == b"over a unix socket")?);
    t.close();
    let done = run_until(&lp, 50, || slog.borrow().last() == Some(&Ev::Lost(None)))?;
    assert!(
        done,
        "{:?} / {:?}",
        Recorder::shape(&slog),
        Recorder::shape(&clog)
    );
    server.close();
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_events.py::EventLoopTestsMixin::test_connect_accepted_socket with
// server_ssl (the accepted side is the TLS server; the client connects by sock).
#[test]
fn connect_accepted_socket_with_ssl_is_the_server_side() -> TestResult {
    let (_, client_config, server_config, _) = pki()?;
    let lp = EventLoop::new()?;
    let (a, b) = UnixStream::pair()?;
    let slog = Log::default();
    let s2 = slog.clone();
    let accepted = lp.create_task(lp.connect_accepted_socket_with(
        move || Recorder {
            echo: true,
            ..Recorder::new(&s2)
        },
        OwnedFd::from(a).into(),
        AcceptedOptions::new().ssl(server_config),
    ))?;
    let clog = Log::default();
    let c2 = clog.clone();
    let (t, _p) = lp.run_until_complete(
        lp.create_connection(
            move || Recorder::new(&c2),
            ConnectOptions::new()
                .sock(OwnedFd::from(b).into())
                .ssl(client_config)
                .server_hostname("localhost"),
        ),
    )??;
    let (st, _sp) = lp.run_until_complete(accepted)???;
    assert!(st.is_tls());
    t.write(b"accepted");
    assert!(run_until(&lp, 50, || Recorder::data(&clog) == b"accepted")?);
    t.abort();
    assert!(run_until(&lp, 50, || matches!(
        slog.borrow().last(),
        Some(Ev::Lost(_))
    ))?);
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_shutdown_timeout_handler_not_set and
// test_sslproto.py's shutdown timeout: a close() whose flush cannot finish (the peer reads
// nothing) is aborted after ssl_shutdown_timeout, with TimedOut.
#[test]
fn a_close_that_cannot_flush_is_aborted_at_the_shutdown_timeout() -> TestResult {
    let (_, client_config, server_config, _) = pki()?;
    let lp = EventLoop::new()?;
    let (a, b) = UnixStream::pair()?;
    let accepted = lp.create_task(
        lp.connect_accepted_socket_with(
            Recorder::default,
            OwnedFd::from(a).into(),
            AcceptedOptions::new()
                .ssl(server_config)
                .ssl_shutdown_timeout(Duration::from_millis(300)),
        ),
    )?;
    let clog = Log::default();
    let c2 = clog.clone();
    let (t, _p) = lp.run_until_complete(
        lp.create_connection(
            move || Recorder::new(&c2),
            ConnectOptions::new()
                .sock(OwnedFd::from(b).into())
                .ssl(client_config)
                .server_hostname("localhost"),
        ),
    )??;
    let (st, sp) = lp.run_until_complete(accepted)???;
    // The client stops reading; the server buffers far more than the socket takes.
    t.pause_reading();
    st.write(&vec![7u8; 8 << 20]);
    assert!(st.get_write_buffer_size() > 0);
    st.close();
    assert!(st.is_closing());
    let log = sp.borrow().log.clone();
    assert!(run_until(&lp, 50, || matches!(
        log.borrow().last(),
        Some(Ev::Lost(_))
    ))?);
    assert_eq!(
        log.borrow().last(),
        Some(&Ev::Lost(Some(io::ErrorKind::TimedOut)))
    );
    t.abort();
    lp.close()?;
    Ok(())
}
