//! Errors on datagram endpoints: conformance case N83 (OS errors go to `error_received` and
//! are not fatal), panicking protocol methods, and calls back into a busy protocol.

use std::cell::RefCell;
use std::error::Error;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_net::{DatagramOptions, DatagramProtocol, DatagramTransport, LoopDatagramExt};
use evloop_sched::{Context, EventLoop};
use evloop_task::{LoopFuture, LoopTaskExt};
use socket2::{SockAddr, Socket};

type TestResult = Result<(), Box<dyn Error>>;

#[derive(Debug, PartialEq)]
enum Ev {
    Made,
    DataStart,
    DataEnd,
    Error(io::ErrorKind),
    Pause,
    Resume,
    Lost(Option<String>),
}

/// Records calls; `on_datagram` decides what `datagram_received` does in between.
struct Rec {
    events: Vec<Ev>,
    transport: Option<DatagramTransport>,
    on_datagram: fn(&DatagramTransport),
    wake: Option<LoopFuture<()>>,
}

impl Default for Rec {
    fn default() -> Rec {
        Rec {
            events: Vec::new(),
            transport: None,
            on_datagram: |_| {},
            wake: None,
        }
    }
}

impl Rec {
    fn push(&mut self, ev: Ev) {
        self.events.push(ev);
        if let Some(wake) = self.wake.take() {
            let _ = wake.set_result(());
        }
    }
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
        self.push(Ev::Made);
    }
    fn datagram_received(&mut self, _data: &[u8], _addr: &SockAddr) {
        self.push(Ev::DataStart);
        if let Some(t) = &self.transport {
            (self.on_datagram)(t);
        }
        self.push(Ev::DataEnd);
    }
    fn error_received(&mut self, err: io::Error) {
        self.push(Ev::Error(err.kind()));
    }
    fn pause_writing(&mut self) {
        self.push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.push(Ev::Resume);
    }
    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.push(Ev::Lost(err.map(|e| e.to_string())));
        self.transport = None;
    }
}

fn wait_for(
    lp: &EventLoop,
    rec: &Rc<RefCell<Rec>>,
    done: impl Fn(&[Ev]) -> bool,
) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(&rec.borrow().events) {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out; events so far: {:?}", rec.borrow().events),
            ));
        }
        let woken = lp.create_future::<()>();
        rec.borrow_mut().wake = Some(woken.clone());
        let timeout = woken.clone();
        let timer = lp.call_later(deadline - now, move || {
            timeout.cancel(None);
        })?;
        let _ = lp.run_until_complete(woken)?;
        timer.cancel();
    }
    Ok(())
}

fn create(
    lp: &EventLoop,
    rec: Rec,
    options: DatagramOptions,
) -> io::Result<(DatagramTransport, Rc<RefCell<Rec>>)> {
    lp.run_until_complete(lp.create_datagram_endpoint(move || rec, options))?
}

/// What the exception handler was told: (message, keys, exception message).
type Seen = Rc<RefCell<Vec<(String, Vec<&'static str>, String, bool)>>>;

fn capture_handler(lp: &EventLoop) -> Seen {
    let seen: Seen = Rc::default();
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_lp: &EventLoop, ctx: &Context| {
        s2.borrow_mut().push((
            ctx.message().to_owned(),
            ctx.keys().collect(),
            ctx.exception().map(|e| e.message()).unwrap_or_default(),
            ctx.get::<DatagramTransport>("transport").is_some(),
        ));
    })));
    seen
}

/// A loopback port nobody listens on (bound, read, then closed).
fn dead_port() -> io::Result<SocketAddr> {
    UdpSocket::bind("127.0.0.1:0")?.local_addr()
}

