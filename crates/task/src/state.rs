//! The small state of a future or a task, below [`Core`](crate::core::Core): where it is
//! ([`Status`], and in one word [`State`]: its phase, its flags, a task's registry slot) and
//! what only a task has ([`TaskInfo`]: its id and name, its cancel data, what it awaits).

use std::cell::Cell;
use std::num::NonZeroU64;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use evloop_sched::TimerHandle;

use crate::Error;

/// Where a future is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Status {
    Pending = 0,
    Finished = 1,
    Failed = 2,
    Cancelled = 3,
}

/// What a suspended task awaits (a loop future, a task, or a sleep's timer), so that cancelling
/// the task cancels it too.
pub(crate) trait Awaited {
    /// Cancels it: a future or a task with the task's cancel message; a timer leaves the wheel.
    fn cancel_awaited(self: Rc<Self>, msg: Option<Arc<str>>);
    /// Drops the wakers it holds (`close()` breaks the cycles through them).
    fn clear_awaited(self: Rc<Self>);
}

impl Awaited for TimerHandle {
    fn cancel_awaited(self: Rc<Self>, _msg: Option<Arc<str>>) {
        self.cancel();
    }

    /// The timer's callback owns the waker; `close()` drops the timers itself.
    fn clear_awaited(self: Rc<Self>) {}
}

/// Default task names are `Task-N` from a process-wide counter, as asyncio's. Each thread takes
/// a block of [`ID_BLOCK`] ids at a time, so that spawning a task costs no atomic operation:
/// ids stay unique in the process and increase on each thread (so on each loop).
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

/// How many ids a thread takes from [`NEXT_BLOCK`] at once.
const ID_BLOCK: u64 = 1024;

thread_local! {
    /// This thread's next id and the end of its block (`next == end`: take a new block).
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A fresh task id (non-zero: the counter starts at 1).
#[inline]
fn next_id() -> NonZeroU64 {
    let id = IDS
        .try_with(|ids| {
            let (next, end) = ids.get();
            if next != end {
                ids.set((next + 1, end));
                return next;
            }
            let start = new_id_block();
            ids.set((start.saturating_add(1), start.saturating_add(ID_BLOCK)));
            start
        })
        // During this thread's teardown: one id of a block of its own.
        .unwrap_or_else(|_| new_id_block());
    // The counter would take centuries to wrap; `MAX` keeps the id non-zero without a panic
    // path.
    NonZeroU64::new(id).unwrap_or(NonZeroU64::MAX)
}

/// The first id of a fresh block.
#[cold]
fn new_id_block() -> u64 {
    NEXT_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed)
}

type Waiter = Option<Rc<dyn Awaited>>;

/// What few tasks need: a name set by hand, a cancel message, a cancel count. Boxed on first
/// use.
#[derive(Default)]
struct Extra {
    name: Option<String>,
    cancel_msg: Option<Arc<str>>,
    num_cancels: u32,
}

/// The state a task has beyond a future's.
pub(crate) struct TaskInfo {
    /// Non-zero, so that `Option<TaskInfo>` needs no tag of its own (its `Cell`s offer no niche).
    id: NonZeroU64,
    /// A `Cell`, not a `RefCell` (one word less per task): taken out and put back around each
    /// use, with no foreign code in between (see `with_extra`).
    extra: Cell<Option<Box<Extra>>>,
    waiter: Cell<Waiter>,
}

impl TaskInfo {
    #[inline]
    pub(crate) fn new() -> TaskInfo {
        TaskInfo {
            id: next_id(),
            extra: Cell::new(None),
            waiter: Cell::new(None),
        }
    }

    /// Runs `f` on the extra state, created on first use. `f` must not call foreign code.
    fn with_extra<R>(&self, f: impl FnOnce(&mut Extra) -> R) -> R {
        let mut extra = self.extra.take().unwrap_or_default();
        let out = f(&mut extra);
        self.extra.set(Some(extra));
        out
    }

    /// Reads the extra state, if any. `f` must not call foreign code.
    fn read_extra<R>(&self, f: impl FnOnce(&Extra) -> Option<R>) -> Option<R> {
        let extra = self.extra.take();
        let out = extra.as_deref().and_then(f);
        self.extra.set(extra);
        out
    }

    pub(crate) fn name(&self) -> String {
        match self.read_extra(|e| e.name.clone()) {
            Some(name) => name,
            None => format!("Task-{}", self.id),
        }
    }

    pub(crate) fn set_name(&self, name: String) {
        let old = self.with_extra(|e| e.name.replace(name));
        // Dropped after the extra state is back in place.
        drop(old);
    }

    pub(crate) fn cancelling(&self) -> u32 {
        self.read_extra(|e| Some(e.num_cancels)).unwrap_or(0)
    }

    pub(crate) fn set_waiter(&self, waiter: Rc<dyn Awaited>) {
        let old = self.waiter.replace(Some(waiter));
        drop(old);
    }

    pub(crate) fn take_waiter(&self) -> Option<Rc<dyn Awaited>> {
        self.waiter.take()
    }

