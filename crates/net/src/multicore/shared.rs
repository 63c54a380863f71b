//! The state a group's threads share: under one mutex, whether the group is stopping and
//! each running loop's `RemoteLoop` (the ground rules are in the parent module).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use evloop_sched::RemoteLoop;

/// The state the group's threads share (see the ground rules in `multicore/mod.rs`).
pub(super) struct Shared {
    state: Mutex<Armed>,
}

struct Armed {
    stopping: bool,
    remotes: Vec<Option<RemoteLoop>>,
}

impl Shared {
    /// A group of `count` loops, none armed, not stopping.
    pub(super) fn new(count: usize) -> Shared {
        Shared {
            state: Mutex::new(Armed {
                stopping: false,
                remotes: vec![None; count],
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Armed> {
        // A panic never happens under this lock (it guards a flag and a few pushes), but a
        // poisoned lock would still hold consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores loop `index`'s remote so that a stop reaches it; false if the group is already
    /// stopping, and then the loop must not run.
    pub(super) fn arm(&self, index: usize, remote: RemoteLoop) -> bool {
        let mut state = self.lock();
        if state.stopping {
            return false;
        }
        if let Some(slot) = state.remotes.get_mut(index) {
            *slot = Some(remote);
        }
        true
    }

    /// Asks every armed loop to stop, and keeps every other one from running.
    pub(super) fn stop_all(&self) {
        let remotes: Vec<RemoteLoop> = {
            let mut state = self.lock();
            state.stopping = true;
            state.remotes.iter_mut().filter_map(Option::take).collect()
        };
        for remote in remotes {
            // A loop that already closed has nothing left to stop.
            let _ = remote.stop();
        }
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.lock().stopping
    }
}

/// Stops the whole group when a loop's thread ends, even by a panic.
pub(super) struct StopOnExit(pub(super) Arc<Shared>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        self.0.stop_all();
    }
}
