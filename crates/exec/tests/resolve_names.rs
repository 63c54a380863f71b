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
