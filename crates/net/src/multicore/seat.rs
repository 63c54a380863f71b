//! What a loop's setup learns about its place in the group, and where it leaves what the
//! loop must keep alive.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;

/// What a loop's setup closure learns about its place in the group, and where it leaves what
/// the loop must keep.
pub struct LoopSeat<'a, T> {
    pub(super) index: usize,
    pub(super) count: usize,
    pub(super) first: Option<&'a T>,
    pub(super) kept: &'a RefCell<Vec<Box<dyn Any>>>,
}

impl<'a, T> LoopSeat<'a, T> {
    /// This loop's index in the group, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many loops the group starts.
    pub fn count(&self) -> usize {
        self.count
    }

    /// What loop 0's setup returned, for every other loop; `None` for loop 0 itself, whose
    /// setup runs first. Loop 0 may bind port 0 and return the address it got; the others
    /// bind the same port.
    pub fn first(&self) -> Option<&'a T> {
        self.first
    }

    /// Keeps `value` (typically the loop's [`Server`](crate::Server), which stops listening
    /// once its last handle is dropped) alive on the loop's thread until the loop stops; it is
    /// dropped there, before the loop closes.
    pub fn keep(&self, value: impl Any) {
        self.kept.borrow_mut().push(Box::new(value));
    }
}

impl<T: fmt::Debug> fmt::Debug for LoopSeat<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopSeat")
            .field("index", &self.index)
            .field("count", &self.count)
            .field("first", &self.first)
            .field("kept", &self.kept.borrow().len())
            .finish()
    }
}
