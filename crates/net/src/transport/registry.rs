//! The loop's open transports, so that closing the loop releases them: their fds are closed
//! and their protocols dropped, even when a protocol and its transport keep each other alive.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use evloop_sched::EventLoop;

use super::inner::Inner;

/// Weak references to the open transports of one loop, in reusable slots.
#[derive(Default)]
pub(crate) struct Registry {
    slots: RefCell<Vec<Option<Weak<Inner>>>>,
    free: RefCell<Vec<u32>>,
    /// Whether the loop's `on_close` hook was installed.
    hooked: std::cell::Cell<bool>,
}

impl Registry {
    /// Records `inner`; returns its slot.
    pub(crate) fn insert(lp: &EventLoop, inner: &Rc<Inner>) -> u32 {
        let reg = lp.local::<Registry>();
        if !reg.hooked.replace(true) {
            let reg2 = reg.clone();
            lp.on_close(move || reg2.release_all());
        }
        let weak = Some(Rc::downgrade(inner));
        let mut slots = reg.slots.borrow_mut();
        match reg.free.borrow_mut().pop() {
            Some(slot) => {
                slots[slot as usize] = weak;
                slot
            }
            None => {
                slots.push(weak);
                // A loop holds far fewer than 2^32 transports: each needs an fd.
                u32::try_from(slots.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    /// Forgets the transport in `slot`.
    pub(crate) fn remove(lp: &EventLoop, slot: u32) {
        let reg = lp.local::<Registry>();
        let mut slots = reg.slots.borrow_mut();
        if let Some(entry) = slots.get_mut(slot as usize) {
            if entry.take().is_some() {
                reg.free.borrow_mut().push(slot);
            }
        }
    }

    /// The loop is closing: every transport still open lets go of its fd and protocol.
    fn release_all(&self) {
        let live: Vec<Rc<Inner>> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(|slot| slot.take().and_then(|weak| weak.upgrade()))
            .collect();
        self.free.borrow_mut().clear();
        self.slots.borrow_mut().clear();
        for inner in live {
            inner.release();
        }
    }
}