/// CPython: `sel::…::test_sendto_error_received_connected`, `test_read_ready_oserr` (on Linux
/// the ICMP "port unreachable" comes back as `ECONNREFUSED` on the next receive or send of a
/// connected UDP socket).
#[test]
fn a_refused_datagram_goes_to_error_received_and_the_endpoint_stays_open() -> TestResult {
    let lp = EventLoop::new()?;
    let opts = DatagramOptions::new().remote_socket_addr(dead_port()?);
    let (t, rec) = create(&lp, Rec::default(), opts)?;
    t.sendto(b"anyone?", None)?;
    wait_for(&lp, &rec, |ev| {
        ev.contains(&Ev::Error(io::ErrorKind::ConnectionRefused))
    })?;
    assert!(!t.is_closing());
    // Still usable: another send is accepted, and a close ends it normally.
    t.sendto(b"again", None)?;
    t.close();
    wait_for(&lp, &rec, |ev| ev.contains(&Ev::Lost(None)))?;
    assert_eq!(rec.borrow().events.first(), Some(&Ev::Made));
    assert_eq!(rec.borrow().events.last(), Some(&Ev::Lost(None)));
    Ok(())
}

/// CPython: selector_events._SelectorDatagramTransport.sendto passes an OSError of the send to
/// `protocol.error_received` (`sel::…::test_sendto_error_received`). Issue 12, defect 3's audit:
/// a datagram too large for UDP (70,000 bytes) is that error (`EMSGSIZE`), never a panic or a
/// silent drop, and the endpoint stays usable.
#[test]
fn an_oversized_datagram_goes_to_error_received_and_the_endpoint_stays_open() -> TestResult {
    let lp = EventLoop::new()?;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    peer.set_read_timeout(Some(Duration::from_secs(5)))?;
    let to = SockAddr::from(peer.local_addr()?);
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    let (t, rec) = create(&lp, Rec::default(), opts)?;
    t.sendto(&vec![7; 70_000], Some(&to))?;
    wait_for(&lp, &rec, |ev| ev.iter().any(|e| matches!(e, Ev::Error(_))))?;
    assert_eq!(
        io::Error::from_raw_os_error(libc::EMSGSIZE).kind(),
        match rec.borrow().events.get(1) {
            Some(Ev::Error(kind)) => *kind,
            other => return Err(format!("expected error_received, got {other:?}").into()),
        }
    );
    assert!(!t.is_closing());
    assert_eq!(t.get_write_buffer_size(), 0, "nothing was buffered");
    t.sendto(b"small", Some(&to))?;
    let mut buf = [0; 16];
    let (n, _) = peer.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"small");
    t.close();
    wait_for(&lp, &rec, |ev| ev.contains(&Ev::Lost(None)))?;
    Ok(())
}

/// A panic in `datagram_received` is reported with the keys message, exception, transport and
/// protocol, and aborts the transport; the loop keeps running.
#[test]
fn a_panicking_datagram_received_is_reported_and_aborts_the_endpoint() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = capture_handler(&lp);
    let rec = Rec {
        on_datagram: |_| panic!("boom in datagram_received"),
        ..Rec::default()
    };
    let (t, rec) = create(&lp, rec, DatagramOptions::new().local_addr("127.0.0.1", 0))?;
    let addr = t
        .sockname()
        .and_then(|a| a.as_socket())
        .ok_or("no address")?;
    UdpSocket::bind("127.0.0.1:0")?.send_to(b"x", addr)?;
    wait_for(&lp, &rec, |ev| matches!(ev.last(), Some(Ev::Lost(Some(_)))))?;

    assert_eq!(
        *seen.borrow(),
        [(
            "Fatal error: protocol.datagram_received() call failed.".to_owned(),
            vec!["message", "exception", "transport", "protocol"],
            "boom in datagram_received".to_owned(),
            true,
        )]
    );
    let events = &rec.borrow().events;
    assert_eq!(events[..2], [Ev::Made, Ev::DataStart]);
    match &events[2] {
        Ev::Lost(Some(msg)) => assert!(msg.contains("boom in datagram_received"), "{msg}"),
        other => panic!("expected connection_lost(Some), got {other:?}"),
    }
    assert!(t.is_closing());
    assert_eq!(t.with_socket(|_| ()), None);
    // The loop survived.
    assert_eq!(lp.run_until_complete(async { 7 })?, 7);
    Ok(())
}

