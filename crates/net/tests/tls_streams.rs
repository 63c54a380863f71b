//! TLS upgrades and bulk transfers: `start_tls` after a plain exchange (STARTTLS-style), and
//! 10 MB through TLS arriving byte-exact at a receiver that pauses reading, with the sender's
//! flow control end to end.

mod proto;
mod tlsutil;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use evloop_net::rustls::ServerConfig;
use evloop_net::{
    ConnectOptions, LoopStreamExt, Protocol, ServerOptions, StartTlsOptions, TlsConfig, Transport,
};
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, run_until};
use tlsutil::{BoxError, pki};

type TestResult = Result<(), BoxError>;

/// A plain line server: on "STARTTLS\n" it stops reading, answers "OK\n" and upgrades to
/// TLS with `start_tls`, handing the connection to a [`TlsEcho`].
struct StartTlsServer {
    lp: EventLoop,
    config: Arc<ServerConfig>,
    transport: Option<Transport>,
    upgraded: Rc<RefCell<Option<Result<(), String>>>>,
    plain_seen: Vec<u8>,
}

/// Echoes what comes over TLS with a "tls:" prefix.
#[derive(Default)]
struct TlsEcho(Option<Transport>);

impl Protocol for TlsEcho {
    fn connection_made(&mut self, transport: &Transport) {
        assert!(transport.is_tls());
        self.0 = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.0 {
            t.writelines(&[b"tls:", data]);
        }
    }
}

impl Protocol for StartTlsServer {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        self.plain_seen.extend_from_slice(data);
        if self.plain_seen.ends_with(b"STARTTLS\n") {
            // Nothing more is read as plain text: the client's hello is the TLS layer's.
            t.pause_reading();
            t.write(b"OK\n");
            let lp = self.lp.clone();
            let config = TlsConfig::Server(self.config.clone());
            let upgraded = self.upgraded.clone();
            let task = lp.clone().create_task(async move {
                let echo = Rc::new(RefCell::new(TlsEcho::default()));
                let result = lp.start_tls(&t, echo, config, StartTlsOptions::new()).await;
                *upgraded.borrow_mut() = Some(result.map(|_| ()).map_err(|e| e.to_string()));
            });
            if task.is_err() {
                *self.upgraded.borrow_mut() = Some(Err("no task".into()));
            }
        }
    }
}

// CPython: test_asyncio/test_sslproto.py::BaseStartTLS::test_start_tls_client_reg_proto_1 and
// test_start_tls_server_1 (a plain exchange, then start_tls on both sides, then TLS data).
#[test]
fn start_tls_upgrades_a_connection_that_spoke_plain_text() -> TestResult {
    let (_, client_config, server_config, _) = pki()?;
    let lp = EventLoop::new()?;
    let upgraded: Rc<RefCell<Option<Result<(), String>>>> = Rc::default();
    let (l2, u2) = (lp.clone(), upgraded.clone());
    let server = lp.run_until_complete(lp.create_server(
        move || StartTlsServer {
            lp: l2.clone(),
            config: server_config.clone(),
            transport: None,
            upgraded: u2.clone(),
            plain_seen: Vec::new(),
        },
        ServerOptions::new().host("127.0.0.1").port(0),
    ))??;
    let port = server.sockets()[0]
        .local_addr()?
        .as_socket()
        .ok_or("not inet")?
        .port();
    let clog = Log::default();
    let c2 = clog.clone();
    let (plain, client) = lp.run_until_complete(lp.create_connection(
        move || Recorder::new(&c2),
        ConnectOptions::new().host("127.0.0.1").port(port),
    ))??;
    plain.write(b"EHLO\nSTARTTLS\n");
    assert!(run_until(&lp, 50, || Recorder::data(&clog) == b"OK\n")?);
    let tls = lp.run_until_complete(lp.start_tls(
        &plain,
        client.clone(),
        TlsConfig::Client(client_config),
        StartTlsOptions::new().server_hostname("localhost"),
    ))??;
    assert!(tls.is_tls());
    assert!(run_until(&lp, 50, || upgraded.borrow().is_some())?);
    assert_eq!(*upgraded.borrow(), Some(Ok(())));
    // The client protocol was told of its new transport, after the plain exchange.
    assert_eq!(
        Recorder::shape(&clog),
        vec![Ev::Made, Ev::Data(b"OK\n".to_vec()), Ev::Made]
    );
    clog.borrow_mut().clear();
    tls.write(b"secret");
    assert!(run_until(&lp, 50, || Recorder::data(&clog) == b"tls:secret")?);
    // The old handle is the socket under the TLS layer: its writes are refused and reported,
    // and the TLS stream goes on intact.
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push(ctx.message().to_owned());
    })));
    plain.write(b"plain text in the middle");
    tls.write(b"more");
    assert!(run_until(&lp, 50, || Recorder::data(&clog) == b"tls:secrettls:more")?);
    assert_eq!(seen.borrow().len(), 1);
    assert!(
        seen.borrow()[0].contains("start_tls()"),
        "{:?}",
        seen.borrow()
    );
    tls.close();
    assert!(run_until(&lp, 50, || clog.borrow().last() == Some(&Ev::Lost(None)))?);
    server.close();
    lp.close()?;
    Ok(())
}

