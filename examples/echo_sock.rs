//! A TCP echo server on the low-level socket operations (`sock_accept`, `sock_recv_into`,
//! `sock_sendall`): one task per connection. Serves until SIGINT or SIGTERM.
//!
//! Usage: `echo_sock [ADDR]` (default `127.0.0.1:0`); it prints `Serving on 127.0.0.1:PORT`.

use std::io;
use std::net::SocketAddr;

use evloop::prelude::*;
use evloop::socket2::{Domain, Socket, Type};

async fn serve(lp: EventLoop, conn: Socket) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = lp.sock_recv_into(&conn, &mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        lp.sock_sendall(&conn, &buf[..n]).await?;
    }
}

async fn accept_loop(lp: EventLoop, listener: Socket) -> io::Result<()> {
    loop {
        let (conn, _peer) = lp.sock_accept(&listener).await?;
        conn.set_tcp_nodelay(true)?;
        let l2 = lp.clone();
        // A failed connection (reset…) ends only its own task.
        // Detached: the task runs on after its handle is dropped.
        let _detached = lp.create_task(serve(l2, conn)).map_err(io::Error::other)?;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string())
        .parse()?;
    let lp = EventLoop::new()?;
    let listener = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    listener.set_reuse_address(true)?;
    listener.bind(&addr.into())?;
    listener.listen(128)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?.as_socket().ok_or("not inet")?;
    println!("Serving on {bound}");
    for signum in [evloop::signal::SIGINT, evloop::signal::SIGTERM] {
        let l2 = lp.clone();
        lp.add_signal_handler(signum, move || l2.stop())?;
    }
    let accept_loop = lp.create_task(accept_loop(lp.clone(), listener))?;
    lp.run_forever()?;
    accept_loop.cancel(None);
    lp.close()?;
    println!("Server closed");
    Ok(())
}
