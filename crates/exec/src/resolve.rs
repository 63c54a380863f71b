//! `getaddrinfo` and `getnameinfo` off the loop thread, with a numeric fast path.
//!
//! The libc resolver blocks (DNS, /etc/hosts, NSS modules), so it runs on the default
//! executor. Numeric hosts and ports need no resolver: they are answered at once, with no
//! thread hop, as asyncio's `_ipaddr_info` does when the socket type is given, but only with
//! flags that cannot change the resolver's answer ([`FAST_PATH_FLAGS`]); any other flag
//! (`AI_CANONNAME`, `AI_ADDRCONFIG`…) goes to the resolver, as asyncio's `getaddrinfo` always
//! does.

use std::ffi::{CStr, CString};
use std::fmt;
use std::future::Future;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use evloop_sched::EventLoop;
use evloop_task::LoopFuture;

use crate::executor::{DefaultExecutor, run_in_executor};

/// What to ask `getaddrinfo` for: libc's `ai_family`, `ai_socktype`, `ai_protocol`, `ai_flags`
/// (0 means "any").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrInfoHints {
    /// `AF_INET`, `AF_INET6` or 0 (`AF_UNSPEC`).
    pub family: i32,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or 0.
    pub socktype: i32,
    /// `IPPROTO_TCP`, `IPPROTO_UDP` or 0.
    pub protocol: i32,
    /// `AI_PASSIVE`, `AI_CANONNAME`, `AI_NUMERICHOST`…
    pub flags: i32,
}

/// One answer of `getaddrinfo`: asyncio's `(family, type, proto, canonname, sockaddr)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// `AF_INET` or `AF_INET6`.
    pub family: i32,
    /// The socket type.
    pub socktype: i32,
    /// The protocol.
    pub protocol: i32,
    /// The canonical name (empty unless `AI_CANONNAME` was asked for).
    pub canonname: String,
    /// The address.
    pub addr: SocketAddr,
}

/// Why a name could not be resolved: the resolver's `EAI_*` code, or the future's own error
/// (cancelled, loop closed, executor shut down, a panic).
///
/// The message is asyncio's `socket.gaierror` text followed by what was looked up:
/// `[Errno -2] Name or service not known (looking up host "300.1.1.1" port "80")`, with a hint
/// when the host carries its own port (`"localhost:80"`). [`kind`](ResolveError::kind), which
/// the `io::Error` it converts into keeps, is `NotFound` for a name that does not resolve and
/// `InvalidInput` for arguments the resolver refuses.
#[derive(Clone)]
pub struct ResolveError {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Resolver {
        code: i32,
        errno: i32,
        /// What was looked up, as the error's message names it (`host "x" port 80`).
        query: Option<Arc<str>>,
    },
    Task(evloop_task::Error),
}

impl ResolveError {
    fn resolver(code: i32) -> ResolveError {
        let errno = if code == libc::EAI_SYSTEM {
            io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        };
        ResolveError {
            kind: Kind::Resolver {
                code,
                errno,
                query: None,
            },
        }
    }

    /// The resolver's error for looking up `host` and `port`, which its message names.
    fn looking_up(code: i32, host: Option<&str>, port: Option<&str>) -> ResolveError {
        let mut err = ResolveError::resolver(code);
        if let Kind::Resolver { query, .. } = &mut err.kind {
            *query = Some(Arc::from(describe_query(host, port)));
        }
        err
    }

    /// The [`io::ErrorKind`] a program can match on: `NotFound` for a name that does not
    /// resolve, `InvalidInput` for arguments the resolver refuses, the OS error's kind for
    /// `EAI_SYSTEM`, `Other` otherwise.
    pub fn kind(&self) -> io::ErrorKind {
        match &self.kind {
            Kind::Resolver { code, errno, .. } => gai_kind(*code, *errno),
            Kind::Task(err) => io::Error::from(err.clone()).kind(),
        }
    }

    /// True if the resolver failed (asyncio's `socket.gaierror`).
    pub fn is_resolver(&self) -> bool {
        matches!(self.kind, Kind::Resolver { .. })
    }

    /// The resolver's `EAI_*` code (e.g. `libc::EAI_NONAME`), if the resolver failed.
    pub fn code(&self) -> Option<i32> {
        match self.kind {
            Kind::Resolver { code, .. } => Some(code),
            Kind::Task(_) => None,
        }
    }

    /// The future's own error (cancelled, loop closed…), if it was not the resolver.
    pub fn task_error(&self) -> Option<&evloop_task::Error> {
        match &self.kind {
            Kind::Task(err) => Some(err),
            Kind::Resolver { .. } => None,
        }
    }
}

