//! Tests of `open_unix_listener`, `UnixSocketFile` and `open_unix_connection`, with paths in a
//! unique temporary directory.

use std::cell::Cell;
use std::error::Error;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener as StdListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_sched::EventLoop;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::LoopSockExt;
use crate::open::options::UnixServerOptions;
use crate::open::test_util::{TempDir, run};
use crate::open::unix::{open_unix_connection, open_unix_listener};

type TestResult = Result<(), Box<dyn Error>>;

fn is_socket_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

fn connect(path: Option<PathBuf>, sock: Option<Socket>) -> io::Result<Socket> {
    let lp = EventLoop::new()?;
    run(&lp, open_unix_connection(&lp, path, sock))?
}

// events::EventLoopTestsMixin::test_create_unix_server_path_socket_error
#[test]
fn server_path_and_sock_is_invalid_input() -> TestResult {
    let dir = TempDir::new()?;
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let opts = UnixServerOptions::new().sock(sock);
    let err = open_unix_listener(Some(&dir.path().join("s")), opts)
        .err()
        .ok_or("listened")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "path and sock can not be specified at the same time"
    );
    assert!(!dir.path().join("s").exists());
    Ok(())
}

// unix::…::test_create_unix_server_nopath_nosock
#[test]
fn server_without_path_or_sock_is_invalid_input() -> TestResult {
    let err = open_unix_listener(None, UnixServerOptions::new())
        .err()
        .ok_or("listened")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "path was not specified, and no sock specified"
    );
    Ok(())
}

// unix::…::test_create_unix_server_path_inetsock, test_create_unix_server_path_dgram
#[test]
fn server_sock_must_be_a_unix_stream_socket() -> TestResult {
    for (domain, ty) in [(Domain::IPV4, Type::STREAM), (Domain::UNIX, Type::DGRAM)] {
        let sock = Socket::new(domain, ty, None)?;
        let opts = UnixServerOptions::new().sock(sock);
        let err = open_unix_listener(None, opts).err().ok_or("listened")?;
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .starts_with("A UNIX Domain Stream Socket was expected, got "),
            "{err}"
        );
    }
    Ok(())
}

// events::…::test_create_unix_server: a client connects and its bytes arrive.
#[test]
fn server_on_a_path_listens_non_blocking() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("srv.sock");
    let opened = open_unix_listener(Some(&path), UnixServerOptions::new().backlog(5))?;
    assert_eq!((opened.backlog, opened.start_serving), (5, true));
    assert!(opened.sock.nonblocking()?);
    assert!(is_socket_file(&path));
    // Listening is Server::start_serving's (asyncio's Server._start_serving): refused until then.
    let refused = UnixStream::connect(&path)
        .err()
        .ok_or("connected before listen")?;
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    opened.sock.listen(5)?;
    let mut client = UnixStream::connect(&path)?;
    client.write_all(b"xxx")?;
    let (conn, _) = opened.sock.accept()?;
    let mut conn = UnixStream::from(std::os::fd::OwnedFd::from(conn));
    let mut got = [0; 3];
    conn.read_exact(&mut got)?;
    assert_eq!(&got, b"xxx");
    Ok(())
}

// unix::SelectorEventLoopUnixSocketTests::test_create_unix_server_existing_path_sock
#[test]
fn stale_socket_file_is_replaced() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("stale.sock");
    drop(StdListener::bind(&path)?);
    assert!(is_socket_file(&path));
    let opened = open_unix_listener(Some(&path), UnixServerOptions::new())?;
    opened.sock.listen(1)?;
    let _client = UnixStream::connect(&path)?;
    assert!(opened.sock.accept().is_ok());
    Ok(())
}

// unix::…::test_create_unix_server_existing_path_nonsock
#[test]
fn regular_file_at_the_path_is_addr_in_use() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("file");
    std::fs::write(&path, b"keep me")?;
    let err = open_unix_listener(Some(&path), UnixServerOptions::new())
        .err()
        .ok_or("bound over a regular file")?;
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&path)?, b"keep me");
    Ok(())
}

// srv::UnixServerCleanupTests::test_unix_server_addr_cleanup
#[test]
fn socket_file_is_removed_while_it_is_ours() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("ours.sock");
    let opened = open_unix_listener(Some(&path), UnixServerOptions::new())?;
    let file = opened.file.ok_or("no socket file recorded")?;
    assert_eq!(file.path(), path);
    drop(opened.sock);
    assert!(is_socket_file(&path));
    file.remove()?;
    assert!(!path.exists());
    Ok(())
}

// srv::UnixServerCleanupTests::test_unix_server_sock_cleanup
#[test]
fn given_sock_bound_to_a_path_is_cleaned_up_too() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("given.sock");
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.bind(&SockAddr::unix(&path)?)?;
    let opened = open_unix_listener(None, UnixServerOptions::new().sock(sock))?;
    assert!(opened.sock.nonblocking()?);
    opened.file.ok_or("no socket file recorded")?.remove()?;
    assert!(!path.exists());
    Ok(())
}

// srv::UnixServerCleanupTests::test_unix_server_cleanup_gone
#[test]
fn socket_file_already_gone_is_no_error() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("gone.sock");
    let opened = open_unix_listener(Some(&path), UnixServerOptions::new())?;
    std::fs::remove_file(&path)?;
    opened.file.ok_or("no socket file recorded")?.remove()?;
    Ok(())
}

