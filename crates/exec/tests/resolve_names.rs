//! getaddrinfo / getnameinfo: conformance area S (loopback, numeric and "localhost" only).

use std::error::Error as StdError;
use std::net::SocketAddr;

use evloop_exec::{AddrInfoHints, LoopExecExt};
use evloop_sched::EventLoop;
use evloop_task::LoopTaskExt;

type TestResult = Result<(), Box<dyn StdError>>;

fn stream() -> AddrInfoHints {
    AddrInfoHints {
        socktype: libc::SOCK_STREAM,
        ..AddrInfoHints::default()
    }
}

// CPython: base::BaseEventLoopWithSelectorTests::test_getnameinfo (S102): the first answer for
// 127.0.0.1:80 is (AF_INET, SOCK_STREAM, 6, '', ('127.0.0.1', 80)).
#[test]
fn getaddrinfo_of_a_numeric_host_answers_at_once() -> TestResult {
    let lp = EventLoop::new()?;
    let found = lp.getaddrinfo(Some("127.0.0.1"), Some("80"), stream());
    assert!(found.is_ready());
    let infos = lp.run_until_complete(found)??;
    let first = &infos[0];
    assert_eq!(
        (
            first.family,
            first.socktype,
            first.protocol,
            first.canonname.as_str()
        ),
        (libc::AF_INET, libc::SOCK_STREAM, 6, "")
    );
    assert_eq!(first.addr, "127.0.0.1:80".parse::<SocketAddr>()?);
    Ok(())
}

// S102/S103: without a socket type the resolver decides, on the executor.
#[test]
fn getaddrinfo_without_a_type_goes_to_the_resolver() -> TestResult {
    let lp = EventLoop::new()?;
    let found = lp.getaddrinfo(Some("127.0.0.1"), Some("80"), AddrInfoHints::default());
    assert!(!found.is_ready());
    let infos = lp.run_until_complete(found)??;
    assert!(
        infos
            .iter()
            .any(|i| i.socktype == libc::SOCK_STREAM && i.protocol == 6)
    );
    assert!(
        infos
            .iter()
            .all(|i| i.addr == "127.0.0.1:80".parse::<SocketAddr>().unwrap_or(i.addr))
    );
    Ok(())
}

// S103: service names go to the resolver: "http" is port 80.
#[test]
fn localhost_and_service_names_resolve() -> TestResult {
    let lp = EventLoop::new()?;
    let infos =
        lp.run_until_complete(lp.getaddrinfo(Some("localhost"), Some("http"), stream()))??;
    assert!(!infos.is_empty());
    assert!(
        infos
            .iter()
            .all(|i| i.addr.port() == 80 && i.addr.ip().is_loopback())
    );
    Ok(())
}

// S102: an unresolvable name → a resolver error carrying EAI_NONAME (or, on resolvers that
// cannot tell, another EAI_* code).
#[test]
fn an_unresolvable_name_is_a_resolver_error_with_its_code() -> TestResult {
    let lp = EventLoop::new()?;
    let hints = AddrInfoHints {
        flags: libc::AI_NUMERICHOST,
        ..stream()
    };
    let err = lp
        .run_until_complete(lp.getaddrinfo(Some("no such host.invalid"), Some("80"), hints))?
        .unwrap_err();
    assert!(err.is_resolver());
    assert_eq!(err.code(), Some(libc::EAI_NONAME));
    assert!(
        err.to_string()
            .starts_with(&format!("[Errno {}]", libc::EAI_NONAME))
    );
    let err = lp
        .run_until_complete(lp.getaddrinfo(Some("127.0.0.1"), Some("nonsense-service"), stream()))?
        .unwrap_err();
    assert!(err.is_resolver());
    Ok(())
}

// CPython: test_getnameinfo (S102): NUMERICHOST|NUMERICSERV → ('127.0.0.1', '80'), at once.
#[test]
fn getnameinfo_numeric_answers_at_once_and_the_resolver_agrees() -> TestResult {
    let lp = EventLoop::new()?;
    let addr: SocketAddr = "127.0.0.1:80".parse()?;
    let flags = libc::NI_NUMERICHOST | libc::NI_NUMERICSERV;
    let fast = lp.getnameinfo(addr, flags);
    assert!(fast.is_ready());
    assert_eq!(
        lp.run_until_complete(fast)??,
        ("127.0.0.1".to_owned(), "80".to_owned())
    );
    let slow = lp.getnameinfo(addr, libc::NI_NUMERICHOST);
    assert!(!slow.is_ready());
    let (host, _service) = lp.run_until_complete(slow)??;
    assert_eq!(host, "127.0.0.1");
    Ok(())
}

