//! Opening the socket of `create_connection`: resolve, then try every address, one after the
//! other or as a Happy Eyeballs race (RFC 8305), binding each attempt to a local address
//! first when asked.

use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use evloop_exec::{AddrInfo, AddrInfoHints};
use evloop_sched::EventLoop;
use socket2::Socket;

use crate::LoopSockExt;
use crate::open::common::{
    bind_error, expect_stream, invalid, resolve, set_nodelay_if_tcp, socket_for, stream_hints,
};
use crate::open::errors::combine;
use crate::open::options::ConnectOptions;
use crate::open::race::{Attempt, StaggeredRace, interleave};

/// The connected (or, with `sock`, the given) non-blocking socket of `create_connection`, with
/// `TCP_NODELAY` set on TCP.
///
/// # Errors
///
/// - `InvalidInput` for `sock` together with a host or port, for a `sock` that is not a
///   stream socket, and when there is neither;
/// - the resolver's error, or `NotFound` "getaddrinfo() returned empty list";
/// - when every address failed, as [`combine`] builds it: the one error, the first of equal
///   ones, "Multiple exceptions: …", or with `all_errors` a `ConnectErrors` inside.
pub(crate) fn open_connection(
    lp: &EventLoop,
    opts: ConnectOptions,
) -> impl Future<Output = io::Result<Socket>> + 'static {
    let lp = lp.clone();
    async move {
        let ConnectOptions {
            host,
            port,
            family,
            proto,
            flags,
            local_addr,
            happy_eyeballs_delay,
            interleave: first_family_count,
            all_errors,
            sock,
            .. // the TLS options, taken out by the caller
        } = opts;
        if let Some(given) = sock {
            if host.is_some() || port.is_some() {
                return Err(invalid(
                    "host/port and sock can not be specified at the same time",
                ));
            }
            let sock = given.take()?;
            expect_stream(&sock)?;
            sock.set_nonblocking(true)?;
            set_nodelay_if_tcp(&sock)?;
            return Ok(sock);
        }
        if host.is_none() && port.is_none() {
            return Err(invalid(
                "host and port was not specified and no sock specified",
            ));
        }
        let hints = AddrInfoHints {
            protocol: proto.map_or(0, i32::from),
            ..stream_hints(family, flags)
        };
        let mut remote = resolve(&lp, host.as_deref(), port, hints).await?;
        let local = match local_addr {
            Some((host, port)) => Some(resolve(&lp, Some(&host), Some(port), hints).await?),
            None => None,
        };
        let first_family_count =
            first_family_count.unwrap_or(if happy_eyeballs_delay.is_some() { 1 } else { 0 });
        if first_family_count > 0 {
            remote = interleave(remote, first_family_count, |info| info.family);
        }
        connect_any(&lp, remote, local, happy_eyeballs_delay, all_errors).await
    }
}

/// Tries every address of `remote` in order (raced with `delay`, if given), each attempt bound
/// first to an address of `local` of its own family, and returns the first connected socket.
///
/// # Errors
///
/// As [`open_connection`], once every attempt failed.
pub(crate) async fn connect_any(
    lp: &EventLoop,
    remote: Vec<AddrInfo>,
    local: Option<Vec<AddrInfo>>,
    delay: Option<Duration>,
    all_errors: bool,
) -> io::Result<Socket> {
    let local: Option<Rc<[AddrInfo]>> = local.map(Into::into);
    let count = remote.len();
    let lp2 = lp.clone();
    let race = StaggeredRace::new(count, delay, move |index| -> Attempt {
        Box::pin(attempt(lp2.clone(), remote[index].clone(), local.clone()))
    });
    match race.await {
        Ok(sock) => {
            set_nodelay_if_tcp(&sock)?;
            Ok(sock)
        }
        Err(errors) => Err(combine(errors.into_iter().flatten().collect(), all_errors)),
    }
}

/// One attempt: every error it met (failed binds, then the connect's) if it did not connect.
async fn attempt(
    lp: EventLoop,
    remote: AddrInfo,
    local: Option<Rc<[AddrInfo]>>,
) -> Result<Socket, Vec<io::Error>> {
    let mut errors = Vec::new();
    match try_connect(&lp, &remote, local.as_deref(), &mut errors).await {
        Ok(sock) => Ok(sock),
        Err(err) => {
            errors.push(err);
            Err(errors)
        }
    }
}

async fn try_connect(
    lp: &EventLoop,
    remote: &AddrInfo,
    local: Option<&[AddrInfo]>,
    bind_errors: &mut Vec<io::Error>,
) -> io::Result<Socket> {
    let sock = socket_for(remote)?;
    sock.set_nonblocking(true)?;
    if let Some(local) = local {
        bind_local(&sock, remote.family, local, bind_errors)?;
    }
    match lp.sock_connect(&sock, remote.addr).await {
        Ok(()) => Ok(sock),
        // asyncio's "Connect call failed (address)": the address tells attempts apart.
        Err(err) => Err(io::Error::new(
            err.kind(),
            format!("connect call failed {}: {err}", remote.addr),
        )),
    }
}

/// Binds `sock` to the first address of `local` of the same family that it can bind; the
/// failures before are pushed to `errors`. asyncio's `_connect_sock` loop.
fn bind_local(
    sock: &Socket,
    family: i32,
    local: &[AddrInfo],
    errors: &mut Vec<io::Error>,
) -> io::Result<()> {
    let failed_before = errors.len();
    for info in local.iter().filter(|l| l.family == family) {
        match sock.bind(&info.addr.into()) {
            Ok(()) => return Ok(()),
            Err(err) => errors.push(bind_error(&info.addr, &err)),
        }
    }
    // The last bind error becomes the attempt's error (pushed back by `attempt`).
    if errors.len() > failed_before {
        if let Some(last) = errors.pop() {
            return Err(last);
        }
    }
    let name = match family {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        _ => "this family",
    };
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no matching local address with family={name} found"),
    ))
}
