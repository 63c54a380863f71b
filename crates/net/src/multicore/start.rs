//! Starting a group: loop 0's thread first, then the others; and each loop's thread, from its
//! setup to its loop's close.

use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use evloop_sched::{EventLoop, RemoteLoop};

use super::affinity;
use super::error::{GroupError, LoopFailure};
use super::seat::LoopSeat;
use super::shared::{Shared, StopOnExit};

/// What a loop's thread reports once its setup returned: the setup's value and the loop's
/// remote, or why it failed.
type Report<T> = (usize, Result<(T, RemoteLoop), LoopFailure>);

/// What a group that started has: every thread, and every setup's value and loop's remote, by
/// loop index.
pub(super) struct Started<T> {
    pub(super) threads: Vec<JoinHandle<Result<(), LoopFailure>>>,
    pub(super) values: Vec<T>,
    pub(super) remotes: Vec<RemoteLoop>,
}

/// Joins every thread but the calling one (which cannot join itself, and ends once its loop
/// stops), and returns every failure, by loop index.
pub(super) fn join_all(threads: Vec<JoinHandle<Result<(), LoopFailure>>>) -> Vec<LoopFailure> {
    let me = thread::current().id();
    let mut failures = Vec::new();
    for (index, handle) in threads.into_iter().enumerate() {
        if handle.thread().id() == me {
            continue;
        }
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => failures.push(failure),
            Err(payload) => failures.push(LoopFailure::panic(index, &*payload)),
        }
    }
    failures
}

/// The starting of a group: loop 0 first, then the others.
pub(super) struct Starter<S> {
    pub(super) shared: Arc<Shared>,
    pub(super) setup: Arc<S>,
    pub(super) count: usize,
    pub(super) name: String,
    pub(super) cpus: Vec<usize>,
    pub(super) threads: Vec<JoinHandle<Result<(), LoopFailure>>>,
}

