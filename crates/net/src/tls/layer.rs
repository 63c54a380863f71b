//! The TLS layer of one connection: [`TlsInner`], its state, and [`TlsProtocol`], the protocol
//! it puts on the socket transport.
//!
//! # States
//!
//! `Handshake` → `Open` → `Closing` → `Lost`, as asyncio's `SSLProtocolState`. The user's
//! `connection_made` comes when the handshake completes (the `create_*` future completes
//! right after); a handshake that fails or times out ends the connection with
//! `connection_lost(Some(err))` naming the reason (and fails the future). `close()` sends
//! `close_notify`, then closes the socket once its buffer is flushed; the shutdown timeout
//! aborts it if the flush does not finish in time.
//!
//! # Ground rules
//!
//! - Every end goes through the socket transport: [`TlsInner::fail`] force-closes it with the
//!   error, and the socket's `connection_lost` (to [`TlsProtocol`]) delivers the user's.
//! - Calls into the user's protocol are queued and made one at a time, never while the
//!   protocol is borrowed (a busy protocol gets them from a later callback), panics caught, as
//!   the socket transport's own delivery does.
//! - No borrow of the rustls connection is held across a call into the user's protocol.
//! - Plaintext is encrypted as soon as it is written (the handshake is over before the user
//!   has the transport), so the write buffer is the socket's: its size, water marks and pause
//!   state are the TLS transport's.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use evloop_sched::{EventLoop, TimerHandle};
use log::Level;
use rustls::{ClientConnection, Connection, ProtocolVersion, ServerConnection};

use super::deliver::UserEvent;
use super::record::Records;
use super::{TlsConfig, TlsSession, TlsSetup};
use crate::protocol::Protocol;
use crate::transport::inner::flag;
use crate::transport::{ExtraInfo, Transport};
use evloop_sched::log_report;

/// The most plaintext one TLS record carries: the size of a chunk handed to `data_received`.
const CHUNK: usize = 16 * 1024;

thread_local! {
    /// Where plaintext is read out of rustls before `data_received`; shared by the loop's
    /// connections (a call borrows it by taking it out).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Handshake,
    Open,
    Closing,
    Lost,
}

/// Completes the future of the `create_*` call (or `start_tls`) once the handshake is done.
type Waiter = Box<dyn FnOnce(io::Result<()>)>;

/// One connection's TLS state, shared by the user's [`Transport`] handles and the
/// [`TlsProtocol`] on the socket transport.
pub(crate) struct TlsInner {
    pub(super) lp: EventLoop,
    /// The socket transport underneath (a plain handle).
    pub(super) sock: Transport,
    conn: RefCell<Connection>,
    config: TlsConfig,
    /// The name a client verified.
    server_name: Option<String>,
    handshake_timeout: Duration,
    shutdown_timeout: Duration,
    state: Cell<State>,
    /// Dropped after `connection_lost`, or when the socket transport lets go of the layer.
    pub(super) user: RefCell<Option<Rc<RefCell<dyn Protocol>>>>,
    pub(super) user_name: &'static str,
    pub(super) events: RefCell<VecDeque<UserEvent>>,
    /// A user protocol method is running.
    pub(super) in_call: Cell<bool>,
    /// A retry of the queue is scheduled (the user's protocol was borrowed).
    pub(super) retry: Cell<bool>,
    /// The user's `connection_made` was delivered.
    pub(super) made: Cell<bool>,
    reading_paused: Cell<bool>,
    /// Ciphertext received while reading was paused, not given to rustls yet.
    stash: RefCell<Vec<u8>>,
    records: Cell<Records>,
    /// The socket reached end of file.
    sock_eof: Cell<bool>,
    /// The peer sent `close_notify`.
    peer_closed: Cell<bool>,
    /// The user's `eof_received` was queued.
    eof_done: Cell<bool>,
    timer: RefCell<Option<TimerHandle>>,
    waiter: RefCell<Option<Waiter>>,
    dropped_writes: Cell<u32>,
}

