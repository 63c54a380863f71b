//! Helpers of the subprocess tests: a protocol that records its calls, running a loop until
//! a condition holds, and asking the kernel about a child without reaping it.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_net::{SubprocessProtocol, SubprocessTransport};
use evloop_sched::EventLoop;

/// A protocol call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(i32, Vec<u8>),
    PipeLost(i32, Option<io::ErrorKind>),
    Exited(Option<i32>),
    Lost,
}

/// The calls a [`Rec`] saw, in order.
pub type Log = Rc<RefCell<Vec<Ev>>>;

/// Records every call (data chunks merged per fd when `merge`), optionally stopping a loop
/// at `connection_lost`.
#[derive(Default)]
pub struct Rec {
    pub log: Log,
    pub transport: Option<SubprocessTransport>,
    pub stop_on_lost: Option<EventLoop>,
    /// Counts bytes per fd instead of logging data.
    pub count_only: bool,
    pub bytes: [usize; 3],
}

impl Rec {
    pub fn new(log: &Log) -> Rec {
        Rec {
            log: log.clone(),
            ..Rec::default()
        }
    }

    /// The data received on `fd`, joined.
    pub fn data(log: &Log, fd: i32) -> Vec<u8> {
        log.borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Data(f, d) if *f == fd => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

impl SubprocessProtocol for Rec {
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        self.transport = Some(transport.clone());
        self.log.borrow_mut().push(Ev::Made);
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        self.bytes[fd as usize] += data.len();
        if !self.count_only {
            self.log.borrow_mut().push(Ev::Data(fd, data.to_vec()));
        }
    }

    fn pipe_connection_lost(&mut self, fd: i32, err: Option<io::Error>) {
        self.log
            .borrow_mut()
            .push(Ev::PipeLost(fd, err.map(|e| e.kind())));
    }

    fn process_exited(&mut self) {
        let code = self.transport.as_ref().and_then(|t| t.get_returncode());
        self.log.borrow_mut().push(Ev::Exited(code));
    }

    fn connection_lost(&mut self, _err: Option<io::Error>) {
        self.log.borrow_mut().push(Ev::Lost);
        self.transport = None;
        if let Some(lp) = self.stop_on_lost.take() {
            lp.stop();
        }
    }
}

/// Runs `lp` one iteration at a time (each at most 10 ms) until `cond` holds or `limit`
/// passes; whether it held.
pub fn run_until(
    lp: &EventLoop,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) -> io::Result<bool> {
    let deadline = Instant::now() + limit;
    lp.run_forever_setup()?;
    let mut met = cond();
    while !met && Instant::now() < deadline {
        lp.run_once_timeout(Duration::from_millis(10))?;
        met = cond();
    }
    lp.run_forever_cleanup()?;
    Ok(met)
}

/// What the kernel says of `pid`, asked without reaping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kin {
    /// Our child, still running.
    Running,
    /// Our child, exited and not reaped: a zombie.
    Zombie,
    /// Not (or no longer) our child: reaped.
    Gone,
}

/// Asks `waitid(P_PID, WEXITED | WNOHANG | WNOWAIT)` about `pid`, which reaps nothing.
pub fn kin(pid: u32) -> Kin {
    // SAFETY: an all-zero siginfo_t is a valid value for waitid to overwrite.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid out-pointer; WNOWAIT leaves the child as it is.
    let ret = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if ret < 0 {
        return Kin::Gone;
    }
    // SAFETY: waitid filled `info` (si_pid is 0 when the child has not exited).
    if unsafe { info.si_pid() } == 0 {
        Kin::Running
    } else {
        Kin::Zombie
    }
}

/// Waits (up to `limit`) until `pid` is reaped; whether it was.
pub fn reaped_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if kin(pid) == Kin::Gone {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    kin(pid) == Kin::Gone
}

/// The number of open fds of this process.
pub fn fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}
