//! TLS over stream transports, with rustls (its `ring` provider): asyncio's `ssl=` argument,
//! `start_tls`, and the `ssl` keys of `get_extra_info`.
//!
//! As asyncio's `sslproto`, TLS is a layer between a socket transport and the user's protocol:
//! the socket transport's protocol is a [`layer::TlsProtocol`], which feeds the ciphertext to
//! rustls and hands the plaintext to the user's protocol; the user's [`Transport`] is the same
//! handle type as a plain one, whose methods act on the TLS layer (`write` encrypts, `close`
//! sends `close_notify` first, flow control is the socket's). See [`layer`] for the states.
//!
//! [`Transport`]: crate::Transport

mod deliver;
pub(crate) mod layer;
mod record;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::cell::RefCell;
use std::rc::Rc;

use rustls::pki_types::ServerName;

use crate::open::invalid;
use crate::protocol::Protocol;
use crate::transport::Transport;
use crate::transport::inner::Inner;
use layer::{TlsInner, TlsProtocol};

/// asyncio's default `ssl_handshake_timeout` (`constants.SSL_HANDSHAKE_TIMEOUT`).
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// asyncio's default `ssl_shutdown_timeout` (`constants.SSL_SHUTDOWN_TIMEOUT`).
pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A TLS configuration, the `sslcontext` of `start_tls` and of `get_extra_info("sslcontext")`.
///
/// Which side the connection plays follows from the variant: asyncio's `server_side=True` is
/// a [`TlsConfig::Server`]. The `create_*` calls take the `Arc<rustls::…Config>` itself
/// (`ssl`); `start_tls` takes this enum.
///
/// # Examples
///
/// A TLS echo: the server presents a self-signed certificate (made here with rcgen), the
/// client trusts exactly that certificate and checks it is for `localhost`.
///
/// ```
/// use std::sync::Arc;
/// use evloop::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
/// use evloop::rustls::{ClientConfig, RootCertStore, ServerConfig};
/// use evloop::{ConnectOptions, LoopStreamExt, Protocol, ServerOptions, Transport};
/// use evloop::EventLoop;
/// use evloop::LoopTaskExt;
///
/// #[derive(Default)]
/// struct Echo(Option<Transport>);
/// impl Protocol for Echo {
///     fn connection_made(&mut self, t: &Transport) { self.0 = Some(t.clone()); }
///     fn data_received(&mut self, data: &[u8]) { self.0.as_ref().unwrap().write(data); }
/// }
///
/// #[derive(Default)]
/// struct Client { got: Vec<u8>, done: Option<EventLoop> }
/// impl Protocol for Client {
///     fn data_received(&mut self, data: &[u8]) {
///         self.got.extend_from_slice(data);
///         if self.got.len() == 5 { self.done.take().unwrap().stop(); }
///     }
/// }
///
/// let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
/// let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
/// let server_config = ServerConfig::builder()
///     .with_no_client_auth()
///     .with_single_cert(vec![made.cert.der().clone()], key)?;
/// let mut roots = RootCertStore::empty();
/// roots.add(made.cert.der().clone())?;
/// let client_config = ClientConfig::builder()
///     .with_root_certificates(roots)
///     .with_no_client_auth();
///
/// let lp = EventLoop::new()?;
/// let server = lp.run_until_complete(lp.create_server(
///     Echo::default,
///     ServerOptions::new().host("127.0.0.1").port(0).ssl(Arc::new(server_config)),
/// ))??;
/// let port = server.sockets()[0].local_addr()?.as_socket().unwrap().port();
/// let l2 = lp.clone();
/// let (transport, client) = lp.run_until_complete(lp.create_connection(
///     move || Client { got: Vec::new(), done: Some(l2) },
///     ConnectOptions::new()
///         .host("127.0.0.1")
///         .port(port)
///         .ssl(Arc::new(client_config))
///         .server_hostname("localhost"),
/// ))??;
/// transport.write(b"hello");
/// lp.run_forever()?;
/// assert_eq!(client.borrow().got, b"hello");
/// transport.close(); // close_notify, then the socket closes
/// server.close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub enum TlsConfig {
    /// The client side: verifies the server's certificate against its roots.
    Client(Arc<rustls::ClientConfig>),
    /// The server side: presents its certificate.
    Server(Arc<rustls::ServerConfig>),
}