// srv::UnixServerCleanupTests::test_unix_server_cleanup_replaced
#[test]
fn socket_file_replaced_by_someone_else_is_left_alone() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("replaced.sock");
    let opened = open_unix_listener(Some(&path), UnixServerOptions::new())?;
    std::fs::remove_file(&path)?;
    let _other = StdListener::bind(&path)?;
    opened.file.ok_or("no socket file recorded")?.remove()?;
    assert!(
        is_socket_file(&path),
        "another server's socket file was removed"
    );
    Ok(())
}

// srv::UnixServerCleanupTests::test_unix_server_cleanup_prevented
#[test]
fn cleanup_socket_false_records_no_file() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("kept.sock");
    let opened = open_unix_listener(Some(&path), UnixServerOptions::new().cleanup_socket(false))?;
    assert!(opened.file.is_none());
    drop(opened.sock);
    assert!(is_socket_file(&path));
    Ok(())
}

// srv::UnixServerCleanupTests (abstract names) [observed on CPython 3.13]: no file, nothing
// stat'ed or unlinked, and clients reach it.
#[test]
fn abstract_name_has_no_socket_file() -> TestResult {
    let name = format!("\0evloop-open-test-{}", std::process::id());
    let path = PathBuf::from(name);
    let opened = open_unix_listener(Some(&path), UnixServerOptions::new())?;
    assert!(opened.file.is_none());
    opened.sock.listen(1)?;
    let client = connect(Some(path), None)?;
    assert!(client.peer_addr()?.as_abstract_namespace().is_some());
    Ok(())
}

// unix::…::test_create_unix_connection_path_sock
#[test]
fn connection_path_and_sock_is_invalid_input() -> TestResult {
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let err = connect(Some(PathBuf::from("/nonexistent")), Some(sock))
        .err()
        .ok_or("connected")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "path and sock can not be specified at the same time"
    );
    Ok(())
}

// unix::…::test_create_unix_connection_nopath_nosock
#[test]
fn connection_without_path_or_sock_is_invalid_input() -> TestResult {
    let err = connect(None, None).err().ok_or("connected")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "no path and sock were specified");
    Ok(())
}

// unix::…::test_create_unix_connection_nopath_nosock (a non-Unix sock) [observed]
#[test]
fn connection_sock_must_be_a_unix_stream_socket() -> TestResult {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let err = connect(None, Some(sock)).err().ok_or("accepted")?;
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let (a, _b) = UnixStream::pair()?;
    let sock = connect(None, Some(Socket::from(std::os::fd::OwnedFd::from(a))))?;
    assert!(sock.nonblocking()?);
    Ok(())
}

// events::…::test_create_unix_connection: peername is the path, data flows.
#[test]
fn connection_to_a_path_without_blocking() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("conn.sock");
    let server = StdListener::bind(&path)?;
    let lp = EventLoop::new()?;
    let l2 = lp.clone();
    let p2 = path.clone();
    let sock = run(&lp, async move {
        let sock = open_unix_connection(&l2, Some(p2), None).await?;
        l2.sock_sendall(&sock, b"xxx").await?;
        Ok::<_, io::Error>(sock)
    })??;
    assert!(sock.nonblocking()?);
    assert_eq!(sock.peer_addr()?.as_pathname(), Some(path.as_path()));
    let (mut conn, _) = server.accept()?;
    let mut got = [0; 3];
    conn.read_exact(&mut got)?;
    assert_eq!(&got, b"xxx");
    Ok(())
}

// events::…::test_create_unix_connection (missing path → FileNotFoundError)
#[test]
fn connection_to_a_missing_path_is_not_found() -> TestResult {
    let dir = TempDir::new()?;
    let err = connect(Some(dir.path().join("missing.sock")), None)
        .err()
        .ok_or("connected to nothing")?;
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    Ok(())
}

// [observed on Linux] a Unix listener whose queue is full makes a non-blocking connect fail
// with EAGAIN; the connection waits (without spinning) and completes once the server accepts.
#[test]
fn connection_waits_for_room_in_a_full_queue() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("full.sock");
    let server = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    server.bind(&SockAddr::unix(&path)?)?;
    server.listen(0)?;
    let addr = SockAddr::unix(&path)?;
    let mut fillers = Vec::new();
    loop {
        let c = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        c.set_nonblocking(true)?;
        match c.connect(&addr) {
            Ok(()) => fillers.push(c),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => return Err(err.into()),
        }
    }
    let lp = EventLoop::new()?;
    let l2 = lp.clone();
    let accepted = Rc::new(Cell::new(false));
    let flag = accepted.clone();
    let pause = Duration::from_millis(30);
    let start = Instant::now();
    // The server accepts one connection after a while, making room for ours.
    let server = Rc::new(server);
    let listening = server.clone();
    lp.call_later(pause, move || flag.set(listening.accept().is_ok()))?;
    let sock = run(&lp, async move {
        open_unix_connection(&l2, Some(path), None).await
    })??;
    assert!(accepted.get());
    assert!(start.elapsed() >= pause);
    assert!(sock.peer_addr()?.as_pathname().is_some());
    drop(server);
    Ok(())
}