/// The protocol of the socket transport under a TLS connection: it forwards everything to
/// the [`TlsInner`]. When the socket transport drops it, the user's protocol is let go too
/// (that breaks the cycle user protocol → transport → layer when the loop closes).
pub(crate) struct TlsProtocol(pub(crate) Rc<TlsInner>);

impl Protocol for TlsProtocol {
    fn connection_made(&mut self, _transport: &Transport) {
        self.0.begin();
    }

    fn data_received(&mut self, data: &[u8]) {
        self.0.received(data);
    }

    fn eof_received(&mut self) -> bool {
        self.0.sock_eof.set(true);
        // Waits, if reading is paused, until what came before is handed out.
        self.0.on_sock_eof();
        // The layer closes the socket itself, after its close_notify.
        true
    }

    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.0.lost(err);
    }

    fn pause_writing(&mut self) {
        if self.0.made.get() {
            self.0.deliver(UserEvent::Pause);
        }
    }

    fn resume_writing(&mut self) {
        if self.0.made.get() {
            self.0.deliver(UserEvent::Resume);
        }
    }
}

impl Drop for TlsProtocol {
    fn drop(&mut self) {
        self.0.release_user();
    }
}

impl TlsInner {
    /// The TLS layer for the socket transport `sock` (whose protocol the caller sets to the
    /// returned [`TlsProtocol`]), speaking for `user`.
    ///
    /// # Errors
    ///
    /// rustls' error making the connection (a configuration it cannot use), as `InvalidInput`.
    pub(crate) fn new(
        sock: &Transport,
        setup: &TlsSetup,
        user: Rc<RefCell<dyn Protocol>>,
        user_name: &'static str,
        waiter: Option<Waiter>,
    ) -> io::Result<Rc<TlsInner>> {
        let mut conn: Connection = match (&setup.config, &setup.server_name) {
            (TlsConfig::Client(config), Some(name)) => {
                ClientConnection::new(config.clone(), name.clone())
                    .map_err(tls_setup_error)?
                    .into()
            }
            (TlsConfig::Server(config), _) => ServerConnection::new(config.clone())
                .map_err(tls_setup_error)?
                .into(),
            (TlsConfig::Client(_), None) => {
                return Err(crate::open::invalid(
                    "You must set server_hostname when using ssl without a host",
                ));
            }
        };
        // Flow control is the socket's: rustls' own plaintext limit would refuse writes.
        conn.set_buffer_limit(None);
        Ok(Rc::new(TlsInner {
            lp: sock.get_loop(),
            sock: sock.clone(),
            conn: RefCell::new(conn),
            config: setup.config.clone(),
            server_name: setup.server_name.as_ref().map(|n| n.to_str().into_owned()),
            handshake_timeout: setup.handshake_timeout,
            shutdown_timeout: setup.shutdown_timeout,
            state: Cell::new(State::Handshake),
            user: RefCell::new(Some(user)),
            user_name,
            events: RefCell::new(VecDeque::new()),
            in_call: Cell::new(false),
            retry: Cell::new(false),
            made: Cell::new(false),
            reading_paused: Cell::new(false),
            stash: RefCell::new(Vec::new()),
            records: Cell::new(Records::default()),
            sock_eof: Cell::new(false),
            peer_closed: Cell::new(false),
            eof_done: Cell::new(false),
            timer: RefCell::new(None),
            waiter: RefCell::new(waiter),
            dropped_writes: Cell::new(0),
        }))
    }

    /// The user's handle on this connection.
    pub(super) fn user_transport(self: &Rc<Self>) -> Transport {
        Transport {
            inner: self.sock.inner.clone(),
            tls: Some(self.clone()),
        }
    }

    // ----- the handshake -----