impl TlsConfig {
    /// Whether this is the server side.
    pub fn is_server(&self) -> bool {
        matches!(self, TlsConfig::Server(_))
    }
}

/// The options of `start_tls` besides the configuration: asyncio's `server_hostname`,
/// `ssl_handshake_timeout` and `ssl_shutdown_timeout`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop::StartTlsOptions;
///
/// let opts = StartTlsOptions::new()
///     .server_hostname("example.com")
///     .ssl_handshake_timeout(Duration::from_secs(5));
/// assert!(format!("{opts:?}").contains("example.com"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct StartTlsOptions {
    pub(crate) server_hostname: Option<String>,
    pub(crate) ssl_handshake_timeout: Option<Duration>,
    pub(crate) ssl_shutdown_timeout: Option<Duration>,
}

impl StartTlsOptions {
    /// Every option at asyncio's default.
    pub fn new() -> StartTlsOptions {
        StartTlsOptions::default()
    }

    /// The name the server's certificate must match, and the SNI sent; required on the
    /// client side (a plain connection has no host to default to).
    #[must_use]
    pub fn server_hostname(mut self, name: impl Into<String>) -> StartTlsOptions {
        self.server_hostname = Some(name.into());
        self
    }

    /// How long the handshake may take before the connection is aborted; default 60 s.
    #[must_use]
    pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> StartTlsOptions {
        self.ssl_handshake_timeout = Some(timeout);
        self
    }

    /// How long closing (`close_notify`, then the flush) may take before the connection is
    /// aborted; default 30 s.
    #[must_use]
    pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> StartTlsOptions {
        self.ssl_shutdown_timeout = Some(timeout);
        self
    }
}

/// What `get_extra_info("ssl_object")` tells of a TLS connection: a snapshot of the
/// negotiated session (asyncio hands out its `ssl.SSLObject`; rustls' connection stays inside
/// the transport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSession {
    /// `"TLSv1.3"` or `"TLSv1.2"` (`SSLObject.version()`).
    pub version: String,
    /// The cipher suite, as rustls names it (`"TLS13_AES_256_GCM_SHA384"`).
    pub cipher: String,
    /// The ALPN protocol agreed on (`SSLObject.selected_alpn_protocol()`).
    pub alpn_protocol: Option<Vec<u8>>,
    /// The server name: the SNI the client sent (server side) or the name it verified (client).
    pub server_hostname: Option<String>,
    /// Whether this end is the server (`SSLObject.server_side`).
    pub server_side: bool,
}

/// What a TLS connection is set up with, checked: the configuration, the name to verify
/// (clients), and the two timeouts.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    pub(crate) config: TlsConfig,
    pub(crate) server_name: Option<ServerName<'static>>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSetup")
            .field("server_side", &self.config.is_server())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Checks asyncio's rules for the TLS arguments of a `create_*` call (`base_events.py`):