impl From<evloop_task::Error> for ResolveError {
    fn from(err: evloop_task::Error) -> ResolveError {
        ResolveError {
            kind: Kind::Task(err),
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Resolver { code, errno, query } => {
                if *code == libc::EAI_SYSTEM {
                    write!(f, "[Errno {code}] {}", io::Error::from_raw_os_error(*errno))?;
                } else {
                    // SAFETY: gai_strerror returns a pointer to a static, NUL-terminated string
                    // for any code (glibc and musl say "Unknown error" for codes they do not
                    // know).
                    let text = unsafe { CStr::from_ptr(libc::gai_strerror(*code)) };
                    write!(f, "[Errno {code}] {}", text.to_string_lossy())?;
                }
                match query {
                    Some(q) => write!(f, " ({q})"),
                    None => Ok(()),
                }
            }
            Kind::Task(err) => fmt::Display::fmt(err, f),
        }
    }
}

impl fmt::Debug for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResolveError({self})")
    }
}

impl std::error::Error for ResolveError {}

impl From<ResolveError> for io::Error {
    fn from(err: ResolveError) -> io::Error {
        match err.kind {
            Kind::Task(err) => err.into(),
            Kind::Resolver { .. } => io::Error::new(err.kind(), err),
        }
    }
}

/// `host "example.org" port "80"`, and a hint when the host looks like it carries its port
/// (`"localhost:80"`), a common slip for someone used to URLs.
fn describe_query(host: Option<&str>, port: Option<&str>) -> String {
    let mut text = match host {
        Some(h) => format!("looking up host {h:?}"),
        None => "looking up no host".to_string(),
    };
    if let Some(p) = port.filter(|p| !p.is_empty()) {
        text.push_str(&format!(" port {p:?}"));
    }
    if let Some((name, tail)) = host.and_then(|h| h.rsplit_once(':'))
        && !name.contains(':')
        && !tail.is_empty()
        && tail.bytes().all(|b| b.is_ascii_digit())
    {
        text.push_str(&format!(
            "; the host carries a port: pass host {name:?} and port {tail} separately"
        ));
    }
    text
}

/// The [`io::ErrorKind`] of a resolver code.
fn gai_kind(code: i32, errno: i32) -> io::ErrorKind {
    match code {
        libc::EAI_NONAME | libc::EAI_NODATA => io::ErrorKind::NotFound,
        libc::EAI_SERVICE | libc::EAI_BADFLAGS | libc::EAI_FAMILY | libc::EAI_SOCKTYPE => {
            io::ErrorKind::InvalidInput
        }
        libc::EAI_MEMORY => io::ErrorKind::OutOfMemory,
        libc::EAI_SYSTEM => io::Error::from_raw_os_error(errno).kind(),
        _ => io::ErrorKind::Other,
    }
}

/// The future of a name look-up: ready at once on the numeric fast path, otherwise waiting
/// for the executor.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Resolve<T> {
    state: ResolveState<T>,
}

enum ResolveState<T> {
    Ready(Option<Result<T, ResolveError>>),
    Waiting(LoopFuture<Result<T, ResolveError>>),
}

impl<T: 'static> Resolve<T> {
    fn ready(outcome: Result<T, ResolveError>) -> Resolve<T> {
        Resolve {
            state: ResolveState::Ready(Some(outcome)),
        }
    }

    /// True if the answer is already there (the numeric fast path, or an immediate error).
    pub fn is_ready(&self) -> bool {
        matches!(self.state, ResolveState::Ready(_))
    }
}

// Nothing inside is ever pinned: the value is moved out whole, and `LoopFuture` is `Unpin`.
impl<T> Unpin for Resolve<T> {}

impl<T: 'static> Future for Resolve<T> {
    type Output = Result<T, ResolveError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            ResolveState::Ready(outcome) => Poll::Ready(outcome.take().unwrap_or_else(|| {
                Err(evloop_task::Error::invalid_state("result was already taken").into())
            })),
            ResolveState::Waiting(fut) => match Pin::new(fut).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(answer)) => Poll::Ready(answer),
                Poll::Ready(Err(err)) => Poll::Ready(Err(err.into())),
            },
        }
    }
}

impl<T> fmt::Debug for Resolve<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ready = matches!(self.state, ResolveState::Ready(_));
        f.debug_struct("Resolve").field("ready", &ready).finish()
    }
}

fn on_executor<T: Send + 'static>(
    lp: &EventLoop,
    job: impl FnOnce() -> Result<T, ResolveError> + Send + 'static,
) -> Resolve<T> {
    let submitted = DefaultExecutor::get(lp).and_then(|pool| run_in_executor(lp, &pool, job));
    match submitted {
        Ok(fut) => Resolve {
            state: ResolveState::Waiting(fut),
        },
        Err(err) => Resolve::ready(Err(err.into())),
    }
}

