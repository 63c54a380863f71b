//! TLS connections and servers (`ssl=`): echo over TLS 1.3 and 1.2, the `ssl` keys of
//! `get_extra_info`, `close_notify`, handshake failures named on both sides, the handshake
//! timeout, and an end of file without `close_notify`.

mod proto;
mod tlsutil;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use evloop_net::rustls::{self, ClientConfig, ServerConfig};
use evloop_net::{
    ConnectOptions, ExtraInfo, LoopStreamExt, Server, ServerOptions, TlsConfig, Transport,
};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, run_until};
use tlsutil::{BoxError, Ca, TLS12, TLS13, pki};

type TestResult = Result<(), BoxError>;

fn port_of(server: &Server) -> io::Result<u16> {
    server.sockets()[0]
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| io::Error::other("not inet"))
}

/// A TLS echo server on 127.0.0.1 whose protocols log into `log`.
fn tls_echo_server(lp: &EventLoop, log: &Log, config: Arc<ServerConfig>) -> io::Result<Server> {
    let l2 = log.clone();
    lp.run_until_complete(lp.create_server(
        move || Recorder {
            echo: true,
            ..Recorder::new(&l2)
        },
        ServerOptions::new().host("127.0.0.1").port(0).ssl(config),
    ))?
}

fn connect(
    lp: &EventLoop,
    port: u16,
    config: Arc<ClientConfig>,
    hostname: &str,
    log: &Log,
) -> io::Result<(Transport, Rc<RefCell<Recorder>>)> {
    let l2 = log.clone();
    lp.run_until_complete(
        lp.create_connection(
            move || Recorder::new(&l2),
            ConnectOptions::new()
                .host("127.0.0.1")
                .port(port)
                .ssl(config)
                .server_hostname(hostname),
        ),
    )?
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_create_connection_ssl_1 (an echo over
// create_connection(ssl=) / create_server(ssl=)), and
// test_sslproto.py::SslProtoHandshakeTests::test_get_extra_info_on_closed_connection's keys.
#[test]
fn echo_over_tls13_and_tls12_with_the_ssl_extra_info() -> TestResult {
    for (version, name) in [(TLS13, "TLSv1.3"), (TLS12, "TLSv1.2")] {
        let ca = Ca::new()?;
        let leaf = ca.leaf(&["localhost"], false)?;
        let server_config = ca.server_config(&leaf, &[version], &[b"echo/1"])?;
        let client_config = ca.client_config(&[b"echo/1"])?;
        let lp = EventLoop::new()?;
        let slog = Log::default();
        let server = tls_echo_server(&lp, &slog, server_config)?;
        let clog = Log::default();
        let (t, _p) = connect(&lp, port_of(&server)?, client_config, "localhost", &clog)?;
        assert_eq!(clog.borrow().first(), Some(&Ev::Made));
        assert!(t.is_tls());
        assert!(!t.can_write_eof());
        t.write(b"hello ");
        t.writelines(&[b"over ", b"tls"]);
        assert!(run_until(&lp, 50, || Recorder::data(&clog) == b"hello over tls")?);

        match t.get_extra_info("cipher") {
            Some(ExtraInfo::Cipher(suite, protocol, bits)) => {
                assert_eq!(protocol, name);
                assert!(suite.contains("AES") || suite.contains("CHACHA"), "{suite}");
                assert!(bits == 128 || bits == 256);
            }
            other => panic!("cipher: {other:?}"),
        }
        match t.get_extra_info("peercert") {
            Some(ExtraInfo::PeerCert(der)) => assert_eq!(der, leaf.cert.as_ref()),
            other => panic!("peercert: {other:?}"),
        }
        assert!(t.get_extra_info("compression").is_none());
        assert!(matches!(
            t.get_extra_info("sslcontext"),
            Some(ExtraInfo::TlsConfig(TlsConfig::Client(_)))
        ));
        match t.get_extra_info("ssl_object") {
            Some(ExtraInfo::TlsSession(s)) => {
                assert_eq!(s.version, name);
                assert!(!s.server_side);
                assert_eq!(s.server_hostname.as_deref(), Some("localhost"));
                assert_eq!(s.alpn_protocol.as_deref(), Some(&b"echo/1"[..]));
            }
            other => panic!("ssl_object: {other:?}"),
        }
        match t.get_extra_info("alpn_protocol") {
            Some(ExtraInfo::Alpn(p)) => assert_eq!(p, b"echo/1"),
            other => panic!("alpn_protocol: {other:?}"),
        }
        assert!(matches!(
            t.get_extra_info("peername"),
            Some(ExtraInfo::Addr(_))
        ));
        // The server's side: no client certificate; it saw the SNI.
        let st = server.clients().pop().ok_or("no client")?;
        assert!(st.get_extra_info("peercert").is_none());
        match st.get_extra_info("ssl_object") {
            Some(ExtraInfo::TlsSession(s)) => {
                assert!(s.server_side);
                assert_eq!(s.server_hostname.as_deref(), Some("localhost"));
            }
            other => panic!("server ssl_object: {other:?}"),
        }

        // close() sends close_notify: the server sees a clean end of file, then a clean close.
        t.close();
        assert!(run_until(&lp, 50, || slog.borrow().last() == Some(&Ev::Lost(None)))?);
        assert_eq!(
            Recorder::shape(&slog),
            vec![
                Ev::Made,
                Ev::Data(b"hello over tls".to_vec()),
                Ev::Eof,
                Ev::Lost(None)
            ]
        );
        assert!(run_until(&lp, 50, || clog.borrow().last() == Some(&Ev::Lost(None)))?);
        server.close();
        lp.close()?;
    }
    Ok(())
}

/// Connects with `client` to a TLS echo server presenting `leaf_names` (expired if asked);
/// returns the client's error and the server protocol's log.
fn failed_handshake(
    client_trusts_server_ca: bool,
    leaf_names: &[&str],
    expired: bool,
    hostname: &str,
) -> Result<(io::Error, Log, Log), BoxError> {
    let ca = Ca::new()?;
    let leaf = ca.leaf(leaf_names, expired)?;
    let server_config = ca.server_config(&leaf, &[], &[])?;
    let client_config = if client_trusts_server_ca {
        ca.client_config(&[])?
    } else {
        Ca::new()?.client_config(&[])?
    };
    let lp = EventLoop::new()?;
    let slog = Log::default();
    let server = tls_echo_server(&lp, &slog, server_config)?;
    let clog = Log::default();
    let err = match connect(&lp, port_of(&server)?, client_config, hostname, &clog) {
        Ok(_) => return Err("the handshake succeeded".into()),
        Err(err) => err,
    };
    assert!(run_until(&lp, 50, || matches!(
        slog.borrow().last(),
        Some(Ev::Lost(Some(_)))
    ))?);
    assert!(run_until(&lp, 50, || matches!(
        clog.borrow().last(),
        Some(Ev::Lost(Some(_)))
    ))?);
    server.close();
    lp.close()?;
    Ok((err, slog, clog))
}

/// The server protocol's error message, from its log's recorder: the tests keep it in the
/// protocol, so check the shape here and the words through the client's error.
fn assert_failed_shape(log: &Log) {
    // No connection_made: the handshake never completed; the failure still reaches it.
    assert_eq!(
        log.borrow().as_slice(),
        &[Ev::Lost(Some(io::ErrorKind::InvalidData))]
    );
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_create_connection_ssl_failed_certificate
// (the client refuses a certificate it cannot verify, with the reason in the error).
#[test]
fn an_untrusted_certificate_fails_the_handshake_on_both_sides() -> TestResult {
    let (err, slog, clog) = failed_handshake(false, &["localhost"], false, "localhost")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(err.to_string().contains("handshake"), "{err}");
    assert_failed_shape(&slog);
    assert_failed_shape(&clog);
    Ok(())
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_create_connection_ssl_failed_certificate
// with a name mismatch, as ssl's check_hostname refuses it.
#[test]
fn a_certificate_for_another_host_fails_the_handshake() -> TestResult {
    let (err, slog, _) = failed_handshake(true, &["other.example"], false, "localhost")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert_failed_shape(&slog);
    Ok(())
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_create_connection_ssl_failed_certificate
// with an expired certificate.
#[test]
fn an_expired_certificate_fails_the_handshake() -> TestResult {
    let (err, slog, _) = failed_handshake(true, &["localhost"], true, "localhost")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
    assert_failed_shape(&slog);
    Ok(())
}

/// The server's protocol learns why: the client's alert, named.
#[test]
fn the_server_protocol_hears_the_clients_alert() -> TestResult {
    let ca = Ca::new()?;
    let leaf = ca.leaf(&["localhost"], false)?;
    let server_config = ca.server_config(&leaf, &[], &[])?;
    let lp = EventLoop::new()?;
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let e2 = errors.clone();
    struct Keep(Rc<RefCell<Vec<String>>>);
    impl evloop_net::Protocol for Keep {
        fn connection_lost(&mut self, err: Option<io::Error>) {
            self.0
                .borrow_mut()
                .push(err.map_or("none".into(), |e| e.to_string()));
        }
    }
    let server = lp.run_until_complete(
        lp.create_server(
            move || Keep(e2.clone()),
            ServerOptions::new()
                .host("127.0.0.1")
                .port(0)
                .ssl(server_config),
        ),
    )??;
    let clog = Log::default();
    let untrusting = Ca::new()?.client_config(&[])?;
    assert!(connect(&lp, port_of(&server)?, untrusting, "localhost", &clog).is_err());
    assert!(run_until(&lp, 50, || !errors.borrow().is_empty())?);
    let message = errors.borrow()[0].clone();
    assert!(
        message.contains("alert") && message.contains("UnknownCA"),
        "{message}"
    );
    server.close();
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_handshake_timeout (a server that never
// answers: the client gives up with asyncio's message).
#[test]
fn a_stalled_handshake_times_out_with_asyncios_message() -> TestResult {
    let (_, client_config, _, _) = pki()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let lp = EventLoop::new()?;
    let clog = Log::default();
    let l2 = clog.clone();
    let err = lp
        .run_until_complete(
            lp.create_connection(
                move || Recorder::new(&l2),
                ConnectOptions::new()
                    .host("127.0.0.1")
                    .port(port)
                    .ssl(client_config)
                    .server_hostname("localhost")
                    .ssl_handshake_timeout(Duration::from_millis(200)),
            ),
        )?
        .err()
        .ok_or("the handshake completed")?;
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(
        err.to_string(),
        "SSL handshake is taking longer than 0.2 seconds: aborting the connection"
    );
    assert!(run_until(&lp, 50, || clog.borrow().last()
        == Some(&Ev::Lost(Some(io::ErrorKind::TimedOut))))?);
    drop(listener);
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_handshake_timeout_handler_leak (the
// server side: a client that connects and says nothing is dropped at the timeout).
#[test]
fn a_silent_client_is_dropped_at_the_servers_handshake_timeout() -> TestResult {
    let (_, _, server_config, _) = pki()?;
    let lp = EventLoop::new()?;
    let slog = Log::default();
    let l2 = slog.clone();
    let server = lp.run_until_complete(
        lp.create_server(
            move || Recorder::new(&l2),
            ServerOptions::new()
                .host("127.0.0.1")
                .port(0)
                .ssl(server_config)
                .ssl_handshake_timeout(Duration::from_millis(200)),
        ),
    )??;
    let mut silent = TcpStream::connect(("127.0.0.1", port_of(&server)?))?;
    assert!(run_until(&lp, 50, || !slog.borrow().is_empty())?);
    assert_eq!(
        slog.borrow().as_slice(),
        &[Ev::Lost(Some(io::ErrorKind::TimedOut))]
    );
    // The server closed the socket: the client reads end of file.
    silent.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf)?, 0);
    server.close();
    lp.close()?;
    Ok(())
}

// CPython: test_asyncio/test_base_events.py::BaseEventLoopWithSelectorTests::
// test_create_connection_server_hostname_errors and test_create_server_ssl_timeout_for_plain_socket.
#[test]
fn tls_options_without_ssl_are_invalid_input() -> TestResult {
    let lp = EventLoop::new()?;
    let err = lp
        .run_until_complete(
            lp.create_connection(
                Recorder::default,
                ConnectOptions::new()
                    .host("127.0.0.1")
                    .port(1)
                    .server_hostname("localhost"),
            ),
        )?
        .err()
        .ok_or("connected")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "server_hostname is only meaningful with ssl"
    );
    let err = lp
        .run_until_complete(
            lp.create_server(
                Recorder::default,
                ServerOptions::new()
                    .host("127.0.0.1")
                    .port(0)
                    .ssl_handshake_timeout(Duration::from_secs(1)),
            ),
        )?
        .err()
        .ok_or("served")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "ssl_handshake_timeout is only meaningful with ssl"
    );
    let (_, client_config, _, _) = pki()?;
    let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    let err = lp
        .run_until_complete(
            lp.create_connection(
                Recorder::default,
                ConnectOptions::new()
                    .sock(std::os::fd::OwnedFd::from(a).into())
                    .ssl(client_config),
            ),
        )?
        .err()
        .ok_or("connected")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("server_hostname"), "{err}");
    lp.close()?;
    Ok(())
}

/// A blocking rustls client in a thread: handshakes, sends `records` as application data,
/// then `tail` raw bytes, and shuts the socket without close_notify.
fn raw_client(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    records: Vec<Vec<u8>>,
    tail: Vec<u8>,
) -> thread::JoinHandle<io::Result<()>> {
    thread::spawn(move || {
        let name = rustls::pki_types::ServerName::try_from("localhost")
            .map_err(io::Error::other)?
            .to_owned();
        let mut conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        for record in records {
            conn.writer().write_all(&record)?;
            while conn.wants_write() {
                conn.write_tls(&mut sock)?;
            }
        }
        sock.write_all(&tail)?;
        sock.shutdown(std::net::Shutdown::Write)?;
        // Wait for the server to close.
        let mut buf = [0u8; 1024];
        while sock.read(&mut buf).unwrap_or(0) > 0 {}
        Ok(())
    })
}

// CPython: test_asyncio/test_sslproto.py::SslProtoHandshakeTests::test_eof_received_waiter
// and test_ssl.py::TestSSL::test_remote_shutdown_receives_trailing_data: an end of file
// without close_notify between records is an end of file; inside a record, data was cut.
#[test]
fn an_end_of_file_without_close_notify_is_an_error_only_inside_a_record() -> TestResult {
    let (_, client_config, server_config, _) = pki()?;
    for (tail, expected_end) in [
        (Vec::new(), vec![Ev::Eof, Ev::Lost(None)]),
        (
            vec![23, 3, 3, 0, 40, 1, 2, 3],
            vec![Ev::Lost(Some(io::ErrorKind::UnexpectedEof))],
        ),
    ] {
        let lp = EventLoop::new()?;
        let slog = Log::default();
        let server = tls_echo_server(&lp, &slog, server_config.clone())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port_of(&server)?));
        let client = raw_client(addr, client_config.clone(), vec![b"abc".to_vec()], tail);
        assert!(run_until(&lp, 100, || matches!(
            slog.borrow().last(),
            Some(Ev::Lost(_))
        ))?);
        let mut expected = vec![Ev::Made, Ev::Data(b"abc".to_vec())];
        expected.extend(expected_end);
        assert_eq!(Recorder::shape(&slog), expected);
        client.join().map_err(|_| "client thread panicked")??;
        server.close();
        lp.close()?;
    }
    Ok(())
}

/// Closes its transport on the first data.
#[derive(Default)]
struct CloseOnData(Option<Transport>);

impl evloop_net::Protocol for CloseOnData {
    fn connection_made(&mut self, t: &Transport) {
        self.0 = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.0 {
            t.write(data);
            t.close();
        }
    }
}

// CPython: test_asyncio/test_ssl.py::TestSSL::test_shutdown_cleanly (close() on an SSL
// transport ends with close_notify, which the peer's TLS library reads as a clean end).
#[test]
fn close_sends_close_notify_after_the_data() -> TestResult {
    let (_, client_config, server_config, _) = pki()?;
    let lp = EventLoop::new()?;
    let server = lp.run_until_complete(
        lp.create_server(
            CloseOnData::default,
            ServerOptions::new()
                .host("127.0.0.1")
                .port(0)
                .ssl(server_config),
        ),
    )??;
    let addr = SocketAddr::from(([127, 0, 0, 1], port_of(&server)?));
    let client = thread::spawn(move || -> io::Result<(Vec<u8>, io::Result<usize>)> {
        let name = rustls::pki_types::ServerName::try_from("localhost")
            .map_err(io::Error::other)?
            .to_owned();
        let mut conn =
            rustls::ClientConnection::new(client_config, name).map_err(io::Error::other)?;
        let mut sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(b"bye")?;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let end = loop {
            match tls.read(&mut buf) {
                Ok(0) => break Ok(0),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(err) => break Err(err),
            }
        };
        Ok((got, end))
    });
    assert!(run_until(&lp, 100, || client.is_finished())?);
    let (got, end) = client.join().map_err(|_| "client thread panicked")??;
    assert_eq!(got, b"bye");
    // Without close_notify, rustls reports UnexpectedEof here.
    assert_eq!(end?, 0);
    server.close();
    lp.close()?;
    Ok(())
}