/// Sends `left` bytes of a known pattern with the flow-control idiom; logs pauses.
struct Producer {
    transport: Option<Transport>,
    sent: usize,
    total: usize,
    pauses: Rc<RefCell<usize>>,
}

fn pattern(at: usize, len: usize) -> Vec<u8> {
    (at..at + len).map(|i| (i % 251) as u8).collect()
}

impl Producer {
    fn fill(&mut self) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        while self.sent < self.total && !t.is_writing_paused() && !t.is_closing() {
            let n = (self.total - self.sent).min(32 * 1024);
            t.write(&pattern(self.sent, n));
            self.sent += n;
        }
        if self.sent == self.total {
            t.close();
        }
    }
}

impl Protocol for Producer {
    fn connection_made(&mut self, t: &Transport) {
        self.transport = Some(t.clone());
        self.fill();
    }
    fn pause_writing(&mut self) {
        *self.pauses.borrow_mut() += 1;
    }
    fn resume_writing(&mut self) {
        self.fill();
    }
}

/// Receives everything, pausing reading for a moment after every 256 KiB.
struct SlowReceiver {
    lp: EventLoop,
    transport: Option<Transport>,
    got: Rc<RefCell<Vec<u8>>>,
    since_pause: usize,
    pauses: usize,
    /// Bytes handed over while reading was paused: there must be none.
    while_paused: usize,
    lost: Rc<RefCell<Option<Option<io::ErrorKind>>>>,
}

