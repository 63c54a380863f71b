//! `create_connection`'s `proto` and `flags`: asyncio gives them to `getaddrinfo` for the
//! remote and the local address.

mod util;

use std::net::TcpListener;

use evloop_net::{ConnectOptions, LoopStreamExt, Protocol};
use evloop_sched::EventLoop;
use socket2::{Domain, Protocol as SockProto};
use util::TestResult;

struct Quiet;
impl Protocol for Quiet {}

fn connect(lp: &EventLoop, opts: ConnectOptions) -> std::io::Result<evloop_net::Transport> {
    use evloop_task::LoopTaskExt;
    let (transport, _) = lp.run_until_complete(lp.create_connection(|| Quiet, opts))??;
    Ok(transport)
}

// CPython: Lib/asyncio/base_events.py, `create_connection`: `_ensure_resolved((host, port),
// family=family, type=SOCK_STREAM, proto=proto, flags=flags)`, the same for `local_addr`.
#[test]
fn proto_and_flags_reach_the_resolver() -> TestResult {
    let lp = EventLoop::new()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let base = || {
        ConnectOptions::new()
            .host("localhost")
            .port(port)
            .family(Domain::IPV4)
    };
    // AI_NUMERICHOST forbids looking a name up: the resolver refuses "localhost"...
    let err = connect(&lp, base().flags(libc::AI_NUMERICHOST))
        .err()
        .ok_or("a host name was resolved under AI_NUMERICHOST")?;
    assert_ne!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    // ... and the local address too.
    let local_named = ConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .local_addr("localhost", 0)
        .flags(libc::AI_NUMERICHOST);
    assert!(connect(&lp, local_named).is_err(), "local name resolved");
    // A datagram protocol for a stream connection: the resolver has nothing to offer.
    assert!(
        connect(&lp, base().proto(SockProto::UDP)).is_err(),
        "UDP for a stream"
    );
    // TCP, given explicitly, connects, on a socket of that protocol.
    let transport = connect(&lp, base().proto(SockProto::TCP))?;
    let proto = transport.with_socket(|s| s.protocol().ok().flatten());
    assert_eq!(proto, Some(Some(SockProto::TCP)));
    transport.close();
    lp.close()?;
    Ok(())
}
