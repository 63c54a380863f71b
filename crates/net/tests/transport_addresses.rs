//! Addresses read as addresses: `peername`, `sockname` and `get_extra_info` give an
//! [`Address`] whose `Display` and `Debug` are `127.0.0.1:8080` or a Unix path, where
//! `socket2::SockAddr` printed `SockAddr { ss_family: 2, len: 16 }` (asyncio gives tuples and
//! strings: `('127.0.0.1', 8080)`, `'/tmp/x.sock'`; test_events.py::test_create_connection
//! checks `get_extra_info('sockname')` against the socket's own).

mod util;

use std::error::Error as StdError;
use std::net::SocketAddr;

use evloop_net::{
    Address, ConnectOptions, ExtraInfo, LoopStreamExt, Protocol, ServerOptions, UnixServerOptions,
};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;

type TestResult = Result<(), Box<dyn StdError>>;

#[derive(Default)]
struct Quiet;
impl Protocol for Quiet {}

#[test]
fn tcp_and_unix_addresses_print_as_addresses() -> TestResult {
    let lp = EventLoop::new()?;
    let server = lp.run_until_complete(
        lp.create_server(|| Quiet, ServerOptions::new().addr(("127.0.0.1", 0))),
    )??;
    let port = server.sockets()[0]
        .local_addr()?
        .as_socket()
        .ok_or("inet")?
        .port();
    // A SocketAddr (or a (host, port) pair) is accepted as it is.
    let target: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let (t, _) =
        lp.run_until_complete(lp.create_connection(|| Quiet, ConnectOptions::new().addr(target)))??;
    let peer = t.peername().ok_or("no peername")?;
    let expected: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    assert_eq!(peer.as_socket(), Some(expected));
    assert_eq!(peer.to_string(), format!("127.0.0.1:{port}"));
    assert_eq!(format!("{peer:?}"), format!("127.0.0.1:{port}"));
    assert_eq!(peer, Address::from(expected));
    let Some(ExtraInfo::Addr(local)) = t.get_extra_info("sockname") else {
        return Err("no sockname".into());
    };
    assert!(format!("{:?}", ExtraInfo::Addr(local.clone())).starts_with("Addr(127.0.0.1:"));
    assert_eq!(Some(local), t.sockname());
    t.abort();
    server.close();

    let dir = util::TempPath::new("addresses");
    let path = dir.0.clone();
    let userver =
        lp.run_until_complete(lp.create_unix_server(|| Quiet, &path, UnixServerOptions::new()))??;
    let (u, _) = lp.run_until_complete(lp.create_unix_connection(|| Quiet, &path))??;
    let upeer = u.peername().ok_or("no unix peername")?;
    assert_eq!(upeer.to_string(), path.display().to_string());
    assert_eq!(upeer.as_pathname(), Some(path.as_path()));
    let ulocal = u.sockname().ok_or("no unix sockname")?;
    assert!(ulocal.is_unnamed());
    assert_eq!(ulocal.to_string(), "(unnamed)");
    u.abort();
    userver.close();
    lp.close()?;
    Ok(())
}