    /// asyncio's `Task.cancel(msg)`: a request; the task ends cancelled at its next step.
    /// Returns (accepted, wake): `wake` asks the caller to wake the task, so that the step
    /// that ends it comes on the next iteration.
    pub(crate) fn cancel(&self, state: &State, msg: Option<Arc<str>>) -> (bool, bool) {
        if state.phase.get().status() != Status::Pending {
            return (false, false);
        }
        // The first message wins, as in asyncio where the awaited future keeps it.
        let unused = self.with_extra(|e| {
            e.num_cancels = e.num_cancels.saturating_add(1);
            match &e.cancel_msg {
                Some(_) => msg,
                None => {
                    e.cancel_msg = msg;
                    None
                }
            }
        });
        drop(unused);
        state.set(Flag::MustCancel, true);
        if state.get(Flag::Running) {
            // Cancelled by its own step: the step itself takes care (see `step`).
            return (true, false);
        }
        self.cancel_waiter();
        // A task whose first step is queued (or not started by the factory) is already
        // scheduled: the wake is then a no-op, and that step sees `must_cancel`.
        (true, true)
    }

    /// Cancels what the task awaits: the future or task (with the cancel message), or the
    /// sleep's timer, which leaves the wheel now.
    pub(crate) fn cancel_waiter(&self) {
        if let Some(waiter) = self.waiter.take() {
            waiter.cancel_awaited(self.cancel_msg());
        }
    }

    pub(crate) fn cancelled_error(&self) -> Error {
        Error::cancelled_shared(self.cancel_msg())
    }

    fn cancel_msg(&self) -> Option<Arc<str>> {
        self.read_extra(|e| e.cancel_msg.clone())
    }
}

/// A core's flags, bits of [`State`]'s flag byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Flag {
    /// Someone looked at the outcome (or cancelled): a failure is not reported on drop.
    Retrieved = 1,
    /// A task's cancel was requested (see `step`).
    MustCancel = 2,
    /// A step of the task polls its body now.
    Running = 4,
    /// The task's first step was queued or run (a factory may drop a task without starting
    /// it).
    Started = 8,
    /// The task's step was dropped unrun (see `step`): its next poll drops the body and ends
    /// it.
    Abandoned = 16,
    /// The task's future is gone (finished, panicked, dropped): see `step::Body`.
    Gone = 32,
}

/// A core's small state in one 8-byte word: its [`Phase`], its [`Flag`]s, and a task's slot in
/// its loop's registry. One word, not spread over the core and its [`TaskInfo`]: spread, each
/// part pads its few bytes to a word of its own, and a trivial task grows past 144 bytes.
pub(crate) struct State {
    pub(crate) phase: Cell<Phase>,
    flags: Cell<u8>,
    /// `u32::MAX`: not registered.
    slot: Cell<u32>,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            phase: Cell::new(Phase::PENDING),
            flags: Cell::new(0),
            slot: Cell::new(u32::MAX),
        }
    }

    #[inline]
    pub(crate) fn get(&self, flag: Flag) -> bool {
        self.flags.get() & flag as u8 != 0
    }

    #[inline]
    pub(crate) fn set(&self, flag: Flag, on: bool) {
        let flags = self.flags.get();
        self.flags.set(if on {
            flags | flag as u8
        } else {
            flags & !(flag as u8)
        });
    }

    /// Sets a task's registry slot; returns the old one.
    #[inline]
    pub(crate) fn set_slot(&self, slot: u32) -> u32 {
        self.slot.replace(slot)
    }

    /// True once the task is in its loop's registry (see `current`'s ground rules).
    #[inline]
    pub(crate) fn registered(&self) -> bool {
        self.slot.get() != u32::MAX
    }
}

/// Where a core's outcome is, in one byte: its [`Status`] in the low two bits, and whether
/// the outcome slot is filled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Phase(u8);

impl Phase {
    /// Set when the outcome slot holds an outcome.
    const FILLED: u8 = 0b100;
    pub(crate) const PENDING: Phase = Phase(0);

    #[inline]
    pub(crate) fn status(self) -> Status {
        match self.0 & 0b11 {
            0 => Status::Pending,
            1 => Status::Finished,
            2 => Status::Failed,
            _ => Status::Cancelled,
        }
    }

    /// `status`, with the slot as it was.
    #[inline]
    pub(crate) fn with_status(self, status: Status) -> Phase {
        Phase((self.0 & Phase::FILLED) | status as u8)
    }

    #[inline]
    pub(crate) fn filled(self) -> bool {
        self.0 & Phase::FILLED != 0
    }

    #[inline]
    pub(crate) fn with_filled(self, filled: bool) -> Phase {
        if filled {
            Phase(self.0 | Phase::FILLED)
        } else {
            Phase(self.0 & !Phase::FILLED)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::thread;

    use super::{ID_BLOCK, next_id};

    // Ours: `Task-N` ids come from per-thread blocks; they must still be unique in the
    // process and increase on each thread, past the end of a block.
    #[test]
    fn task_ids_are_unique_across_threads_and_increase_on_each() {
        let per_thread = usize::try_from(ID_BLOCK * 2 + 5).unwrap_or(usize::MAX);
        let threads: Vec<_> = (0..4)
            .map(|_| thread::spawn(move || (0..per_thread).map(|_| next_id().get()).collect()))
            .collect();
        let mut all = HashSet::new();
        for t in threads {
            let ids: Vec<u64> = t.join().expect("the id thread panicked");
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "ids increase on a thread"
            );
            for id in ids {
                assert!(all.insert(id), "id {id} handed out twice");
            }
        }
        assert_eq!(all.len(), 4 * per_thread);
    }
}