/// The system resolver's own answer for the same call, read straight from `getaddrinfo(3)`:
/// the list, or the `EAI_*` code.
fn system_getaddrinfo(
    host: &str,
    port: Option<&str>,
    hints: AddrInfoHints,
) -> Result<Result<Vec<evloop_exec::AddrInfo>, i32>, Box<dyn StdError>> {
    use std::ffi::{CStr, CString};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
    let host = CString::new(host)?;
    let port = port.map(CString::new).transpose()?;
    // SAFETY: an all-zero addrinfo is the "no hints" value; the fields are set below.
    let mut c_hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    c_hints.ai_family = hints.family;
    c_hints.ai_socktype = hints.socktype;
    c_hints.ai_protocol = hints.protocol;
    c_hints.ai_flags = hints.flags;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings and initialised hints that outlive the call; `list` is a
    // valid out-pointer, freed below.
    let rc = unsafe {
        libc::getaddrinfo(
            host.as_ptr(),
            port.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            &c_hints,
            &mut list,
        )
    };
    if rc != 0 {
        return Ok(Err(rc));
    }
    let mut out = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getaddrinfo returned, not yet freed.
        let ai = unsafe { &*cur };
        let addr = match ai.ai_family {
            libc::AF_INET => {
                // SAFETY: an AF_INET node's address is a sockaddr_in.
                let sin =
                    unsafe { std::ptr::read_unaligned(ai.ai_addr.cast::<libc::sockaddr_in>()) };
                SocketAddr::from((
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                ))
            }
            _ => {
                // SAFETY: the other family asked for here is AF_INET6: a sockaddr_in6.
                let sin6 =
                    unsafe { std::ptr::read_unaligned(ai.ai_addr.cast::<libc::sockaddr_in6>()) };
                SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                ))
            }
        };
        let canonname = if ai.ai_canonname.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null ai_canonname is a NUL-terminated string owned by the list.
            unsafe { CStr::from_ptr(ai.ai_canonname) }
                .to_string_lossy()
                .into_owned()
        };
        out.push(evloop_exec::AddrInfo {
            family: ai.ai_family,
            socktype: ai.ai_socktype,
            protocol: ai.ai_protocol,
            canonname,
            addr,
        });
        cur = ai.ai_next;
    }
    // SAFETY: `list` came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    Ok(Ok(out))
}

// CPython: Lib/asyncio/base_events.py BaseEventLoop.getaddrinfo always runs the resolver with
// the caller's flags (issue 18, item 5): AI_CANONNAME on "127.0.0.1" names it "127.0.0.1".
// The numeric fast path used to answer with an empty canonical name.
#[test]
fn getaddrinfo_of_a_numeric_host_with_canonname_is_the_resolvers_answer() -> TestResult {
    let lp = EventLoop::new()?;
    let hints = AddrInfoHints {
        flags: libc::AI_CANONNAME,
        ..stream()
    };
    let ours = lp.run_until_complete(lp.getaddrinfo(Some("127.0.0.1"), Some("80"), hints))??;
    assert_eq!(ours[0].canonname, "127.0.0.1");
    assert_eq!(
        Ok(ours),
        system_getaddrinfo("127.0.0.1", Some("80"), hints)?
    );
    Ok(())
}

// The fast path is kept only where it gives the resolver's answer: each call, fast or not,
// equals the system resolver's answer for the same host, port and hints.
#[test]
fn getaddrinfo_of_numeric_hosts_equals_the_system_resolver_for_every_flag() -> TestResult {
    let lp = EventLoop::new()?;
    let dgram = AddrInfoHints {
        socktype: libc::SOCK_DGRAM,
        ..AddrInfoHints::default()
    };
    let with = |base: AddrInfoHints, flags: i32| AddrInfoHints { flags, ..base };
    let cases = [
        ("127.0.0.1", Some("80"), stream()),
        ("127.0.0.1", Some("80"), with(stream(), libc::AI_PASSIVE)),
        ("127.0.0.1", None, with(dgram, libc::AI_PASSIVE)),
        (
            "127.0.0.1",
            Some("53"),
            with(dgram, libc::AI_NUMERICHOST | libc::AI_NUMERICSERV),
        ),
        (
            "127.0.0.1",
            Some("80"),
            with(stream(), libc::AI_CANONNAME | libc::AI_NUMERICHOST),
        ),
        ("10.1.2.3", Some("8080"), with(dgram, libc::AI_CANONNAME)),
        ("::1", Some("80"), with(stream(), libc::AI_CANONNAME)),
        ("::1", Some("443"), stream()),
        ("127.0.0.1", Some("80"), with(stream(), libc::AI_ADDRCONFIG)),
    ];
    for (host, port, hints) in cases {
        // A resolver that refuses (AI_ADDRCONFIG on a host without that family) must refuse
        // ours with the same code.
        let ours = lp
            .run_until_complete(lp.getaddrinfo(Some(host), port, hints))?
            .map_err(|err| err.code().unwrap_or(0));
        let system = system_getaddrinfo(host, port, hints)?;
        assert_eq!(ours, system, "{host} {port:?} {hints:?}");
    }
    Ok(())
}

// A failed lookup says what was looked up, and its kind says why (issue: "[Errno -2] Name or
// service not known", kind Other, named neither the host nor the port). AI_NUMERICHOST keeps
// the resolver off the network: a name that is not numeric is EAI_NONAME at once.
#[test]
fn a_failed_lookup_names_the_host_and_port_and_has_a_kind_to_match() -> TestResult {
    let lp = EventLoop::new()?;
    let numeric_only = AddrInfoHints {
        flags: libc::AI_NUMERICHOST,
        ..stream()
    };
    let err = lp
        .run_until_complete(lp.getaddrinfo(Some("300.1.1.1"), Some("80"), numeric_only))?
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("[Errno {}]", libc::EAI_NONAME)),
        "{text}"
    );
    assert!(
        text.ends_with("(looking up host \"300.1.1.1\" port \"80\")"),
        "{text}"
    );
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert!(io.to_string().contains("\"300.1.1.1\""), "{io}");

    // A host that carries its port gets a hint.
    let err = lp
        .run_until_complete(lp.getaddrinfo(Some("localhost:80"), None, numeric_only))?
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the host carries a port: pass host \"localhost\" and port 80 separately"),
        "{err}"
    );
    // A service name the resolver refuses is invalid input.
    let err = lp
        .run_until_complete(lp.getaddrinfo(Some("127.0.0.1"), Some("no-such-service"), stream()))?
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("port \"no-such-service\""),
        "{err}"
    );
    lp.close()?;
    Ok(())
}
