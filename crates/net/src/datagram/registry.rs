//! The loop's open datagram endpoints, so that closing the loop releases them: their sockets
//! are closed and their protocols dropped, even when a protocol and its transport keep each
//! other alive (an `Rc` cycle nothing else would break).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use evloop_sched::EventLoop;

use super::endpoint::Endpoint;

/// Weak references to the open endpoints of one loop, in reusable slots.
#[derive(Default)]
pub(super) struct Registry {
    slots: RefCell<Vec<Option<Weak<Endpoint>>>>,
    free: RefCell<Vec<usize>>,
    /// Whether the loop's `on_close` hook was installed (once per loop).
    hooked: Cell<bool>,
}

impl Registry {
    /// Records `ep` until [`remove`](Registry::remove); returns its slot.
    pub(super) fn insert(lp: &EventLoop, ep: &Rc<Endpoint>) -> usize {
        let reg = lp.local::<Registry>();
        if !reg.hooked.replace(true) {
            let reg2 = reg.clone();
            lp.on_close(move || reg2.release_all());
        }
        let weak = Some(Rc::downgrade(ep));
        let mut slots = reg.slots.borrow_mut();
        match reg.free.borrow_mut().pop() {
            Some(slot) => {
                slots[slot] = weak;
                slot
            }
            None => {
                slots.push(weak);
                slots.len() - 1
            }
        }
    }

    /// Forgets the endpoint in `slot`.
    pub(super) fn remove(lp: &EventLoop, slot: usize) {
        let reg = lp.local::<Registry>();
        let mut slots = reg.slots.borrow_mut();
        if let Some(entry) = slots.get_mut(slot) {
            if entry.take().is_some() {
                reg.free.borrow_mut().push(slot);
            }
        }
    }

    /// The loop is closing: every endpoint still open lets go of its socket and protocol
    /// (without a `connection_lost`: a closed loop runs no more callbacks).
    fn release_all(&self) {
        let live: Vec<Rc<Endpoint>> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(|slot| slot.take().and_then(|weak| weak.upgrade()))
            .collect();
        self.free.borrow_mut().clear();
        self.slots.borrow_mut().clear();
        // Released outside the borrows: dropping a protocol runs user code.
        for ep in live {
            ep.release();
        }
    }
}
