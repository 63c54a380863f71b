//! One loop per core: a [`LoopGroup`] starts N event loops, each on a named thread of its own,
//! runs a setup closure on each (typically `create_server` with `reuse_port` on one shared
//! port), runs them until stopped from any thread, and reports every loop's error or panic.
//!
//! An `EventLoop` is `!Send` and single-threaded, as asyncio's; using more cores means more
//! loops, each owning its sockets. With `SO_REUSEPORT` on every loop's listener, the kernel
//! spreads the incoming connections over the listeners by a hash of each connection's 4-tuple;
//! docs/architecture.md ("One loop per core") says what that gives and costs on many cores.
//!
//! # Ground rules
//!
//! - The thread that calls [`LoopGroup::spawn`] starts loop 0 and waits for its setup, then
//!   starts the others, which see loop 0's setup value ([`LoopSeat::first`]) and set up side by
//!   side; `spawn` returns once every setup has returned.
//! - `Shared` (`shared.rs`) is the only state the threads share: under its mutex, a `stopping`
//!   flag and each running loop's `RemoteLoop`. A loop is *armed* (its remote stored) after its
//!   setup and only if the group is not stopping; a stop sets the flag, takes the armed remotes
//!   and, out of the lock, asks each loop to stop with `RemoteLoop::stop`. So a stop that comes
//!   before a loop runs keeps it from running, and one that comes after reaches it.
//! - Files: `start.rs` starts the threads and is each thread's body, over `seat.rs` (what a
//!   setup sees), `shared.rs`, `error.rs` and `affinity.rs` (CPU pinning).
//! - One for all: a loop's thread stops the whole group when it ends, for whatever reason (a
//!   stop, an error, a panic, a setup that failed), so no loop serves on alone.
//! - Each thread closes its own loop; the `LoopGroup` joins the threads (in `join`, or in its
//!   `Drop`).

mod affinity;
mod error;
mod seat;
mod shared;
mod start;

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use evloop_sched::{EventLoop, RemoteLoop};

pub use error::{GroupError, LoopFailure};
pub use seat::LoopSeat;

use shared::Shared;
use start::{Starter, join_all};

/// How a [`LoopGroup`] is started: how many loops, their threads' names, their CPUs.
///
/// # Examples
///
/// ```
/// use evloop::LoopGroupOptions;
///
/// let options = LoopGroupOptions::new().loops(4).thread_name("echo").pin_threads(true);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct LoopGroupOptions {
    loops: Option<usize>,
    thread_name: String,
    pinning: Pinning,
}

/// Which CPUs the loops' threads are pinned to.
#[derive(Debug, Clone)]
enum Pinning {
    /// None: the kernel's scheduler places the threads.
    Off,
    /// Loop `i` on the `i`-th CPU this process may use (wrapping around).
    Allowed,
    /// Loop `i` on `cpus[i % cpus.len()]`.
    Cpus(Vec<usize>),
}

impl Default for LoopGroupOptions {
    fn default() -> LoopGroupOptions {
        LoopGroupOptions {
            loops: None,
            thread_name: "evloop".to_string(),
            pinning: Pinning::Off,
        }
    }
}

impl LoopGroupOptions {
    /// One loop per CPU this process may use (`std::thread::available_parallelism`), threads
    /// named `evloop-0`, `evloop-1`, ..., not pinned.
    pub fn new() -> LoopGroupOptions {
        LoopGroupOptions::default()
    }

    /// Starts `loops` loops (at least 1) instead of one per CPU.
    pub fn loops(mut self, loops: usize) -> LoopGroupOptions {
        self.loops = Some(loops);
        self
    }

    /// Names loop `i`'s thread `{name}-{i}` (Linux shows the first 15 bytes).
    pub fn thread_name(mut self, name: impl Into<String>) -> LoopGroupOptions {
        self.thread_name = name.into();
        self
    }

    /// Pins loop `i`'s thread to the `i`-th CPU of those this process may use
    /// (`sched_getaffinity`), wrapping around when there are more loops than CPUs.
    ///
    /// Pinning keeps a loop's caches and its sockets' softirq work on one core, and keeps the
    /// scheduler from stacking two busy loops on one core while another idles; it also keeps a
    /// loop off a core that something else needs. Off by default.
    pub fn pin_threads(mut self, pin: bool) -> LoopGroupOptions {
        self.pinning = if pin { Pinning::Allowed } else { Pinning::Off };
        self
    }