// CPython: selector_events._SelectorDatagramTransport.__init__ schedules
// `protocol.connection_made` with `call_soon`, so what it raises is reported as
// "Exception in callback ..." and the endpoint is returned and keeps working (the stream
// transports' C60 case).
#[test]
fn a_panicking_connection_made_is_reported_and_the_endpoint_still_works() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = capture_handler(&lp);
    let shared = Rc::new(RefCell::new(Vec::new()));
    struct Spy(Rc<RefCell<Vec<Ev>>>);
    impl DatagramProtocol for Spy {
        fn connection_made(&mut self, _t: &DatagramTransport) {
            self.0.borrow_mut().push(Ev::Made);
            panic!("made went wrong");
        }
        fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
            assert_eq!(data, b"still here");
            self.0.borrow_mut().push(Ev::DataEnd);
        }
        fn connection_lost(&mut self, err: Option<io::Error>) {
            self.0
                .borrow_mut()
                .push(Ev::Lost(err.map(|e| e.to_string())));
        }
    }
    let s2 = shared.clone();
    let (t, _proto) = lp.run_until_complete(lp.create_datagram_endpoint(
        move || Spy(s2),
        DatagramOptions::new().local_addr("127.0.0.1", 0),
    ))??;
    assert!(!t.is_closing());
    assert_eq!(seen.borrow().len(), 1);
    let (message, keys, exception, has_transport) = seen.borrow()[0].clone();
    assert_eq!(
        message,
        "Exception in callback DatagramProtocol::connection_made()"
    );
    assert!(keys.contains(&"protocol"), "{keys:?}");
    assert_eq!(
        (exception.as_str(), has_transport),
        ("made went wrong", true)
    );

    let addr = t
        .sockname()
        .and_then(|a| a.as_socket())
        .ok_or("no local address")?;
    UdpSocket::bind("127.0.0.1:0")?.send_to(b"still here", addr)?;
    for _ in 0..200 {
        if shared.borrow().len() >= 2 {
            break;
        }
        lp.run_until_complete(evloop_task::sleep(Duration::from_millis(5)))??;
    }
    assert_eq!(*shared.borrow(), [Ev::Made, Ev::DataEnd]);
    t.close();
    lp.run_until_complete(evloop_task::sleep(Duration::ZERO))??;
    assert_eq!(shared.borrow().last(), Some(&Ev::Lost(None)));
    Ok(())
}

/// `datagram_received` overfills the write buffer with `sendto`: the transport must call
/// `pause_writing` while the protocol is still borrowed, so the call is queued and delivered
/// right after, never a panic.
#[test]
fn pause_writing_from_inside_datagram_received_is_delivered_after_it() -> TestResult {
    let lp = EventLoop::new()?;
    let (a, b) = UnixDatagram::pair()?;
    let rec = Rec {
        on_datagram: |t| {
            for _ in 0..2000 {
                t.sendto(&[0; 100], None)
                    .unwrap_or_else(|e| panic!("sendto failed: {e}"));
            }
        },
        ..Rec::default()
    };
    let opts = DatagramOptions::new().sock(Socket::from(OwnedFd::from(a)));
    let (t, rec) = create(&lp, rec, opts)?;
    t.set_write_buffer_limits(Some(1000), None)?;
    b.send(b"go")?;
    wait_for(&lp, &rec, |ev| ev.contains(&Ev::Pause))?;
    assert_eq!(
        rec.borrow().events,
        [Ev::Made, Ev::DataStart, Ev::DataEnd, Ev::Pause]
    );
    assert!(t.get_write_buffer_size() > 1000);
    assert!(!t.is_closing());
    Ok(())
}
