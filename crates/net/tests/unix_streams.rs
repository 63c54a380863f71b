//! Unix stream servers and connections through protocols: conformance cases O89 and O90.

mod proto;

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use evloop_net::{LoopStreamExt, UnixServerOptions};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;
use proto::{Ev, Log, Recorder, run_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A socket path in a fresh directory of its own, removed with it.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> io::Result<TempDir> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "evloop-unix-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn server_at(
    lp: &EventLoop,
    path: &Path,
    log: &Log,
    opts: UnixServerOptions,
) -> io::Result<evloop_net::Server> {
    let l2 = log.clone();
    let fut = lp.create_unix_server(move || Recorder::new(&l2), path, opts);
    lp.run_until_complete(fut)?
}

// CPython: test_events.py test_create_unix_server, test_create_unix_connection;
// test_unix_events.py test_create_unix_connection_pathlike
#[test]
fn a_unix_server_and_connection_exchange_bytes_and_name_their_ends() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path("srv.sock");
    let lp = EventLoop::new()?;
    let slog = Log::default();
    let server = server_at(&lp, &path, &slog, UnixServerOptions::new())?;
    let clog = Log::default();
    let c2 = clog.clone();
    let fut = lp.create_unix_connection(move || Recorder::new(&c2), &path);
    let (t, _p) = lp.run_until_complete(fut)??;
    let peer = t.peername().ok_or("no peername")?;
    assert_eq!(peer.as_pathname(), Some(path.as_path()));
    let local = t.sockname().ok_or("no sockname")?;
    assert!(
        local.as_pathname().is_none(),
        "an unbound client has no name"
    );
    t.write(b"xxx");
    t.close();
    assert!(run_until(&lp, 40, || slog
        .borrow()
        .contains(&Ev::Lost(None)))?);
    assert_eq!(
        Recorder::shape(&slog),
        [Ev::Made, Ev::Data(b"xxx".to_vec()), Ev::Eof, Ev::Lost(None)]
    );
    server.close();
    assert!(!path.exists(), "the server removed its socket file");

    let missing = dir.path("nobody-here.sock");
    let c3 = clog.clone();
    let fut = lp.create_unix_connection(move || Recorder::new(&c3), &missing);
    let err = lp
        .run_until_complete(fut)?
        .err()
        .ok_or("connected to nothing")?;
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    Ok(())
}

// CPython: test_server.py UnixServerCleanupTests (observed on CPython 3.13)
#[test]
fn the_socket_file_is_removed_on_close_only_if_it_is_still_ours() -> TestResult {
    let dir = TempDir::new()?;
    let lp = EventLoop::new()?;
    let log = Log::default();

    // A stale socket file left by a dead server is replaced.
    let path = dir.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path)?);
    assert!(path.exists());
    let server = server_at(&lp, &path, &log, UnixServerOptions::new())?;
    let mut c = UnixStream::connect(&path)?;
    assert!(run_until(&lp, 40, || server.clients().len() == 1)?);
    c.write_all(b"ok")?;
    server.close();
    assert!(!path.exists());

    // Replaced by someone else: left alone.
    let path = dir.path("replaced.sock");
    let server = server_at(&lp, &path, &log, UnixServerOptions::new())?;
    std::fs::remove_file(&path)?;
    std::fs::write(&path, b"someone else's")?;
    server.close();
    assert_eq!(std::fs::read(&path)?, b"someone else's");

    // cleanup_socket(false): the file stays.
    let path = dir.path("kept.sock");
    let server = server_at(
        &lp,
        &path,
        &log,
        UnixServerOptions::new().cleanup_socket(false),
    )?;
    server.close();
    assert!(path.exists());

    // Already gone: no error.
    let path = dir.path("gone.sock");
    let server = server_at(&lp, &path, &log, UnixServerOptions::new())?;
    std::fs::remove_file(&path)?;
    server.close();

    // A regular file in the way is "address in use".
    let path = dir.path("regular");
    std::fs::write(&path, b"data")?;
    let l2 = log.clone();
    let fut = lp.create_unix_server(move || Recorder::new(&l2), &path, UnixServerOptions::new());
    let err = lp
        .run_until_complete(fut)?
        .err()
        .ok_or("bound over a regular file")?;
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert_eq!(std::fs::read(&path)?, b"data");
    drop(c);
    Ok(())
}

// A Unix listener whose accept queue is full: connect() fails with EAGAIN at once (it does not
// start). Waiting for writability would spin, so sock_connect reports it instead.
#[test]
fn sock_connect_to_a_full_unix_listener_is_an_error_not_a_spin() -> TestResult {
    use evloop_net::LoopSockExt;
    use socket2::{Domain, SockAddr, Socket, Type};
    let dir = TempDir::new()?;
    let path = dir.path("full.sock");
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    listener.bind(&SockAddr::unix(&path)?)?;
    listener.listen(0)?;
    // Fill the queue: non-blocking connects until one is refused with EAGAIN.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        s.set_nonblocking(true)?;
        match s.connect(&SockAddr::unix(&path)?) {
            Ok(()) => fillers.push(s),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let lp = EventLoop::new()?;
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    let addr = SockAddr::unix(&path)?;
    let l2 = lp.clone();
    let err = lp
        .run_until_complete(async move { l2.sock_connect(&sock, addr).await })?
        .err()
        .ok_or("connected to a full listener")?;
    assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
    assert!(err.to_string().contains("queue is full"), "{err}");
    drop(fillers);
    Ok(())
}
