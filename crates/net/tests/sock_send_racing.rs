//! A `sock_sendall` cancelled while blocked, then another on the same socket: the second one's
//! bytes arrive, after whatever the first had handed to the kernel.

mod util;

use std::io;
use std::rc::Rc;

use evloop_net::LoopSockExt;
use evloop_sched::EventLoop;
use evloop_task::{LoopTaskExt, sleep};
use socket2::{Domain, Socket, Type};
use util::{TestResult, nonblocking, run};

// CPython: test_asyncio/test_sock_lowlevel.py::BaseSockTestsMixin::test_sock_client_racing
// (_basetest_sock_send_racing): fill the send buffer, cancel a blocked sock_sendall(b'hello'),
// then sock_sendall(b'world') at once; the receiver's data, spaces stripped, ends with 'world'.
#[test]
fn sock_sendall_after_a_cancelled_one_delivers_its_bytes() -> TestResult {
    let lp = EventLoop::new()?;
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    listener.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    listener.listen(1)?;
    let addr = listener
        .local_addr()?
        .as_socket()
        .ok_or("not an inet address")?;
    let sock = nonblocking(Domain::IPV4, Type::STREAM)?;
    sock.set_send_buffer_size(1024)?;
    let l2 = lp.clone();
    let data = run(&lp, async move {
        l2.sock_connect(&sock, addr).await?;
        let (server, _) = listener.accept()?;
        server.set_nonblocking(true)?;
        // Fill the buffer until even 4 bytes would block.
        let mut size = 8192;
        while size >= 4 {
            loop {
                match sock.send(&vec![b' '; size]) {
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) => return Err(err),
                }
            }
            size /= 2;
        }
        let sock = Rc::new(sock);
        let (l3, s2) = (l2.clone(), sock.clone());
        let blocked = l2.create_task(async move { l3.sock_sendall(&s2, b"hello").await })?;
        sleep(0.0).await?;
        assert!(!blocked.done(), "the send did not block");
        blocked.cancel(None);
        // Deliberate difference (LoopSockExt's docs): the cancelled task drops its operation
        // when it next runs, and until then the socket's send side is still its own, so a send
        // at once is refused where asyncio's replaces the cancelled one's writer.
        let refused = l2.sock_sendall(&sock, b"early").await;
        let err = refused
            .err()
            .ok_or_else(|| io::Error::other("a second send was let in beside the pending one"))?;
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
        sleep(0.0).await?;
        assert!(blocked.done());

        let l4 = l2.clone();
        let receiving = l2.create_task(async move {
            let mut all = Vec::new();
            loop {
                let chunk = l4.sock_recv(&server, 8192).await?;
                if chunk.is_empty() {
                    return Ok::<_, io::Error>(all);
                }
                all.extend(chunk.into_iter().filter(|b| *b != b' '));
            }
        })?;
        l2.sock_sendall(&sock, b"world").await?;
        sock.shutdown(std::net::Shutdown::Write)?;
        receiving.await?
    })?;
    assert!(
        data.ends_with(b"world"),
        "{:?}",
        String::from_utf8_lossy(&data)
    );
    Ok(())
}
