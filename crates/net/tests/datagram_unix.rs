//! `AF_UNIX` datagram endpoints: the second half of conformance case N88.

use std::cell::RefCell;
use std::error::Error;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_net::{DatagramOptions, DatagramProtocol, DatagramTransport, LoopDatagramExt};
use evloop_sched::EventLoop;
use evloop_task::{LoopFuture, LoopTaskExt};
use socket2::{Domain, SockAddr};

mod util;
use util::TempPath;

type TestResult = Result<(), Box<dyn Error>>;

#[derive(Debug, PartialEq)]
enum Ev {
    Made,
    Data(Vec<u8>, Option<PathBuf>),
    Lost(bool),
}

/// Records what it is told; with `reply`, answers each datagram to its sender.
#[derive(Default)]
struct Rec {
    events: Vec<Ev>,
    transport: Option<DatagramTransport>,
    reply: Option<&'static [u8]>,
    wake: Option<LoopFuture<()>>,
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
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        if let (Some(reply), Some(t)) = (self.reply, &self.transport) {
            t.sendto(reply, Some(addr))
                .unwrap_or_else(|e| panic!("reply failed: {e}"));
        }
        self.push(Ev::Data(data.to_vec(), addr.as_pathname().map(Into::into)));
    }
    fn connection_lost(&mut self, err: Option<io::Error>) {
        self.push(Ev::Lost(err.is_some()));
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

/// CPython: `base::…::test_create_datagram_endpoint_sock_unix` (an endpoint made from the
/// family alone).
#[test]
fn a_family_only_unix_endpoint_sends_and_closes_cleanly() -> TestResult {
    let lp = EventLoop::new()?;
    let server_path = TempPath::new("dgram-family");
    let server = UnixDatagram::bind(&server_path.0)?;
    let (t, rec) = create(
        &lp,
        Rec::default(),
        DatagramOptions::new().family(Domain::UNIX),
    )?;
    assert_eq!(t.peername(), None);
    t.sendto(b"from nowhere", Some(&SockAddr::unix(&server_path.0)?))?;
    let mut buf = [0; 32];
    let n = server.recv(&mut buf)?;
    assert_eq!(&buf[..n], b"from nowhere");
    t.close();
    wait_for(&lp, &rec, |ev| ev.contains(&Ev::Lost(false)))?;
    assert_eq!(rec.borrow().events, [Ev::Made, Ev::Lost(false)]);
    assert_eq!(t.with_socket(|_| ()), None);
    Ok(())
}

/// CPython: `base::…::test_create_datagram_endpoint_existing_sock_unix`: a socket file left
/// at the path is replaced; then a client bound to its own path talks to the server.
#[test]
fn a_stale_socket_file_is_replaced_and_paths_exchange_datagrams() -> TestResult {
    let lp = EventLoop::new()?;
    let server_path = TempPath::new("dgram-server");
    let client_path = TempPath::new("dgram-client");
    drop(UnixDatagram::bind(&server_path.0)?);
    assert!(server_path.0.exists(), "the stale socket file stays behind");

    let (server, srv) = create(
        &lp,
        Rec {
            reply: Some(b"pong"),
            ..Rec::default()
        },
        DatagramOptions::new().local_path(&server_path.0),
    )?;
    assert_eq!(
        server
            .sockname()
            .and_then(|a| a.as_pathname().map(PathBuf::from)),
        Some(server_path.0.clone())
    );
    let (client, cli) = create(
        &lp,
        Rec::default(),
        DatagramOptions::new()
            .local_path(&client_path.0)
            .remote_path(&server_path.0),
    )?;
    assert_eq!(
        client
            .peername()
            .and_then(|a| a.as_pathname().map(PathBuf::from)),
        Some(server_path.0.clone())
    );
    client.sendto(b"ping", None)?;
    wait_for(&lp, &cli, |ev| ev.iter().any(|e| matches!(e, Ev::Data(..))))?;
    assert_eq!(
        srv.borrow().events,
        [
            Ev::Made,
            Ev::Data(b"ping".to_vec(), Some(client_path.0.clone()))
        ]
    );
    assert_eq!(
        cli.borrow().events,
        [
            Ev::Made,
            Ev::Data(b"pong".to_vec(), Some(server_path.0.clone()))
        ]
    );
    client.close();
    server.close();
    wait_for(&lp, &cli, |ev| ev.contains(&Ev::Lost(false)))?;
    wait_for(&lp, &srv, |ev| ev.contains(&Ev::Lost(false)))?;
    Ok(())
}

#[test]
fn a_remote_path_nobody_bound_is_an_os_error() -> TestResult {
    let lp = EventLoop::new()?;
    let missing = TempPath::new("dgram-missing");
    let err = create(
        &lp,
        Rec::default(),
        DatagramOptions::new().remote_path(&missing.0),
    )
    .err()
    .ok_or("connected to a missing path")?;
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    Ok(())
}

#[test]
fn a_regular_file_at_the_local_path_is_left_alone() -> TestResult {
    let lp = EventLoop::new()?;
    let path = TempPath::new("dgram-regular");
    std::fs::write(&path.0, b"keep me")?;
    let err = create(
        &lp,
        Rec::default(),
        DatagramOptions::new().local_path(&path.0),
    )
    .err()
    .ok_or("bound over a regular file")?;
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert_eq!(std::fs::read(&path.0)?, b"keep me");
    Ok(())
}
