//! A TLS connection's life at its edges: a panicking protocol method, and a loop closed with
//! TLS connections still open in a protocol ↔ transport cycle.

mod proto;
mod tlsutil;

use std::cell::RefCell;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use evloop_net::{AcceptedOptions, ConnectOptions, LoopStreamExt, Protocol, Transport};
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, run_until};
use tlsutil::{BoxError, pki};

type TestResult = Result<(), BoxError>;

/// What the exception handler was told: each message with its keys.
type Seen = Rc<RefCell<Vec<(String, Vec<&'static str>)>>>;

fn record_exceptions(lp: &EventLoop) -> Seen {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut()
            .push((ctx.message().to_owned(), ctx.keys().collect()));
    })));
    seen
}

/// A TLS pair over a Unix socket pair: the server side (made by `server`) accepted, the
/// client side made by `client`. Returns both transports and protocols.
#[allow(clippy::type_complexity)]
fn tls_pair<S: Protocol, C: Protocol>(
    lp: &EventLoop,
    server: impl FnOnce() -> S + 'static,
    client: impl FnOnce() -> C + 'static,
) -> Result<((Transport, Rc<RefCell<S>>), (Transport, Rc<RefCell<C>>)), BoxError> {
    let (_, client_config, server_config, _) = pki()?;
    let (a, b) = UnixStream::pair()?;
    let accepted = lp.create_task(lp.connect_accepted_socket_with(
        server,
        OwnedFd::from(a).into(),
        AcceptedOptions::new().ssl(server_config),
    ))?;
    let c = lp.run_until_complete(
        lp.create_connection(
            client,
            ConnectOptions::new()
                .sock(OwnedFd::from(b).into())
                .ssl(client_config)
                .server_hostname("localhost"),
        ),
    )??;
    let s = lp.run_until_complete(accepted)???;
    Ok((s, c))
}

// CPython: test_asyncio/test_sslproto.py::SslProtoHandshakeTests::test_data_received_after_closing
// and our own transport rule (transport_lifecycle.rs): a panicking data_received is reported
// and ends the TLS connection with the panic as connection_lost's error.
#[test]
fn a_panicking_data_received_over_tls_is_fatal_and_reported() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let slog = Log::default();
    let s2 = slog.clone();
    let ((_st, sp), (t, _cp)) = tls_pair(
        &lp,
        move || Recorder {
            panic_in_data: true,
            ..Recorder::new(&s2)
        },
        Recorder::default,
    )?;
    t.write(b"x");
    assert!(run_until(&lp, 50, || matches!(
        slog.borrow().last(),
        Some(Ev::Lost(Some(_)))
    ))?);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].0,
        "Fatal error: protocol.data_received() call failed."
    );
    assert_eq!(seen[0].1, ["message", "exception", "transport", "protocol"]);
    let err = sp.borrow_mut().lost_error.take().ok_or("no error")?;
    assert!(err.to_string().contains("boom in data_received"), "{err}");
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_sslproto.py::SslProtoHandshakeTests::test_connection_lost (a
// panicking connection_made is reported; the connection goes on, as on a plain transport).
#[test]
fn a_panicking_connection_made_over_tls_is_reported_and_data_still_arrives() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = record_exceptions(&lp);
    let slog = Log::default();
    let s2 = slog.clone();
    let ((st, _sp), (t, _cp)) = tls_pair(
        &lp,
        move || Recorder {
            panic_in_made: true,
            ..Recorder::new(&s2)
        },
        Recorder::default,
    )?;
    t.write(b"still here");
    assert!(run_until(&lp, 50, || Recorder::data(&slog) == b"still here")?);
    assert!(!st.is_closing());
    assert_eq!(
        seen.borrow()[0].0,
        "Exception in callback Protocol::connection_made()"
    );
    lp.close()?;
    Ok(())
}

/// Counts its drops.
struct Dropped(Rc<RefCell<usize>>, Option<Transport>);

impl Protocol for Dropped {
    fn connection_made(&mut self, t: &Transport) {
        // A cycle: the protocol holds its transport, which holds it.
        self.1 = Some(t.clone());
    }
}

impl Drop for Dropped {
    fn drop(&mut self) {
        *self.0.borrow_mut() += 1;
    }
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_create_connection_memory_leak (a TLS
// connection and its protocol do not outlive the loop), with our rule that closing the loop
// closes every transport, cycles included (transport_loop_close.rs).
#[test]
fn closing_the_loop_releases_tls_connections_and_their_protocol_cycles() -> TestResult {
    let lp = EventLoop::new()?;
    let drops: Rc<RefCell<usize>> = Rc::default();
    let (d1, d2) = (drops.clone(), drops.clone());
    let (_, client_config, server_config, _) = pki()?;
    let (a, mut peer) = UnixStream::pair()?;
    let (c, s) = UnixStream::pair()?;
    let accepted = lp.create_task(lp.connect_accepted_socket_with(
        move || Dropped(d1, None),
        OwnedFd::from(s).into(),
        AcceptedOptions::new().ssl(server_config),
    ))?;
    let client = lp.run_until_complete(
        lp.create_connection(
            move || Dropped(d2, None),
            ConnectOptions::new()
                .sock(OwnedFd::from(c).into())
                .ssl(client_config)
                .server_hostname("localhost"),
        ),
    )??;
    let server = lp.run_until_complete(accepted)???;
    drop((client, server));
    // A third TLS socket whose handshake never ends: its peer is a plain socket.
    let (_, cc, _, _) = pki()?;
    let stalled = lp.create_task(
        lp.create_connection(
            Recorder::default,
            ConnectOptions::new()
                .sock(OwnedFd::from(a).into())
                .ssl(cc)
                .server_hostname("localhost"),
        ),
    )?;
    assert!(run_until(&lp, 5, || false).is_ok());
    // The caller gives up: the connection it was opening is left to the loop's close.
    stalled.cancel(None);
    assert!(run_until(&lp, 5, || stalled.done())?);
    assert_eq!(*drops.borrow(), 0);
    lp.close()?;
    assert_eq!(*drops.borrow(), 2, "both protocols are dropped by close()");
    // The stalled connection's socket was closed: its peer reads the hello, then end of file.
    peer.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut got = Vec::new();
    peer.read_to_end(&mut got)?;
    assert!(!got.is_empty());
    Ok(())
}

// CPython: test_asyncio/test_sslproto.py::SslProtoHandshakeTests::test_handshake_timeout_zero
// and base_events.create_connection's cancellation: a create_connection cancelled during the
// handshake closes the connection at once, not at the handshake timeout.
#[test]
fn a_cancelled_tls_connect_aborts_its_connection() -> TestResult {
    let (_, client_config, _, _) = pki()?;
    let lp = EventLoop::new()?;
    let (ours, mut peer) = UnixStream::pair()?;
    let connect = lp.create_task(
        lp.create_connection(
            Recorder::default,
            ConnectOptions::new()
                .sock(OwnedFd::from(ours).into())
                .ssl(client_config)
                .server_hostname("localhost"),
        ),
    )?;
    // The hello goes out; the peer never answers.
    assert!(run_until(&lp, 5, || false).is_ok());
    assert!(!connect.done());
    connect.cancel(None);
    assert!(run_until(&lp, 20, || connect.done())?);
    assert!(run_until(&lp, 5, || false).is_ok());
    peer.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut got = Vec::new();
    peer.read_to_end(&mut got)?;
    assert!(!got.is_empty(), "the client hello was sent");
    lp.close()?;
    Ok(())
}
