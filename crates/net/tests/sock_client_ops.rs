//! The client side of the sock_* operations: conformance K54 and the non-blocking check (H46).

mod util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use socket2::{Domain, SockAddr, Socket, Type};
use util::{TestResult, nonblocking, run, tcp_listener};

/// A one-shot HTTP/1.0 server on a std thread: reads one request head, answers, closes.
fn http_server() -> io::Result<(SocketAddr, thread::JoinHandle<io::Result<Vec<u8>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept()?;
        let mut request = Vec::new();
        let mut buf = [0; 256];
        while !request.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")?;
        Ok(request)
    });
    Ok((addr, server))
}

const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

// CPython: sock::BaseSockTestsMixin::test_sock_client_ops (K54).
#[test]
fn connect_sendall_recv_talks_http() -> TestResult {
    let lp = EventLoop::new()?;
    let (addr, server) = http_server()?;
    let sock = nonblocking(Domain::IPV4, Type::STREAM)?;
    let l2 = lp.clone();
    let reply = run(&lp, async move {
        l2.sock_connect(&sock, addr).await?;
        l2.sock_sendall(&sock, REQUEST).await?;
        let mut reply = Vec::new();
        loop {
            let chunk = l2.sock_recv(&sock, 1024).await?;
            if chunk.is_empty() {
                break Ok(reply);
            }
            reply.extend_from_slice(&chunk);
        }
    })?;
    assert!(reply.starts_with(b"HTTP/1.0 200 OK"), "{reply:?}");
    assert!(reply.ends_with(b"\r\n\r\nhello"));
    assert_eq!(server.join().map_err(|_| "server panicked")??, REQUEST);
    Ok(())
}

// CPython: sock::BaseSockTestsMixin::test_sock_client_ops, the memoryview slice part (K54).
#[test]
fn recv_into_a_slice_writes_at_its_start() -> TestResult {
    let lp = EventLoop::new()?;
    let (addr, server) = http_server()?;
    let sock = nonblocking(Domain::IPV4, Type::STREAM)?;
    let l2 = lp.clone();
    let buf = run(&lp, async move {
        l2.sock_connect(&sock, addr).await?;
        l2.sock_sendall(&sock, REQUEST).await?;
        let mut buf = vec![b'.'; 1024];
        let mut filled = 0;
        loop {
            let n = l2.sock_recv_into(&sock, &mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    })?;
    assert!(buf.starts_with(b"HTTP/1.0 200 OK"), "{buf:?}");
    assert!(buf.ends_with(b"hello"));
    server.join().map_err(|_| "server panicked")??;
    Ok(())
}

// CPython: sock::BaseSockTestsMixin::test_sock_client_fail (K54).
#[test]
fn connecting_to_a_closed_port_is_connection_refused() -> TestResult {
    let lp = EventLoop::new()?;
    let (listener, addr) = tcp_listener()?;
    drop(listener);
    let sock = nonblocking(Domain::IPV4, Type::STREAM)?;
    let l2 = lp.clone();
    let err = run(&lp, async move { l2.sock_connect(&sock, addr).await }).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    Ok(())
}

// CPython: sel::…::test_sock_connect_resolve_using_socket_params (K54): a name is resolved
// with the socket's own family, type and protocol.
#[test]
fn connect_host_resolves_a_name_for_the_socket_family() -> TestResult {
    let lp = EventLoop::new()?;
    let (listener, addr) = tcp_listener()?;
    let sock = nonblocking(Domain::IPV4, Type::STREAM)?;
    let l2 = lp.clone();
    let sock = run(&lp, async move {
        l2.sock_connect_host(&sock, "localhost", addr.port())
            .await
            .map(|()| sock)
    })?;
    assert_eq!(sock.peer_addr()?.as_socket(), Some(addr));
    let l3 = lp.clone();
    let (_conn, peer) = run(&lp, async move { l3.sock_accept(&listener).await })?;
    assert_eq!(peer.as_socket(), sock.local_addr()?.as_socket());
    Ok(())
}

#[test]
fn connect_host_uses_the_socket_type_for_datagrams() -> TestResult {
    let lp = EventLoop::new()?;
    let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let sock = nonblocking(Domain::IPV4, Type::DGRAM)?;
    let port = peer.local_addr()?.port();
    let l2 = lp.clone();
    let sock = run(&lp, async move {
        l2.sock_connect_host(&sock, "127.0.0.1", port)
            .await
            .map(|()| sock)
    })?;
    assert_eq!(sock.peer_addr()?.as_socket(), Some(peer.local_addr()?));
    Ok(())
}

#[test]
fn connect_host_with_an_ipv4_literal_on_an_ipv6_socket_fails_to_resolve() -> TestResult {
    let lp = EventLoop::new()?;
    let Ok(sock) = nonblocking(Domain::IPV6, Type::STREAM) else {
        eprintln!("no IPv6 sockets here: nothing to check");
        return Ok(());
    };
    let l2 = lp.clone();
    let err = run(&lp, async move {
        l2.sock_connect_host(&sock, "127.0.0.1", 9).await
    })
    .unwrap_err();
    let resolve = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<evloop_exec::ResolveError>());
    assert!(
        resolve.is_some_and(evloop_exec::ResolveError::is_resolver),
        "{err}"
    );
    Ok(())
}

// CPython: sock::BaseSockTestsMixin::test_sock_client_ops, debug-mode part (H46): evloop
// checks always, not only in debug mode.
#[test]
fn every_operation_refuses_a_blocking_socket() -> TestResult {
    let lp = EventLoop::new()?;
    let (listener, addr) = tcp_listener()?;
    let blocking = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let l2 = lp.clone();
    let errors = run(&lp, async move {
        let to = SockAddr::from(addr);
        let mut buf = [0; 4];
        Ok(vec![
            l2.sock_connect(&blocking, addr).await.err(),
            l2.sock_recv(&blocking, 4).await.err(),
            l2.sock_recv_into(&blocking, &mut buf).await.err(),
            l2.sock_sendall(&blocking, b"x").await.err(),
            l2.sock_accept(&blocking).await.err(),
            l2.sock_sendto(&blocking, b"x", to.clone()).await.err(),
            l2.sock_recvfrom(&blocking, 4).await.err(),
            l2.sock_recvfrom_into(&blocking, &mut buf).await.err(),
        ])
    })?;
    for err in errors {
        let err = err.ok_or("a blocking socket was accepted")?;
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "the socket must be non-blocking");
    }
    // Nothing was attempted: the listener saw no connection.
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    Ok(())
}