/// A numeric port: `None` or `""` is 0.
fn numeric_port(port: Option<&str>) -> Option<u16> {
    match port {
        None | Some("") => Some(0),
        Some(p) => p.parse().ok(),
    }
}

/// asyncio's `_ipaddr_info`: the answer for a numeric host and port with a known socket type,
/// without the resolver; `None` when the resolver must decide.
pub(crate) fn numeric_addrinfo(
    host: Option<&str>,
    port: Option<&str>,
    hints: &AddrInfoHints,
) -> Option<AddrInfo> {
    let protocol = match (hints.socktype, hints.protocol) {
        (libc::SOCK_STREAM, 0) => libc::IPPROTO_TCP,
        (libc::SOCK_DGRAM, 0) => libc::IPPROTO_UDP,
        (libc::SOCK_STREAM, p) if p == libc::IPPROTO_TCP => p,
        (libc::SOCK_DGRAM, p) if p == libc::IPPROTO_UDP => p,
        _ => return None,
    };
    let port = numeric_port(port)?;
    // Zone ids ("fe80::1%lo") and names go to the resolver.
    let ip: IpAddr = host?.parse().ok()?;
    let family = match ip {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    };
    if hints.family != libc::AF_UNSPEC && hints.family != family {
        return None;
    }
    Some(AddrInfo {
        family,
        socktype: hints.socktype,
        protocol,
        canonname: String::new(),
        addr: SocketAddr::new(ip, port),
    })
}

/// The `ai_flags` under which the numeric fast path gives the resolver's own answer: with a
/// numeric host, `AI_PASSIVE` changes nothing, and `AI_NUMERICHOST`/`AI_NUMERICSERV` only
/// forbid what the fast path never does. Any other flag sends the call to the resolver:
/// `AI_CANONNAME` fills `canonname`, `AI_ADDRCONFIG` may refuse a family, and flags unknown
/// here may mean anything.
const FAST_PATH_FLAGS: i32 = libc::AI_PASSIVE | libc::AI_NUMERICHOST | libc::AI_NUMERICSERV;

pub(crate) fn getaddrinfo(
    lp: &EventLoop,
    host: Option<&str>,
    port: Option<&str>,
    hints: AddrInfoHints,
) -> Resolve<Vec<AddrInfo>> {
    if hints.flags & !FAST_PATH_FLAGS == 0 {
        if let Some(answer) = numeric_addrinfo(host, port, &hints) {
            return Resolve::ready(Ok(vec![answer]));
        }
    }
    let host = host.map(str::to_owned);
    let port = port.map(str::to_owned);
    on_executor(lp, move || {
        blocking_getaddrinfo(host.as_deref(), port.as_deref(), &hints)
    })
}

pub(crate) fn getnameinfo(
    lp: &EventLoop,
    addr: SocketAddr,
    flags: i32,
) -> Resolve<(String, String)> {
    let numeric = libc::NI_NUMERICHOST | libc::NI_NUMERICSERV;
    let scoped = matches!(addr, SocketAddr::V6(a) if a.scope_id() != 0);
    if flags & numeric == numeric && !scoped {
        return Resolve::ready(Ok((addr.ip().to_string(), addr.port().to_string())));
    }
    on_executor(lp, move || blocking_getnameinfo(addr, flags))
}

fn c_string(s: Option<&str>) -> Result<Option<CString>, ResolveError> {
    s.map(CString::new)
        .transpose()
        // A NUL inside a name can never resolve.
        .map_err(|_| ResolveError::resolver(libc::EAI_NONAME))
}

/// The blocking `getaddrinfo(3)`, run on a worker.
fn blocking_getaddrinfo(
    host: Option<&str>,
    port: Option<&str>,
    hints: &AddrInfoHints,
) -> Result<Vec<AddrInfo>, ResolveError> {
    let named = |code: i32| ResolveError::looking_up(code, host, port);
    let c_host = c_string(host).map_err(|_| named(libc::EAI_NONAME))?;
    let c_port = c_string(port.filter(|p| !p.is_empty())).map_err(|_| named(libc::EAI_SERVICE))?;
    // SAFETY: an all-zero addrinfo is a valid "no hints" value (null pointers, zero fields).
    let mut c_hints: libc::addrinfo = unsafe { mem::zeroed() };
    c_hints.ai_family = hints.family;
    c_hints.ai_socktype = hints.socktype;
    c_hints.ai_protocol = hints.protocol;
    c_hints.ai_flags = hints.flags;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: the strings are NUL-terminated and outlive the call; `c_hints` is initialised;
    // `list` is a valid out-pointer, freed below with freeaddrinfo on success.
    let rc = unsafe {
        libc::getaddrinfo(
            c_host.as_ref().map_or(std::ptr::null(), |h| h.as_ptr()),
            c_port.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            &c_hints,
            &mut list,
        )
    };
    if rc != 0 {
        return Err(named(rc));
    }
    let mut out = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getaddrinfo returned, not yet freed.
        let ai = unsafe { &*cur };
        // SAFETY: `ai_addr` points to `ai_addrlen` bytes of a sockaddr of family `ai_family`.
        if let Some(addr) = unsafe { sockaddr_to_std(ai.ai_addr, ai.ai_addrlen) } {
            let canonname = if ai.ai_canonname.is_null() {
                String::new()
            } else {
                // SAFETY: a non-null ai_canonname is a NUL-terminated string owned by the list.
                unsafe { CStr::from_ptr(ai.ai_canonname) }
                    .to_string_lossy()
                    .into_owned()
            };
            out.push(AddrInfo {
                family: ai.ai_family,
                socktype: ai.ai_socktype,
                protocol: ai.ai_protocol,
                canonname,
                addr,
            });
        }
        cur = ai.ai_next;
    }
    // SAFETY: `list` came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    Ok(out)
}