    /// The socket is connected: send the first flight (a client's hello) and start the
    /// handshake timeout.
    pub(crate) fn begin(self: &Rc<Self>) {
        if self.state.get() != State::Handshake || self.timer.borrow().is_some() {
            return;
        }
        self.flush();
        let me = Rc::downgrade(self);
        let timeout = self.handshake_timeout;
        let timer = self.lp.call_later(timeout, move || {
            if let Some(me) = me.upgrade() {
                if me.state.get() == State::Handshake {
                    me.fail(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "SSL handshake is taking longer than {} seconds: aborting the \
                             connection",
                            timeout.as_secs_f64()
                        ),
                    ));
                }
            }
        });
        *self.timer.borrow_mut() = timer.ok();
    }

    fn handshake_done(self: &Rc<Self>) {
        self.cancel_timer();
        self.state.set(State::Open);
        self.deliver(UserEvent::Made);
        if let Some(waiter) = self.waiter.borrow_mut().take() {
            waiter(Ok(()));
        }
    }

    fn cancel_timer(&self) {
        if let Some(timer) = self.timer.borrow_mut().take() {
            timer.cancel();
        }
    }

    // ----- reading -----

    /// Ciphertext from the socket.
    fn received(self: &Rc<Self>, data: &[u8]) {
        if self.state.get() == State::Lost {
            return;
        }
        if self.reading_paused.get() || !self.stash.borrow().is_empty() {
            self.stash.borrow_mut().extend_from_slice(data);
            return;
        }
        self.process(data);
    }

    /// Feeds `data` to rustls record by record, handing out the plaintext; what is left when
    /// the user pauses reading (or closes) waits in the stash.
    fn process(self: &Rc<Self>, mut data: &[u8]) {
        loop {
            if !self.hand_out_plaintext() {
                self.stash.borrow_mut().extend_from_slice(data);
                return;
            }
            if data.is_empty() || self.state.get() >= State::Closing {
                break;
            }
            let before = data;
            let read = self.conn.borrow_mut().read_tls(&mut data);
            if let Err(err) = read {
                return self.fail(err);
            }
            let mut records = self.records.get();
            records.advance(&before[..before.len() - data.len()]);
            self.records.set(records);
            let processed = self.conn.borrow_mut().process_new_packets();
            match processed {
                Ok(io_state) => {
                    if io_state.peer_has_closed() {
                        self.peer_closed.set(true);
                    }
                }
                Err(err) => {
                    // rustls queued an alert telling the peer why: send it first.
                    self.flush();
                    let handshaking = self.state.get() == State::Handshake;
                    return self.fail(tls_error(&err, handshaking));
                }
            }
            if self.state.get() == State::Handshake && !self.conn.borrow().is_handshaking() {
                self.flush();
                self.handshake_done();
            }
        }
        self.flush();
        if self.peer_closed.get() {
            self.on_eof();
        } else if self.sock_eof.get() {
            self.on_sock_eof();
        }
    }

    /// Whether everything received was handed out: nothing in the stash or in rustls, and
    /// reading is not paused. The end of the stream waits for that.
    fn all_handed_out(&self) -> bool {
        !self.reading_paused.get()
            && self.stash.borrow().is_empty()
            && !self.hand_out_plaintext_pending()
    }

    /// Whether rustls still holds plaintext not handed out.
    fn hand_out_plaintext_pending(&self) -> bool {
        let mut conn = self.conn.borrow_mut();
        matches!(conn.reader().fill_buf(), Ok(buf) if !buf.is_empty())
    }

    /// Hands the plaintext rustls holds to `data_received`, chunk by chunk, until none is left
    /// (true) or the user paused reading or closed (false).
    fn hand_out_plaintext(self: &Rc<Self>) -> bool {
        loop {
            if self.reading_paused.get() || self.state.get() >= State::Closing {
                return false;
            }
            let mut buf = SCRATCH.take();
            buf.resize(CHUNK, 0);
            let read = self.conn.borrow_mut().reader().read(&mut buf);
            let n = match read {
                Ok(n) if n > 0 => n,
                // Nothing yet (WouldBlock), close_notify (0), or the end without it, which
                // `on_sock_eof` judges.
                _ => {
                    SCRATCH.set(buf);
                    return true;
                }
            };
            self.deliver_data(&buf[..n]);
            SCRATCH.set(buf);
        }
    }

    /// The socket reached end of file, and every byte before it was processed.
    fn on_sock_eof(self: &Rc<Self>) {
        if self.eof_done.get() || self.state.get() >= State::Closing || !self.all_handed_out() {
            return;
        }
        if self.state.get() == State::Handshake {
            return self.fail(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection closed by peer during the TLS handshake",
            ));
        }
        if !self.peer_closed.get() && self.records.get().mid_record() {
            return self.fail(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed the TLS connection inside a record, without close_notify: \
                 data was truncated",
            ));
        }
        // close_notify, or an end of file between records: nothing was cut that a plain end
        // of file would not cut either.
        self.on_eof();
    }

    fn on_eof(self: &Rc<Self>) {
        if self.eof_done.get() || !self.all_handed_out() {
            return;
        }
        self.eof_done.set(true);
        self.deliver(UserEvent::Eof);
    }

    pub(crate) fn pause_reading(&self) {
        if self.state.get() >= State::Closing || self.reading_paused.replace(true) {
            return;
        }
        self.sock.inner.pause_reading();
    }

    pub(crate) fn resume_reading(self: &Rc<Self>) {
        if self.state.get() >= State::Closing || !self.reading_paused.replace(false) {
            return;
        }
        self.sock.inner.resume_reading();
        // What arrived before the pause is handed out from a callback, as asyncio does.
        let me = self.clone();
        let _ = self.lp.call_soon(move || {
            let stash = std::mem::take(&mut *me.stash.borrow_mut());
            me.process(&stash);
        });
    }

    pub(crate) fn is_reading(&self) -> bool {
        !self.reading_paused.get() && self.state.get() < State::Closing && self.sock.is_reading()
    }

    // ----- writing -----

    /// Whether a write must be dropped (counted, and logged from the fifth on).
    fn refuse_write(&self) -> bool {
        if self.state.get() < State::Closing {
            // During the handshake (a server's client listed before it completed), rustls
            // keeps the plaintext and sends it once the handshake is done, as asyncio does.
            return false;
        }
        let n = self.dropped_writes.get().saturating_add(1);
        self.dropped_writes.set(n);
        if n >= 5 {
            log_report(
                Level::Warn,
                &format!("TLS transport closed: {n} writes dropped after close"),
            );
        }
        true
    }

    pub(crate) fn write(&self, data: &[u8]) {
        self.writelines(&[data]);
    }

    pub(crate) fn writelines(&self, bufs: &[&[u8]]) {
        if bufs.iter().all(|b| b.is_empty()) || self.refuse_write() {
            return;
        }
        {
            let mut conn = self.conn.borrow_mut();
            let mut writer = conn.writer();
            for buf in bufs {
                // Cannot fail: the buffer limit is off.
                let _ = writer.write_all(buf);
            }
        }
        self.flush();
    }

    /// Sends what rustls has to send (records, alerts) through the socket transport.
    fn flush(&self) {
        let mut out = Vec::new();
        {
            let mut conn = self.conn.borrow_mut();
            while conn.wants_write() {
                if conn.write_tls(&mut out).is_err() {
                    break;
                }
            }
        }
        if !out.is_empty() {
            self.sock.inner.write(&out);
        }
    }

    // ----- closing -----

    pub(crate) fn is_closing(&self) -> bool {
        self.state.get() >= State::Closing || self.sock.is_closing()
    }

    /// Sends `close_notify`, then closes the socket once its buffer is flushed; the shutdown
    /// timeout aborts it if that takes too long.
    pub(crate) fn close(self: &Rc<Self>) {
        if self.state.get() >= State::Closing {
            return;
        }
        self.state.set(State::Closing);
        self.cancel_timer();
        self.conn.borrow_mut().send_close_notify();
        // The close_notify record is the layer's, not a user's write past the high-water
        // mark: no overrun report for it (the user can write no more).
        self.sock.inner.set(flag::OVERRUN);
        self.flush();
        self.sock.close();
        let me = Rc::downgrade(self);
        let timeout = self.shutdown_timeout;
        let timer = self.lp.call_later(timeout, move || {
            if let Some(me) = me.upgrade() {
                if me.state.get() != State::Lost {
                    me.fail(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "SSL shutdown timed out after {} seconds: aborting the connection",
                            timeout.as_secs_f64()
                        ),
                    ));
                }
            }
        });
        *self.timer.borrow_mut() = timer.ok();
    }

    pub(crate) fn abort(&self) {
        if self.state.get() < State::Closing {
            self.state.set(State::Closing);
        }
        self.sock.abort();
    }

    /// Ends the connection with `err`: the socket is aborted, and its `connection_lost`
    /// brings `err` to the user's protocol.
    pub(super) fn fail(&self, err: io::Error) {
        log::debug!(target: "evloop", "TLS connection failed: {err}");
        if self.state.get() < State::Closing {
            self.state.set(State::Closing);
        }
        self.sock.inner.force_close(Some(err));
    }

    /// The socket transport is gone.
    fn lost(self: &Rc<Self>, err: Option<io::Error>) {
        let handshaking = self.state.get() == State::Handshake;
        self.state.set(State::Lost);
        self.cancel_timer();
        let err = match err {
            None if handshaking => Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed during the TLS handshake",
            )),
            // The peer sent close_notify, then closed its socket before our own close_notify
            // reached it (a Unix socket says so at once): it had finished, nothing was cut.
            Some(err)
                if self.peer_closed.get()
                    && matches!(
                        err.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
            {
                None
            }
            err => err,
        };
        if let Some(waiter) = self.waiter.borrow_mut().take() {
            waiter(Err(match &err {
                Some(err) => io::Error::new(err.kind(), err.to_string()),
                None => io::Error::from(io::ErrorKind::ConnectionAborted),
            }));
        }
        self.deliver(UserEvent::Lost(err));
    }

    /// Lets go of the user's protocol and its queued calls.
    pub(super) fn release_user(&self) {
        self.cancel_timer();
        let user = self.user.borrow_mut().take();
        let events = std::mem::take(&mut *self.events.borrow_mut());
        let waiter = self.waiter.borrow_mut().take();
        // Dropped outside every borrow: their destructors may call back into the transport.
        drop(events);
        drop(waiter);
        drop(user);
    }

    // ----- what the connection negotiated -----

    /// The TLS keys of `get_extra_info`; `None` for any other name.
    pub(crate) fn extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let conn = self.conn.borrow();
        match name {
            "peercert" => conn
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| ExtraInfo::PeerCert(cert.as_ref().to_vec())),
            "cipher" => {
                let suite = conn.negotiated_cipher_suite()?;
                let name = suite_name(suite.suite());
                let bits = if name.contains("AES_128") { 128 } else { 256 };
                let version = version_name(conn.protocol_version()?);
                Some(ExtraInfo::Cipher(name, version.to_owned(), bits))
            }
            "sslcontext" => Some(ExtraInfo::TlsConfig(self.config.clone())),
            "ssl_object" => {
                let suite = conn.negotiated_cipher_suite()?;
                let server_hostname = match &*conn {
                    Connection::Server(server) => server.server_name().map(str::to_owned),
                    Connection::Client(_) => self.server_name.clone(),
                };
                Some(ExtraInfo::TlsSession(TlsSession {
                    version: version_name(conn.protocol_version()?).to_owned(),
                    cipher: suite_name(suite.suite()),
                    alpn_protocol: conn.alpn_protocol().map(<[u8]>::to_vec),
                    server_hostname,
                    server_side: self.config.is_server(),
                }))
            }
            "alpn_protocol" => conn.alpn_protocol().map(|p| ExtraInfo::Alpn(p.to_vec())),
            _ => None,
        }
    }
}

fn suite_name(suite: rustls::CipherSuite) -> String {
    suite
        .as_str()
        .map_or_else(|| format!("{suite:?}"), str::to_owned)
}

fn version_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "unknown",
    }
}

/// rustls refused to make a connection from the configuration.
fn tls_setup_error(err: rustls::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid TLS configuration: {err}"),
    )
}

/// rustls' error as an `io::Error` whose message names the reason (unknown issuer, name
/// mismatch, expired certificate, the peer's alert…).
fn tls_error(err: &rustls::Error, handshaking: bool) -> io::Error {
    let when = if handshaking {
        "TLS handshake failed"
    } else {
        "TLS error"
    };
    io::Error::new(io::ErrorKind::InvalidData, format!("{when}: {err}"))
}