    /// Pins loop `i`'s thread to `cpus[i % cpus.len()]` (`sched_setaffinity`): for instance all
    /// CPUs but the ones a load generator uses. An empty list turns pinning off.
    pub fn cpus(mut self, cpus: impl IntoIterator<Item = usize>) -> LoopGroupOptions {
        let cpus: Vec<usize> = cpus.into_iter().collect();
        self.pinning = if cpus.is_empty() {
            Pinning::Off
        } else {
            Pinning::Cpus(cpus)
        };
        self
    }
}

/// A `Send + Sync` handle that stops every loop of a [`LoopGroup`], from any thread (a loop
/// of the group included). Cheap to clone.
///
/// # Examples
///
/// Loop 1 stops the whole group from its own thread:
///
/// ```
/// use evloop::{LoopGroup, LoopGroupOptions};
///
/// let group = LoopGroup::spawn(LoopGroupOptions::new().loops(2), |_lp, seat| Ok(seat.index()))?;
/// let stopper = group.stopper();
/// let probe = stopper.clone();
/// group.remotes()[1].call_soon_threadsafe(move || stopper.stop())?;
/// group.join()?; // returns once both loops stopped and closed
/// assert!(probe.is_stopping());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct GroupStopper {
    shared: Arc<Shared>,
}

impl GroupStopper {
    /// Asks every loop of the group to stop after its current iteration; a loop still in its
    /// setup does not start running. Calling it again does nothing more.
    pub fn stop(&self) {
        self.shared.stop_all();
    }

    /// Whether the group was asked to stop (or a loop of it ended, which stops them all).
    pub fn is_stopping(&self) -> bool {
        self.shared.is_stopping()
    }
}

impl fmt::Debug for GroupStopper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupStopper")
            .field("stopping", &self.is_stopping())
            .finish()
    }
}

/// N event loops, one per thread, running until stopped: asyncio's "one loop per process",
/// in threads.
///
/// [`spawn`](LoopGroup::spawn) starts the loops and runs `setup` on each, on its own thread,
/// before the loop runs forever. A stop ([`stop`](LoopGroup::stop), or a [`GroupStopper`] from
/// any thread) stops them all; so does the end of any one loop (one for all). Each thread
/// closes its loop, which releases its servers and transports. [`join`](LoopGroup::join) waits
/// for the threads and reports every loop that failed.
///
/// Dropping the group without `join` stops every loop and joins the threads (no thread
/// outlives the group); failures are then logged at `error` level (the `log` crate), since
/// there is no caller left to return them to. Dropped on one of its own loops' threads, the
/// group cannot join that one thread, which ends by itself once its loop stops.
///
/// # Errors
///
/// `spawn` and `join` return an `io::Error` whose inner error is a [`GroupError`] listing every
/// failed loop (`err.get_ref()` and `downcast_ref::<GroupError>()`); its kind is the first
/// failure's.
///
/// # Examples
///
/// One echo server per loop, all on one port chosen by the kernel:
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::{SocketAddr, TcpStream};
/// use evloop::prelude::*;
/// use evloop::{LoopGroup, LoopGroupOptions, Protocol, ServerOptions, Transport};
///
/// #[derive(Default)]
/// struct Echo(Option<Transport>);
///
/// impl Protocol for Echo {
///     fn connection_made(&mut self, transport: &Transport) {
///         self.0 = Some(transport.clone());
///     }
///     fn data_received(&mut self, data: &[u8]) {
///         if let Some(t) = &self.0 {
///             t.write(data);
///         }
///     }
/// }
///
/// let group = LoopGroup::spawn(LoopGroupOptions::new().loops(2), |lp, seat| {
///     // Loop 0 binds port 0; the others bind the port it got.
///     let port = seat.first().map_or(0, |addr: &SocketAddr| addr.port());
///     let options = ServerOptions::new().host("127.0.0.1").port(port).reuse_port(true);
///     let server = lp.run_until_complete(lp.create_server(Echo::default, options))??;
///     let addr = server.sockets()[0].local_addr()?.as_socket();
///     seat.keep(server); // a server nobody holds stops listening
///     addr.ok_or_else(|| std::io::Error::other("not an inet address"))
/// })?;
/// let addr = group.values()[0];
///
/// let mut client = TcpStream::connect(addr)?;
/// client.write_all(b"ping")?;
/// let mut buf = [0; 4];
/// client.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
///
/// let stopper = group.stopper(); // Send: any thread may stop the group
/// std::thread::spawn(move || stopper.stop()).join().expect("the stopper panicked");
/// group.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LoopGroup<T> {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<(), LoopFailure>>>,
    values: Vec<T>,
    remotes: Vec<RemoteLoop>,
}

