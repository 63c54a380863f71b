//! Running out of fds while accepting: conformance case M77 (second half). Alone in its test
//! binary, because it lowers the process's fd limit.

mod proto;

use std::cell::RefCell;
use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_net::{LoopStreamExt, ServerOptions};
use evloop_sched::{Context, EventLoop};
use evloop_task::LoopTaskExt;
use proto::{Log, Recorder};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn set_nofile(soft: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer for getrlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let old = lim.rlim_cur;
    lim.rlim_cur = soft;
    // SAFETY: `lim` is a valid rlimit; lowering the soft limit needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

// CPython: test_base_events.py test_accept_connection_retry, test_accept_connection_exception
#[test]
fn emfile_on_accept_is_reported_and_accepting_resumes_a_second_later() -> TestResult {
    let lp = EventLoop::new()?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    lp.set_exception_handler(Some(Rc::new(move |_: &EventLoop, ctx: &Context| {
        s2.borrow_mut()
            .push((ctx.message().to_owned(), ctx.keys().collect::<Vec<_>>()));
    })));
    let log = Log::default();
    let l2 = log.clone();
    let fut = lp.create_server(
        move || Recorder::new(&l2),
        ServerOptions::new().host("127.0.0.1").port(0),
    );
    let server = lp.run_until_complete(fut)??;
    let addr = server.sockets()[0]
        .local_addr()?
        .as_socket()
        .ok_or("not inet")?;
    // Connected in the kernel, waiting in the accept queue.
    let _clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(addr))
        .collect::<io::Result<_>>()?;
    // The lowest free fd number becomes the limit: any new fd is EMFILE.
    let probe = std::fs::File::open("/dev/null")?;
    let lowest_free = u64::try_from(probe.as_raw_fd())?;
    drop(probe);
    let old = set_nofile(lowest_free)?;
    let started = Instant::now();
    lp.run_forever_setup()?;
    let mut reported = false;
    while started.elapsed() < Duration::from_millis(300) {
        lp.run_once_timeout(Duration::from_millis(50))?;
        reported |= !seen.borrow().is_empty();
    }
    set_nofile(old)?;
    assert!(reported, "EMFILE was reported");
    assert_eq!(
        seen.borrow()[0],
        (
            "socket.accept() out of system resource".to_owned(),
            vec!["message", "exception", "socket"]
        )
    );
    assert_eq!(
        seen.borrow().len(),
        1,
        "reported once: the listener is not polled meanwhile"
    );
    assert!(server.is_serving(), "the listener stays open");
    assert!(server.clients().is_empty());
    // About a second after the failure, accepting resumes by itself.
    while server.clients().len() < 3 && started.elapsed() < Duration::from_secs(5) {
        lp.run_once_timeout(Duration::from_millis(50))?;
    }
    lp.run_forever_cleanup()?;
    assert_eq!(server.clients().len(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    server.close();
    server.abort_clients();
    Ok(())
}