impl Protocol for SlowReceiver {
    fn connection_made(&mut self, t: &Transport) {
        self.transport = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        if self.transport.as_ref().is_some_and(|t| !t.is_reading()) {
            self.while_paused += data.len();
        }
        self.got.borrow_mut().extend_from_slice(data);
        self.since_pause += data.len();
        if self.since_pause >= 256 * 1024 {
            self.since_pause = 0;
            self.pauses += 1;
            if let Some(t) = &self.transport {
                t.pause_reading();
                assert!(!t.is_reading());
                let t = t.clone();
                let _ = self
                    .lp
                    .call_later(Duration::from_millis(2), move || t.resume_reading());
            }
        }
    }
    fn connection_lost(&mut self, err: Option<io::Error>) {
        *self.lost.borrow_mut() = Some(err.map(|e| e.kind()));
    }
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_flush_before_shutdown and
// test_remote_shutdown_receives_trailing_data (large data through SSL with a reader that
// pauses; every byte arrives, in order, and the writer is paused and resumed on the way).
#[test]
fn ten_megabytes_through_tls_arrive_exactly_at_a_receiver_that_pauses() -> TestResult {
    const TOTAL: usize = 10 * 1024 * 1024;
    let (_, client_config, server_config, _) = pki()?;
    let lp = EventLoop::new()?;
    let pauses: Rc<RefCell<usize>> = Rc::default();
    let p2 = pauses.clone();
    let server = lp.run_until_complete(
        lp.create_server(
            move || Producer {
                transport: None,
                sent: 0,
                total: TOTAL,
                pauses: p2.clone(),
            },
            ServerOptions::new()
                .host("127.0.0.1")
                .port(0)
                .ssl(server_config),
        ),
    )??;
    let port = server.sockets()[0]
        .local_addr()?
        .as_socket()
        .ok_or("not inet")?
        .port();
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let lost: Rc<RefCell<Option<Option<io::ErrorKind>>>> = Rc::default();
    let (g2, lo2, l2) = (got.clone(), lost.clone(), lp.clone());
    let (_t, receiver) = lp.run_until_complete(
        lp.create_connection(
            move || SlowReceiver {
                lp: l2,
                transport: None,
                got: g2,
                since_pause: 0,
                pauses: 0,
                while_paused: 0,
                lost: lo2,
            },
            ConnectOptions::new()
                .host("127.0.0.1")
                .port(port)
                .ssl(client_config)
                .server_hostname("localhost"),
        ),
    )??;
    assert!(run_until(&lp, 600, || lost.borrow().is_some())?);
    assert_eq!(
        *lost.borrow(),
        Some(None),
        "a clean close after close_notify"
    );
    assert_eq!(got.borrow().len(), TOTAL);
    assert!(*got.borrow() == pattern(0, TOTAL), "the bytes differ");
    assert!(receiver.borrow().pauses >= 30);
    assert_eq!(receiver.borrow().while_paused, 0);
    assert!(*pauses.borrow() >= 1, "the sender was never paused");
    server.close();
    lp.close()?;
    Ok(())
}

// CPython: test_streams.py::StreamTests::test_start_tls (asyncio 3.11+'s
// StreamWriter.start_tls): a plain stream exchange, then both ends upgrade with
// `StreamWriter::start_tls`, and the same reader and writer carry on over TLS.
#[test]
fn stream_writers_upgrade_both_ends_to_tls_and_the_readers_carry_on() -> TestResult {
    let (_, client_config, server_config, _) = pki()?;
    let lp = EventLoop::new()?;
    let outcome = lp.run_until_complete(async move {
        let server = evloop_net::start_server(
            move |mut reader: evloop_net::StreamReader, mut writer: evloop_net::StreamWriter| {
                let config = server_config.clone();
                async move {
                    let hello = reader.readline().await?;
                    assert_eq!(hello, b"STARTTLS\n");
                    writer.write(b"OK\n");
                    writer.drain().await?;
                    writer
                        .start_tls(TlsConfig::Server(config), StartTlsOptions::new())
                        .await?;
                    let line = reader.readline().await?;
                    writer.write(&[b"tls:", line.as_slice()].concat());
                    writer.drain().await?;
                    Ok(())
                }
            },
            ServerOptions::new().host("127.0.0.1").port(0),
            None,
        )
        .await?;
        let port = server.sockets()[0]
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not inet"))?
            .port();
        let (mut reader, mut writer) =
            evloop_net::open_connection(ConnectOptions::new().host("127.0.0.1").port(port), None)
                .await?;
        writer.write(b"STARTTLS\n");
        let ok = reader.readline().await?;
        writer
            .start_tls(
                TlsConfig::Client(client_config),
                StartTlsOptions::new().server_hostname("localhost"),
            )
            .await?;
        let upgraded = writer.transport().is_tls();
        writer.write(b"secret\n");
        let echoed = reader.readline().await?;
        // A second upgrade of a TLS stream is refused.
        let again = writer
            .start_tls(
                TlsConfig::Client(Arc::new(
                    evloop_net::rustls::ClientConfig::builder()
                        .with_root_certificates(evloop_net::rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                )),
                StartTlsOptions::new().server_hostname("localhost"),
            )
            .await
            .map_err(|e| e.kind());
        writer.close();
        server.close();
        Ok::<_, io::Error>((ok, upgraded, echoed, again))
    })??;
    assert_eq!(outcome.0, b"OK\n");
    assert!(outcome.1, "the writer's transport is the TLS one");
    assert_eq!(outcome.2, b"tls:secret\n");
    assert_eq!(outcome.3, Err(io::ErrorKind::InvalidInput));
    lp.close()?;
    Ok(())
}
