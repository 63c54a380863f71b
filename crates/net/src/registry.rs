//! The loop's open transports, datagram endpoints and servers, so that closing the loop
//! releases them: their fds are closed and their protocols dropped, even when a protocol and
//! its transport keep each other alive (an `Rc` cycle nothing else would break), and a server
//! stops listening even while the program still holds it.
//!
//! An item nobody holds at all (not even the loop's fd watches, which closing the loop drops
//! first) is gone from the registry too: its own `Drop` closes its fd.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use evloop_sched::EventLoop;

/// What the registry does to an item still open when the loop closes.
pub(crate) trait Release: 'static {
    /// Lets go of the fd and the protocol (without `connection_lost`: a closed loop runs no
    /// more callbacks). Idempotent.
    fn release(self: &Rc<Self>);
}

/// Weak references to the open items of one kind on one loop, in reusable slots.
pub(crate) struct Registry<T: Release> {
    slots: RefCell<Vec<Option<Weak<T>>>>,
    free: RefCell<Vec<u32>>,
    /// Whether the loop's `on_close` hook was installed (once per loop and kind).
    hooked: Cell<bool>,
}

impl<T: Release> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            hooked: Cell::new(false),
        }
    }
}

/// The slot of an item not (or no longer) in the registry.
pub(crate) const NO_SLOT: u32 = u32::MAX;

impl<T: Release> Registry<T> {
    /// Records `item` until [`remove`](Registry::remove); returns its slot.
    pub(crate) fn insert(lp: &EventLoop, item: &Rc<T>) -> u32 {
        let reg = lp.local::<Registry<T>>();
        if !reg.hooked.replace(true) {
            let reg2 = reg.clone();
            lp.on_close(move || reg2.release_all());
        }
        let weak = Some(Rc::downgrade(item));
        let mut slots = reg.slots.borrow_mut();
        match reg.free.borrow_mut().pop() {
            Some(slot) => {
                slots[slot as usize] = weak;
                slot
            }
            None => {
                slots.push(weak);
                // A loop holds far fewer than 2^32 open items: each needs an fd.
                u32::try_from(slots.len() - 1).unwrap_or(NO_SLOT)
            }
        }
    }

    /// Forgets the item in `slot` ([`NO_SLOT`] does nothing).
    pub(crate) fn remove(lp: &EventLoop, slot: u32) {
        let reg = lp.local::<Registry<T>>();
        let mut slots = reg.slots.borrow_mut();
        if let Some(entry) = slots.get_mut(slot as usize) {
            if entry.take().is_some() {
                reg.free.borrow_mut().push(slot);
            }
        }
    }

    /// The loop is closing: every item still open lets go of its fd and protocol.
    fn release_all(&self) {
        let live: Vec<Rc<T>> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(|slot| slot.take().and_then(|weak| weak.upgrade()))
            .collect();
        self.free.borrow_mut().clear();
        self.slots.borrow_mut().clear();
        // Released outside the borrows: dropping a protocol runs user code.
        for item in live {
            item.release();
        }
    }
}