impl<T: Clone + Send + 'static> LoopGroup<T> {
    /// Starts the loops of `options`, each on its own thread, and runs `setup` on each before
    /// it runs forever; returns once every setup has returned.
    ///
    /// Loop 0's setup runs first, alone; the others then run theirs side by side, each seeing
    /// loop 0's value through [`LoopSeat::first`]. The values are kept in loop order
    /// ([`values`](LoopGroup::values)). A setup typically calls `create_server` with
    /// `reuse_port(true)` through `lp.run_until_complete`, and returns the bound address.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` if `options` asks for 0 loops or names the threads with a NUL byte;
    /// - the OS error if pinning was asked for and the CPUs cannot be read;
    /// - if any setup fails (an error or a panic) or a thread cannot be started, every loop is
    ///   stopped and closed, every thread joined, and the error lists each failed loop (a
    ///   [`GroupError`] inside the `io::Error`), of the first failure's kind.
    pub fn spawn<S>(options: LoopGroupOptions, setup: S) -> io::Result<LoopGroup<T>>
    where
        S: Fn(&EventLoop, LoopSeat<'_, T>) -> io::Result<T> + Send + Sync + 'static,
    {
        let count = match options.loops {
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "loops must be at least 1",
                ));
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        if options.thread_name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "thread_name contains a nul byte",
            ));
        }
        let cpus = match &options.pinning {
            Pinning::Off => Vec::new(),
            Pinning::Allowed => affinity::allowed_cpus()?,
            Pinning::Cpus(cpus) => cpus.clone(),
        };
        let shared = Arc::new(Shared::new(count));
        let mut starter = Starter {
            shared: shared.clone(),
            setup: Arc::new(setup),
            count,
            name: options.thread_name,
            cpus,
            threads: Vec::with_capacity(count),
        };
        let started = starter.start(count)?;
        Ok(LoopGroup {
            shared,
            threads: started.threads,
            values: started.values,
            remotes: started.remotes,
        })
    }
}

impl<T> LoopGroup<T> {
    /// How many loops the group runs.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the group has no loop (never: a group has at least one).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// What each loop's setup returned, by loop index.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// Each loop's `RemoteLoop`, by loop index: `call_soon_threadsafe` onto a given loop from
    /// anywhere, another loop of the group included (see docs/architecture.md for what such a
    /// call costs).
    pub fn remotes(&self) -> &[RemoteLoop] {
        &self.remotes
    }

    /// A `Send` handle that stops the group from any thread.
    pub fn stopper(&self) -> GroupStopper {
        GroupStopper {
            shared: self.shared.clone(),
        }
    }

    /// Asks every loop to stop (as [`GroupStopper::stop`]); [`join`](LoopGroup::join) then
    /// waits for them.
    pub fn stop(&self) {
        self.shared.stop_all();
    }

    /// Waits until every loop has stopped and closed and its thread has ended. It does not
    /// stop the loops: call [`stop`](LoopGroup::stop) first, or let another thread do it.
    ///
    /// # Errors
    ///
    /// An `io::Error` whose inner error is a [`GroupError`] listing every loop whose run
    /// returned an error or panicked, of the first one's kind.
    pub fn join(mut self) -> io::Result<()> {
        let failures = join_all(std::mem::take(&mut self.threads));
        if failures.is_empty() {
            Ok(())
        } else {
            Err(GroupError::new(failures).into())
        }
    }
}

impl<T> Drop for LoopGroup<T> {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.shared.stop_all();
        for failure in join_all(std::mem::take(&mut self.threads)) {
            log::error!("evloop loop group dropped unjoined: {failure}");
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for LoopGroup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopGroup")
            .field("loops", &self.values.len())
            .field("values", &self.values)
            .field("stopping", &self.shared.is_stopping())
            .finish()
    }
}