impl<S> Starter<S> {
    /// Starts every loop and collects the setups' reports; on the first failure, stops and
    /// joins what was started and returns every failure.
    pub(super) fn start<T>(&mut self, count: usize) -> io::Result<Started<T>>
    where
        T: Clone + Send + 'static,
        S: Fn(&EventLoop, LoopSeat<'_, T>) -> io::Result<T> + Send + Sync + 'static,
    {
        let mut values: Vec<Option<(T, RemoteLoop)>> = (0..count).map(|_| None).collect();
        let mut failures = Vec::new();
        let (tx, rx) = mpsc::channel::<Report<T>>();
        // Loop 0 alone first: the others may need its value.
        let first = match self.spawn_seat(0, None, tx.clone()) {
            Err(failure) => {
                failures.push(failure);
                None
            }
            Ok(()) => match rx.recv() {
                Ok((_, Ok((value, remote)))) => {
                    values[0] = Some((value.clone(), remote));
                    Some(value)
                }
                Ok((_, Err(failure))) => {
                    failures.push(failure);
                    None
                }
                // Not reached: the thread reports before it ends, or its panic is joined below.
                Err(mpsc::RecvError) => None,
            },
        };
        if let Some(first) = first {
            let mut pending = 0;
            for index in 1..count {
                match self.spawn_seat(index, Some(first.clone()), tx.clone()) {
                    Ok(()) => pending += 1,
                    Err(failure) => {
                        failures.push(failure);
                        break;
                    }
                }
            }
            drop(tx);
            for _ in 0..pending {
                match rx.recv() {
                    Ok((index, Ok(value))) => values[index] = Some(value),
                    Ok((_, Err(failure))) => failures.push(failure),
                    Err(mpsc::RecvError) => break,
                }
            }
        }
        let threads = std::mem::take(&mut self.threads);
        let complete = values.iter().all(Option::is_some);
        if failures.is_empty() && complete {
            let (values, remotes) = values.into_iter().flatten().unzip();
            return Ok(Started {
                threads,
                values,
                remotes,
            });
        }
        self.shared.stop_all();
        failures.extend(join_all(threads));
        if failures.is_empty() {
            // Not reached: a loop that did not report its setup failed in it (joined above).
            failures.push(LoopFailure::error(
                0,
                io::Error::other("a loop ended before its setup reported"),
            ));
        }
        Err(GroupError::new(failures).into())
    }

    /// Starts loop `index`'s thread.
    fn spawn_seat<T>(
        &mut self,
        index: usize,
        first: Option<T>,
        report: mpsc::Sender<Report<T>>,
    ) -> Result<(), LoopFailure>
    where
        T: Clone + Send + 'static,
        S: Fn(&EventLoop, LoopSeat<'_, T>) -> io::Result<T> + Send + Sync + 'static,
    {
        let seat = Seat {
            index,
            count: self.count,
            cpu: (!self.cpus.is_empty()).then(|| self.cpus[index % self.cpus.len()]),
            shared: self.shared.clone(),
            setup: self.setup.clone(),
            first,
            report,
        };
        let handle = thread::Builder::new()
            .name(format!("{}-{index}", self.name))
            .spawn(move || seat.run())
            .map_err(|e| LoopFailure::error(index, e))?;
        self.threads.push(handle);
        Ok(())
    }
}

/// One loop's thread: what it needs, moved in.
struct Seat<S, T> {
    index: usize,
    count: usize,
    cpu: Option<usize>,
    shared: Arc<Shared>,
    setup: Arc<S>,
    first: Option<T>,
    report: mpsc::Sender<Report<T>>,
}

impl<S, T> Seat<S, T>
where
    T: Send + 'static,
    S: Fn(&EventLoop, LoopSeat<'_, T>) -> io::Result<T>,
{
    /// The thread's body: set up, report, run until stopped, close. The group stops as the
    /// thread ends, whatever the way out.
    fn run(self) -> Result<(), LoopFailure> {
        let _stop = StopOnExit(self.shared.clone());
        let index = self.index;
        let kept = RefCell::new(Vec::new());
        let set_up = panic::catch_unwind(AssertUnwindSafe(|| self.set_up(&kept)));
        let lp = match set_up {
            Ok(Ok((lp, value))) => {
                let _ = self.report.send((index, Ok((value, lp.remote()))));
                lp
            }
            Ok(Err(failure)) => {
                drop(kept);
                let _ = self.report.send((index, Err(failure)));
                return Ok(());
            }
            Err(payload) => {
                drop(kept);
                let _ = self
                    .report
                    .send((index, Err(LoopFailure::panic(index, &*payload))));
                return Ok(());
            }
        };
        drop(self.report);
        if !self.shared.arm(index, lp.remote()) {
            drop(kept);
            return lp.close().map_err(|e| LoopFailure::error(index, e.into()));
        }
        let run = panic::catch_unwind(AssertUnwindSafe(|| lp.run_forever()));
        // What the setup kept goes first, on a loop still open (a server's handles, tasks).
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| drop(kept)));
        let closed = lp.close();
        if let Err(payload) = dropped {
            return Err(LoopFailure::panic(index, &*payload));
        }
        match run {
            Err(payload) => Err(LoopFailure::panic(index, &*payload)),
            Ok(Err(e)) => Err(LoopFailure::error(index, e.into())),
            Ok(Ok(())) => closed.map_err(|e| LoopFailure::error(index, e.into())),
        }
    }

    /// Pins the thread, makes the loop and runs the user's setup on it; on an error the loop
    /// is closed.
    fn set_up(&self, kept: &RefCell<Vec<Box<dyn Any>>>) -> Result<(EventLoop, T), LoopFailure> {
        let index = self.index;
        let fail = |e: io::Error| LoopFailure::error(index, e);
        if let Some(cpu) = self.cpu {
            affinity::pin_current_thread(cpu).map_err(fail)?;
        }
        let lp = EventLoop::new().map_err(fail)?;
        let seat = LoopSeat {
            index,
            count: self.count,
            first: self.first.as_ref(),
            kept,
        };
        match (self.setup)(&lp, seat) {
            Ok(value) => Ok((lp, value)),
            Err(e) => {
                kept.borrow_mut().clear();
                // The setup's error is the one worth reporting; a close error after it would
                // only repeat that the loop is unusable.
                let _ = lp.close();
                Err(fail(e))
            }
        }
    }
}
