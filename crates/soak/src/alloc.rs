//! A counting global allocator: the live heap in bytes, for the leak checks.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes allocated and not yet freed, over the whole process.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes.
pub(crate) struct Counting;

// SAFETY: every method forwards to `System` unchanged and only adds bookkeeping on an atomic
// counter, so `System`'s guarantees hold.
unsafe impl GlobalAlloc for Counting {
    /// Allocates through `System` and counts the bytes.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`]: `layout` has a non-zero size.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout, which meets `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    /// Allocates zeroed memory through `System` and counts the bytes.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc_zeroed`]: `layout` has a non-zero size.
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    /// Frees through `System` and uncounts the bytes.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`]: `ptr` was allocated by this allocator with `layout`.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    /// Reallocates through `System` and counts the difference.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::realloc`]: `ptr` came from this allocator with `layout`, and
    /// `new_size` is non-zero and fits an `isize` once rounded to the alignment.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is `System`'s.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

/// The live heap now, in bytes.
pub(crate) fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}