/// Reads an IPv4 or IPv6 `sockaddr`; other families are skipped.
///
/// # Safety
///
/// `sa` must point to `len` readable bytes holding a sockaddr (or be null).
unsafe fn sockaddr_to_std(sa: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    let len = usize::try_from(len).ok()?;
    // SAFETY: the caller promises `sa` points to at least a sockaddr header.
    let family = i32::from(unsafe { (*sa).sa_family });
    match family {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: family and length say this is a sockaddr_in; read unaligned to be safe.
            let sin = unsafe { std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: family and length say this is a sockaddr_in6.
            let sin6 = unsafe { std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The blocking `getnameinfo(3)`, run on a worker.
fn blocking_getnameinfo(addr: SocketAddr, flags: i32) -> Result<(String, String), ResolveError> {
    // SAFETY: an all-zero sockaddr_storage is valid; the right variant is written below.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    let mut host = [0 as libc::c_char; libc::NI_MAXHOST as usize];
    let mut serv = [0 as libc::c_char; 32];
    // SAFETY: `storage` holds a sockaddr of `len` bytes; the buffers are writable for the
    // lengths passed, and getnameinfo NUL-terminates what it writes.
    let rc = unsafe {
        libc::getnameinfo(
            (&raw const storage).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            serv.as_mut_ptr(),
            serv.len() as libc::socklen_t,
            flags,
        )
    };
    if rc != 0 {
        return Err(ResolveError::resolver(rc));
    }
    // SAFETY: on success both buffers hold NUL-terminated strings.
    let (h, s) = unsafe { (CStr::from_ptr(host.as_ptr()), CStr::from_ptr(serv.as_ptr())) };
    Ok((
        h.to_string_lossy().into_owned(),
        s.to_string_lossy().into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(family: i32, socktype: i32) -> AddrInfoHints {
        AddrInfoHints {
            family,
            socktype,
            ..AddrInfoHints::default()
        }
    }

    // CPython: base::BaseEventTests::test_ipaddr_info, test_port_parameter_types (S103).
    #[test]
    fn numeric_hosts_skip_the_resolver_only_when_the_type_is_known() {
        let tcp = numeric_addrinfo(Some("1.2.3.4"), Some("1"), &hints(0, libc::SOCK_STREAM));
        assert_eq!(tcp.as_ref().map(|a| a.protocol), Some(libc::IPPROTO_TCP));
        assert_eq!(
            tcp.map(|a| a.addr.to_string()),
            Some("1.2.3.4:1".to_owned())
        );
        let udp = numeric_addrinfo(Some("1.2.3.4"), None, &hints(0, libc::SOCK_DGRAM));
        assert_eq!(udp.as_ref().map(|a| a.protocol), Some(libc::IPPROTO_UDP));
        assert_eq!(udp.map(|a| a.addr.port()), Some(0));
        assert!(numeric_addrinfo(Some("1.2.3.4"), Some("80"), &hints(0, 0)).is_none());
        let mismatch = hints(libc::AF_INET6, libc::SOCK_STREAM);
        assert!(numeric_addrinfo(Some("1.2.3.4"), Some("80"), &mismatch).is_none());
        let zoned = numeric_addrinfo(Some("::3%lo0"), Some("80"), &hints(0, libc::SOCK_STREAM));
        assert!(zoned.is_none());
        let v6 = numeric_addrinfo(Some("::3"), Some(""), &hints(0, libc::SOCK_STREAM));
        assert_eq!(v6.as_ref().map(|a| a.family), Some(libc::AF_INET6));
        assert_eq!(v6.map(|a| a.addr.to_string()), Some("[::3]:0".to_owned()));
        assert!(
            numeric_addrinfo(Some("1.2.3.4"), Some("http"), &hints(0, libc::SOCK_STREAM)).is_none()
        );
    }
}