/// `server_hostname` and the timeouts only with a configuration; a client needs a name to
/// verify (`server_hostname`, else `host`); timeouts must be positive. `Ok(None)`: no TLS.
///
/// # Errors
///
/// `InvalidInput` naming the argument.
pub(crate) fn checked_setup(
    config: Option<TlsConfig>,
    server_hostname: Option<String>,
    host: Option<&str>,
    handshake_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
) -> io::Result<Option<TlsSetup>> {
    let Some(config) = config else {
        if server_hostname.is_some() {
            return Err(invalid("server_hostname is only meaningful with ssl"));
        }
        if handshake_timeout.is_some() {
            return Err(invalid("ssl_handshake_timeout is only meaningful with ssl"));
        }
        if shutdown_timeout.is_some() {
            return Err(invalid("ssl_shutdown_timeout is only meaningful with ssl"));
        }
        return Ok(None);
    };
    for (name, value) in [
        ("ssl_handshake_timeout", handshake_timeout),
        ("ssl_shutdown_timeout", shutdown_timeout),
    ] {
        if value == Some(Duration::ZERO) {
            return Err(invalid(&format!(
                "{name} should be a positive number, got 0"
            )));
        }
    }
    let server_name = match &config {
        TlsConfig::Server(_) => {
            if server_hostname.is_some() {
                return Err(invalid("server_hostname is only meaningful for a client"));
            }
            None
        }
        TlsConfig::Client(_) => {
            let name = match (server_hostname, host) {
                (Some(name), _) => name,
                (None, Some(host)) if !host.is_empty() => host.to_owned(),
                _ => {
                    return Err(invalid(
                        "You must set server_hostname when using ssl without a host",
                    ));
                }
            };
            let parsed = ServerName::try_from(name.as_str())
                .map_err(|err| invalid(&format!("invalid server_hostname {name:?}: {err}")))?;
            Some(parsed.to_owned())
        }
    };
    Ok(Some(TlsSetup {
        config,
        server_name,
        handshake_timeout: handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
        shutdown_timeout: shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
    }))
}

/// Puts a TLS layer on the socket transport `inner`: its protocol becomes the layer's
/// [`TlsProtocol`] (the one it had is dropped), and the layer speaks for `user`. `waiter`
/// hears how the handshake ended. Nothing is sent before the socket transport's
/// `connection_made` reaches the layer (or [`TlsInner::begin`] is called).
///
/// # Errors
///
/// rustls' refusal of the configuration, as `InvalidInput`.
pub(crate) fn wrap(
    inner: &Rc<Inner>,
    setup: &TlsSetup,
    user: Rc<RefCell<dyn Protocol>>,
    user_name: &'static str,
    waiter: Option<Box<dyn FnOnce(io::Result<()>)>>,
) -> io::Result<Rc<TlsInner>> {
    let tls = TlsInner::new(
        &Transport::plain(inner.clone()),
        setup,
        user,
        user_name,
        waiter,
    )?;
    let layer: Rc<RefCell<dyn Protocol>> = Rc::new(RefCell::new(TlsProtocol(tls.clone())));
    let old = inner.protocol.borrow_mut().replace(layer);
    drop(old);
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> TlsConfig {
        let roots = rustls::RootCertStore::empty();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConfig::Client(Arc::new(config))
    }

    // CPython: test_asyncio/test_base_events.py::test_create_connection_server_hostname_errors
    #[test]
    fn tls_arguments_without_ssl_are_invalid_input() {
        let secs = Some(Duration::from_secs(1));
        for (name, hostname, hs, sd) in [
            ("server_hostname", Some("x".to_owned()), None, None),
            ("ssl_handshake_timeout", None, secs, None),
            ("ssl_shutdown_timeout", None, None, secs),
        ] {
            let err = checked_setup(None, hostname, Some("h"), hs, sd).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(
            checked_setup(None, None, None, None, None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_client_needs_a_name_and_defaults_to_the_host() {
        let err = checked_setup(Some(client()), None, None, None, None).unwrap_err();
        assert!(err.to_string().contains("server_hostname"), "{err}");
        let setup = checked_setup(Some(client()), None, Some("localhost"), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            setup.server_name,
            Some(ServerName::try_from("localhost").unwrap())
        );
        assert_eq!(setup.handshake_timeout, Duration::from_secs(60));
        assert_eq!(setup.shutdown_timeout, Duration::from_secs(30));
        let err =
            checked_setup(Some(client()), None, Some("h"), Some(Duration::ZERO), None).unwrap_err();
        assert!(err.to_string().contains("ssl_handshake_timeout"), "{err}");
    }
}
