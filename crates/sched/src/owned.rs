//! The loops a thread made: closed when the thread exits, if they were left open.
//!
//! A loop that is never closed can keep itself alive: a pending callback holding a clone of
//! the loop (`let l2 = lp.clone(); lp.call_later(.., move || l2.stop())`) is owned by the loop,
//! so dropping every other handle leaks the loop, its reactor's fds and everything it holds.
//! asyncio closes such a loop when the garbage collector finds the cycle; Rust has no collector,
//! so the thread that made a loop keeps a weak reference to it, and closes what is still alive
//! and open when the thread ends.
//!
//! # Ground rules
//!
//! - Nothing here runs per callback: a loop joins the list once, in `EventLoop::new`, and the
//!   list is pruned of dropped loops only when it would grow.
//! - The list's destructor runs among the thread's other thread-local destructors, in an order
//!   Rust does not promise: what `close()` reaches from there must not need a thread-local that
//!   may be gone (the loop's own code uses `try_with`), and a panic there is caught by `close()`
//!   itself (each drop and each hook is).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use crate::EventLoop;
use crate::event_loop::Inner;

/// The loops made on this thread, as weak references.
struct Owned(RefCell<Vec<Weak<Inner>>>);

thread_local! {
    static OWNED: Owned = const { Owned(RefCell::new(Vec::new())) };
}

/// Adds a new loop to this thread's list (nothing if the thread is already ending).
pub(crate) fn register(inner: &Rc<Inner>) {
    let _ = OWNED.try_with(|owned| {
        let mut list = owned.0.borrow_mut();
        if list.len() == list.capacity() {
            // Dropped loops leave dead entries; pruning when the list would grow keeps it at
            // most about twice the number of live loops, at no cost per loop on average.
            list.retain(|weak| weak.strong_count() > 0);
        }
        list.push(Rc::downgrade(inner));
    });
}

impl Drop for Owned {
    fn drop(&mut self) {
        let list = std::mem::take(&mut *self.0.borrow_mut());
        for weak in list {
            let Some(inner) = weak.upgrade() else {
                continue;
            };
            let lp = EventLoop { inner };
            if lp.is_closed() {
                continue;
            }
            lp.warn_unclosed();
            // A loop running now cannot be closed; a thread never ends inside `run_forever`.
            let _ = lp.close();
        }
    }
}
