//! [`LoopExecExt`]: the loop methods of this floor, on `evloop_sched::EventLoop`.

use std::net::SocketAddr;
use std::time::Duration;

use evloop_sched::EventLoop;
use evloop_task::{Error, LoopFuture};

use crate::executor::{self, DefaultExecutor, Executor};
use crate::resolve::{self, AddrInfo, AddrInfoHints, Resolve};
use crate::shutdown::ShutdownDefaultExecutor;

mod sealed {
    pub trait Sealed {}
    impl Sealed for evloop_sched::EventLoop {}
}

/// The executor bridge on [`EventLoop`]: asyncio's `run_in_executor`, `set_default_executor`,
/// `shutdown_default_executor`, `getaddrinfo` and `getnameinfo`. In scope through
/// `use evloop::prelude::*`.
pub trait LoopExecExt: sealed::Sealed {
    /// Runs `f` on `executor` (`None`: the loop's default executor, created on first use with
    /// `min(32, cpus + 4)` threads) and returns a future of its result. A panic in `f` becomes
    /// the future's failure. Cancelling the future skips `f` if it has not started, and drops
    /// its result (on the worker) if it has.
    ///
    /// # Errors
    ///
    /// - a loop error with `is_closed()` on a closed loop;
    /// - invalid state ("executor shutdown has been called") for the default executor after
    ///   [`shutdown_default_executor`](LoopExecExt::shutdown_default_executor) or `close()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::EventLoop;
    /// use evloop::LoopExecExt;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let fut = lp.run_in_executor(None, || std::thread::current().name().map(str::to_owned))?;
    /// let name = lp.run_until_complete(fut)??;
    /// assert!(name.is_some_and(|n| n.starts_with("evloop-exec-")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn run_in_executor<T, F>(
        &self,
        executor: Option<&Executor>,
        f: F,
    ) -> Result<LoopFuture<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// Replaces the default executor (the old one is released; its threads end after its
    /// queued jobs).
    fn set_default_executor(&self, executor: Executor);

    /// Shuts the default executor down: new work on it is refused from now on, and the future
    /// completes once its jobs finished (`true`), or when `timeout` passed first (`false`, with
    /// a warning logged; the jobs are not waited for any longer).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::EventLoop;
    /// use evloop::LoopExecExt;
    /// use evloop::LoopTaskExt;
    ///
    /// let lp = EventLoop::new()?;
    /// let _ = lp.run_until_complete(lp.run_in_executor(None, || ())?)?;
    /// assert!(lp.run_until_complete(lp.shutdown_default_executor(Some(Duration::from_secs(5))))?);
    /// assert!(lp.run_in_executor(None, || ()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn shutdown_default_executor(&self, timeout: Option<Duration>) -> ShutdownDefaultExecutor;

    /// asyncio's `getaddrinfo(host, port, family, type, proto, flags)`: resolves on the default
    /// executor; numeric hosts and ports with a known socket type are answered at once, with no
    /// thread hop, when the flags are at most `AI_PASSIVE`, `AI_NUMERICHOST` and
    /// `AI_NUMERICSERV` (the answer is then the resolver's own). Any other flag, such as
    /// `AI_CANONNAME`, goes to the resolver as asyncio always does, so `AI_CANONNAME` on
    /// "127.0.0.1" gives the canonical name "127.0.0.1". A resolver failure is a
    /// [`ResolveError`](crate::ResolveError) carrying the `EAI_*` code.
    ///
    /// # Examples
    ///
    /// ```
    /// use evloop::socket2::{Protocol, Type};
    /// use evloop::{AddrInfoHints, EventLoop, LoopExecExt, LoopTaskExt};
    ///
    /// let lp = EventLoop::new()?;
    /// let hints = AddrInfoHints { socktype: Type::STREAM.into(), ..Default::default() };
    /// let found = lp.getaddrinfo(Some("127.0.0.1"), Some("80"), hints);
    /// assert!(found.is_ready()); // numeric: no thread hop
    /// let infos = lp.run_until_complete(found)??;
    /// assert_eq!(infos[0].addr, "127.0.0.1:80".parse()?);
    /// assert_eq!(infos[0].protocol, i32::from(Protocol::TCP));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn getaddrinfo(
        &self,
        host: Option<&str>,
        port: Option<&str>,
        hints: AddrInfoHints,
    ) -> Resolve<Vec<AddrInfo>>;

    /// asyncio's `getnameinfo(sockaddr, flags)`: `(host, service)` for `addr`, on the default
    /// executor; with `NI_NUMERICHOST | NI_NUMERICSERV` answered at once.
    fn getnameinfo(&self, addr: SocketAddr, flags: i32) -> Resolve<(String, String)>;
}

impl LoopExecExt for EventLoop {
    fn run_in_executor<T, F>(
        &self,
        executor: Option<&Executor>,
        f: F,
    ) -> Result<LoopFuture<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.is_closed() {
            return Err(evloop_sched::Error::closed().into());
        }
        match executor {
            Some(pool) => executor::run_in_executor(self, pool, f),
            None => executor::run_in_executor(self, &DefaultExecutor::get(self)?, f),
        }
    }

    fn set_default_executor(&self, executor: Executor) {
        DefaultExecutor::set(self, executor);
    }

    fn shutdown_default_executor(&self, timeout: Option<Duration>) -> ShutdownDefaultExecutor {
        ShutdownDefaultExecutor::new(self, timeout)
    }

    fn getaddrinfo(
        &self,
        host: Option<&str>,
        port: Option<&str>,
        hints: AddrInfoHints,
    ) -> Resolve<Vec<AddrInfo>> {
        resolve::getaddrinfo(self, host, port, hints)
    }

    fn getnameinfo(&self, addr: SocketAddr, flags: i32) -> Resolve<(String, String)> {
        resolve::getnameinfo(self, addr, flags)
    }
}
